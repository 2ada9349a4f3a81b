//! The inference tier's stream stages (BLUEPRINT section 5):
//!
//! ```text
//! telemetry --/dsp-filter--> features --> stage 2, drift monitor, trainer
//! ```
//!
//! - `features`: the `features` stream's record: one feature vector per window, named by its
//!   frame, from the mote's stage 1 (every report) or from the DSP filter (raw windows).
//! - `alerts`: stage 2's alert rule (episodes, de-duplication, escalation, hysteresis) and the
//!   `alerts` stream's record.
//! - `stage2`: stage 2, a stream stage from `features` to `alerts`: DSP vectors scored by the
//!   installed model, alerts by the rule in `alerts`, with evidence.
//! - `drift_monitor`: the drift monitor's rule: features against the training reference per
//!   hour of day, by PSI and KS, batch by batch.
//! - `dsp_filter`: the DSP filter, a stream stage from `telemetry` to `features`.

pub mod alerts;
pub mod drift_monitor;
pub mod dsp_filter;
pub mod features;
pub mod stage2;

use std::sync::Arc;

use aiot_runtime::{Overflow, TopologyBuilder};

use crate::dsp::DspConfig;
use crate::streams::stage::{Stage, StageConfig, StageStats};
use crate::streams::{PARTITIONS, TELEMETRY};
use dsp_filter::DspFilter;

/// Input records a stage replica processes at once at most.
pub const STAGE_IN_FLIGHT: u32 = 256;

/// The inference stages to declare.
pub struct InferenceConfig {
    pub dsp: DspConfig,
    /// DSP filter replicas (`/dsp-filter-1` ...), sharing `telemetry` in one group.
    pub dsp_replicas: u32,
    pub dsp_stats: Arc<StageStats>,
}

/// Declares the stages. They run where the event-log port is: the platform tier today (a node
/// of another tier has no log port; see ARCHITECTURE.md).
pub fn declare(t: &mut TopologyBuilder, config: InferenceConfig) {
    let InferenceConfig { dsp, dsp_replicas, dsp_stats } = config;
    DspFilter::new(dsp.clone()).expect("the DSP configuration is valid");
    for replica in 1..=dsp_replicas {
        let (dsp, stats) = (dsp.clone(), Arc::clone(&dsp_stats));
        let stage = StageConfig {
            inputs: vec![TELEMETRY],
            group: dsp_filter::GROUP.into(),
            member: format!("dsp-filter-{replica}"),
            partitions: PARTITIONS,
            in_flight: STAGE_IN_FLIGHT,
        };
        t.actor(&format!("/dsp-filter-{replica}"), move |_| {
            let filter = DspFilter::new(dsp.clone()).expect("checked when declared");
            Stage::new(filter, stage.clone(), Arc::clone(&stats))
        })
        .requires("tier=platform")
        .mailbox(1024, Overflow::Backpressure);
    }
}
