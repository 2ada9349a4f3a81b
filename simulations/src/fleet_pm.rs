//! `fleet-pm`: the predictive-maintenance loop's efficacy on a simulated plant (issue 7).
//!
//! A fleet of motors ([`crate::motor`]) is observed window by window: each running motor's raw
//! window goes through the proxy's sensor-fault check and the DSP filter's extractor (the same
//! code the actors run); the crew's maintenance log labels the windows by the rule of
//! BLUEPRINT section 10 ([`aiot_actors::ml::labels`]). After `train_after` a stage-2 scorer is
//! fitted on the labelled windows ([`aiot_actors::ml::scorer`], validated on held-out motors)
//! and from then on every window goes through stage 2 ([`aiot_actors::inference::stage2`]:
//! the scorer and the alert rule). Beside it runs the naive baseline: the same alert
//! rule on the vibration RMS, its threshold tuned on the same training windows at the same
//! quantile of the negatives. Both are scored by [`crate::efficacy`].
//!
//! This runs the pipeline's pure stages in one process, in motor time; it does not run the
//! actors, the streams or the network (the `bridge` scenario does that for ingest and DSP).
//! The label rule's clock is the motor's here.
//!
//! The physics behind the reported figures are fixed ([`FleetPmConfig::standard`]); options
//! change the bearing geometry, line frequency, noise level and load profile.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aiot_actors::deploy::canary::card_metrics;
use aiot_actors::deploy::rollout::{Phase, Rollout, RolloutConfig};
use aiot_actors::dsp::{DspConfig, DspFeatures, Extractor};
use aiot_actors::inference::alerts::{AlertKind, AlertLevel, AlertRule, Alerter};
use aiot_actors::inference::drift_monitor::{DriftConfig, DriftEvidence, DriftMonitor};
use aiot_actors::inference::features::{FeatureRecord, FeatureSource};
use aiot_actors::inference::stage2::Stage2;
use aiot_actors::ml::compare::ComparisonSet;
use aiot_actors::ml::dataset::{Dataset, Window as Labelled};
use aiot_actors::ml::labels::{LabelRule, Outcomes};
use aiot_actors::ml::metrics::quantile;
use aiot_actors::ml::scorer::{self, FitConfig, Scorer};
use aiot_actors::ml::train::{quantize_fitted, TrainConfig};
use aiot_actors::registry::artifact::SignedModel;
use aiot_actors::things::sensor_faults::check_raw;
use aiot_firmware::protocol::{MoteId, RawWindow};
use aiot_firmware::sampling::Window;

use crate::efficacy::{Alert, Efficacy, Failure};
use crate::fleet_ota::{FleetOta, REPORT_EVERY};
use crate::motor::{
    DefectParams, DegradationParams, Fleet, MaintenanceEvent, MotorParams, Variation, SAMPLE_RATE_HZ,
    WINDOW_LEN,
};
use crate::ota::plant_signed;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// A fleet-pm run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPmConfig {
    pub seed: u64,
    pub motors: usize,
    /// Motor time at which observation starts: the plant has been running, so defects are
    /// already growing on some motors.
    pub start: Duration,
    /// How long the fleet is observed.
    pub duration: Duration,
    /// The first model is fitted this long after `start`, on what was labelled by then.
    pub train_after: Duration,
    /// One raw window per running motor this often.
    pub cadence: Duration,
    pub params: MotorParams,
    pub variation: Variation,
    pub rule: LabelRule,
    pub fit: FitConfig,
    /// Both thresholds (the model's score, the baseline's vibration RMS) are this quantile of
    /// the training negatives' values.
    pub negative_quantile: f64,
    /// Windows in a row over the threshold that raise an alert, and under 0.8 of it that
    /// clear one.
    pub consecutive: u32,
    pub clear_after: u32,
    /// How the motes' models are rolled out.
    pub rollout: RolloutConfig,
}

