//! The drift monitor actor (BLUEPRINT section 5): the rule of
//! [`crate::inference::drift_monitor`] on the live `features` stream, and what follows a drift.
//!
//! - **Windows.** It reads `features` (every partition, no group) from `reference_span` before
//!   its start, so a restarted monitor has its reference's windows again, and keeps the last
//!   [`MonitorConfig::keep_windows`] DSP windows the proxies did not flag, once per frame, in
//!   arrival order.
//! - **Reference.** The release actor sends [`MonitorMsg::Reference`] with its last training's time
//!   (after each training, and again every few seconds): the reference becomes the kept
//!   windows of the `reference_span` before it (never older than the last drift's settled
//!   windows), and every window that arrives after is checked. A reference no later than the
//!   current one is ignored. Until the first reference the monitor only keeps windows.
//! - **On a drift** it logs the evidence and then, at once, asks the crew (through
//!   `/gateway`) to inspect every motor heard from in the last day, so that labelled windows
//!   of the new regime exist within the hour. Once every requested inspection of a running
//!   motor is answered (on the `maintenance` stream; a failed motor is inspected only after its
//!   repair, hours later), or `retrain_after` at the latest (a mote that never got its
//!   request), it asks the pipeline (`/pipeline`) for a run with the evidence. The pipeline's
//!   `drift-check` step hands the drift's time on, so the new model is compared with the one in
//!   service on the new regime's windows ([`crate::ml::compare`]). It stops checking until the new
//!   regime has settled: its next reference is the windows from `settle_from` to
//!   `settle_until` after the drift, and references sent meanwhile are ignored
//!   (their windows are mostly of the old regime).
//!
//! - **Outcomes.** It also reads `alerts` and `maintenance` (from the same start) and judges
//!   stage 2's model on every outcome after its training ([`super::errors`]): when
//!   Page-Hinkley finds the error rate risen, the pipeline is asked for a run at once (unless
//!   one is already planned), with the counts as evidence.
//!
//! Durations are in cluster time; the checks run as windows arrive, the timers on ticks.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, ActorRef, Ctx, PortRef};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::errors::{self, ErrorAlarm, ErrorRate};
use super::steps::{Artifact, DriftCheck};
use super::windows::WindowStore;
use crate::dsp::DspFeatures;
use crate::inference::alerts::{AlertRecord, ALERTS};
use crate::inference::drift_monitor::{DriftConfig, DriftEvidence, DriftMonitor};
use crate::inference::features::{FeatureRecord, FeatureSource, FEATURES};
use crate::maintenance::InspectionRequest;
use crate::maintenance::{MaintenanceEvent, MaintenanceRecord};
use crate::ml::drift::PageHinkleyConfig;
use crate::pipeline::coordinator::{PipelineMsg, StepRequest};
use crate::pipeline::run::StepResult;
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{Start, StoredRecord, Subscription};
use crate::streams::reader;
use crate::streams::MAINTENANCE;
use crate::things::gateway::GatewayMsg;

/// How often the monitor looks at its timers.
pub const TICK_EVERY: Duration = Duration::from_secs(1);
const CREDIT: u32 = 1024;
const DAY_MS: u64 = 24 * 3_600_000;

/// The monitor's settings.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub drift: DriftConfig,
    /// The reference after a training: the windows of this span before it (default 3 days).
    pub reference_span: Duration,
    /// After a drift, the new reference: windows from `settle_from` to `settle_until` after it
    /// (default 1 to 4 days: temperatures lag a load change by hours).
    pub settle_from: Duration,
    pub settle_until: Duration,
    /// The retrain command goes once the inspections are answered, and at most this long
    /// after they were requested (default 2 hours).
    pub retrain_after: Duration,
    pub keep_windows: usize,
    /// Page-Hinkley on stage 2's errors on outcomes (`errors::default_config`).
    pub errors: PageHinkleyConfig,
    /// The pipeline coordinator asked for runs.
    pub pipeline: String,
    pub gateway: String,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            drift: DriftConfig::default(),
            reference_span: Duration::from_secs(3 * 24 * 3600),
            settle_from: Duration::from_secs(24 * 3600),
            settle_until: Duration::from_secs(4 * 24 * 3600),
            retrain_after: Duration::from_secs(2 * 3600),
            keep_windows: 200_000,
            errors: errors::default_config(),
            pipeline: "/pipeline".into(),
            gateway: "/gateway".into(),
        }
    }
}

/// What the monitor takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MonitorMsg {
    Log(LogEvent),
    Tick,
    /// A model was trained at `at_ms` (cluster time): check against the windows before it.
    Reference {
        at_ms: u64,
    },
    /// The pipeline's `drift-check` step: the monitor's state and last evidence.
    Step(StepRequest<Artifact>),
}

