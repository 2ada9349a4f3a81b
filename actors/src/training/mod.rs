//! The platform tier's training (BLUEPRINT section 5):
//!
//! - `trainer`: fits stage 2's model from the `features` and `maintenance` streams, installs it
//!   on the stage-2 replicas and gives the drift monitor its reference;
//! - `monitor`: the drift monitor on the live `features` stream: on a drift it asks the crew
//!   for inspections and the trainer for a retrain;
//! - `windows`: the windows both keep (latest first out, once per frame);
//! - `errors`: stage 2's error rate on outcomes, for the monitor's Page-Hinkley test.
//!
//! `declare` puts both in a topology.

pub mod errors;
pub mod monitor;
pub mod trainer;
pub mod windows;

use std::sync::Arc;

use aiot_runtime::{Overflow, TopologyBuilder};

use monitor::{Monitor, MonitorConfig, MonitorStats};
use trainer::{Trainer, TrainerConfig, TrainerStats};

/// What the training actors share with the host.
#[derive(Debug, Default, Clone)]
pub struct TrainingStats {
    pub trainer: Arc<TrainerStats>,
    pub monitor: Arc<MonitorStats>,
}

impl TrainingStats {
    /// One line for a node's status.
    pub fn status(&self) -> String {
        format!("{} | {}", self.trainer.status(), self.monitor.status())
    }
}

/// Declares `/trainer` (on a node tagged with an accelerator or of the platform tier) and
/// `/drift-monitor` (platform); both need the event-log port, which only platform nodes
/// install today. The trainer's `monitor` is set to `/drift-monitor`.
pub fn declare(
    t: &mut TopologyBuilder,
    trainer: TrainerConfig,
    monitor: MonitorConfig,
    stats: TrainingStats,
) {
    let trainer = TrainerConfig { monitor: Some("/drift-monitor".into()), ..trainer };
    let (trainer_stats, monitor_stats) = (stats.trainer, stats.monitor);
    t.actor("/trainer", move |_| Trainer::new(trainer.clone(), Arc::clone(&trainer_stats)))
        .requires("accel=* | tier=platform")
        .mailbox(4096, Overflow::Backpressure);
    t.actor("/drift-monitor", move |_| Monitor::new(monitor.clone(), Arc::clone(&monitor_stats)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
}
