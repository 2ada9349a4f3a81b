//! Training labels from observed outcomes only (BLUEPRINT section 10, "Outcomes and labels").
//!
//! A window (a motor's feature vector at a time `t`) is
//! - **positive** if its motor failed within `horizon` after it (`t < failure <= t + horizon`),
//!   or an inspection within `inspection_window` after it found a defect;
//! - **negative** if an inspection within `inspection_window` after it found the motor healthy,
//!   or the horizon has passed (`now >= t + horizon`) with no failure;
//! - **unlabelled** otherwise (too recent to say).
//!
//! Evidence ranks in that order: a failure within the horizon outweighs a healthy inspection
//! (the defect was there, the inspector missed it), and a finding outweighs time passing.
//! Times are the cluster's: a window's time is when the gateway received it, an outcome's the
//! time the crew reported. No ground truth is read here: only the maintenance log.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::maintenance::{MaintenanceEvent, MaintenanceRecord};

/// The label rule's two durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelRule {
    /// A failure this long after a window makes it positive (default 7 days).
    pub horizon: Duration,
    /// An inspection this long after a window labels it (default 1 hour).
    pub inspection_window: Duration,
}

impl Default for LabelRule {
    fn default() -> Self {
        LabelRule {
            horizon: Duration::from_secs(7 * 24 * 3600),
            inspection_window: Duration::from_secs(3600),
        }
    }
}

/// A label and the evidence for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Label {
    /// The motor failed within the horizon after the window.
    FailedWithinHorizon,
    /// An inspection within the window found a defect.
    DefectFound,
    /// An inspection within the window found the motor healthy.
    FoundHealthy,
    /// The horizon passed without a failure.
    NoFailureWithinHorizon,
}

impl Label {
    pub fn is_positive(self) -> bool {
        matches!(self, Label::FailedWithinHorizon | Label::DefectFound)
    }
}

/// One motor's outcomes, in time order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct History {
    failures: Vec<u64>,
    /// (time, a defect was found).
    inspections: Vec<(u64, bool)>,
}

/// The outcomes known so far, per mote, from the maintenance stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcomes {
    motes: BTreeMap<u32, History>,
    /// The latest outcome's time: how far the log is known.
    latest_ms: u64,
}

impl Outcomes {
    /// Takes one maintenance record (in any order; copies are harmless).
    pub fn record(&mut self, record: &MaintenanceRecord) {
        let history = self.motes.entry(record.mote).or_default();
        let t = record.time_ms;
        match &record.event {
            MaintenanceEvent::Failure { .. } => insert_sorted(&mut history.failures, t),
            MaintenanceEvent::Inspection { findings, .. } => {
                insert_sorted(&mut history.inspections, (t, !findings.is_empty()))
            }
            MaintenanceEvent::Repaired => {}
        }
        self.latest_ms = self.latest_ms.max(t);
    }

    /// Motes with any outcome.
    pub fn motes(&self) -> impl Iterator<Item = u32> + '_ {
        self.motes.keys().copied()
    }

    pub fn failures(&self) -> usize {
        self.motes.values().map(|h| h.failures.len()).sum()
    }

    /// The label of `mote`'s window at `window_ms`, as known at `now_ms`; `None`: unlabelled.
    pub fn label(&self, rule: &LabelRule, mote: u32, window_ms: u64, now_ms: u64) -> Option<Label> {
        let horizon_end = window_ms.saturating_add(rule.horizon.as_millis() as u64);
        let inspection_end = window_ms.saturating_add(rule.inspection_window.as_millis() as u64);
        let history = self.motes.get(&mote);
        let failures = history.map_or(&[][..], |h| &h.failures);
        if failures.iter().any(|&f| f > window_ms && f <= horizon_end) {
            return Some(Label::FailedWithinHorizon);
        }
        let inspections = history.map_or(&[][..], |h| &h.inspections);
        let inspected = inspections.iter().filter(|(t, _)| *t > window_ms && *t <= inspection_end);
        let mut healthy = false;
        for &(_, defect) in inspected {
            if defect {
                return Some(Label::DefectFound);
            }
            healthy = true;
        }
        if healthy {
            return Some(Label::FoundHealthy);
        }
        (now_ms >= horizon_end).then_some(Label::NoFailureWithinHorizon)
    }

    /// When any outcome first spoke of `mote`'s window at `window_ms` (a failure within the
    /// horizon, an inspection within the window, or else the end of the horizon): a model
    /// trained on labels known before then cannot have learnt from that window.
    pub fn first_known_ms(&self, rule: &LabelRule, mote: u32, window_ms: u64) -> u64 {
        let horizon_end = window_ms.saturating_add(rule.horizon.as_millis() as u64);
        let inspection_end = window_ms.saturating_add(rule.inspection_window.as_millis() as u64);
        let Some(history) = self.motes.get(&mote) else { return horizon_end };
        let failure = history.failures.iter().copied().find(|&f| f > window_ms && f <= horizon_end);
        let inspection =
            history.inspections.iter().map(|(t, _)| *t).find(|&t| t > window_ms && t <= inspection_end);
        [failure, inspection].into_iter().flatten().fold(horizon_end, u64::min)
    }
}

