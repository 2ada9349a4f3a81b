//! OTP supervision as pure decisions: strategies, restart types and restart intensity.
//!
//! The runner (`runner.rs`) carries the decisions out; everything here is a leaf function or a
//! small state machine with no IO, so it is tested case by case against OTP's documentation.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actor::ExitReason;
use crate::time::Instant;

/// Which children restart when one must (OTP `strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped, then all are started again.
    OneForAll,
    /// The child that exited and every child started after it.
    RestForOne,
}

/// When a child is restarted (OTP `restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Restart {
    /// Always, whatever the exit reason.
    Permanent,
    /// Only after an abnormal exit (a failure).
    Transient,
    /// Never, not even when a sibling's restart stopped it.
    Temporary,
}

/// How a parent supervises its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    /// More than `max_restarts` restarts within `within` make the supervisor give up: it stops
    /// its children and fails itself, escalating to its own parent.
    pub max_restarts: u32,
    pub within: Duration,
}

impl Default for SupervisorSpec {
    /// OTP's defaults: one-for-one, intensity 1, period 5 s.
    fn default() -> Self {
        SupervisorSpec { strategy: Strategy::OneForOne, max_restarts: 1, within: Duration::from_secs(5) }
    }
}

impl SupervisorSpec {
    pub fn one_for_one() -> Self {
        SupervisorSpec { strategy: Strategy::OneForOne, ..Default::default() }
    }
    pub fn one_for_all() -> Self {
        SupervisorSpec { strategy: Strategy::OneForAll, ..Default::default() }
    }
    pub fn rest_for_one() -> Self {
        SupervisorSpec { strategy: Strategy::RestForOne, ..Default::default() }
    }
    /// Allows `max_restarts` restarts within `within` before escalating.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }
}

/// Whether a child that exited with `reason` is restarted, by its restart type.
pub fn should_restart(restart: Restart, reason: &ExitReason) -> bool {
    match restart {
        Restart::Permanent => true,
        Restart::Transient => reason.is_abnormal(),
        Restart::Temporary => false,
    }
}

/// Indices of the children that a restart of child `exited` (of `count`, in start order)
/// also takes down, by strategy; `exited` itself is not included.
pub fn siblings_affected(strategy: Strategy, exited: usize, count: usize) -> Vec<usize> {
    assert!(exited < count, "child index {exited} out of {count}");
    match strategy {
        Strategy::OneForOne => Vec::new(),
        Strategy::OneForAll => (0..count).filter(|&i| i != exited).collect(),
        Strategy::RestForOne => (exited + 1..count).collect(),
    }
}

/// The restarts a supervisor made within its intensity period.
#[derive(Debug, Default, Clone)]
pub struct RestartLog {
    times: VecDeque<Instant>,
}

impl RestartLog {
    /// Records a restart at `now`; false if it breaks the intensity (more than `max_restarts`
    /// within `within`), in which case the supervisor must escalate instead of restarting.
    pub fn allow(&mut self, now: Instant, spec: &SupervisorSpec) -> bool {
        while self.times.front().is_some_and(|&t| now.saturating_since(t) >= spec.within) {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.times.len() <= spec.max_restarts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn restart_types_follow_otp() {
        let failed = ExitReason::Failed("x".into());
        assert!(should_restart(Restart::Permanent, &ExitReason::Normal));
        assert!(should_restart(Restart::Permanent, &failed));
        assert!(!should_restart(Restart::Transient, &ExitReason::Normal));
        assert!(!should_restart(Restart::Transient, &ExitReason::Shutdown));
        assert!(should_restart(Restart::Transient, &failed));
        assert!(!should_restart(Restart::Temporary, &failed));
    }

    #[test]
    fn strategies_pick_siblings() {
        assert_eq!(siblings_affected(Strategy::OneForOne, 1, 4), Vec::<usize>::new());
        assert_eq!(siblings_affected(Strategy::OneForAll, 1, 4), vec![0, 2, 3]);
        assert_eq!(siblings_affected(Strategy::RestForOne, 1, 4), vec![2, 3]);
        assert_eq!(siblings_affected(Strategy::RestForOne, 3, 4), Vec::<usize>::new());
    }

    #[test]
    fn intensity_allows_max_then_refuses_and_forgets_old_restarts() {
        let spec = SupervisorSpec::one_for_one().intensity(2, Duration::from_secs(5));
        let mut log = RestartLog::default();
        assert!(log.allow(at(0), &spec));
        assert!(log.allow(at(1000), &spec));
        assert!(!log.allow(at(2000), &spec), "third restart within 5 s breaks intensity 2");
        let mut log = RestartLog::default();
        assert!(log.allow(at(0), &spec));
        assert!(log.allow(at(1000), &spec));
        assert!(log.allow(at(6000), &spec), "the restart at 0 s has left the window");
    }

    #[test]
    fn zero_intensity_never_restarts() {
        let spec = SupervisorSpec::one_for_one().intensity(0, Duration::from_secs(1));
        assert!(!RestartLog::default().allow(at(0), &spec));
    }
}
