//! Per-actor counters, as a snapshot. The live counters sit in the actor's cell (those that
//! change with the queue under its lock), which outlives restarts: `restarts` and the drop
//! counters tell the story of the path, not of one incarnation.

use serde::{Deserialize, Serialize};

/// A point-in-time copy of an actor's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Messages (of every kind) taken from its mailbox and handled.
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