fn insert_sorted<T: Ord>(list: &mut Vec<T>, value: T) {
    let at = list.partition_point(|v| *v <= value);
    list.insert(at, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Defect, Finding};

    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 24 * HOUR;

    fn record(mote: u32, time_ms: u64, event: MaintenanceEvent) -> MaintenanceRecord {
        MaintenanceRecord { mote, time_ms, event }
    }

    fn inspection(defect: bool) -> MaintenanceEvent {
        let findings =
            if defect { vec![Finding { defect: Defect::OuterRace, severity: 0.4 }] } else { Vec::new() };
        MaintenanceEvent::Inspection { findings, requested: false }
    }

    #[test]
    fn labels_follow_the_rule_and_its_ranking() {
        let rule = LabelRule::default();
        let mut o = Outcomes::default();
        o.record(&record(1, 10 * DAY, MaintenanceEvent::Failure { defect: Defect::OuterRace }));
        o.record(&record(1, 10 * DAY + HOUR, MaintenanceEvent::Repaired));
        o.record(&record(2, 5 * DAY + HOUR / 2, inspection(true)));
        o.record(&record(3, 5 * DAY + HOUR / 2, inspection(false)));
        o.record(&record(3, 8 * DAY, MaintenanceEvent::Failure { defect: Defect::InnerRace }));
        let now = 30 * DAY;

        // Mote 1: windows up to 7 days before its failure are positive; older ones negative.
        assert_eq!(o.label(&rule, 1, 3 * DAY, now), Some(Label::FailedWithinHorizon));
        assert_eq!(o.label(&rule, 1, 10 * DAY - 1, now), Some(Label::FailedWithinHorizon));
        assert_eq!(o.label(&rule, 1, 3 * DAY - 1, now), Some(Label::NoFailureWithinHorizon));
        assert_eq!(o.label(&rule, 1, 10 * DAY, now), Some(Label::NoFailureWithinHorizon), "after it");
        // Not known yet: the horizon has not passed.
        assert_eq!(o.label(&rule, 1, 25 * DAY, now), None);

        // Mote 2: the hour before a finding is positive; earlier windows wait for the horizon.
        assert_eq!(o.label(&rule, 2, 5 * DAY, now), Some(Label::DefectFound));
        assert_eq!(o.label(&rule, 2, 5 * DAY - HOUR, 6 * DAY), None);

        // Mote 3: healthy by inspection, but the failure within 7 days outranks it.
        assert_eq!(o.label(&rule, 3, 5 * DAY, now), Some(Label::FailedWithinHorizon));

        // A mote with no outcomes: negative once the horizon passed.
        assert_eq!(o.label(&rule, 9, 0, 7 * DAY), Some(Label::NoFailureWithinHorizon));
        assert_eq!(o.label(&rule, 9, 0, 7 * DAY - 1), None);
        assert_eq!(o.failures(), 2);
    }

    #[test]
    fn a_healthy_inspection_labels_at_once() {
        let rule = LabelRule::default();
        let mut o = Outcomes::default();
        o.record(&record(4, 2 * DAY, inspection(false)));
        assert_eq!(o.label(&rule, 4, 2 * DAY - HOUR / 4, 2 * DAY), Some(Label::FoundHealthy));
        assert!(!Label::FoundHealthy.is_positive() && Label::DefectFound.is_positive());
        assert_eq!(o.label(&rule, 4, 2 * DAY - 2 * HOUR, 2 * DAY), None, "outside the hour");
    }
}
