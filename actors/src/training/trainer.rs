//! The trainer (BLUEPRINT section 5): stage 2's model, fitted by Newton on the DSP windows of
//! the `features` stream, labelled by the outcomes of the `maintenance` stream, and installed
//! on every stage-2 replica.
//!
//! - **Its data is the log.** It reads both streams from the start, every partition, with no
//!   group and no commits, and keeps the last [`TrainerConfig::keep_windows`] DSP windows and
//!   every outcome. After a restart it reads them again: nothing to snapshot. Copies of a window
//!   (the streams are at least once) are kept once, by their frame.
//! - **When it trains:** at the first tick after `every` of cluster time since the last
//!   training (the first once `first_after` has passed since it started), and at once on
//!   [`TrainerMsg::Retrain`] (the drift monitor's command; its evidence is logged).
//! - **What it trains:** `ml::dataset` labels the windows as known now (flagged and unlabelled
//!   windows left out), `ml::scorer::fit` splits by motor, standardises, fits and validates. A
//!   fit that refuses (too little data, one class on a side, no convergence) installs nothing
//!   and is reported; the replicas keep the model they have. The alert threshold is the
//!   `negative_quantile` of the training negatives' scores.
//! - **Installing:** the model goes to every replica as `Stage2Control::Install` and is sent
//!   again every [`ANNOUNCE_EVERY`], so a replica that restarted (and lost it) gets it back;
//!   installing a model twice changes nothing. The drift monitor is told the training's time
//!   along with it (its reference is the windows before it).
//!
//! Versions count the trainings of this incarnation; they restart with the trainer until the
//! models go through the registry (see ARCHITECTURE.md).

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, ActorRef, Ctx, PortRef};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::monitor::MonitorMsg;
use crate::inference::alerts::AlertRule;
use crate::inference::features::{FeatureRecord, FeatureSource, FEATURES};
use crate::inference::stage2::Stage2Control;
use crate::maintenance::MaintenanceRecord;
use crate::ml::dataset::{Dataset, Window};
use crate::ml::labels::{LabelRule, Outcomes};
use crate::ml::scorer::{fit, FitConfig};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{ConsumerEvent, Start, StoredRecord, Subscription};
use crate::streams::stage::StageMsg;
use crate::streams::MAINTENANCE;

/// How often the installed model is sent to the replicas again.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);
/// Records the trainer's consumer may deliver before it grants more.
const CREDIT: u32 = 1024;

/// What the trainer does, and for whom.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    pub labels: LabelRule,
    pub fit: FitConfig,
    /// Where the alert threshold goes among the training negatives' scores (default 0.995).
    pub negative_quantile: f64,
    /// The alert rule installed with each model (its threshold replaced by the trained one).
    pub rule: AlertRule,
    /// Cluster time from the trainer's start to its first training.
    pub first_after: Duration,
    /// Cluster time between trainings.
    pub every: Duration,
    /// DSP windows kept, the oldest dropped first.
    pub keep_windows: usize,
    /// The stage-2 replicas (`/stage2-1` ...).
    pub replicas: Vec<String>,
    /// The drift monitor, told each training's time (its reference).
    pub monitor: Option<String>,
}

impl Default for TrainerConfig {
    /// The first training after a day, then one a day; 200 000 windows (about 80 days of 100
    /// motors' hourly raw windows).
    fn default() -> Self {
        TrainerConfig {
            labels: LabelRule::default(),
            fit: FitConfig::default(),
            negative_quantile: 0.995,
            rule: AlertRule::default(),
            first_after: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(24 * 3600),
            keep_windows: 200_000,
            replicas: Vec::new(),
            monitor: None,
        }
    }
}

/// What the trainer takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TrainerMsg {
    Log(LogEvent),
    /// Train when due; announce the model.
    Tick,
    /// Train now (the drift monitor's command), for this reason.
    Retrain {
        reason: String,
    },
}

