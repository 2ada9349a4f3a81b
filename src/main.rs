//! `aiot`: the command line. It parses flags and calls into the crates; nothing else lives here.

mod ca;
mod checkpoint_disk;
mod dashboard;
mod demo;
mod fleet_pm;
mod metrics;
mod model;
mod motes;
mod node;
mod shell;
mod sim;
mod streams;
mod topologies;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aiot", version, about = "Actor runtime with location-transparent tiers for AIoT")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the demo: three nodes, two dozen motes, the ML loop and a live migration on
    /// loopback, on embedded defaults, under one time warp (`--supervision`: the small
    /// supervision demo instead).
    Demo {
        /// How long to run in wall time, e.g. 90s, 5m (default: 5m; with --supervision, 6s
        /// of the executor's time).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Plant and cluster time per wall time (1440: a day per minute).
        #[arg(long, default_value_t = 1440)]
        warp: u32,
        #[arg(long, default_value_t = 24)]
        motes: u32,
        /// Keep the run's files (CA, credentials, node configurations, data) in DIR.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// The dashboard's port on loopback (if it is taken, a free one; the URL is printed).
        #[arg(long, default_value_t = 8080)]
        dashboard_port: u16,
        /// The supervision demo: a small plant whose actors fail, restart and escalate.
        #[arg(long)]
        supervision: bool,
        /// With --supervision: the deterministic executor (virtual time) instead of tokio.
        #[arg(long, requires = "supervision")]
        deterministic: bool,
        /// Seed of the motor physics (with --supervision: of every actor's rng and scheduling).
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Runs a cluster node from its configuration file.
    Node {
        /// The node's configuration (see `aiot_cluster::config`).
        #[arg(long)]
        config: std::path::PathBuf,
        /// Check the configuration and certificate, print the node's identity, and exit.
        #[arg(long)]
        check: bool,
    },
    /// The cluster shell: connects to any node with an admin certificate and asks the cluster
    /// what it runs (a REPL, or a script with -c).
    Shell {
        /// A node's address, host:port (the one its `aiot node` printed as "listening on").
        #[arg(long)]
        connect: String,
        /// The CA directory: ca.pem and the admin's NAME.pem and NAME.key (`aiot ca issue --admin NAME`).
        #[arg(long)]
        ca_dir: std::path::PathBuf,
        /// The admin's name.
        #[arg(long)]
        admin: String,
        /// Runs these commands (separated by ';') and exits, instead of the interactive shell.
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// Prints each answer as one line of JSON.
        #[arg(long)]
        json: bool,
    },
    /// Deterministic simulation: one seed reproduces a whole run, faults included.
    Sim {
        /// List the scenarios.
        #[arg(long)]
        list: bool,
        /// The scenario to run.
        #[arg(long)]
        scenario: Option<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Sweep seeds FIRST..LAST (both included) instead of one.
        #[arg(long, value_parser = sim::parse_seeds)]
        seeds: Option<(u64, u64)>,
        /// Simulated time with faults, before the liveness phase (e.g. 90s, 2m, 2h).
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        duration: Duration,
        /// Run each seed twice and compare the trace hashes.
        #[arg(long)]
        check_determinism: bool,
        #[command(flatten)]
        fleet: fleet_pm::FleetArgs,
    },
    /// Motes on this host over a real MQTT broker (the firmware core fed by the motor physics),
    /// and the maintenance crew; `aiot motes provision` writes their credentials.
    #[command(args_conflicts_with_subcommands = true)]
    Motes {
        #[command(subcommand)]
        command: Option<motes::MotesCommand>,
        #[command(flatten)]
        run: motes::RunArgs,
    },
    /// The cluster CA: node and admin certificates (capability tags inside) and the model-signing key.
    Ca {
        #[command(subcommand)]
        command: ca::CaCommand,
    },
    /// Models: `aiot model train` fits a logistic regression on a CSV file.
    Model {
        #[command(subcommand)]
        command: model::ModelCommand,
    },
}

/// Parses `250ms`, `6s`, `2m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?}: expected a number then ms, s, m or h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo { duration, supervision: true, deterministic, seed, .. } => {
            let duration = duration.unwrap_or(Duration::from_secs(6));
            demo::supervision::run(demo::supervision::Options { duration, deterministic, seed })
        }
        Command::Demo { duration, warp, motes, dir, dashboard_port, supervision: false, seed, .. } => {
            let duration = duration.unwrap_or(Duration::from_secs(300));
            demo::run(demo::Options { duration, warp, motes, dir, dashboard_port, seed })
        }
        Command::Ca { command } => ca::run(command),
        Command::Model { command } => model::run(command),
        Command::Motes { command: Some(motes::MotesCommand::Provision { count, dir, ca }), .. } => {
            motes::provision(count, &dir, &ca)
        }
        Command::Motes { command: None, run } => motes::run(run),
        Command::Node { config, check } => node::run(node::Options { config, check }),
        Command::Shell { connect, ca_dir, admin, command, json } => {
            shell::run(shell::Options { connect, ca_dir, admin, command, json })
        }
        Command::Sim { list, scenario, seed, seeds, duration, check_determinism, fleet } => {
            sim::run(sim::Options { list, scenario, seed, seeds, duration, check_determinism, fleet })
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("aiot: {why}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
