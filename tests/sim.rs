//! `aiot sim` as a process: the scenario list, one seed's summary, the same seed in two separate
//! processes giving the same trace hash, and a sweep with the determinism double-run.

use std::process::Command;

fn aiot(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_aiot")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hash_line(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("trace hash "))
        .unwrap_or_else(|| panic!("no hash in {out}"))
        .to_string()
}

#[test]
fn a_seed_gives_the_same_hash_in_two_processes() {
    let list = aiot(&["sim", "--list"]);
    assert!(list.contains("membership") && list.contains("failover") && list.contains("fleet-pm"), "{list}");
    for (scenario, seed) in
        [("failover", "3"), ("failover", "17"), ("motes", "5"), ("motes", "23"), ("migration", "3")]
    {
        let args = ["sim", "--scenario", scenario, "--seed", seed, "--duration", "60s"];
        let (first, second) = (aiot(&args), aiot(&args));
        assert!(first.contains("result: ok"), "{first}");
        assert!(first.contains("invariants checked: "), "{first}");
        assert_eq!(hash_line(&first), hash_line(&second), "{scenario} seed {seed}");
    }
    let sweep = aiot(&[
        "sim",
        "--scenario",
        "membership",
        "--seeds",
        "1..5",
        "--duration",
        "20s",
        "--check-determinism",
    ]);
    assert!(sweep.contains("membership: 5 seeds, 0 failed (each run twice, hashes compared)"), "{sweep}");
}
