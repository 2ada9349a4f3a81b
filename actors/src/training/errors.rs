//! Stage 2's error rate on outcomes, watched by Page-Hinkley (BLUEPRINT section 5: the drift
//! monitor's "ADWIN or Page-Hinkley on the error rate once outcomes arrive"; the detector is
//! `ml::drift::PageHinkley`, chosen over ADWIN there).
//!
//! Every outcome in the maintenance log at or after the installed model's training is one
//! observation, 1 when the model was wrong about that motor, by the efficacy definitions of
//! BLUEPRINT section 10 (an alert is true when its motor fails within [`ALERT_WINDOW`]):
//!
//! - a **failure**: wrong unless a machine alert was raised or escalated for the motor in the
//!   `ALERT_WINDOW` before it (a miss);
//! - an **inspection that found a defect**: wrong unless such an alert came in the window before;
//! - an **inspection that found the motor healthy**: wrong if such an alert came in the window
//!   before (a false alarm);
//! - a **repair** is no observation; the motor's earlier alerts are forgotten (they were about
//!   the condition just repaired).
//!
//! Defaults (a binary stream of a few dozen outcomes a day, not River's continuous one):
//! `delta = 0.005`, `lambda = 5`, `min_samples = 20`: with a 5% error rate no alarm; when half
//! the outcomes turn out wrong (a new regime the model mistakes), an alarm within about twenty
//! of them. Known limit: alerts and outcomes come from two streams, so an outcome read before
//! an earlier alert is judged without it.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::inference::alerts::{AlertKind, AlertLevel, AlertRecord};
use crate::maintenance::{MaintenanceEvent, MaintenanceRecord};
use crate::ml::drift::{DriftError, PageHinkley, PageHinkleyConfig};

/// How long before an outcome an alert counts for it (the efficacy definition's 14 days).
pub const ALERT_WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);

/// The error-rate detector's defaults (module doc).
pub fn default_config() -> PageHinkleyConfig {
    PageHinkleyConfig { delta: 0.005, lambda: 5.0, min_samples: 20 }
}

/// A rise of the error rate: the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorAlarm {
    /// The outcome that raised it (cluster ms).
    pub time_ms: u64,
    /// Outcomes judged since the model's training, and how many it got wrong.
    pub outcomes: u64,
    pub wrong: u64,
}

/// Stage 2's errors on outcomes since its model's training.
#[derive(Debug, Clone)]
pub struct ErrorRate {
    detector: PageHinkley,
    /// Per motor, the times of its machine alerts (raised or escalated), the last
    /// `ALERT_WINDOW` before the latest kept.
    alerts: BTreeMap<u32, Vec<u64>>,
    /// Outcomes before this time are not the installed model's to answer for.
    since_ms: Option<u64>,
    outcomes: u64,
    wrong: u64,
}

impl ErrorRate {
    pub fn new(config: PageHinkleyConfig) -> Result<ErrorRate, DriftError> {
        Ok(ErrorRate {
            detector: PageHinkley::new(config)?,
            alerts: BTreeMap::new(),
            since_ms: None,
            outcomes: 0,
            wrong: 0,
        })
    }

    /// A model trained at `at_ms` is installed: outcomes from then on are its.
    pub fn model_trained(&mut self, at_ms: u64) {
        if self.since_ms.is_none_or(|since| at_ms > since) {
            self.since_ms = Some(at_ms);
            self.detector.reset();
            (self.outcomes, self.wrong) = (0, 0);
        }
    }

    pub fn on_alert(&mut self, alert: &AlertRecord) {
        if alert.kind != AlertKind::Machine || alert.level == AlertLevel::Cleared {
            return;
        }
        let times = self.alerts.entry(alert.mote).or_default();
        times.push(alert.time_ms);
        let latest = times.iter().copied().max().unwrap_or(alert.time_ms);
        let window = ALERT_WINDOW.as_millis() as u64;
        times.retain(|&t| t + window >= latest);
    }

    fn alerted_before(&self, mote: u32, time_ms: u64) -> bool {
        let from = time_ms.saturating_sub(ALERT_WINDOW.as_millis() as u64);
        self.alerts.get(&mote).is_some_and(|times| times.iter().any(|&t| t >= from && t <= time_ms))
    }