impl From<StepRequest<Artifact>> for MonitorMsg {
    fn from(request: StepRequest<Artifact>) -> Self {
        MonitorMsg::Step(request)
    }
}

/// The monitor's counters, shared with the host.
#[derive(Debug, Default)]
pub struct MonitorStats {
    pub windows: AtomicU64,
    /// Windows checked against a reference.
    pub checked: AtomicU64,
    pub drifts: AtomicU64,
    pub inspections_requested: AtomicU64,
    pub retrains_requested: AtomicU64,
    /// Outcomes judged since the model's training, those it got wrong, and error-rate alarms.
    pub outcomes_judged: AtomicU64,
    pub outcomes_wrong: AtomicU64,
    pub error_alarms: AtomicU64,
    /// The last drift's evidence, or why there is no reference, for people.
    pub last: Mutex<Option<String>>,
    /// The last [`DRIFT_HISTORY`] checks, oldest first.
    pub history: Mutex<VecDeque<DriftPoint>>,
}

/// Checks kept in [`MonitorStats::history`].
pub const DRIFT_HISTORY: usize = 240;

/// One check of the latest windows against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftPoint {
    /// The time of the batch's last window (cluster ms).
    pub time_ms: u64,
    /// The largest feature PSI.
    pub max_psi: f64,
    /// Whether the check found a drift.
    pub drift: bool,
}

impl MonitorStats {
    fn record_check(&self, point: DriftPoint) {
        let mut history = self.history.lock();
        if history.len() == DRIFT_HISTORY {
            history.pop_front();
        }
        history.push_back(point);
    }

    /// One line for a node's status.
    pub fn status(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last = self.last.lock().clone().unwrap_or_else(|| "no reference yet".into());
        format!(
            "drift monitor: {} windows, {} checked, {} drifts, {} of {} outcomes wrong, {} error alarms, {} inspections and {} retrains requested; {last}",
            load(&self.windows),
            load(&self.checked),
            load(&self.drifts),
            load(&self.outcomes_wrong),
            load(&self.outcomes_judged),
            load(&self.error_alarms),
            load(&self.inspections_requested),
            load(&self.retrains_requested)
        )
    }
}

/// Where the monitor is.
#[derive(Debug)]
enum Phase {
    /// No reference yet.
    Waiting,
    Watching(Box<DriftMonitor>),
    /// A drift at `drift_ms`: waiting for the new regime to settle.
    Settling {
        drift_ms: u64,
    },
}

/// The drift monitor actor.
pub struct Monitor {
    config: MonitorConfig,
    stats: Arc<MonitorStats>,
    log: Option<PortRef<Log>>,
    windows: WindowStore,
    phase: Phase,
    /// No reference starts before this (the last drift's settled windows).
    not_before_ms: u64,
    /// The current reference's end: an older training's reference is ignored.
    reference_until_ms: u64,
    /// A retrain command due, and its reason.
    retrain: Option<(u64, String)>,
    /// The running motors asked to inspect after the last drift and not answered yet.
    awaiting: BTreeSet<u32>,
    /// Motors failed and not repaired yet, by the `maintenance` stream.
    down: BTreeSet<u32>,
    /// The last drift's time (the evidence's, cluster ms).
    last_drift_ms: Option<u64>,
    errors: ErrorRate,
    resubscribe: bool,
}

impl Monitor {
    pub fn new(config: MonitorConfig, stats: Arc<MonitorStats>) -> Monitor {
        Monitor {
            stats,
            log: None,
            windows: WindowStore::new(config.keep_windows),
            phase: Phase::Waiting,
            not_before_ms: 0,
            reference_until_ms: 0,
            retrain: None,
            awaiting: BTreeSet::new(),
            down: BTreeSet::new(),
            last_drift_ms: None,
            // A bad setting falls back to the defaults, which are valid.
            errors: ErrorRate::new(config.errors)
                .or_else(|_| ErrorRate::new(errors::default_config()))
                .expect("the default Page-Hinkley settings are valid"),
            resubscribe: false,
            config,
        }
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, MonitorMsg>) -> Result<(), ActorError> {
        let Some(log) = &self.log else { return Ok(()) };
        let since = ctx.cluster_ms().saturating_sub(self.config.reference_span.as_millis() as u64);
        let start = Start::Time(since);
        let topics = [FEATURES, ALERTS, MAINTENANCE];
        let subscription =
            Subscription { credit: CREDIT, ..Subscription::all(&topics, "drift-monitor", start) };
        Ok(ctx.port_request(log, LogRequest::Subscribe(subscription))?)
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, MonitorMsg>,
    ) -> Result<(), ActorError> {
        let count = records.len() as u32;
        for stored in records {
            let payload = &stored.record.payload;
            let taken = match stored.partition.topic.as_str() {
                ALERTS => AlertRecord::decode(payload).map(|alert| self.errors.on_alert(&alert)),
                MAINTENANCE => {
                    MaintenanceRecord::from_json(payload).map(|outcome| self.on_outcome(&outcome, ctx))
                }
                _ => FeatureRecord::decode(payload).map(|features| self.on_window(features, ctx)),
            };
            if let Err(why) = taken {
                tracing::warn!("drift monitor: {}@{}: {why}", stored.partition, stored.offset);
            }
        }
        reader::grant(self.log.as_ref(), count, ctx)
    }