impl FleetPmConfig {
    /// The documented scenario: 100 motors observed for 44 days from day 60 of their lives, a
    /// window per motor per hour, the first model after 10 days, alerts scored for 20 days. Physics: [`MotorParams`]'s
    /// defaults (a 15 kW four-pole 50 Hz motor, a 6309 bearing) with accelerated bearing wear
    /// (outer race 6, inner race 4 onsets per motor-year, lives of about 20 and 15 days), the
    /// other defects at their defaults, and a typical spread between motors.
    pub fn standard(seed: u64) -> FleetPmConfig {
        let start = Duration::from_secs(60 * DAY);
        let mut params = MotorParams { degradation: bearing_wear(6.0, 4.0), ..MotorParams::default() };
        params.load.shift = Some((start + Duration::from_secs(20 * DAY), 0.5));
        FleetPmConfig {
            seed,
            motors: 100,
            start,
            duration: Duration::from_secs(44 * DAY),
            train_after: Duration::from_secs(10 * DAY),
            cadence: Duration::from_secs(HOUR),
            params,
            variation: Variation::typical(),
            rule: LabelRule::default(),
            fit: FitConfig::default(),
            negative_quantile: 0.995,
            consecutive: 3,
            clear_after: 24,
            rollout: RolloutConfig::default(),
        }
    }

    /// The shortened scenario CI runs: 120 motors, alerts scored for 12 days, a window every 2
    /// hours, and faster bearing wear (16 and 12 onsets per motor-year) so that it still sees
    /// at least 30 bearing failures.
    pub fn short(seed: u64) -> FleetPmConfig {
        let mut config = FleetPmConfig::standard(seed);
        config.motors = 120;
        config.duration = Duration::from_secs(36 * DAY);
        config.cadence = Duration::from_secs(2 * HOUR);
        config.consecutive = 2;
        config.clear_after = 12;
        config.params.degradation = bearing_wear(16.0, 12.0);
        config
    }

    /// The DSP configuration matching the plant's motors.
    pub fn dsp(&self) -> DspConfig {
        DspConfig {
            line_hz: self.params.line_hz,
            pole_pairs: self.params.pole_pairs,
            bearing: self.params.bearing,
            ..DspConfig::default()
        }
    }

    /// The scoring window: from the first model to 14 days before the end.
    pub fn scoring_window(&self) -> (Duration, Duration) {
        let end = self.start + self.duration;
        (self.start + self.train_after, end.saturating_sub(crate::efficacy::TRUE_WITHIN))
    }
}

/// The default degradation with bearing onsets at the given rates per motor-year.
fn bearing_wear(outer: f64, inner: f64) -> DegradationParams {
    let mut d = DegradationParams::default();
    d.outer_race = DefectParams { rate_per_year: outer, ..d.outer_race };
    d.inner_race = DefectParams { rate_per_year: inner, ..d.inner_race };
    d
}

fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / HOUR as f64
}

/// The first model's training, as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    /// How long after the start of observation.
    pub after: Duration,
    pub positives: usize,
    pub negatives: usize,
    pub unlabelled: usize,
    pub flagged: usize,
    pub validation_auc: f64,
    pub threshold: f64,
    pub baseline_threshold_g: f64,
    /// The motes' stage-1 model trained on the same labels from their own feature vectors,
    /// and its int8 image against the float model on the held-out motors; `Err`: why the
    /// training run refused.
    pub stage1: Result<Stage1Quality, String>,
}

/// The stage-1 model's quality (BLUEPRINT section 10, "Quantization quality").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage1Quality {
    pub validation_auc: f64,
    pub int8_auc: f64,
    pub agreement: f64,
}

/// A rollout of a motes' model over the fleet's motes ([`crate::fleet_ota`]); times from the
/// start of observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub version: u32,
    pub began: Duration,
    pub phase: Phase,
    pub verdict: Option<String>,
    /// When the canary's clock started, when its verdict came, when the rollout settled.
    pub canary_from: Option<Duration>,
    pub decided: Option<Duration>,
    pub settled: Option<Duration>,
    pub transfers: u32,
}

impl Deployed {
    fn of(rollout: &Rollout, start: Duration) -> Deployed {
        let at = |ms: Option<u64>| ms.map(|ms| Duration::from_millis(ms).saturating_sub(start));
        Deployed {
            version: rollout.version,
            began: at(rollout.began_ms).unwrap_or_default(),
            phase: rollout.phase,
            verdict: rollout.verdict.clone(),
            canary_from: at(rollout.canary_from_ms),
            decided: at(rollout.decided_ms),
            settled: at(rollout.settled_ms),
            transfers: rollout.motes.values().map(|m| m.transfers).sum(),
        }
    }
}