/// The trainer's counters, shared with the host.
#[derive(Debug, Default)]
pub struct TrainerStats {
    /// DSP windows kept (copies and other vectors not counted).
    pub windows: AtomicU64,
    pub outcomes: AtomicU64,
    /// Records that did not decode.
    pub undecodable: AtomicU64,
    /// Models installed, and the version of the last.
    pub trainings: AtomicU64,
    pub version: AtomicU64,
    /// Trainings that fitted nothing.
    pub refused: AtomicU64,
    /// The last training's result, for people.
    pub last: Mutex<Option<String>>,
}

impl TrainerStats {
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

/// The trainer actor.
pub struct Trainer {
    config: TrainerConfig,
    stats: Arc<TrainerStats>,
    log: Option<PortRef<Log>>,
    windows: VecDeque<Window>,
    /// Frames of the kept windows, to skip copies.
    seen: BTreeSet<(u32, u32, u32)>,
    frames: VecDeque<(u32, u32, u32)>,
    outcomes: Outcomes,
    /// Cluster time of the next scheduled training.
    train_at_ms: Option<u64>,
    installed: Option<Stage2Control>,
    /// The installed model's training time, cluster ms.
    trained_at_ms: u64,
    version: u32,
    /// The log refused the subscription: ask again at the next tick.
    resubscribe: bool,
}

impl Trainer {
    pub fn new(config: TrainerConfig, stats: Arc<TrainerStats>) -> Trainer {
        Trainer {
            config,
            stats,
            log: None,
            windows: VecDeque::new(),
            seen: BTreeSet::new(),
            frames: VecDeque::new(),
            outcomes: Outcomes::default(),
            train_at_ms: None,
            installed: None,
            trained_at_ms: 0,
            version: 0,
            resubscribe: false,
        }
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        let topics = [FEATURES, MAINTENANCE];
        let subscription =
            Subscription { credit: CREDIT, ..Subscription::all(&topics, "trainer", Start::Earliest) };
        self.request(LogRequest::Subscribe(subscription), ctx)
    }

    fn request(&self, request: LogRequest, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        match &self.log {
            Some(log) => Ok(ctx.port_request(log, request)?),
            None => Ok(()),
        }
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, TrainerMsg>,
    ) -> Result<(), ActorError> {
        let count = records.len() as u32;
        for stored in records {
            let topic = stored.partition.topic.as_str();
            let taken = if topic == FEATURES {
                FeatureRecord::decode(&stored.record.payload).map(|f| self.keep(f))
            } else if topic == MAINTENANCE {
                MaintenanceRecord::from_json(&stored.record.payload).map(|r| {
                    self.outcomes.record(&r);
                    self.stats.outcomes.fetch_add(1, Ordering::Relaxed);
                })
            } else {
                Ok(())
            };
            if let Err(why) = taken {
                self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("trainer: {}@{}: {why}", stored.partition, stored.offset);
            }
        }
        self.request(LogRequest::Grant(count), ctx)
    }

    /// Keeps a DSP window (once per frame), dropping the oldest beyond the limit.
    fn keep(&mut self, features: FeatureRecord) {
        if features.source != FeatureSource::Dsp || !self.seen.insert(features.frame_id()) {
            return;
        }
        self.frames.push_back(features.frame_id());
        self.windows.push_back(Window {
            mote: features.mote,
            time_ms: features.received_ms,
            flagged: features.faults.any(),
            values: features.values,
        });
        while self.windows.len() > self.config.keep_windows {
            self.windows.pop_front();
            if let Some(frame) = self.frames.pop_front() {
                self.seen.remove(&frame);
            }
        }
        self.stats.windows.store(self.windows.len() as u64, Ordering::Relaxed);
    }