    fn on_window(&mut self, features: FeatureRecord, ctx: &mut Ctx<'_, MonitorMsg>) {
        let usable = features.source == FeatureSource::Dsp
            && !features.faults.any()
            && features.values.len() == DspFeatures::NAMES.len();
        if !usable {
            return;
        }
        let Some(window) = self.windows.keep(features) else { return };
        let evidence = match &mut self.phase {
            Phase::Watching(monitor) => {
                self.stats.checked.fetch_add(1, Ordering::Relaxed);
                let checks = monitor.batches();
                let evidence = monitor.observe(window.time_ms, &window.values);
                if monitor.batches() > checks {
                    let (time_ms, max_psi) = (window.time_ms, monitor.last_max_psi());
                    self.stats.record_check(DriftPoint { time_ms, max_psi, drift: evidence.is_some() });
                }
                evidence
            }
            _ => None,
        };
        self.stats.windows.store(self.windows.len() as u64, Ordering::Relaxed);
        if let Some(evidence) = evidence {
            self.on_drift(&evidence, ctx);
        }
    }

    /// Where the monitor is and what it last found, for the pipeline's `drift-check` step.
    fn evidence(&self) -> String {
        let phase = match &self.phase {
            Phase::Waiting => "no reference yet".to_string(),
            Phase::Watching(_) => {
                format!("watching against the windows before {} ms", self.reference_until_ms)
            }
            Phase::Settling { drift_ms } => format!("a drift at {drift_ms} ms, the new regime settling"),
        };
        let last = self.stats.last.lock().clone().unwrap_or_else(|| "nothing found".into());
        format!("{phase}; {last}")
    }

