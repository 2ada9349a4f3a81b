//! Stage 2's alert rule: per-motor episodes from a stream of scored windows, de-duplicated and
//! escalated, and the `alerts` stream's record.
//!
//! - A machine-fault alert is **raised** when a motor's score is at or over `threshold` for
//!   `consecutive` windows in a row; while it is open, further windows raise nothing (one alert
//!   per episode). It **escalates** once when the score reaches `escalate_at`, and **clears**
//!   after `clear_after` windows in a row under `clear_below` (hysteresis), or when the crew
//!   reports the motor repaired.
//! - A window the proxy flagged with sensor faults is never scored: it opens a sensor-fault
//!   episode instead (raised once, cleared by the next clean window) and leaves the machine
//!   episode's counters alone (BLUEPRINT section 10, "Data quality").
//!
//! Windows of one motor must come in time order; copies of a window (the stream is at least
//! once) are ignored by time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::context::AlertContext;
use crate::streams::{decode, encode};

/// Alerts, as [`AlertRecord`]s (bincode), keyed by mote.
pub const ALERTS: &str = "alerts";

/// When an alert opens, escalates and clears.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    /// Score (probability) at which a window counts towards an alert.
    pub threshold: f64,
    /// Windows in a row at or over `threshold` that raise one.
    pub consecutive: u32,
    /// Score that escalates an open alert.
    pub escalate_at: f64,
    /// Score under which windows count towards clearing.
    pub clear_below: f64,
    /// Windows in a row under `clear_below` that clear an open alert.
    pub clear_after: u32,
}

impl Default for AlertRule {
    /// Three windows at 0.5 or over raise; 0.9 escalates; 24 windows under 0.3 clear.
    fn default() -> Self {
        AlertRule { threshold: 0.5, consecutive: 3, escalate_at: 0.9, clear_below: 0.3, clear_after: 24 }
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertKind {
    /// The machine looks faulty.
    Machine,
    /// A sensor looks faulty (the proxy flagged the window); says nothing about the machine.
    Sensor,
}

/// A step of an alert episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AlertLevel {
    Raised,
    Escalated,
    Cleared,
}

/// One event of an alert episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertEvent {
    pub mote: u32,
    /// The window's time (the label rule's clock), ms.
    pub time_ms: u64,
    pub kind: AlertKind,
    pub level: AlertLevel,
    /// The window's score (0 for a sensor-fault event).
    pub score: f64,
}

/// One motor's episode state.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Episode {
    last_ms: Option<u64>,
    over: u32,
    under: u32,
    open: Option<AlertLevel>,
    sensor_open: bool,
}

/// The alert rule over every motor.
#[derive(Debug, Clone, Default)]
pub struct Alerter {
    rule: AlertRule,
    motors: BTreeMap<u32, Episode>,
}

impl Alerter {
    pub fn new(rule: AlertRule) -> Alerter {
        Alerter { rule, motors: BTreeMap::new() }
    }

    /// Changes the rule (a retrained model's threshold); open episodes stay open.
    pub fn set_rule(&mut self, rule: AlertRule) {
        self.rule = rule;
    }

    /// Takes `mote`'s window at `time_ms`: its score, or `None` if the proxy flagged it. Pushes
    /// the events it causes (at most two: a sensor episode clearing, and a machine event).
    pub fn observe(&mut self, mote: u32, time_ms: u64, score: Option<f64>, out: &mut Vec<AlertEvent>) {
        let rule = self.rule;
        let e = self.motors.entry(mote).or_default();
        if e.last_ms.is_some_and(|last| time_ms <= last) {
            return;
        }
        e.last_ms = Some(time_ms);
        let mut event = |kind, level, score| out.push(AlertEvent { mote, time_ms, kind, level, score });
        let Some(score) = score else {
            if !std::mem::replace(&mut e.sensor_open, true) {
                event(AlertKind::Sensor, AlertLevel::Raised, 0.0);
            }
            return;
        };
        if std::mem::take(&mut e.sensor_open) {
            event(AlertKind::Sensor, AlertLevel::Cleared, 0.0);
        }
        e.over = if score >= rule.threshold { e.over + 1 } else { 0 };
        e.under = if score < rule.clear_below { e.under + 1 } else { 0 };
        let level = match e.open {
            None if e.over >= rule.consecutive => AlertLevel::Raised,
            Some(AlertLevel::Raised) if score >= rule.escalate_at => AlertLevel::Escalated,
            Some(_) if e.under >= rule.clear_after => AlertLevel::Cleared,
            _ => return,
        };
        e.open = (level != AlertLevel::Cleared).then_some(level);
        event(AlertKind::Machine, level, score);
    }

