//! Per-actor counters. One `ActorMetrics` lives per path and survives restarts, so `restarts`
//! and the drop counters tell the story of the path, not of one incarnation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

/// Live counters, updated with relaxed atomics (they are statistics, not synchronisation).
#[derive(Debug, Default)]
pub struct ActorMetrics {
    pub(crate) handled: AtomicU64,
    pub(crate) enqueued: AtomicU64,
    pub(crate) dropped_oldest: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) parked: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) depth_max: AtomicU64,
}

/// A point-in-time copy of an actor's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Messages (of every kind) its handlers processed.
    pub handled: u64,
    /// Bounded messages accepted into its mailbox.
    pub enqueued: u64,
    /// Messages dropped by the drop-oldest policy.
    pub dropped_oldest: u64,
    /// Sends refused by the reject policy.
    pub rejected: u64,
    /// Sends that found its mailbox full under backpressure and waited in a sender's outbox.
    pub parked: u64,
    /// Handler errors and panics.
    pub failures: u64,
    /// Times its supervisor rebuilt it from its factory.
    pub restarts: u64,
    /// Deepest its mailbox has been.
    pub depth_max: u64,
    /// Messages in its mailbox now.
    pub depth: u64,
}

impl ActorMetrics {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn saw_depth(&self, depth: usize) {
        self.depth_max.fetch_max(depth as u64, Relaxed);
    }

    pub fn snapshot(&self, depth: usize) -> MetricsSnapshot {
        MetricsSnapshot {
            handled: self.handled.load(Relaxed),
            enqueued: self.enqueued.load(Relaxed),
            dropped_oldest: self.dropped_oldest.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            parked: self.parked.load(Relaxed),
            failures: self.failures.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            depth_max: self.depth_max.load(Relaxed),
            depth: depth as u64,
        }
    }
}