    /// Asks the pipeline for the planned run once its time has come (a run that cannot be
    /// asked for is dropped: the next drift or error alarm plans another).
    fn retrain_if_due(&mut self, ctx: &mut Ctx<'_, MonitorMsg>) {
        let Some((at, reason)) = self.retrain.take() else { return };
        if ctx.cluster_ms() < at {
            self.retrain = Some((at, reason));
            return;
        }
        if let Ok(pipeline) = ActorRef::<PipelineMsg<Artifact>>::parse(&self.config.pipeline) {
            if ctx.send(&pipeline, PipelineMsg::Run { reason }).is_ok() {
                self.stats.retrains_requested.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Judges an outcome; a risen error rate has the pipeline run at once.
    fn on_outcome(&mut self, outcome: &MaintenanceRecord, ctx: &mut Ctx<'_, MonitorMsg>) {
        let mote = outcome.mote;
        let waited = match outcome.event {
            MaintenanceEvent::Failure { .. } => self.down.insert(mote) && self.awaiting.remove(&mote),
            MaintenanceEvent::Repaired => {
                self.down.remove(&mote);
                false
            }
            MaintenanceEvent::Inspection { requested, .. } => requested && self.awaiting.remove(&mote),
        };
        if waited && self.awaiting.is_empty() {
            // Every running motor asked has answered: the retrain goes now.
            if let Some((at, _)) = self.retrain.as_mut() {
                *at = (*at).min(ctx.cluster_ms());
            }
            self.retrain_if_due(ctx);
        }
        let alarm = self.errors.on_outcome(outcome);
        let (judged, wrong) = self.errors.counts();
        self.stats.outcomes_judged.store(judged, Ordering::Relaxed);
        self.stats.outcomes_wrong.store(wrong, Ordering::Relaxed);
        let Some(ErrorAlarm { time_ms, outcomes, wrong }) = alarm else { return };
        let reason = format!(
            "error rate rose at {time_ms} ms: {wrong} of {outcomes} outcomes since the model's training judged wrong (Page-Hinkley)"
        );
        tracing::warn!("drift monitor: {reason}");
        self.stats.error_alarms.fetch_add(1, Ordering::Relaxed);
        *self.stats.last.lock() = Some(reason.clone());
        // A retrain already planned (after a drift's inspections) keeps its time.
        if self.retrain.is_none() {
            self.retrain = Some((ctx.cluster_ms(), reason));
            self.retrain_if_due(ctx);
        }
    }

    fn on_drift(&mut self, evidence: &DriftEvidence, ctx: &mut Ctx<'_, MonitorMsg>) {
        let features: Vec<String> = evidence
            .features
            .iter()
            .map(|f| format!("{} (PSI {:.2}, KS p {:.1e})", DspFeatures::NAMES[f.feature], f.psi, f.ks_p))
            .collect();
        let reason = format!(
            "drift at {} ms over {} windows: {}",
            evidence.time_ms,
            evidence.windows,
            features.join(", ")
        );
        tracing::warn!("drift monitor: {reason}");
        self.stats.drifts.fetch_add(1, Ordering::Relaxed);
        *self.stats.last.lock() = Some(reason.clone());
        // Every motor heard from in the last day.
        let since = evidence.time_ms.saturating_sub(DAY_MS);
        let motes: BTreeSet<u32> =
            self.windows.iter().filter(|w| w.time_ms >= since).map(|w| w.mote).collect();
        let gateway = ActorRef::<GatewayMsg>::parse(&self.config.gateway);
        self.awaiting.clear();
        for mote in motes {
            let request = InspectionRequest { mote, reason: reason.clone() };
            let sent = gateway.as_ref().is_ok_and(|to| ctx.send(to, GatewayMsg::Inspect(request)).is_ok());
            if sent {
                self.stats.inspections_requested.fetch_add(1, Ordering::Relaxed);
                if !self.down.contains(&mote) {
                    self.awaiting.insert(mote);
                }
            }
        }
        self.last_drift_ms = Some(evidence.time_ms);
        let now_ms = ctx.cluster_ms();
        self.retrain = Some((now_ms.saturating_add(self.config.retrain_after.as_millis() as u64), reason));
        self.phase = Phase::Settling { drift_ms: evidence.time_ms };
    }

    /// Builds a reference from the kept windows received in `[from_ms, until_ms]`.
    fn watch(&mut self, from_ms: u64, until_ms: u64) {
        self.reference_until_ms = until_ms;
        let reference: Vec<(u64, &[f64])> = self
            .windows
            .iter()
            .filter(|w| w.time_ms >= from_ms && w.time_ms <= until_ms)
            .map(|w| (w.time_ms, w.values.as_slice()))
            .collect();
        match DriftMonitor::new(&reference, self.config.drift) {
            Ok(monitor) => self.phase = Phase::Watching(Box::new(monitor)),
            Err(why) => {
                *self.stats.last.lock() =
                    Some(format!("no reference from {from_ms} to {until_ms} ms: {why}"));
                self.phase = Phase::Waiting;
            }
        }
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, MonitorMsg>) -> Result<(), ActorError> {
        if std::mem::take(&mut self.resubscribe) {
            self.subscribe(ctx)?;
        }
        let now_ms = ctx.cluster_ms();
        self.retrain_if_due(ctx);
        if let Phase::Settling { drift_ms } = self.phase {
            let until = drift_ms.saturating_add(self.config.settle_until.as_millis() as u64);
            if now_ms >= until {
                let from = drift_ms.saturating_add(self.config.settle_from.as_millis() as u64);
                self.not_before_ms = from;
                self.watch(from, until);
            }
        }
        Ok(())
    }
}

impl Actor for Monitor {
    type Msg = MonitorMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, MonitorMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(MonitorMsg::Log));
        self.subscribe(ctx)?;
        ctx.schedule_every(TICK_EVERY, MonitorMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: MonitorMsg, ctx: &mut Ctx<'_, MonitorMsg>) -> Result<(), ActorError> {
        match msg {
            MonitorMsg::Log(event) => {
                if let Some(records) = reader::records(event, "drift monitor", &mut self.resubscribe) {
                    self.on_records(records, ctx)?
                }
            }
            MonitorMsg::Tick => self.on_tick(ctx)?,
            MonitorMsg::Step(request) => {
                let summary = self.evidence();
                let check = DriftCheck { summary: summary.clone(), last_drift_ms: self.last_drift_ms };
                ctx.reply(&request.reply, StepResult::Done { output: Artifact::Drift(check), summary })?;
            }
            MonitorMsg::Reference { at_ms } => {
                self.errors.model_trained(at_ms);
                if at_ms > self.reference_until_ms && !matches!(self.phase, Phase::Settling { .. }) {
                    let from = at_ms.saturating_sub(self.config.reference_span.as_millis() as u64);
                    self.watch(from.max(self.not_before_ms), at_ms);
                }
            }
        }
        Ok(())
    }
}