    /// Judges one outcome; an alarm when the error rate has risen.
    pub fn on_outcome(&mut self, record: &MaintenanceRecord) -> Option<ErrorAlarm> {
        let alerted = self.alerted_before(record.mote, record.time_ms);
        let wrong = match &record.event {
            MaintenanceEvent::Repaired => {
                if let Some(times) = self.alerts.get_mut(&record.mote) {
                    times.retain(|&t| t > record.time_ms);
                }
                return None;
            }
            MaintenanceEvent::Failure { .. } => !alerted,
            MaintenanceEvent::Inspection { findings, .. } if findings.is_empty() => alerted,
            MaintenanceEvent::Inspection { .. } => !alerted,
        };
        if self.since_ms.is_none_or(|since| record.time_ms < since) {
            return None;
        }
        self.outcomes += 1;
        self.wrong += u64::from(wrong);
        let alarm = self.detector.observe(if wrong { 1.0 } else { 0.0 });
        alarm.then_some(ErrorAlarm { time_ms: record.time_ms, outcomes: self.outcomes, wrong: self.wrong })
    }

    /// Outcomes judged since the model's training, and how many it got wrong.
    pub fn counts(&self) -> (u64, u64) {
        (self.outcomes, self.wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Defect, Finding};

    const HOUR: u64 = 3_600_000;

    fn alert(mote: u32, time_ms: u64, kind: AlertKind) -> AlertRecord {
        AlertRecord {
            mote,
            boot_epoch: 1,
            seq: 1,
            capture_ms: time_ms,
            time_ms,
            kind,
            level: AlertLevel::Raised,
            probability: 0.9,
            model_version: 1,
            evidence: Vec::new(),
            context: None,
        }
    }

    fn inspection(mote: u32, time_ms: u64, degraded: bool) -> MaintenanceRecord {
        let findings =
            if degraded { vec![Finding { defect: Defect::OuterRace, severity: 0.5 }] } else { Vec::new() };
        MaintenanceRecord { mote, time_ms, event: MaintenanceEvent::Inspection { findings, requested: true } }
    }

    #[test]
    fn outcomes_are_judged_by_the_alerts_before_them() {
        let mut rate = ErrorRate::new(default_config()).unwrap();
        rate.model_trained(10 * HOUR);
        rate.on_alert(&alert(1, 20 * HOUR, AlertKind::Machine));
        rate.on_alert(&alert(2, 20 * HOUR, AlertKind::Sensor));
        let failure = |mote, time_ms| MaintenanceRecord {
            mote,
            time_ms,
            event: MaintenanceEvent::Failure { defect: Defect::OuterRace },
        };
        assert_eq!(rate.on_outcome(&failure(1, 30 * HOUR)), None);
        assert_eq!(rate.counts(), (1, 0), "alerted ahead: right");
        rate.on_outcome(&failure(2, 30 * HOUR));
        assert_eq!(rate.counts(), (2, 1), "a sensor alert is no warning of a failure");
        rate.on_outcome(&inspection(1, 31 * HOUR, false));
        assert_eq!(rate.counts(), (3, 2), "an alert on a motor found healthy: a false alarm");
        rate.on_outcome(&MaintenanceRecord {
            mote: 1,
            time_ms: 32 * HOUR,
            event: MaintenanceEvent::Repaired,
        });
        rate.on_outcome(&inspection(1, 33 * HOUR, false));
        assert_eq!(rate.counts(), (4, 2), "repaired: its old alerts are forgotten");
        rate.on_outcome(&inspection(3, 5 * HOUR, true));
        assert_eq!(rate.counts(), (4, 2), "before the model's training: not its outcome");
        rate.on_outcome(&inspection(3, 34 * HOUR, true));
        assert_eq!(rate.counts(), (5, 3), "a defect found without an alert: a miss");
    }

    #[test]
    fn a_rising_error_rate_raises_an_alarm_and_a_steady_low_one_does_not() {
        let mut rate = ErrorRate::new(default_config()).unwrap();
        rate.model_trained(0);
        // 400 inspections of healthy motors, one in twenty under a false alarm: no alarm.
        for i in 0..400u32 {
            let mote = 100 + i;
            if i % 20 == 0 {
                rate.on_alert(&alert(mote, u64::from(i) * HOUR, AlertKind::Machine));
            }
            let alarm = rate.on_outcome(&inspection(mote, u64::from(i) * HOUR + 1, false));
            assert_eq!(alarm, None, "outcome {i}");
        }
        // Then half of them false alarms: an alarm within 30 outcomes.
        let alarm = (400..430u32).find_map(|i| {
            let mote = 1000 + i;
            if i % 2 == 0 {
                rate.on_alert(&alert(mote, u64::from(i) * HOUR, AlertKind::Machine));
            }
            rate.on_outcome(&inspection(mote, u64::from(i) * HOUR + 1, false))
        });
        let alarm = alarm.expect("the error rate rose");
        assert!(alarm.wrong > 20 && alarm.outcomes > 400, "{alarm:?}");
    }
}