    /// Fits a model on what is known at `now_ms` and installs it, or reports why not.
    fn train(&mut self, now_ms: u64, reason: &str, ctx: &mut Ctx<'_, TrainerMsg>) {
        self.train_at_ms = Some(now_ms.saturating_add(self.config.every.as_millis() as u64));
        let windows: Vec<Window> = self.windows.iter().cloned().collect();
        let data = Dataset::assemble(&windows, &self.outcomes, &self.config.labels, now_ms);
        let fitted = fit(&data, &self.config.fit).and_then(|fitted| {
            let threshold = fitted
                .negative_score_quantile(self.config.negative_quantile)
                .ok_or("no negative windows to set the threshold")?;
            Ok((fitted, threshold))
        });
        let line = match fitted {
            Ok((fitted, threshold)) => {
                self.version += 1;
                let version = self.version;
                let rule = AlertRule { threshold, ..self.config.rule };
                self.installed = Some(Stage2Control::Install { version, scorer: fitted.scorer, rule });
                self.trained_at_ms = now_ms;
                self.announce(ctx);
                self.stats.trainings.fetch_add(1, Ordering::Relaxed);
                self.stats.version.store(u64::from(version), Ordering::Relaxed);
                format!(
                    "model {version} ({reason}): {} positive, {} negative windows ({} unlabelled, {} flagged left out), held-out AUC {:.4}, threshold {threshold:.4}",
                    data.counts.positive,
                    data.counts.negative,
                    data.counts.unlabelled,
                    data.counts.flagged,
                    fitted.validation_auc
                )
            }
            Err(why) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                format!("no model ({reason}): {why}")
            }
        };
        tracing::info!("trainer: {line}");
        *self.stats.last.lock() = Some(line);
    }

    /// Sends the installed model to every replica (a replica gone is a dead letter), and its
    /// training time to the drift monitor.
    fn announce(&self, ctx: &mut Ctx<'_, TrainerMsg>) {
        let Some(install) = &self.installed else { return };
        if let Some(monitor) = &self.config.monitor {
            if let Ok(to) = ActorRef::<MonitorMsg>::parse(monitor) {
                let _ = ctx.send(&to, MonitorMsg::Reference { at_ms: self.trained_at_ms });
            }
        }
        for replica in &self.config.replicas {
            match ActorRef::<StageMsg<Stage2Control>>::parse(replica) {
                Ok(to) => {
                    let _ = ctx.send(&to, StageMsg::Control(install.clone()));
                }
                Err(e) => tracing::warn!("trainer: replica path {replica:?}: {e:?}"),
            }
        }
    }
}

impl Actor for Trainer {
    type Msg = TrainerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(TrainerMsg::Log));
        self.subscribe(ctx)?;
        let first = ctx.cluster_ms().saturating_add(self.config.first_after.as_millis() as u64);
        self.train_at_ms = Some(first);
        ctx.schedule_every(ANNOUNCE_EVERY, TrainerMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: TrainerMsg, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        match msg {
            TrainerMsg::Log(LogEvent::Consumer(ConsumerEvent::Records(records))) => {
                self.on_records(records, ctx)?
            }
            TrainerMsg::Log(LogEvent::Consumer(ConsumerEvent::Error(error))) => {
                tracing::warn!("trainer: consumer: {error}");
            }
            TrainerMsg::Log(LogEvent::Refused { request, error }) => {
                tracing::warn!("trainer: the log refused to {request}: {error}");
                self.resubscribe |= request == "subscribe";
            }
            TrainerMsg::Log(_) => {}
            TrainerMsg::Tick => {
                if std::mem::take(&mut self.resubscribe) {
                    self.subscribe(ctx)?;
                }
                let now_ms = ctx.cluster_ms();
                if self.train_at_ms.is_some_and(|at| now_ms >= at) {
                    self.train(now_ms, "scheduled", ctx);
                } else {
                    self.announce(ctx);
                }
            }
            TrainerMsg::Retrain { reason } => self.train(ctx.cluster_ms(), &reason, ctx),
        }
        Ok(())
    }
}
