//! The platform tier's training (BLUEPRINT section 5): the MLOps flow as a pipeline of actors
//! (`crate::pipeline`), and the drift monitor that asks it for runs.
//!
//! - `steps`: the pipeline's shape (`ingest -> extract -> drift-check -> train -> validate ->
//!   quantize -> register -> deploy`), what each step hands on, and the pure steps' actors
//!   (`/extract`, `/train`, `/quantize`);
//! - `ingest`: `/ingest`, the training data as the streams hold it;
//! - `release`: `/release`, which validates a candidate against the models in service,
//!   registers it, installs stage 2's model and has the deployer roll out the motes';
//! - `monitor`: the drift monitor on the live `features` stream: on a drift it asks the crew
//!   for inspections and the pipeline for a run; it is also the `drift-check` step;
//! - `windows`: the windows the ingest step and the monitor keep (latest first out, once per
//!   frame);
//! - `errors`: stage 2's error rate on outcomes, for the monitor's Page-Hinkley test.
//!
//! `declare` puts them all in a topology, with the coordinator `/pipeline` running scheduled
//! runs (`first_after`, then `every`) and the monitor's.

pub mod errors;
pub mod ingest;
pub mod monitor;
pub mod release;
pub mod steps;
pub mod windows;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Overflow, TopologyBuilder};
use parking_lot::Mutex;

use crate::deploy::deployer::DeployState;
use crate::inference::alerts::AlertRule;
use crate::ml::labels::LabelRule;
use crate::ml::scorer::FitConfig;
use crate::ml::train::TrainConfig;
use crate::pipeline::coordinator::{PipelineStats, Schedule};
use ingest::Ingest;
use monitor::{Monitor, MonitorConfig, MonitorStats};
use release::Release;
use steps::{Compute, StepFn};

/// What the training pipeline does, and for whom.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    pub labels: LabelRule,
    pub fit: FitConfig,
    /// Where the alert threshold goes among the training negatives' scores (default 0.995).
    pub negative_quantile: f64,
    /// A model whose held-out ROC AUC is under this is refused (default 0.6).
    pub min_validation_auc: f64,
    /// The alert rule installed with each model (its threshold replaced by the trained one).
    pub rule: AlertRule,
    /// Cluster time from the coordinator's start to its first run.
    pub first_after: Duration,
    /// Cluster time between scheduled runs.
    pub every: Duration,
    /// DSP windows kept (and as many stage-1 windows), the oldest dropped first.
    pub keep_windows: usize,
    /// The stage-2 replicas (`/stage2-1` ...).
    pub replicas: Vec<String>,
    /// The drift monitor, told each training's time (its reference).
    pub monitor: Option<String>,
    /// The registry that versions, signs and stores each release; none: versions count.
    pub registry: Option<String>,
    /// The motes' stage-1 model's training (with a registry).
    pub stage1: TrainConfig,
    /// The deployer that rolls each registered release out to the motes (with a registry).
    pub deployer: Option<String>,
}

impl Default for TrainerConfig {
    /// The first run after a day, then one a day; 200 000 windows (about 80 days of 100
    /// motors' hourly raw windows).
    fn default() -> Self {
        TrainerConfig {
            labels: LabelRule::default(),
            fit: FitConfig::default(),
            negative_quantile: 0.995,
            min_validation_auc: 0.6,
            rule: AlertRule::default(),
            first_after: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(24 * 3600),
            keep_windows: 200_000,
            replicas: Vec::new(),
            monitor: None,
            registry: None,
            stage1: TrainConfig::default(),
            deployer: None,
        }
    }
}

