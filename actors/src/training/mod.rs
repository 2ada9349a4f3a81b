//! The platform tier's training (BLUEPRINT section 5): `trainer`, the actor that fits stage 2's
//! model from the `features` and `maintenance` streams and installs it on the stage-2
//! replicas. `declare` puts it in a topology.

pub mod trainer;

use std::sync::Arc;

use aiot_runtime::{Overflow, TopologyBuilder};

use trainer::{Trainer, TrainerConfig, TrainerStats};

/// Declares `/trainer` on a node tagged with an accelerator or of the platform tier (it needs
/// the event-log port, which only platform nodes install today).
pub fn declare(t: &mut TopologyBuilder, config: TrainerConfig, stats: Arc<TrainerStats>) {
    t.actor("/trainer", move |_| Trainer::new(config.clone(), Arc::clone(&stats)))
        .requires("accel=* | tier=platform")
        .mailbox(4096, Overflow::Backpressure);
}