/// A drift the monitor reported, and what followed.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// How long after the start of observation.
    pub after: Duration,
    /// How long after the load regime shifted, for the first detection after it (`None`: any
    /// other detection, a false one).
    pub delay: Option<Duration>,
    /// The drifting features' names.
    pub features: Vec<&'static str>,
    /// Inspections requested of the fleet.
    pub inspections: usize,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPmReport {
    pub seed: u64,
    pub motors: usize,
    pub days: f64,
    pub windows: u64,
    pub flagged: u64,
    pub sensor_alerts: u64,
    /// The first training, then each retraining.
    pub trainings: Vec<Training>,
    /// The rollouts of the motes' models, in order.
    pub rollouts: Vec<Deployed>,
    /// Windows the motes took while rollouts ran.
    pub mote_windows: u64,
    pub drifts: Vec<Drift>,
    /// The load regime shifted while windows were observed.
    pub shifted: bool,
    pub model: Efficacy,
    pub baseline: Efficacy,
}

impl FleetPmReport {
    /// "Beats the baseline" (BLUEPRINT section 10): recall at >= 24 h lead at least 20
    /// percentage points above the baseline's, at a false-alarm rate no higher.
    pub fn beats_baseline(&self) -> bool {
        self.model.bearing_recall() >= self.baseline.bearing_recall() + 0.20
            && self.model.false_alarms_per_motor_month() <= self.baseline.false_alarms_per_motor_month()
    }

    /// The rollout of the first model trained since the load shift was detected, and how long
    /// after the detection it began and the loop was done with it: the model on every mote
    /// (`Installed`), or the canary's rollback (its verdict) once it had settled.
    pub fn drift_to_fleet(&self) -> Option<(&Deployed, Duration, Option<Duration>)> {
        let detected = self.drifts.iter().find(|d| d.delay.is_some())?.after;
        let rollout = self.rollouts.iter().find(|r| r.began >= detected)?;
        let done = match rollout.phase {
            Phase::Installed => rollout.settled,
            Phase::Restored => rollout.decided,
            _ => None,
        };
        Some((rollout, rollout.began - detected, done.map(|at| at.saturating_sub(detected))))
    }

    /// The targets that this run misses, with figures.
    pub fn misses(&self) -> Vec<String> {
        let mut misses = Vec::new();
        if self.model.bearing_failures < 30 {
            misses
                .push(format!("only {} bearing failures scored (at least 30)", self.model.bearing_failures));
        }
        let recall = self.model.bearing_recall();
        if recall < 0.95 {
            misses
                .push(format!("{:.1}% of bearing failures alerted 24 h ahead (target 95%)", 100.0 * recall));
        }
        let rate = self.model.false_alarms_per_motor_month();
        if rate > 0.1 {
            misses.push(format!("{rate:.3} false alarms per motor-month (target 0.1)"));
        }
        for t in &self.trainings {
            match &t.stage1 {
                Ok(q) if (q.int8_auc - q.validation_auc).abs() <= 0.005 && q.agreement >= 0.99 => {}
                Ok(q) => misses.push(format!("int8 stage-1 model off its targets: {q:?}")),
                Err(why) => misses.push(format!("stage-1 model not trained: {why}")),
            }
        }
        let false_drifts = self.drifts.iter().filter(|d| d.delay.is_none()).count();
        if false_drifts as f64 * 30.0 / self.days > 1.0 {
            misses.push(format!("{false_drifts} false drift detections in {:.0} days", self.days));
        }
        if self.shifted {
            match self.drifts.iter().find_map(|d| d.delay) {
                Some(delay) if delay <= Duration::from_secs(HOUR) => {}
                Some(delay) => misses.push(format!(
                    "drift detected {:.1} h after the shift (target 1 h)",
                    delay.as_secs_f64() / 3600.0
                )),
                None => misses.push("the load shift was never detected as drift".into()),
            }
            match self.drift_to_fleet() {
                Some((_, _, Some(done))) if done <= Duration::from_secs(2 * HOUR) => {}
                Some((r, _, Some(done))) => misses.push(format!(
                    "model {} {:?} {:.1} h after the drift was detected (target 2 h)",
                    r.version,
                    r.phase,
                    hours(done)
                )),
                Some((r, _, None)) => misses.push(format!("model {}'s rollout did not settle", r.version)),
                None if self.drifts.iter().any(|d| d.delay.is_some()) => {
                    misses.push("no motes' model was trained after the drift".into())
                }
                None => {}
            }
        }
        if !self.beats_baseline() {
            misses.push("does not beat the RMS baseline by BLUEPRINT section 10's rule".into());
        }
        misses
    }
}