    /// The crew repaired `mote`: its episode ends without an event, and counting starts over.
    pub fn repaired(&mut self, mote: u32) {
        if let Some(e) = self.motors.get_mut(&mote) {
            *e = Episode { last_ms: e.last_ms, ..Episode::default() };
        }
    }

    /// Whether `mote` has an open machine-fault alert.
    pub fn is_open(&self, mote: u32) -> bool {
        self.motors.get(&mote).is_some_and(|e| e.open.is_some())
    }
}

/// An alert as the `alerts` stream carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub mote: u32,
    /// The window that caused it, by its frame's name.
    pub boot_epoch: u32,
    pub seq: u32,
    pub capture_ms: u64,
    pub time_ms: u64,
    pub kind: AlertKind,
    pub level: AlertLevel,
    /// The scorer's probability that the motor fails within the label horizon.
    pub probability: f64,
    /// The model that scored it.
    pub model_version: u32,
    /// The features that pushed the score up most, with their share of the log-odds (of a
    /// sensor-fault alert: the flagged channels).
    pub evidence: Vec<(String, f64)>,
    /// A machine-fault alert's context: fault kind, trend, expected time to failure, load,
    /// fleet baseline.
    pub context: Option<AlertContext>,
}

impl AlertRecord {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode(bytes, "alerts")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(alerter: &mut Alerter, mote: u32, scores: &[Option<f64>]) -> Vec<(u64, AlertKind, AlertLevel)> {
        let start = alerter.motors.get(&mote).and_then(|e| e.last_ms).map_or(0, |t| t + 1);
        let mut events = Vec::new();
        for (i, s) in scores.iter().enumerate() {
            alerter.observe(mote, start + i as u64, *s, &mut events);
        }
        events.into_iter().map(|e| (e.time_ms, e.kind, e.level)).collect()
    }

    #[test]
    fn raises_once_per_episode_escalates_once_and_clears_with_hysteresis() {
        let rule = AlertRule { consecutive: 2, clear_after: 3, ..AlertRule::default() };
        let mut a = Alerter::new(rule);
        let s = |v: f64| Some(v);
        let events = run(
            &mut a,
            7,
            &[
                s(0.6),
                s(0.2),
                s(0.6),
                s(0.7),
                s(0.8),
                s(0.95),
                s(0.99),
                s(0.4),
                s(0.2),
                s(0.2),
                s(0.35),
                s(0.1),
                s(0.1),
                s(0.1),
            ],
        );
        use AlertKind::Machine as M;
        assert_eq!(
            events,
            vec![(3, M, AlertLevel::Raised), (5, M, AlertLevel::Escalated), (13, M, AlertLevel::Cleared)],
            "a lone high score raises nothing; 0.35 interrupts the clearing run"
        );
        assert!(!a.is_open(7));
        let mut copies = Vec::new();
        a.observe(7, 13, Some(0.9), &mut copies);
        assert!(copies.is_empty(), "a copy (same time) is ignored");
    }

    #[test]
    fn flagged_windows_raise_sensor_alerts_only_and_a_repair_ends_the_episode() {
        let mut a = Alerter::new(AlertRule { consecutive: 2, ..AlertRule::default() });
        use AlertKind::{Machine as M, Sensor as S};
        let events = run(&mut a, 1, &[Some(0.8), None, None, Some(0.8), Some(0.8)]);
        assert_eq!(
            events,
            vec![(1, S, AlertLevel::Raised), (3, S, AlertLevel::Cleared), (3, M, AlertLevel::Raised)],
            "flagged windows neither count nor break the run; sensor episodes are de-duplicated"
        );
        a.repaired(1);
        assert!(!a.is_open(1));
        let after = run(&mut a, 1, &[Some(0.8), Some(0.8)]);
        assert_eq!(after, vec![(6, M, AlertLevel::Raised)], "a new episode after the repair");
    }
}
