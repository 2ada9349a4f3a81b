//! The maintenance log: what the crew reports (failures, repairs, inspection findings).

use std::time::Duration;

use super::degradation::DefectKind;

/// One entry of a motor's maintenance log, as technicians report it.
#[derive(Debug, Clone, PartialEq)]
pub enum MaintenanceEvent {
    /// The motor failed (it stops; `cause` is what the repair found had failed).
    Failure { at: Duration, cause: DefectKind },
    /// The motor runs again after a failure, repaired and healthy.
    Repaired { at: Duration },
    /// An inspection's finding (routine, or the answer to a request).
    Inspection(Inspection),
}

impl MaintenanceEvent {
    /// When it happened (motor time).
    pub fn at(&self) -> Duration {
        match self {
            MaintenanceEvent::Failure { at, .. } | MaintenanceEvent::Repaired { at } => *at,
            MaintenanceEvent::Inspection(i) => i.at,
        }
    }
}

/// An inspection: the motor's condition as the inspector saw it at `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Inspection {
    pub at: Duration,
    /// When the inspection was requested (`None`: a routine inspection).
    pub requested_at: Option<Duration>,
    /// The defects seen (severity at least the detection threshold), with the severity the
    /// inspector estimated (true severity with a relative error, to two decimals). Empty:
    /// healthy.
    pub findings: Vec<Finding>,
}

impl Inspection {
    pub fn is_healthy(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A defect an inspector saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    pub kind: DefectKind,
    /// Estimated severity in (0, 1].
    pub severity: f64,
}

/// The next time to emit from each source, with its rank among events at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    Failure,
    Repair,
    Routine,
    Request,
}
