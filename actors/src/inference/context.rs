//! Stage 2's per-motor context (BLUEPRINT section 5): what a window's score means given the
//! motor's recent history, its load and the fleet. Pure, kept by each stage-2 replica for the
//! motors of its partitions (a motor's windows come to one replica, in order).
//!
//! - **History and trend:** the motor's last [`HISTORY`] scored windows as (time, log-odds),
//!   in time order (an older window is not history); the trend is their least-squares slope
//!   in log-odds per day, once at least [`MIN_TREND`] windows span at least six hours. A new
//!   model (its log-odds are on another scale) and a repair start every history, or the
//!   motor's, over.
//! - **Expected time to failure:** when the trend would carry the log-odds to that of
//!   [`FAILURE_P`]: an extrapolation of the risk, not a physical model of the defect. Only with
//!   a rising trend, and only within [`HORIZON_H`] (the label horizon: the model's
//!   probability is of a failure within it); already at or over: zero.
//! - **Load:** the motor's current RMS against its own slow average (EWMA, alpha
//!   [`LOAD_ALPHA`]): a score rising with the load may be the load, which the evidence says.
//! - **Fleet baseline:** each feature's mean and variance over every clean DSP window the
//!   replica read, scored or not (a running mean at first, then EWMA with alpha
//!   [`FLEET_ALPHA`]); the evidence features are given as z-scores against it once
//!   [`FLEET_MIN`] windows were seen, unless the fleet barely varies in that feature (a z-score
//!   there would say nothing). Windows with a value that is not finite are not learnt from.
//! - **Fault kind:** named by the physics of the leading evidence feature: the envelope at
//!   BPFO is an outer race, at BPFI an inner race, the 1x vibration imbalance, the supply
//!   sidebands a broken rotor bar, the temperature overheating; other features name none.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::dsp::DspFeatures;
use crate::maintenance::Defect;

/// Scored windows kept per motor for its trend.
pub const HISTORY: usize = 48;
/// Windows the trend needs (spanning at least [`MIN_SPAN_MS`]).
pub const MIN_TREND: usize = 6;
pub const MIN_SPAN_MS: u64 = 6 * 3_600_000;
/// The probability taken as failure for the expected time.
pub const FAILURE_P: f64 = 0.99;
/// The horizon of the expected time to failure, hours (the label horizon, 7 days).
pub const HORIZON_H: f64 = 7.0 * 24.0;
pub const LOAD_ALPHA: f64 = 0.05;
pub const FLEET_ALPHA: f64 = 0.001;
/// Windows the fleet baseline needs before it judges.
pub const FLEET_MIN: u64 = 30;

const DAY_MS: f64 = 86_400_000.0;

/// What an alert says beyond its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertContext {
    pub fault: Option<Defect>,
    /// The motor's log-odds trend, per day.
    pub trend_per_day: Option<f64>,
    pub hours_to_failure: Option<f64>,
    /// The current RMS against the motor's usual, as a relative change (0.3: 30% more).
    pub load_change: Option<f64>,
    /// The evidence features' z-scores against the fleet.
    pub fleet_z: Vec<(String, f64)>,
}

impl AlertContext {
    /// For people: "OuterRace, expected failure within 48 h, trend +1.20 log-odds/day, load
    /// +3%, env_bpfo +5.1 sd from the fleet".
    pub fn describe(&self) -> String {
        let mut parts = vec![match self.fault {
            Some(defect) => format!("{defect:?}"),
            None => "fault kind unknown".to_string(),
        }];
        match (self.hours_to_failure, self.trend_per_day) {
            (Some(0.0), _) => parts.push(format!("at the failure level now (p >= {FAILURE_P})")),
            (Some(h), _) => parts.push(format!("expected failure within {h:.0} h")),
            (None, Some(_)) => {
                parts.push(format!("no failure expected within {HORIZON_H:.0} h by the trend"))
            }
            (None, None) => parts.push("too little history for a trend".to_string()),
        }
        if let Some(t) = self.trend_per_day {
            parts.push(format!("trend {t:+.2} log-odds/day"));
        }
        if let Some(l) = self.load_change {
            parts.push(format!("load {:+.0}%", 100.0 * l));
        }
        parts.extend(self.fleet_z.iter().map(|(f, z)| format!("{f} {z:+.1} sd from the fleet")));
        parts.join(", ")
    }
}

#[derive(Debug, Clone, Default)]
struct Motor {
    history: VecDeque<(u64, f64)>,
    load: Option<f64>,
    load_change: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Baseline {
    mean: f64,
    var: f64,
}

/// The context of every motor a replica scores.
#[derive(Debug, Clone)]
pub struct Context {
    motors: BTreeMap<u32, Motor>,
    fleet: Vec<Baseline>,
    seen: u64,
}

impl Context {
    pub fn new() -> Context {
        Context {
            motors: BTreeMap::new(),
            fleet: vec![Baseline::default(); DspFeatures::NAMES.len()],
            seen: 0,
        }
    }