/// The pipeline's state between steps.
struct Pipeline {
    stage2: Stage2,
    baseline: Alerter,
    monitor: Option<DriftMonitor>,
    /// When to train next.
    train_at: Option<Duration>,
    /// When to rebuild the drift monitor's reference after a drift, from when.
    rebaseline: Option<(Duration, Duration)>,
    /// The load shift has been detected.
    shift_detected: bool,
    /// The monitor's last drift, ms.
    last_drift_ms: Option<u64>,
    /// The motes and the rollouts over them.
    ota: FleetOta,
    /// When each motes' model's data was taken, ms.
    data_ms: BTreeMap<u32, u64>,
}

/// Runs one fleet-pm scenario.
pub fn run(config: &FleetPmConfig) -> Result<FleetPmReport, String> {
    let mut fleet = Fleet::with_variation(config.seed, config.motors, &config.params, &config.variation);
    let mut extractor = Extractor::new(config.dsp()).map_err(|e| e.to_string())?;
    let vib_rms = DspFeatures::NAMES.iter().position(|n| *n == "vib_rms").expect("a DSP feature");
    let fs = SAMPLE_RATE_HZ;
    let mut samples = vec![[0f32; 4]; WINDOW_LEN];
    let mut outcomes = Outcomes::default();
    let mut labelled: Vec<Labelled> = Vec::new();
    let mut stage1: Vec<Labelled> = Vec::new();
    let mut failures: Vec<Failure> = Vec::new();
    let mut p = Pipeline {
        stage2: Stage2::new(rule(config, f64::INFINITY), Default::default()),
        baseline: Alerter::new(rule(config, f64::INFINITY)),
        monitor: None,
        train_at: Some(config.start + config.train_after),
        rebaseline: None,
        shift_detected: false,
        last_drift_ms: None,
        ota: FleetOta::new(config.motors, config.rollout)?,
        data_ms: BTreeMap::new(),
    };
    let (mut model_alerts, mut baseline_alerts) = (Vec::new(), Vec::new());
    let mut report = FleetPmReport {
        seed: config.seed,
        motors: config.motors,
        days: config.duration.as_secs_f64() / DAY as f64,
        windows: 0,
        flagged: 0,
        sensor_alerts: 0,
        trainings: Vec::new(),
        rollouts: Vec::new(),
        mote_windows: 0,
        drifts: Vec::new(),
        shifted: false,
        model: Efficacy::default(),
        baseline: Efficacy::default(),
    };
    let end = config.start + config.duration;
    let (scored_from, scored_until) = config.scoring_window();
    report.shifted = config.params.load.shift.is_some_and(|(at, _)| at >= config.start && at <= scored_until);
    let (mut events, mut alerts) = (Vec::new(), Vec::new());
    let mut t = config.start;
    let mut next_window = config.start;
    while t <= end {
        for (i, event) in fleet.advance(t) {
            let mote = i as u32 + 1;
            if let MaintenanceEvent::Failure { at, cause } = event {
                failures.push(Failure { motor: mote, at, bearing: cause.is_bearing() });
            }
            if matches!(event, MaintenanceEvent::Repaired { .. }) {
                p.stage2.repaired(mote);
                p.baseline.repaired(mote);
            }
            if event.at() >= config.start {
                outcomes.record(&crate::motes::record(MoteId(mote), &event, |at| at.as_millis() as u64));
            }
        }
        if p.train_at.is_some_and(|at| t >= at) {
            let (scorer, mut training) = fit(config, &labelled, &outcomes, t, vib_rms)?;
            // Version 1 is the motes' factory model.
            let version = report.trainings.len() as u32 + 2;
            training.stage1 = match train_motes_model(&stage1, &outcomes, t, version, &p) {
                Ok((quality, signed)) => {
                    p.data_ms.insert(version, t.as_millis() as u64);
                    p.ota.deploy(signed)?;
                    Ok(quality)
                }
                Err(why) => Err(why),
            };
            if p.stage2.model_version().is_none() {
                p.monitor = Some(monitor(&labelled, Duration::ZERO, config.motors)?);
            }
            p.stage2.install(version, scorer, rule(config, training.threshold))?;
            p.baseline.set_rule(rule(config, training.baseline_threshold_g));
            report.trainings.push(training);
            p.train_at = None;
        }
        if let Some((_, since)) = p.rebaseline.filter(|(at, _)| t >= *at) {
            p.monitor = Some(monitor(&labelled, since, config.motors)?);
            p.rebaseline = None;
        }
        // Past the scoring window only failures matter (they judge the alerts before it).
        let observed = if t == next_window && t <= scored_until { 0..config.motors } else { 0..0 };
        for i in observed {
            let mote = i as u32 + 1;
            if !fleet.motor_mut(i).is_running(t) {
                continue;
            }
            fleet.capture(i, t, fs, &mut samples);
            let window = Window::from_physical(fs as u32, &samples).map_err(|e| format!("{e:?}"))?;
            let faults = check_raw(&RawWindow::of(&window));
            let flagged = faults.any();
            let values = extractor.extract(&window).map_err(|e| e.to_string())?.to_vec();
            let time_ms = t.as_millis() as u64;
            report.windows += 1;
            report.flagged += u64::from(flagged);
            if p.stage2.model_version().is_some() {
                let seq = report.windows as u32;
                let features = FeatureRecord {
                    mote,
                    boot_epoch: 0,
                    seq,
                    capture_ms: time_ms,
                    received_ms: time_ms,
                    source: FeatureSource::Dsp,
                    faults,
                    values: values.clone(),
                };
                p.stage2.alerts_of(&features, time_ms, &mut alerts)?;
                for a in alerts.drain(..) {
                    match (a.kind, a.level) {
                        (AlertKind::Machine, AlertLevel::Raised) => {
                            model_alerts.push(Alert { motor: mote, at: t })
                        }
                        (AlertKind::Sensor, AlertLevel::Raised) => report.sensor_alerts += 1,
                        _ => {}
                    }
                }
                p.baseline.observe(mote, time_ms, (!flagged).then_some(values[vib_rms]), &mut events);
                for e in events.drain(..) {
                    if (e.kind, e.level) == (AlertKind::Machine, AlertLevel::Raised) {
                        baseline_alerts.push(Alert { motor: mote, at: t });
                    }
                }
            }
            let evidence = match (&mut p.monitor, flagged) {
                (Some(monitor), false) => monitor.observe(time_ms, &values),
                _ => None,
            };
            let mote_vector =
                aiot_firmware::features::extract(&window).iter().map(|v| f64::from(*v)).collect();
            stage1.push(Labelled { mote, time_ms, values: mote_vector, flagged });
            labelled.push(Labelled { mote, time_ms, values, flagged });
            if let Some(evidence) = evidence {
                report.drifts.push(respond(config, &mut fleet, &mut p, t, &evidence));
            }
        }
        if t == next_window {
            next_window += config.cadence;
        }
        if p.ota.busy() {
            p.ota.step(&mut fleet, t)?;
        }
        let rollout_step = p.ota.busy().then_some(t + REPORT_EVERY);
        t = [Some(next_window), p.train_at, rollout_step]
            .into_iter()
            .flatten()
            .min()
            .expect("the next window");
    }
    let unsettled = p.ota.latest().filter(|r| !r.phase.settled());
    report.rollouts = p.ota.history.iter().chain(unsettled).map(|r| Deployed::of(r, config.start)).collect();
    report.mote_windows = p.ota.windows;
    report.model = Efficacy::score(&model_alerts, &failures, config.motors, scored_from, scored_until);
    report.baseline = Efficacy::score(&baseline_alerts, &failures, config.motors, scored_from, scored_until);
    Ok(report)
}

