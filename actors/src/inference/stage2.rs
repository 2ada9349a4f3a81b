//! Stage 2 (BLUEPRINT section 5): a stream stage from `features` to `alerts`, in the consumer
//! group `aiot-stage2`, so each window is scored by one replica.
//!
//! - A DSP vector is scored by the current model ([`Scorer`]) and fed to the alert rule
//!   ([`super::alerts`]); each alert event becomes an [`AlertRecord`] with the model's
//!   probability, its evidence (the features that pushed the log-odds up most) and, for a
//!   machine-fault alert, the motor's context ([`super::context`]: fault kind, trend, expected
//!   time to failure, load, fleet baseline).
//! - A window the proxy flagged with sensor faults is not scored: it may raise a sensor-fault
//!   alert, never a machine-fault alert.
//! - Stage-1 vectors (the mote's own features and score) are not stage 2's input: they pass.
//! - Until a model is installed ([`Stage2::install`], or [`Stage2Control::Install`] sent to the
//!   stage actor) windows are read and counted, and only sensor-fault alerts come out.
//! - Latency: each scored window's capture-to-decision time (the cluster time when it is scored
//!   minus the mote's capture time; an alert, if the window raises one, is appended then) is
//!   kept for the last [`LATENCY_WINDOWS`] windows in [`Stage2Stats`].
//!
//! The alert episodes live in the replica: after a rebalance the new owner of a motor's
//! partition starts its episode over, so an open alert may be raised once more.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::alerts::{AlertEvent, AlertKind, AlertLevel, AlertRecord, AlertRule, Alerter, ALERTS};
use super::context::Context;
use super::features::{FeatureRecord, FeatureSource};
use crate::dsp::DspFeatures;
use crate::ml::logistic::sigmoid;
use crate::ml::scorer::Scorer;
use crate::ports::eventlog::{Record, StoredRecord};
use crate::streams::mote_key;
use crate::streams::stage::{Output, Process, StageTime};

/// Stage 2's consumer group.
pub const GROUP: &str = "aiot-stage2";

/// Features named in an alert's evidence.
pub const EVIDENCE: usize = 3;

/// Scored windows whose capture-to-decision latency is kept.
pub const LATENCY_WINDOWS: usize = 1024;

/// The features a motor's recent history keeps (for charts), by name.
pub const CHARTED: [&str; 4] = ["vib_rms", "env_bpfo", "env_bpfi", "temp_mean"];

/// Windows of each motor's recent history kept.
pub const MOTOR_HISTORY: usize = 60;

/// Latest alert records kept for people.
pub const RECENT_ALERTS: usize = 50;

/// What stage 2's owners tell it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stage2Control {
    /// Score with this model (and its alert rule) from now on; installing the model in use
    /// again changes nothing, so an owner may repeat it.
    Install { version: u32, scorer: Box<Scorer>, rule: AlertRule },
    /// The crew repaired `mote`: its alert episode ends.
    Repaired { mote: u32 },
}

/// A replica's counters, shared with the host.
#[derive(Debug, Default)]
pub struct Stage2Stats {
    /// The installed model's version (0: none yet).
    pub model_version: AtomicU64,
    /// DSP windows scored.
    pub scored: AtomicU64,
    /// DSP windows read while no model was installed.
    pub unscored: AtomicU64,
    /// Alert records made (machine and sensor, every level).
    pub alerts: AtomicU64,
    /// Capture-to-decision latencies of the last scored windows, cluster ms.
    latencies: Mutex<VecDeque<u64>>,
    /// Each motor whose DSP windows this stage read: its latest window without sensor faults
    /// and its recent history.
    pub motors: Mutex<BTreeMap<u32, MotorView>>,
    /// The latest alert records, oldest first.
    pub recent_alerts: Mutex<VecDeque<AlertRecord>>,
}

/// A motor as stage 2 last saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MotorView {
    /// When its latest DSP window was received (cluster ms).
    pub time_ms: u64,
    /// Its latest DSP features, in [`DspFeatures::NAMES`] order.
    pub features: Vec<f64>,
    /// The model's probability of a fault for that window (none: not scored).
    pub probability: Option<f64>,
    /// Its latest alert (machine or sensor), if it had one.
    pub alert: Option<LatestAlert>,
    /// Its last [`MOTOR_HISTORY`] windows: time, probability and the [`CHARTED`] features.
    pub history: VecDeque<MotorPoint>,
}

/// The kind and level of a motor's latest alert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatestAlert {
    pub kind: AlertKind,
    pub level: AlertLevel,
}

/// One window of a motor's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MotorPoint {
    pub time_ms: u64,
    pub probability: Option<f64>,
    pub charted: [f64; CHARTED.len()],
}