    /// Takes `mote`'s scored window at `time_ms`: its log-odds and its DSP features.
    pub fn observe(&mut self, mote: u32, time_ms: u64, logit: f64, values: &[f64]) {
        let motor = self.motors.entry(mote).or_default();
        if logit.is_finite() && motor.history.back().is_none_or(|(last, _)| time_ms > *last) {
            motor.history.push_back((time_ms, logit));
            if motor.history.len() > HISTORY {
                motor.history.pop_front();
            }
        }
        self.observe_features(mote, values);
    }

    /// A new model scores from now on: every history starts over (its log-odds are on
    /// another scale); the baselines stay.
    pub fn new_model(&mut self) {
        self.motors.values_mut().for_each(|m| m.history.clear());
    }

    /// The crew repaired `mote`: its history starts over.
    pub fn repaired(&mut self, mote: u32) {
        if let Some(motor) = self.motors.get_mut(&mote) {
            motor.history.clear();
        }
    }

    /// Takes the DSP features of one of `mote`'s clean windows, scored or not (before the
    /// first model the baselines are learnt already).
    pub fn observe_features(&mut self, mote: u32, values: &[f64]) {
        if values.len() != self.fleet.len() || values.iter().any(|v| !v.is_finite()) {
            return;
        }
        let motor = self.motors.entry(mote).or_default();
        let rms = values[index("cur_rms")];
        motor.load_change = motor.load.filter(|usual| *usual > 0.0).map(|usual| rms / usual - 1.0);
        motor.load = Some(motor.load.map_or(rms, |usual| usual + LOAD_ALPHA * (rms - usual)));
        self.seen += 1;
        let alpha = FLEET_ALPHA.max(1.0 / self.seen as f64);
        for (b, x) in self.fleet.iter_mut().zip(values) {
            let d = x - b.mean;
            b.mean += alpha * d;
            b.var = (1.0 - alpha) * (b.var + alpha * d * d);
        }
    }

