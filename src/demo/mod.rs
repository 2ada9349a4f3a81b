//! `aiot demo`: the whole system on one machine, on embedded defaults.
//!
//! Three nodes on loopback (`platform-1`, `things-1`, `inference-1`, each its tier attested by
//! a certificate made for the run) run the `things` topology over mutual-TLS QUIC: the
//! platform node starts the embedded MQTT broker and the embedded event log, the registry
//! and the deployer. About two dozen motes (the firmware core fed by the motor physics) report
//! over MQTT under one time warp shared with the cluster (a cluster day passes in a wall
//! minute by default, the pipeline's periods with it): bearings wear on some motors and fail,
//! the crew logs failures and inspections, the load shifts midway so the features drift, the
//! pipeline retrains, registers a signed model and rolls it out to the motes canary first;
//! stage 2 raises alerts. Midway the sensor proxies move live, with their state, to another
//! node. The timeline says what happens; the summary at the end checks it. While it runs,
//! `aiot shell` connects with the printed command (`models`, `loop`, `actors`, `move`...) and
//! the platform node's dashboard is at the printed URL.
//!
//! `aiot demo --supervision` runs the older, smaller demo instead: supervision at work in one
//! actor system ([`supervision`]), optionally on the deterministic executor.

use std::path::PathBuf;
use std::time::Duration;

use aiot_cluster::config::NodeConfig;
use aiot_cluster::transport::quic::NodeTls;

mod run;
mod setup;
pub mod supervision;
mod timeline;

pub struct Options {
    pub duration: Duration,
    /// Cluster (and motor) time per wall time.
    pub warp: u32,
    pub motes: u32,
    /// Where the run's files go (kept); none: a temporary directory, removed at the end.
    pub dir: Option<PathBuf>,
    /// The platform node's dashboard port (taken: a free one).
    pub dashboard_port: u16,
    pub seed: u64,
}

pub fn run(options: Options) -> Result<(), String> {
    if options.warp == 0 || options.motes == 0 {
        return Err("--warp and --motes must be at least 1".into());
    }
    let (dir, temporary) = match &options.dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir().join(format!("aiot-demo-{}", std::process::id())), true),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = setup::write(&dir, &options).and_then(|files| run::run(&options, &files));
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// A node's configuration and certificate, as `aiot node` loads them.
fn load(config: &std::path::Path) -> Result<(NodeConfig, NodeTls), String> {
    let config = NodeConfig::load(config).map_err(|e| e.to_string())?;
    let tls = NodeTls::load(&config.tls.ca, &config.tls.cert, &config.tls.key).map_err(|e| e.to_string())?;
    Ok((config, tls))
}