impl Stage2Stats {
    fn record_latency(&self, ms: u64) {
        let mut latencies = self.latencies.lock();
        if latencies.len() == LATENCY_WINDOWS {
            latencies.pop_front();
        }
        latencies.push_back(ms);
    }

    /// The latency at quantile `q` (0..=1) over the kept windows, nearest rank; `None` before
    /// any window was scored.
    pub fn latency_quantile(&self, q: f64) -> Option<u64> {
        let mut sorted: Vec<u64> = self.latencies.lock().iter().copied().collect();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied()
    }

    /// Keeps `features`' window (scored with `probability`) as its motor's latest.
    fn record_window(&self, features: &FeatureRecord, probability: Option<f64>) {
        let charted = CHARTED.map(|name| {
            DspFeatures::NAMES.iter().position(|n| *n == name).map_or(f64::NAN, |i| features.values[i])
        });
        let mut motors = self.motors.lock();
        let motor = motors.entry(features.mote).or_default();
        motor.time_ms = features.received_ms;
        motor.features.clone_from(&features.values);
        motor.probability = probability;
        if motor.history.len() == MOTOR_HISTORY {
            motor.history.pop_front();
        }
        motor.history.push_back(MotorPoint { time_ms: features.received_ms, probability, charted });
    }

    /// Keeps `alert` among the recent ones and as its motor's latest (a sensor alert does not
    /// hide an open machine alert).
    fn record_alert(&self, alert: &AlertRecord) {
        if let Some(motor) = self.motors.lock().get_mut(&alert.mote) {
            let machine_open =
                motor.alert.is_some_and(|a| a.kind == AlertKind::Machine && a.level != AlertLevel::Cleared);
            if alert.kind == AlertKind::Machine || !machine_open {
                motor.alert = Some(LatestAlert { kind: alert.kind, level: alert.level });
            }
        }
        let mut recent = self.recent_alerts.lock();
        if recent.len() == RECENT_ALERTS {
            recent.pop_front();
        }
        recent.push_back(alert.clone());
    }

    /// One line for a node's status.
    pub fn status(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let latency = match (self.latency_quantile(0.5), self.latency_quantile(0.99)) {
            (Some(p50), Some(p99)) => format!("capture to decision p50 {p50} ms, p99 {p99} ms"),
            _ => "no window scored yet".to_string(),
        };
        let model = match load(&self.model_version) {
            0 => "no model".to_string(),
            v => format!("model {v}"),
        };
        format!(
            "stage 2: {model}, {} scored, {} unscored, {} alert records, {latency}",
            load(&self.scored),
            load(&self.unscored),
            load(&self.alerts)
        )
    }
}

/// Stage 2's processing: feature records in, alert records out.
pub struct Stage2 {
    model: Option<(u32, Scorer)>,
    alerter: Alerter,
    context: Context,
    events: Vec<AlertEvent>,
    stats: Arc<Stage2Stats>,
}

impl Stage2 {
    pub fn new(rule: AlertRule, stats: Arc<Stage2Stats>) -> Stage2 {
        Stage2 {
            model: None,
            alerter: Alerter::new(rule),
            context: Context::new(),
            events: Vec::new(),
            stats,
        }
    }

    /// Scores with model `version` from now on (its rule's threshold too); open episodes stay.
    pub fn install(&mut self, version: u32, scorer: Scorer, rule: AlertRule) -> Result<(), String> {
        if scorer.width() != DspFeatures::NAMES.len() {
            return Err(format!(
                "model {version} takes {} features, DSP vectors have {}",
                scorer.width(),
                DspFeatures::NAMES.len()
            ));
        }
        if self.model_version() != Some(version) {
            self.context.new_model();
        }
        self.model = Some((version, scorer));
        self.alerter.set_rule(rule);
        self.stats.model_version.store(u64::from(version), Ordering::Relaxed);
        Ok(())
    }

    /// The crew repaired `mote`: its alert episode ends.
    pub fn repaired(&mut self, mote: u32) {
        self.alerter.repaired(mote);
        self.context.repaired(mote);
    }

    /// The installed model's version.
    pub fn model_version(&self) -> Option<u32> {
        self.model.as_ref().map(|(v, _)| *v)
    }