/// The training pipeline's counters, shared with the host.
#[derive(Debug, Default)]
pub struct TrainerStats {
    /// DSP and stage-1 windows kept (copies not counted).
    pub windows: AtomicU64,
    pub stage1_windows: AtomicU64,
    pub outcomes: AtomicU64,
    /// Records that did not decode.
    pub undecodable: AtomicU64,
    /// Models installed, and the version of the last.
    pub trainings: AtomicU64,
    pub version: AtomicU64,
    /// Runs a step refused (too little data, a model off its targets or under the floor).
    pub refused: AtomicU64,
    /// Registry requests that failed (the coordinator retries the step).
    pub registry_retries: AtomicU64,
    /// The last model installed or refused, for people.
    pub last: Mutex<Option<String>>,
    /// The last release's rollout as the deployer reported it.
    pub deploy: Mutex<Option<(u32, DeployState)>>,
}

impl TrainerStats {
    /// A run's step said no: counted, and the last line says why.
    pub fn refuse(&self, reason: &str, why: &str) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!("training: no model ({reason}): {why}");
        *self.last.lock() = Some(format!("no model ({reason}): {why}"));
    }

    /// One line for a node's status.
    pub fn status(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last = self.last.lock().clone().unwrap_or_else(|| "no training yet".into());
        format!(
            "trainer: {} windows, {} outcomes, {} models, {} refused; {last}",
            load(&self.windows),
            load(&self.outcomes),
            load(&self.trainings),
            load(&self.refused)
        )
    }
}

/// What the training actors share with the host.
#[derive(Debug, Default, Clone)]
pub struct TrainingStats {
    pub trainer: Arc<TrainerStats>,
    pub monitor: Arc<MonitorStats>,
    pub pipeline: PipelineStats,
}

impl TrainingStats {
    /// One line for a node's status.
    pub fn status(&self) -> String {
        format!("{} | {} | {}", self.trainer.status(), self.monitor.status(), self.pipeline.lock().line())
    }
}

/// Declares the pipeline's actors and the drift monitor, all on the platform tier (`/ingest`
/// and the monitor need the event-log port, which only platform nodes install today), `/train`
/// preferring a node tagged with an accelerator. Training data moves between steps as
/// messages, and a message between nodes is at most 1 MiB (`aiot_cluster::wire`): so the
/// steps stay on the platform tier until data moves by reference. The release's
/// `monitor` is set to `/drift-monitor`, the monitor's pipeline to `/pipeline`.
pub fn declare(
    t: &mut TopologyBuilder,
    trainer: TrainerConfig,
    monitor: MonitorConfig,
    stats: TrainingStats,
) {
    let config = TrainerConfig { monitor: Some("/drift-monitor".into()), ..trainer };
    let pipeline = steps::pipeline(&config).build().expect("the training pipeline's shape is valid");
    let schedule = Schedule { first_after: Some(config.first_after), every: Some(config.every) };
    let TrainingStats { trainer: trainer_stats, monitor: monitor_stats, pipeline: pipeline_stats } = stats;

    let (c, s) = (config.clone(), Arc::clone(&trainer_stats));
    t.actor("/ingest", move |_| Ingest::new(&c, Arc::clone(&s)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
    let compute: [(&str, StepFn, &str); 3] = [
        ("/extract", steps::extract, ""),
        ("/train", steps::train, "accel=*"),
        ("/quantize", steps::quantize, ""),
    ];
    for (path, step, preferred) in compute {
        let (c, s) = (config.clone(), Arc::clone(&trainer_stats));
        t.actor(path, move |_| Compute { step, config: c.clone(), stats: Arc::clone(&s) })
            .requires("tier=platform")
            .prefers(preferred)
            .mailbox(64, Overflow::Backpressure);
    }
    let (c, s) = (config.clone(), Arc::clone(&trainer_stats));
    t.actor("/release", move |_| Release::new(c.clone(), Arc::clone(&s)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
    t.actor("/pipeline", move |_| pipeline.coordinator(schedule, Arc::clone(&pipeline_stats)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
    t.actor("/drift-monitor", move |_| Monitor::new(monitor.clone(), Arc::clone(&monitor_stats)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
}
