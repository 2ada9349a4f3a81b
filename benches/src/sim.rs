//! `aiot-bench sim`: how much faster than real time the simulated world runs (the baseline is
//! real time itself: 1 simulated second per wall second). For each scenario, `--seeds` runs of
//! `--seconds` simulated time with their fault profiles; prints simulated time per wall
//! second and messages delivered per wall second. Then the plant at fleet sizes `--fleet`
//! (each mote at the default cadence: a report every 60 s, a raw window every 10th), one seed
//! each, the same simulated time for every size (`--fleet-minutes`, so start-up and the
//! liveness phase weigh the same): simulated time per wall second and wall time per mote per
//! simulated minute (flat across sizes means cost grows only with motes).

// Host code (a benchmark): it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use aiot_simulations::scenario;
use aiot_simulations::scenarios;

/// `aiot-bench sim` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seeds per scenario.
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// Simulated seconds with faults per seed.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// Fleet sizes for the plant, comma-separated.
    #[arg(long, default_value = "100,1000,10000", value_delimiter = ',')]
    pub fleet: Vec<u32>,
    /// Simulated minutes per fleet size (the same for every size, so start-up weighs the same).
    #[arg(long, default_value_t = 10)]
    pub fleet_minutes: u32,
    /// Runs per fleet size (the same seed each time); the table shows the median wall time.
    #[arg(long, default_value_t = 3)]
    pub fleet_runs: usize,
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
    fleet(&args.fleet, args.fleet_minutes, args.fleet_runs.max(1))
}

/// The plant's motes scenario at each fleet size.
fn fleet(sizes: &[u32], minutes: u32, runs: usize) -> Result<(), String> {
    println!(
        "\nsim: the plant (motes, broker, things tier on 3 nodes) under swarm faults, one seed per size, \
         median of {runs} runs"
    );
    println!(
        "{:>7} {:>14} {:>10} {:>12} {:>10} {:>26}",
        "motes", "simulated (s)", "wall (s)", "x real time", "frames", "wall us per mote-minute"
    );
    for &count in sizes {
        let mut walls = Vec::with_capacity(runs);
        let mut outcome = None;
        for _ in 0..runs {
            let started = Instant::now();
            let run = scenario::run(
                &scenarios::Motes { count, feed: aiot_simulations::plant::Feed::Sink },
                1,
                Duration::from_secs(u64::from(minutes) * 60),
                |_| {},
            );
            walls.push(started.elapsed().as_secs_f64());
            if let Some(why) = run.failure {
                return Err(format!("the {count}-mote plant failed: {why}"));
            }
            outcome = Some(run);
        }
        let outcome = outcome.expect("at least one run");
        walls.sort_by(f64::total_cmp);
        let wall = walls[walls.len() / 2];
        let simulated = outcome.simulated.as_secs_f64();
        let frames = outcome.totals.get("frames originated").copied().unwrap_or(0);
        println!(
            "{count:>7} {simulated:>14.0} {wall:>10.2} {:>12.0} {frames:>10} {:>12.1} (lower is better; flat = linear)",
            simulated / wall,
            wall * 1e6 / (f64::from(count) * simulated / 60.0),
        );
    }
    Ok(())
}
