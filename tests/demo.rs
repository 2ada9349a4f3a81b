//! End to end: the `aiot demo` binary shows supervision at work, and its deterministic mode gives
//! the same trace hash in two separate processes.

use std::process::Command;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aiot")).arg("demo").args(args).output().expect("aiot runs");
    assert!(out.status.success(), "aiot demo failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn trace_hash(output: &str) -> &str {
    let line = output.lines().find(|l| l.starts_with("trace hash")).expect("a trace hash line");
    line.split_whitespace().nth(2).expect("the hash")
}

#[test]
fn deterministic_demo_shows_restarts_escalation_and_reproduces_its_hash() {
    let first = demo(&["--deterministic", "--duration", "4s", "--seed", "11"]);
    for expected in [
        "/fragile/plc-link    FAILED: lost the connection to the PLC",
        "/fragile             ESCALATED: restart intensity exceeded (more than 2 restarts in 1s)",
        "/fragile             restarted (incarnation 1)",
        "/plant/sensor-2      FAILED: panicked: sensor glitch at reading 12",
        "/plant/sensor-2      restarted (incarnation 1)",
        "/plant/monitor       readings in the last second:",
        "exit: shutdown",
    ] {
        assert!(first.contains(expected), "missing {expected:?} in:\n{first}");
    }
    let second = demo(&["--deterministic", "--duration", "4s", "--seed", "11"]);
    assert_eq!(trace_hash(&first), trace_hash(&second));
    let other_seed = demo(&["--deterministic", "--duration", "4s", "--seed", "12"]);
    assert_ne!(trace_hash(&first), trace_hash(&other_seed));
}

#[test]
fn tokio_demo_runs_the_same_story_in_real_time() {
    let output = demo(&["--duration", "2s"]);
    assert!(output.contains("ESCALATED: restart intensity exceeded"), "{output}");
    assert!(output.contains("/fragile/plc-link    started"), "{output}");
    assert!(output.contains("exit: shutdown"), "{output}");
}

#[test]
fn a_bad_duration_is_refused_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_aiot")).args(["demo", "--duration", "soon"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("expected a number then ms, s, m or h"), "{stderr}");
}