/// After a drift: the crew is asked to inspect every running motor (their findings label the
/// windows of the hour before, so post-drift labels exist within the hour), the model is
/// retrained once they answered, and the monitor pauses for 4 days: its new reference is the
/// windows of days 2 to 4 after the drift (the new regime settled; temperatures lag the load
/// by hours).
fn respond(
    config: &FleetPmConfig,
    fleet: &mut Fleet,
    p: &mut Pipeline,
    t: Duration,
    evidence: &DriftEvidence,
) -> Drift {
    let mut inspections = 0;
    for i in 0..fleet.len() {
        if fleet.motor_mut(i).is_running(t) {
            fleet.motor_mut(i).request_inspection(t);
            inspections += 1;
        }
    }
    p.train_at = Some(t + config.params.maintenance.request_delay);
    p.last_drift_ms = Some(t.as_millis() as u64);
    p.monitor = None;
    p.rebaseline = Some((t + Duration::from_secs(4 * DAY), t + Duration::from_secs(DAY)));
    let shift = config.params.load.shift.map(|(at, _)| at).filter(|at| *at <= t && !p.shift_detected);
    p.shift_detected |= shift.is_some();
    Drift {
        after: t.saturating_sub(config.start),
        delay: shift.map(|at| t - at),
        features: evidence.features.iter().map(|f| DspFeatures::NAMES[f.feature]).collect(),
        inspections,
    }
}

