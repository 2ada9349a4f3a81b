//! Determinism of the deterministic executor (a `harness = false` test: it re-runs itself as a
//! child process for the two-process check).
//!
//! - the same seed gives the same trace hash twice in one process, and in separate processes;
//! - on a workload whose messages do not depend on the seed, at least 195 of 200 consecutive
//!   seeds give distinct hashes (only the delivery order can differ between them).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

const CHILD_ENV: &str = "AIOT_DETERMINISM_CHILD_SEED";

fn hash_of(seed: u64) -> u64 {
    let (hash, totals, restarts) = common::fanout::run_det(seed);
    assert_eq!(totals, common::fanout::expected_totals(), "seed {seed}: wrong totals");
    assert_eq!(restarts, 2, "seed {seed}");
    hash
}

fn check(name: &str, outcome: Result<(), String>, failed: &mut u32, passed: &mut u32) {
    match outcome {
        Ok(()) => {
            *passed += 1;
            println!("test {name} ... ok");
        }
        Err(why) => {
            *failed += 1;
            println!("test {name} ... FAILED: {why}");
        }
    }
}

fn same_seed_same_hash_in_one_process() -> Result<(), String> {
    for seed in [0, 1, 42, 12345] {
        let (a, b) = (hash_of(seed), hash_of(seed));
        if a != b {
            return Err(format!("seed {seed}: {a:016x} then {b:016x}"));
        }
    }
    Ok(())
}

fn same_seed_same_hash_in_separate_processes() -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    for seed in [1u64, 42, 999] {
        let mut hashes = Vec::new();
        for _ in 0..2 {
            let out =
                Command::new(&exe).env(CHILD_ENV, seed.to_string()).output().map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "child for seed {seed} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            hashes.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        let here = format!("{:016x}", hash_of(seed));
        if hashes[0] != hashes[1] || hashes[0] != here {
            return Err(format!("seed {seed}: processes gave {hashes:?}, this one {here}"));
        }
    }
    Ok(())
}

fn consecutive_seeds_give_distinct_hashes() -> Result<(), String> {
    let hashes: BTreeSet<u64> = (1000..1200).map(hash_of).collect();
    if hashes.len() >= 195 {
        println!("  {} of 200 seeds gave distinct hashes", hashes.len());
        Ok(())
    } else {
        Err(format!("only {} of 200 seeds gave distinct hashes", hashes.len()))
    }
}

fn main() {
    if let Ok(seed) = std::env::var(CHILD_ENV) {
        let seed: u64 = seed.parse().expect("a seed");
        println!("{:016x}", hash_of(seed));
        return;
    }
    let (mut failed, mut passed) = (0, 0);
    check(
        "same_seed_same_hash_in_one_process",
        same_seed_same_hash_in_one_process(),
        &mut failed,
        &mut passed,
    );
    check(
        "same_seed_same_hash_in_separate_processes",
        same_seed_same_hash_in_separate_processes(),
        &mut failed,
        &mut passed,
    );
    check(
        "consecutive_seeds_give_distinct_hashes",
        consecutive_seeds_give_distinct_hashes(),
        &mut failed,
        &mut passed,
    );
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
