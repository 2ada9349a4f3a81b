//! End to end: `aiot demo` runs the whole system and reaches every milestone it sets out to
//! show, as the shell's `--json` reports it while the demo runs, and its dashboard (in
//! headless Chromium) shows what the shell and the metrics endpoint report; `aiot demo --supervision`
//! shows supervision at work, and its deterministic mode gives the same trace hash in two
//! separate processes.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{aiot, Node};
#[path = "demo/dashboard.rs"]
mod dashboard;

fn demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aiot"))
        .args(["demo", "--supervision"])
        .args(args)
        .output()
        .expect("aiot runs");
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

/// Whether the dashboard shows what the shell and the metrics report, tried a few times as
/// live values may change between the reads; saves a screenshot (target/tmp/dashboard.png).
fn dashboard_agrees(url: &str, metrics: &str, connect: &[String]) -> Result<String, String> {
    let mut outcome = Err("not tried".to_string());
    for _ in 0..5 {
        outcome = dashboard::agrees(url, metrics, connect);
        if outcome.is_ok() {
            break;
        }
    }
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    dashboard::screenshot(url, &path);
    println!("dashboard screenshot: {}", path.display());
    outcome
}

/// What the shell reports of a running demo.
#[derive(Debug, Default)]
struct Seen {
    alerts: u64,
    drifts: u64,
    models: usize,
    /// The registered model each mote runs (installed over the air; 0: none).
    running: Vec<u64>,
    migrations: u64,
}

/// Asks the demo's cluster through `aiot shell --json`, or says why the shell could not answer.
fn ask_shell(connect: &[String]) -> Result<Seen, String> {
    let out = aiot().args(connect).args(["--json", "-c", "loop; models; stats"]).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let [ml_loop, models, stats] = answers.as_slice() else { panic!("three answers: {text}") };
    let sum = |section: &str, key: &str| -> u64 {
        ml_loop.as_object().unwrap().values().map(|node| node[section][key].as_u64().unwrap()).sum()
    };
    let motes = models["rollout"]["motes"].as_object();
    let running = motes.into_iter().flatten().map(|(_, m)| m["running"].as_u64().unwrap()).collect();
    Ok(Seen {
        alerts: sum("stage2", "alerts"),
        drifts: sum("drift", "drifts"),
        models: models["models"].as_array().unwrap().len(),
        running,
        migrations: stats
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["remote"]["migrations"].as_u64().unwrap())
            .sum(),
    })
}

#[test]
fn the_full_demo_reaches_every_milestone_as_the_shell_reports_it() {
    const MOTES: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let motes = MOTES.to_string();
    let demo = Node::spawn(&["demo", "--duration", "4m", "--motes", &motes, "--dir", dir_arg]);
    let shell_line = demo.wait_for("shell:");
    let connect: Vec<String> = shell_line.split_whitespace().skip(2).map(String::from).collect();
    assert_eq!(connect[..2], ["shell", "--connect"], "{shell_line}");
    let metrics = demo.wait_for("metrics:");
    assert!(metrics.ends_with("(platform-1)"), "the platform node's metrics come first: {metrics}");
    let metrics = metrics.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let url = demo.wait_for("dashboard:").split_whitespace().nth(1).unwrap().to_string();
    let mut dashboard: Option<Result<String, String>> = None;

    // Asked every 10 s while the demo runs (4 minutes), until everything showed.
    let (mut seen, mut shell_error) = (Seen::default(), None);
    for _ in 0..24 {
        std::thread::sleep(Duration::from_secs(10));
        match ask_shell(&connect) {
            Ok(now) => seen = now,
            Err(e) => {
                shell_error = Some(e);
                continue;
            }
        }
        let every_mote = seen.running.len() == MOTES && seen.running.iter().all(|v| *v > 0);
        if dashboard.is_none() && seen.models > 0 && every_mote {
            dashboard = Some(dashboard_agrees(&url, &metrics, &connect));
        }
        if seen.alerts > 0 && seen.drifts > 0 && seen.models > 0 && every_mote && seen.migrations > 0 {
            break;
        }
    }
    // What the demo printed so far, for the messages.
    let timeline: Vec<String> = demo.lines.try_iter().filter(|l| !l.contains(" hosting ")).collect();
    let report = format!("{seen:?}\nlast shell error: {shell_error:?}\n{}", timeline.join("\n"));
    assert!(seen.alerts > 0, "no alert raised: {report}");
    assert!(seen.drifts > 0, "no drift detected: {report}");
    assert!(seen.models > 0, "no model in the registry: {report}");
    assert_eq!(seen.running.len(), MOTES, "not every mote in the rollout: {report}");
    assert!(seen.running.iter().all(|v| *v > 0), "a mote runs no registered model: {report}");
    assert!(seen.migrations > 0, "no actor migrated: {report}");
    match dashboard {
        Some(Ok(agreed)) => println!("the dashboard agrees with the shell and the metrics: {agreed}"),
        Some(Err(differed)) => panic!("the dashboard differs: {differed}"),
        None => panic!("the dashboard was never checked (no model on every mote): {report}"),
    }

    // The demo ends by itself, saying so (its timeline was read above: wait for the rest of
    // its 4 minutes, and its shutdown).
    demo.wait_for_within("summary", Duration::from_secs(300));
    // What the summary says agrees with what the shell showed (installed everywhere may be
    // mid-rollout at the very end, so it is only printed).
    let summary: Vec<String> = (0..7).map(|_| demo.wait_for("  ")).collect();
    for (milestone, line) in ["alerts raised", "drift detected", "models trained", "live migration"]
        .iter()
        .map(|m| (m, summary.iter().find(|l| l.trim_start().starts_with(m))))
    {
        let line = line.unwrap_or_else(|| panic!("no {milestone:?} line in {summary:?}"));
        assert!(line.contains(" yes "), "{line}");
    }
    // A model was installed and windows scored with it: stage 2 measured their latency.
    let latency = summary.iter().find(|l| l.trim_start().starts_with("capture to decision"));
    assert!(latency.is_some_and(|l| l.contains(" ms wall ")), "no latency measured: {summary:?}");
    println!("{}", summary.join("\n"));
}