/// Trains motes' model `version` on the motes' own feature vectors labelled at `now`, as the
/// pipeline's train, validate and register steps do: quantized, compared with the model the
/// fleet runs when the registry has it ([`ComparisonSet::select`]), and signed with the figures the canary rule reads on its card.
fn train_motes_model(
    windows: &[Labelled],
    outcomes: &Outcomes,
    now: Duration,
    version: u32,
    p: &Pipeline,
) -> Result<(Stage1Quality, SignedModel), String> {
    let config = TrainConfig::default();
    let data = Dataset::assemble(windows, outcomes, &config.rule, now.as_millis() as u64);
    let fitted = scorer::fit(&data, &config.fit)?;
    let (int8, quality) = quantize_fitted(&fitted, &config, version)?;
    let current = p.ota.fleet_model();
    let compared = match current {
        Some(current) => {
            let data_ms = p.data_ms.get(&current.version).copied();
            let set = ComparisonSet::select(&fitted.validation, data_ms, p.last_drift_ms);
            let figures = (set.measure(&int8)?, set.measure(current)?);
            Some((set, figures))
        }
        None => None,
    };
    let metrics =
        card_metrics(quality.auc_int8, compared.as_ref().map(|(set, (new, old))| (set, *new, *old)));
    let metrics = metrics.into_iter().map(|(name, value)| (name.to_string(), value)).collect();
    let stage1 = Stage1Quality {
        validation_auc: fitted.validation_auc,
        int8_auc: quality.auc_int8,
        agreement: quality.agreement,
    };
    Ok((stage1, plant_signed(&int8, current.map(|m| m.version), metrics)))
}

/// A drift monitor whose reference is the unflagged windows from `since` on, checking the
/// last `batch` windows every quarter batch.
fn monitor(windows: &[Labelled], since: Duration, batch: usize) -> Result<DriftMonitor, String> {
    let since_ms = since.as_millis() as u64;
    let reference: Vec<(u64, &[f64])> = windows
        .iter()
        .filter(|w| !w.flagged && w.time_ms >= since_ms)
        .map(|w| (w.time_ms, w.values.as_slice()))
        .collect();
    DriftMonitor::new(&reference, DriftConfig { batch, stride: (batch / 4).max(1), ..DriftConfig::default() })
}

/// The alert rule at `threshold` (on whatever the score is), with the run's window counts.
fn rule(config: &FleetPmConfig, threshold: f64) -> AlertRule {
    AlertRule {
        threshold,
        consecutive: config.consecutive,
        escalate_at: f64::INFINITY,
        clear_below: 0.8 * threshold,
        clear_after: config.clear_after,
    }
}

/// Fits the stage-2 scorer on what is labelled at `now`, and tunes both thresholds.
fn fit(
    config: &FleetPmConfig,
    windows: &[Labelled],
    outcomes: &Outcomes,
    now: Duration,
    vib_rms: usize,
) -> Result<(Scorer, Training), String> {
    let data = Dataset::assemble(windows, outcomes, &config.rule, now.as_millis() as u64);
    let fitted = scorer::fit(&data, &config.fit).map_err(|why| format!("training at {now:?}: {why}"))?;
    let negatives = fitted.train.x.rows().into_iter().zip(fitted.train.y.iter()).filter(|(_, y)| **y == 0.0);
    let rms: Vec<f64> = negatives.map(|(row, _)| row[vib_rms]).collect();
    let no_negatives = || format!("training at {now:?}: no negative windows");
    let training = Training {
        after: now.saturating_sub(config.start),
        positives: data.counts.positive,
        negatives: data.counts.negative,
        unlabelled: data.counts.unlabelled,
        flagged: data.counts.flagged,
        validation_auc: fitted.validation_auc,
        threshold: fitted.negative_score_quantile(config.negative_quantile).ok_or_else(no_negatives)?,
        baseline_threshold_g: quantile(rms, config.negative_quantile).ok_or_else(no_negatives)?,
        stage1: Err("not trained".into()),
    };
    Ok((fitted.scorer, training))
}