    /// The alert records `features` causes, decided at cluster time `now_ms`.
    pub fn alerts_of(
        &mut self,
        features: &FeatureRecord,
        now_ms: u64,
        out: &mut Vec<AlertRecord>,
    ) -> Result<(), String> {
        if features.source != FeatureSource::Dsp {
            return Ok(());
        }
        if features.values.len() != DspFeatures::NAMES.len() {
            return Err(format!(
                "a DSP vector of {} values, expected {}",
                features.values.len(),
                DspFeatures::NAMES.len()
            ));
        }
        let score = match (&self.model, features.faults.any()) {
            (_, true) => None,
            (Some((_, scorer)), false) => {
                self.stats.scored.fetch_add(1, Ordering::Relaxed);
                self.stats.record_latency(now_ms.saturating_sub(features.capture_ms));
                let logit = scorer.logit(&features.values);
                self.context.observe(features.mote, features.received_ms, logit, &features.values);
                Some(sigmoid(logit))
            }
            (None, false) => {
                self.stats.unscored.fetch_add(1, Ordering::Relaxed);
                self.context.observe_features(features.mote, &features.values);
                self.stats.record_window(features, None);
                return Ok(());
            }
        };
        if !features.faults.any() {
            self.stats.record_window(features, score);
        }
        self.alerter.observe(features.mote, features.received_ms, score, &mut self.events);
        let version = self.model_version().unwrap_or(0);
        self.stats.alerts.fetch_add(self.events.len() as u64, Ordering::Relaxed);
        for event in self.events.drain(..) {
            let (evidence, context) = match (event.kind, &self.model) {
                (AlertKind::Machine, Some((_, scorer))) => {
                    let evidence = evidence(scorer, &features.values);
                    let context = self.context.assess(features.mote, &features.values, &evidence);
                    (evidence, Some(context))
                }
                _ => (sensor_evidence(features), None),
            };
            let alert = AlertRecord {
                mote: features.mote,
                boot_epoch: features.boot_epoch,
                seq: features.seq,
                capture_ms: features.capture_ms,
                time_ms: event.time_ms,
                kind: event.kind,
                level: event.level,
                probability: event.score,
                model_version: version,
                evidence,
                context,
            };
            self.stats.record_alert(&alert);
            out.push(alert);
        }
        Ok(())
    }
}

/// The features with the largest positive contributions to the log-odds, largest first.
fn evidence(scorer: &Scorer, values: &[f64]) -> Vec<(String, f64)> {
    let mut parts: Vec<(usize, f64)> = scorer.contributions(values).into_iter().enumerate().collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    parts
        .into_iter()
        .take(EVIDENCE)
        .filter(|(_, c)| *c > 0.0)
        .map(|(i, c)| (DspFeatures::NAMES[i].to_string(), c))
        .collect()
}

/// A sensor-fault alert's evidence: the flagged channels.
fn sensor_evidence(features: &FeatureRecord) -> Vec<(String, f64)> {
    const CHANNELS: [&str; 4] = ["current", "vibration", "sound", "temperature"];
    let flags = features.faults.0;
    CHANNELS
        .iter()
        .zip(flags)
        .filter(|(_, f)| *f != 0)
        .map(|(name, f)| (name.to_string(), f64::from(f)))
        .collect()
}

impl Process for Stage2 {
    type Control = Stage2Control;

