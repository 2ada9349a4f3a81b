//! `aiot sim`: deterministic simulation runs of the named scenarios (`aiot_simulations`).
//!
//! `--list`; `--scenario NAME --seed N [--duration 2m]` plays one seed and prints a summary and
//! the trace hash; `--seeds A..B` sweeps and prints each failing seed with the command that
//! replays it; `--check-determinism` plays each seed twice and compares the hashes.
//! `--scenario fleet-pm` prints the predictive-maintenance efficacy report instead
//! (`crate::fleet_pm`).

use std::time::Duration;

use aiot_simulations::scenario::{self, Outcome, Scenario};
use aiot_simulations::scenarios;

use crate::fleet_pm;

pub struct Options {
    pub list: bool,
    pub scenario: Option<String>,
    pub seed: u64,
    pub seeds: Option<(u64, u64)>,
    pub duration: Duration,
    pub check_determinism: bool,
    pub fleet: crate::fleet_pm::FleetArgs,
}

/// Parses `1..500` (inclusive of both ends).
pub fn parse_seeds(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text.split_once("..").ok_or_else(|| format!("{text:?}: expected FIRST..LAST"))?;
    let first = a.parse().map_err(|_| format!("{text:?}: {a:?} is not a number"))?;
    let last = b.trim_start_matches('=').parse().map_err(|_| format!("{text:?}: {b:?} is not a number"))?;
    if last < first {
        return Err(format!("{text:?}: the last seed is before the first"));
    }
    Ok((first, last))
}

pub fn run(options: Options) -> Result<(), String> {
    if options.list {
        for s in scenarios::all() {
            println!("{:<12} {}", s.name(), s.about());
        }
        println!("{:<12} {}", fleet_pm::NAME, fleet_pm::ABOUT);
        return Ok(());
    }
    let name = options.scenario.as_deref().ok_or("name a scenario with --scenario (see --list)")?;
    let (first, last) = options.seeds.unwrap_or((options.seed, options.seed));
    if name == fleet_pm::NAME {
        return fleet_pm::run(&options.fleet, first, last);
    }
    let scenario = scenarios::by_name(name).ok_or_else(|| format!("no scenario {name:?} (see --list)"))?;
    let single = first == last;
    let mut failed = Vec::new();
    for seed in first..=last {
        let (outcome, wall) = play(scenario, seed, options.duration, single);
        if options.check_determinism {
            let (again, _) = play(scenario, seed, options.duration, false);
            if again.trace_hash != outcome.trace_hash || again.failure != outcome.failure {
                println!(
                    "seed {seed}: NOT DETERMINISTIC: hash {:016x} then {:016x}",
                    outcome.trace_hash, again.trace_hash
                );
                failed.push(seed);
                continue;
            }
        }
        if single {
            summary(&outcome, wall);
        }
        if let Some(why) = &outcome.failure {
            println!("seed {seed}: FAILED: {why}");
            println!("  replay: {}", replay(scenario, seed, options.duration));
            failed.push(seed);
        } else if !single {
            println!("seed {seed}: ok  hash {:016x}", outcome.trace_hash);
        }
    }
    let checked = if options.check_determinism { " (each run twice, hashes compared)" } else { "" };
    if !single {
        println!("{}: {} seeds, {} failed{checked}", scenario.name(), last - first + 1, failed.len());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{} seed(s) failed: {failed:?}", failed.len()))
    }
}

fn replay(scenario: &dyn Scenario, seed: u64, duration: Duration) -> String {
    format!("aiot sim --scenario {} --seed {seed} --duration {}s", scenario.name(), duration.as_secs())
}

/// Plays one seed; wall time is measured here, outside the simulated world.
fn play(scenario: &dyn Scenario, seed: u64, duration: Duration, progress: bool) -> (Outcome, Duration) {
    #[allow(clippy::disallowed_methods)] // the host measures wall time; the world never reads it
    let started = std::time::Instant::now();
    let outcome = scenario::run(scenario, seed, duration, |at| {
        if progress {
            println!("  ... {:?} simulated", at.saturating_since(aiot_runtime::Instant::ZERO));
        }
    });
    (outcome, started.elapsed())
}

fn summary(o: &Outcome, wall: Duration) {
    println!("scenario {} seed {}", o.scenario, o.seed);
    println!("  fault profile: {} at {:.1} per minute", o.profile.enabled.join(", "), o.profile.per_minute);
    println!(
        "  simulated {:.1}s in {:.3}s wall: {:.0}x real time",
        o.simulated.as_secs_f64(),
        wall.as_secs_f64(),
        o.simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    println!("  events (messages delivered): {}", o.stats.events);
    let faults: Vec<String> = o.stats.faults.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("  faults injected: {}", if faults.is_empty() { "none".to_string() } else { faults.join(", ") });
    let points: Vec<String> = o.fault_points.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "  fault points fired: {}",
        if points.is_empty() { "none".to_string() } else { points.join(", ") }
    );
    println!("  invariants checked: {}", o.stats.invariants_checked);
    if !o.totals.is_empty() {
        let totals: Vec<String> = o.totals.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("  totals: {}", totals.join(", "));
    }
    println!("  result: {}", o.failure.as_deref().unwrap_or("ok"));
    println!("trace hash {:016x}", o.trace_hash);
}