impl fmt::Display for FleetPmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fleet-pm seed {}: {} motors, {:.0} days observed", self.seed, self.motors, self.days)?;
        writeln!(
            f,
            "  windows: {} ({} flagged as sensor faults, {} sensor-fault alerts)",
            self.windows, self.flagged, self.sensor_alerts
        )?;
        for t in &self.trainings {
            writeln!(
                f,
                "  model trained after {:.1} days: {} positive, {} negative windows ({} unlabelled, {} flagged left out); held-out AUC {:.4}; threshold {:.4} (baseline: vibration RMS {:.4} g)",
                t.after.as_secs_f64() / DAY as f64,
                t.positives,
                t.negatives,
                t.unlabelled,
                t.flagged,
                t.validation_auc,
                t.threshold,
                t.baseline_threshold_g
            )?;
            match &t.stage1 {
                Ok(q) => writeln!(
                    f,
                    "    motes' stage-1 model: held-out AUC {:.4}; int8 AUC {:.4} (difference {:+.4}), decisions agreeing {:.2}%",
                    q.validation_auc,
                    q.int8_auc,
                    q.int8_auc - q.validation_auc,
                    100.0 * q.agreement
                )?,
                Err(why) => writeln!(f, "    motes' stage-1 model: not trained: {why}")?,
            }
        }
        for r in &self.rollouts {
            let since = |at: Option<Duration>| {
                at.map_or("-".to_string(), |at| format!("+{:.2} h", hours(at.saturating_sub(r.began))))
            };
            writeln!(
                f,
                "  motes' model {} rolled out from day {:.2}: canary from {}, decided {}, settled {} ({:?}, {} transfers); {}",
                r.version,
                r.began.as_secs_f64() / DAY as f64,
                since(r.canary_from),
                since(r.decided),
                since(r.settled),
                r.phase,
                r.transfers,
                r.verdict.as_deref().unwrap_or("no verdict yet")
            )?;
        }
        if self.mote_windows > 0 {
            writeln!(f, "  the motes took {} windows while rollouts ran", self.mote_windows)?;
        }
        for d in &self.drifts {
            let delay = d.delay.map_or("not of the load shift: a false detection".to_string(), |l| {
                format!("{:.1} h after the load shift", hours(l))
            });
            writeln!(
                f,
                "  drift detected after {:.2} days ({delay}) on {}; {} inspections requested",
                d.after.as_secs_f64() / DAY as f64,
                d.features.join(", "),
                d.inspections
            )?;
        }
        if let Some((r, began, done)) = self.drift_to_fleet() {
            let done = match (r.phase, done) {
                (Phase::Installed, Some(d)) => format!("on every mote {:.2} h after it", hours(d)),
                (_, Some(d)) => format!(
                    "rolled back {:.2} h after it (the canary's verdict above): the fleet keeps its model",
                    hours(d)
                ),
                (phase, None) => format!("{phase:?} at the end of the run"),
            };
            writeln!(
                f,
                "  drift to fleet: motes' model {}, rolled out {:.2} h after the detection, {done}",
                r.version,
                hours(began)
            )?;
        }
        for (name, e) in [("stage 2", &self.model), ("RMS baseline", &self.baseline)] {
            let q = |p| e.lead_quantile(p).map_or("-".to_string(), |h| format!("{h:.0}"));
            writeln!(
                f,
                "  {name:>12}: bearing failures alerted >= 24 h ahead {}/{} ({:.1}%), all failures {}/{}; lead hours p10/p50/p90 {}/{}/{}; {} alerts, {} false ({:.3} per motor-month over {:.1} motor-months)",
                e.bearing_alerted_ahead,
                e.bearing_failures,
                100.0 * e.bearing_recall(),
                e.alerted_ahead,
                e.failures,
                q(0.1),
                q(0.5),
                q(0.9),
                e.alerts,
                e.false_alarms,
                e.false_alarms_per_motor_month(),
                e.motor_months
            )?;
        }
        let misses = self.misses();
        if misses.is_empty() {
            write!(f, "  targets: met, and the baseline is beaten")
        } else {
            write!(f, "  targets missed: {}", misses.join("; "))
        }
    }
}
