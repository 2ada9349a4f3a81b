//! Mailbox policy (capacity and overflow) and the envelopes a mailbox holds.
//!
//! BLUEPRINT section 10: `ctx.send` never blocks. When a mailbox is full the receiver's policy
//! decides: *backpressure* parks the message in the sender's outbox and the executor does not run
//! the sender again until its outbox drains; *drop-oldest* drops the oldest bounded message and
//! counts it; *reject* returns an error to the sender and counts it.
//!
//! Only user messages and port events count against the capacity. Replies, timers, death
//! notices and supervision signals are bounded elsewhere (by the asks, timers and watches an
//! actor made, and by its children) and must never be lost to a full mailbox.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::actor::{Down, ExitReason};
use crate::message::ErasedMessage;
use crate::spec::Spec;

/// Default mailbox capacity, in messages: deep enough to absorb bursts of a few hundred
/// telemetry frames, shallow enough that a stuck actor shows up as parked senders, not as
/// unbounded memory.
pub const MAILBOX_LEN_DEFAULT: usize = 1024;

/// What a send to a full mailbox does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overflow {
    /// The sender waits (its outbox holds the message; it runs again once it drains).
    Backpressure,
    /// The oldest waiting message is dropped and counted (telemetry: newest wins).
    DropOldest,
    /// The send fails with `SendError::MailboxFull`, counted at the receiver.
    Reject,
}

/// A mailbox's bound and overflow policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxSpec {
    pub capacity: usize,
    pub overflow: Overflow,
}

impl Default for MailboxSpec {
    fn default() -> Self {
        MailboxSpec { capacity: MAILBOX_LEN_DEFAULT, overflow: Overflow::Backpressure }
    }
}

/// Identity of one actor incarnation within a system (0 is "outside the system").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorId(pub u64);

impl ActorId {
    /// The sender of messages that come from outside any actor (tests, the CLI, adapters).
    pub const EXTERNAL: ActorId = ActorId(0);
}

/// What sits in a mailbox's ordered queue.
pub(crate) enum Envelope<M> {
    User { from: ActorId, msg: M },
    // Rare kinds are boxed so that the common one (`User`) sets the envelope's size.
    PortEvent { from: ActorId, event: Box<(&'static str, Box<dyn ErasedMessage>)> },
    Reply { from: ActorId, corr: u64, value: Box<dyn ErasedMessage> },
    Timer { key: u64 },
    AskTimeout { corr: u64 },
    Down { from: ActorId, down: Box<Down> },
}

impl<M> Envelope<M> {
    /// Whether it counts against the mailbox capacity.
    pub(crate) fn is_bounded(&self) -> bool {
        matches!(self, Envelope::User { .. } | Envelope::PortEvent { .. })
    }
}

/// Supervision signals: handled before any queued message.
#[doc(hidden)]
pub enum Control {
    /// A child finished (for any reason).
    /// `key` is the child's start-order key in its supervisor (see `MakeArgs::child_key`).
    ChildExited { id: ActorId, key: u64, reason: ExitReason },
    /// The supervisor (or the system) stops this actor.
    Terminate,
    /// Start a subtree as a new child (the system uses it on the root guardian), in the
    /// mailbox made for it ahead, if any.
    Adopt(Arc<Spec>, Option<Arc<dyn crate::cell::AnyCell>>),
    /// Stop the child at this path for good (exit reason shutdown; not restarted).
    StopChild(crate::path::ActorPath),
    /// Stop as for `Terminate`, giving this actor's snapshot and waiting messages to the
    /// sink (live migration); its children are stopped the same way.
    Migrate(Arc<crate::migration::MigrationSink>),
    /// Move the child at this path out (`Migrate` to it; not restarted).
    MigrateChild(crate::path::ActorPath, Arc<crate::migration::MigrationSink>),
    /// Give this actor's snapshot, and go on (a checkpoint).
    Snapshot(crate::checkpoint::SnapshotRequest),
}
