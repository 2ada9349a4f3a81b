//! `aiot-bench sim`: how much faster than real time the simulated world runs (the baseline is
//! real time itself: 1 simulated second per wall second). For each scenario, `--seeds` runs of
//! `--duration` simulated time with their fault profiles; prints simulated time per wall
//! second and messages delivered per wall second. (The 100-mote fleet comes with the motes.)

// Host code (a benchmark): it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use aiot_simulations::{scenario, scenarios};

/// `aiot-bench sim` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seeds per scenario.
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// Simulated seconds with faults per seed.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
}

pub fn run(args: &Args) -> Result<(), String> {
    println!(
        "sim: the cluster's coordinators (5 nodes) under swarm faults, {} seeds x {} s each",
        args.seeds, args.seconds
    );
    println!(
        "{:<14} {:>14} {:>10} {:>16} {:>18}",
        "scenario", "simulated (s)", "wall (s)", "x real time", "messages/wall s"
    );
    for s in scenarios::all() {
        let started = Instant::now();
        let (mut simulated, mut events) = (Duration::ZERO, 0u64);
        for seed in 0..args.seeds {
            let outcome = scenario::run(s, seed, Duration::from_secs(args.seconds), |_| {});
            if let Some(why) = outcome.failure {
                return Err(format!("{} seed {seed} failed: {why}", s.name()));
            }
            simulated += outcome.simulated;
            events += outcome.stats.events;
        }
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{:<14} {:>14.0} {:>10.2} {:>10.0} (higher is better; real time = 1) {:>10.0}",
            s.name(),
            simulated.as_secs_f64(),
            wall,
            simulated.as_secs_f64() / wall,
            events as f64 / wall
        );
    }
    Ok(())
}