    fn outputs(&self) -> Vec<&'static str> {
        vec![ALERTS]
    }

    fn control(&mut self, control: Stage2Control) -> Result<(), String> {
        match control {
            Stage2Control::Install { version, scorer, rule } => self.install(version, *scorer, rule),
            Stage2Control::Repaired { mote } => {
                self.repaired(mote);
                Ok(())
            }
        }
    }

    fn process(&mut self, input: &StoredRecord, at: StageTime, out: &mut Vec<Output>) -> Result<(), String> {
        let features = FeatureRecord::decode(&input.record.payload)?;
        let mut alerts = Vec::new();
        self.alerts_of(&features, at.cluster_ms, &mut alerts)?;
        for alert in alerts {
            let record = Record::new(ALERTS, mote_key(alert.mote), alert.encode(), alert.time_ms);
            out.push(Output { mote: alert.mote, record });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::alerts::AlertLevel;
    use crate::inference::features::FEATURES;
    use crate::ml::logistic::LogisticModel;
    use crate::ml::standardize::Standardizer;
    use crate::ports::eventlog::TopicPartition;
    use crate::things::sensor_faults::SensorFaults;
    use aiot_runtime::Instant;
    use ndarray::Array1;

    /// A model that only looks at `env_bpfo`: log-odds `10 (env_bpfo - 0.5)`.
    fn scorer() -> Scorer {
        let n = DspFeatures::NAMES.len();
        let bpfo = DspFeatures::NAMES.iter().position(|f| *f == "env_bpfo").unwrap();
        let mut coef = Array1::zeros(n);
        coef[bpfo] = 10.0;
        Scorer { standardizer: Standardizer::identity(n), model: LogisticModel { intercept: -5.0, coef } }
    }

    fn stored(seq: u32, bpfo: f64, faults: SensorFaults, source: FeatureSource) -> StoredRecord {
        let mut values = vec![0.0; DspFeatures::NAMES.len()];
        values[DspFeatures::NAMES.iter().position(|f| *f == "env_bpfo").unwrap()] = bpfo;
        let features = FeatureRecord {
            mote: 4,
            boot_epoch: 1,
            seq,
            capture_ms: 1000 * u64::from(seq),
            received_ms: 1000 * u64::from(seq) + 5,
            source,
            faults,
            values,
        };
        let record = Record::new(FEATURES, mote_key(4), features.encode(), features.received_ms);
        StoredRecord { partition: TopicPartition::new(FEATURES, 0), offset: u64::from(seq), record }
    }

    /// Processes `inputs`, each 40 ms of cluster time after its capture.
    fn run(stage: &mut Stage2, inputs: &[StoredRecord]) -> Vec<AlertRecord> {
        let mut out = Vec::new();
        for input in inputs {
            let at = StageTime { now: Instant::ZERO, cluster_ms: 1000 * input.offset + 40 };
            stage.process(input, at, &mut out).unwrap();
        }
        out.iter().map(|o| AlertRecord::decode(&o.record.payload).unwrap()).collect()
    }

    #[test]
    fn scores_dsp_windows_raises_once_with_evidence_and_never_on_flagged_windows() {
        let rule = AlertRule { threshold: 0.5, consecutive: 2, ..AlertRule::default() };
        let stats = Arc::new(Stage2Stats::default());
        let mut stage = Stage2::new(rule, Arc::clone(&stats));
        let clean = SensorFaults::default();
        let stuck = SensorFaults([0, 1, 0, 0]);
        let dsp = FeatureSource::Dsp;
        // No model yet: nothing but counting.
        assert!(run(&mut stage, &[stored(1, 0.9, clean, dsp)]).is_empty());
        assert_eq!(stats.unscored.load(Ordering::Relaxed), 1);
        assert_eq!(stats.latency_quantile(0.5), None);
        stage.control(Stage2Control::Install { version: 3, scorer: Box::new(scorer()), rule }).unwrap();
        let stage1 = FeatureSource::Stage1 { model_version: 1, score: Some(0.99) };
        let alerts = run(
            &mut stage,
            &[
                stored(2, 0.9, clean, dsp),
                stored(3, 0.9, stuck, dsp), // flagged: a sensor alert, not a score
                stored(4, 0.9, clean, stage1), // stage-1 vectors are not stage 2's
                stored(5, 0.9, clean, dsp), // second window over: raised
                stored(6, 0.95, clean, dsp), // p 0.989: escalated, once
                stored(6, 0.95, clean, dsp), // a copy: nothing
            ],
        );
        let summary: Vec<_> = alerts.iter().map(|a| (a.seq, a.kind, a.level)).collect();
        assert_eq!(
            summary,
            vec![
                (3, AlertKind::Sensor, AlertLevel::Raised),
                (5, AlertKind::Sensor, AlertLevel::Cleared),
                (5, AlertKind::Machine, AlertLevel::Raised),
                (6, AlertKind::Machine, AlertLevel::Escalated)
            ]
        );
        // Scored: seq 2, 5, 6 and 6 again (a copy is scored; the alert rule ignores it).
        assert_eq!(stats.scored.load(Ordering::Relaxed), 4);
        assert_eq!((stats.latency_quantile(0.5), stats.latency_quantile(0.99)), (Some(40), Some(40)));
        assert_eq!(stats.alerts.load(Ordering::Relaxed), 4);
        assert_eq!(stats.model_version.load(Ordering::Relaxed), 3);
        let raised = &alerts[2];
        assert_eq!((raised.model_version, raised.time_ms, raised.capture_ms), (3, 5005, 5000));
        assert!((raised.probability - 1.0 / (1.0 + (-4.0f64).exp())).abs() < 1e-12);
        assert_eq!(raised.evidence.len(), 1);
        assert_eq!(raised.evidence[0].0, "env_bpfo");
        assert_eq!(alerts[0].evidence, vec![("vibration".to_string(), 1.0)]);
        assert_eq!(alerts[0].context, None, "a sensor fault has no machine context");
        let context = raised.context.as_ref().expect("a machine alert's context");
        assert_eq!(context.fault, Some(crate::maintenance::Defect::OuterRace), "named by env_bpfo");
        assert_eq!(context.trend_per_day, None, "two windows a second apart make no trend");
        let mut narrow = scorer();
        narrow.model.coef = Array1::zeros(3);
        narrow.standardizer = Standardizer::identity(3);
        let refused = stage.control(Stage2Control::Install { version: 4, scorer: Box::new(narrow), rule });
        assert!(refused.is_err(), "a model of another width is refused");
        assert_eq!(stage.model_version(), Some(3));
    }
}