    /// `mote`'s context now, for an alert whose evidence names `evidence` (largest first);
    /// `values` are the window's features.
    pub fn assess(&self, mote: u32, values: &[f64], evidence: &[(String, f64)]) -> AlertContext {
        let motor = self.motors.get(&mote);
        let trend_per_day = motor.and_then(|m| trend(&m.history));
        let now = motor.and_then(|m| m.history.back().copied());
        let failure = (FAILURE_P / (1.0 - FAILURE_P)).ln();
        let hours_to_failure = match (now, trend_per_day) {
            (Some((_, logit)), _) if logit >= failure => Some(0.0),
            (Some((_, logit)), Some(slope)) if slope > 0.0 => {
                Some((failure - logit) / slope * 24.0).filter(|h| *h <= HORIZON_H)
            }
            _ => None,
        };
        let fleet_z = if self.seen < FLEET_MIN {
            Vec::new()
        } else {
            evidence
                .iter()
                .filter_map(|(name, _)| {
                    let i = DspFeatures::NAMES.iter().position(|n| n == name)?;
                    let b = self.fleet[i];
                    // A feature the fleet barely varies in says nothing as a z-score.
                    if b.var <= 1e-9 * b.mean.abs().max(1.0).powi(2) {
                        return None;
                    }
                    Some((name.clone(), (values[i] - b.mean) / b.var.sqrt()))
                })
                .collect()
        };
        AlertContext {
            fault: evidence.iter().find_map(|(name, _)| fault_of(name)),
            trend_per_day,
            hours_to_failure,
            load_change: motor.and_then(|m| m.load_change),
            fleet_z,
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

fn index(name: &str) -> usize {
    DspFeatures::NAMES.iter().position(|n| *n == name).expect("a DSP feature")
}

/// The defect a feature points at, if its physics names one.
pub fn fault_of(feature: &str) -> Option<Defect> {
    match feature {
        "env_bpfo" | "env_bpfo_2" => Some(Defect::OuterRace),
        "env_bpfi" | "env_bpfi_2" => Some(Defect::InnerRace),
        "vib_1x_g" => Some(Defect::Imbalance),
        "sb_lower" | "sb_upper" => Some(Defect::BrokenRotorBar),
        "temp_mean" => Some(Defect::Overheating),
        _ => None,
    }
}

/// The least-squares slope of log-odds over time, per day.
fn trend(history: &VecDeque<(u64, f64)>) -> Option<f64> {
    let (first, last) = (history.front()?.0, history.back()?.0);
    if history.len() < MIN_TREND || last.saturating_sub(first) < MIN_SPAN_MS {
        return None;
    }
    let n = history.len() as f64;
    let days = |t: u64| (t as f64 - first as f64) / DAY_MS;
    let mean_t = history.iter().map(|&(t, _)| days(t)).sum::<f64>() / n;
    let mean_y = history.iter().map(|&(_, y)| y).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(t, y) in history {
        let dt = days(t) - mean_t;
        sxy += dt * (y - mean_y);
        sxx += dt * dt;
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    fn window(rms: f64, bpfo: f64) -> Vec<f64> {
        let mut values = vec![0.3; DspFeatures::NAMES.len()];
        values[index("cur_rms")] = rms;
        values[index("env_bpfo")] = bpfo;
        values
    }

    #[test]
    fn a_rising_score_gives_a_trend_and_an_expected_failure_time() {
        let mut c = Context::new();
        // Motor 1's log-odds rise by 1 a day (1/24 an hour) from -4, one window an hour.
        for h in 0..24u64 {
            c.observe(1, h * HOUR, -4.0 + h as f64 / 24.0, &window(10.0, 0.2));
        }
        let evidence = vec![("env_bpfo".to_string(), 2.0)];
        let a = c.assess(1, &window(10.0, 0.2), &evidence);
        assert!((a.trend_per_day.unwrap() - 1.0).abs() < 1e-9, "{a:?}");
        // At -4 + 23/24 with a slope of 1/day: logit(0.99) = 4.595 is 7.64 days away: beyond
        // the horizon.
        assert_eq!(a.hours_to_failure, None);
        // Then two days rising 3 a day from -8: only they are in the history (48 windows).
        for h in 24..72u64 {
            c.observe(1, h * HOUR, -8.0 + 3.0 * (h - 24) as f64 / 24.0, &window(10.0, 0.2));
        }
        let a = c.assess(1, &window(10.0, 0.2), &evidence);
        assert!((a.trend_per_day.unwrap() - 3.0).abs() < 1e-9, "{a:?}");
        // Now at -8 + 3 * 47/24 = -2.125: logit(0.99) = ln 99 is (ln 99 + 2.125) / 3 days away.
        let expected = (99f64.ln() + 2.125) / 3.0 * 24.0;
        let hours = a.hours_to_failure.unwrap();
        assert!((hours - expected).abs() < 1e-9, "{hours} vs {expected}");
        assert_eq!(a.fault, Some(Defect::OuterRace));
        assert_eq!(a.load_change, Some(0.0));
        assert!(a.describe().starts_with("OuterRace, expected failure within"), "{}", a.describe());
        // A motor already over the failure probability: zero; one with a falling trend: none.
        c.observe(2, 0, 5.0, &window(10.0, 0.2));
        assert_eq!(c.assess(2, &window(10.0, 0.2), &evidence).hours_to_failure, Some(0.0));
        for h in 0..10u64 {
            c.observe(3, h * HOUR, -(h as f64), &window(10.0, 0.2));
        }
        let falling = c.assess(3, &window(10.0, 0.2), &evidence);
        assert!(falling.trend_per_day.unwrap() < 0.0 && falling.hours_to_failure.is_none());
        assert_eq!(c.assess(9, &window(10.0, 0.2), &[]).trend_per_day, None, "a motor never seen");
        assert!(c.assess(9, &window(10.0, 0.2), &[]).describe().contains("too little history"));
        // An older window and a window that is not finite are not history; a repair and a new
        // model start it over.
        c.observe(3, 0, 9.0, &window(10.0, 0.2));
        c.observe(3, 20 * HOUR, f64::NAN, &window(f64::NAN, 0.2));
        assert_eq!(c.assess(3, &window(10.0, 0.2), &evidence), falling);
        c.repaired(3);
        assert_eq!(c.assess(3, &window(10.0, 0.2), &evidence).trend_per_day, None);
        assert!(c.assess(1, &window(10.0, 0.2), &evidence).trend_per_day.is_some());
        c.new_model();
        assert_eq!(c.assess(1, &window(10.0, 0.2), &evidence).trend_per_day, None);
    }

    #[test]
    fn the_fleet_baseline_and_the_load_put_a_window_in_its_place() {
        let mut c = Context::new();
        for i in 0..200u64 {
            let bpfo = 0.2 + 0.01 * ((i % 5) as f64 - 2.0);
            c.observe((i % 20) as u32, i * HOUR, -3.0, &window(10.0, bpfo));
        }
        // Motor 4's load rises 30%, and its BPFO band stands far above the fleet.
        c.observe(4, 300 * HOUR, 1.0, &window(13.0, 0.5));
        let evidence = vec![("env_bpfo".to_string(), 2.0), ("cur_kurtosis".to_string(), 0.5)];
        let a = c.assess(4, &window(13.0, 0.5), &evidence);
        assert!((a.load_change.unwrap() - 0.3).abs() < 1e-9, "{a:?}");
        assert_eq!(a.fleet_z.len(), 1, "cur_kurtosis never varies: no z-score for it: {a:?}");
        assert_eq!(a.fleet_z[0].0, "env_bpfo");
        assert!(a.fleet_z[0].1 > 10.0, "far above the fleet: {a:?}");
        assert_eq!(a.fault, Some(Defect::OuterRace), "the leading feature with a physics names it");
        let unnamed = c.assess(4, &window(13.0, 0.5), &[("cur_kurtosis".to_string(), 1.0)]);
        assert_eq!(unnamed.fault, None);
        // Too few windows: no fleet judgement.
        let mut young = Context::new();
        young.observe(1, 0, 0.0, &window(10.0, 0.2));
        assert!(young.assess(1, &window(10.0, 0.2), &evidence).fleet_z.is_empty());
    }
}
