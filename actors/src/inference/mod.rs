//! The inference tier's stream stages (BLUEPRINT section 5):
//!
//! ```text
//! telemetry --/dsp-filter--> features --> stage 2, drift monitor, training pipeline
//! ```
//!
//! - `features`: the `features` stream's record: one feature vector per window, named by its
//!   frame, from the mote's stage 1 (every report) or from the DSP filter (raw windows).
//! - `alerts`: stage 2's alert rule (episodes, de-duplication, escalation, hysteresis) and the
//!   `alerts` stream's record.
//! - `stage2`: stage 2, a stream stage from `features` to `alerts`: DSP vectors scored by the
//!   installed model, alerts by the rule in `alerts`, with evidence and the motor's context.
//! - `context`: stage 2's per-motor context: the score's trend and the expected time to
//!   failure, the load, the fleet baseline, the fault kind.
//! - `drift_monitor`: the drift monitor's rule: features against the training reference per
//!   hour of day, by PSI and KS, batch by batch.
//! - `dsp_filter`: the DSP filter, a stream stage from `telemetry` to `features`.
//!
//! `declare` puts the DSP filter's and stage 2's replicas in a topology.

pub mod alerts;
pub mod context;
pub mod drift_monitor;
pub mod dsp_filter;
pub mod features;
pub mod stage2;

use std::sync::Arc;

use aiot_runtime::{Overflow, TopologyBuilder};

use crate::dsp::DspConfig;
use crate::streams::stage::{Process, Stage, StageConfig, StageStats};
use crate::streams::{PARTITIONS, TELEMETRY};
use alerts::AlertRule;
use dsp_filter::DspFilter;
use features::FEATURES;
use stage2::{Stage2, Stage2Stats};

/// Input records a stage replica processes at once at most.
pub const STAGE_IN_FLIGHT: u32 = 256;

/// The inference stages to declare.
pub struct InferenceConfig {
    pub dsp: DspConfig,
    /// DSP filter replicas (`/dsp-filter-1` ...), sharing `telemetry` in one group.
    pub dsp_replicas: u32,
    /// Stage-2 replicas (`/stage2-1` ...), sharing `features` in one group; each scores with
    /// the model its owner installs (`stage2::Stage2Control::Install`) and this rule until then.
    pub stage2_replicas: u32,
    pub rule: AlertRule,
    pub stats: InferenceStats,
}

/// The stages' counters, shared with the host (one set for all replicas of a stage).
#[derive(Debug, Default, Clone)]
pub struct InferenceStats {
    pub dsp: Arc<StageStats>,
    pub stage2: Arc<StageStats>,
    pub scoring: Arc<Stage2Stats>,
}

impl InferenceStats {
    /// One line for a node's status.
    pub fn status(&self) -> String {
        format!(
            "{} | {} | {}",
            self.dsp.status("dsp filters"),
            self.stage2.status("stage 2"),
            self.scoring.status()
        )
    }
}

/// Declares the stages. They run where the event-log port is: the platform tier today (a node
/// of another tier has no log port; see ARCHITECTURE.md).
pub fn declare(t: &mut TopologyBuilder, config: InferenceConfig) {
    let InferenceConfig { dsp, dsp_replicas, stage2_replicas, rule, stats } = config;
    DspFilter::new(dsp.clone()).expect("the DSP configuration is valid");
    let replicas = Replicas { name: "dsp-filter", group: dsp_filter::GROUP, input: TELEMETRY };
    replicas.declare(t, dsp_replicas, &stats.dsp, move || {
        DspFilter::new(dsp.clone()).expect("checked when declared")
    });
    let scoring = Arc::clone(&stats.scoring);
    let replicas = Replicas { name: "stage2", group: stage2::GROUP, input: FEATURES };
    replicas.declare(t, stage2_replicas, &stats.stage2, move || Stage2::new(rule, Arc::clone(&scoring)));
}

/// Replicas of one stage: `/{name}-N`, members of `group`, reading `input`.
struct Replicas {
    name: &'static str,
    group: &'static str,
    input: &'static str,
}

impl Replicas {
    fn declare<P: Process>(
        &self,
        t: &mut TopologyBuilder,
        count: u32,
        stats: &Arc<StageStats>,
        make: impl Fn() -> P + Clone + Send + Sync + 'static,
    ) {
        for replica in 1..=count {
            let stage = StageConfig {
                inputs: vec![self.input],
                group: self.group.into(),
                member: format!("{}-{replica}", self.name),
                partitions: PARTITIONS,
                in_flight: STAGE_IN_FLIGHT,
            };
            let (stats, make) = (Arc::clone(stats), make.clone());
            t.actor(&format!("/{}-{replica}", self.name), move |_| {
                Stage::new(make(), stage.clone(), Arc::clone(&stats))
            })
            .requires("tier=platform")
            .mailbox(1024, Overflow::Backpressure);
        }
    }
}
