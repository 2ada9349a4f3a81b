//! Live migration on a simulated node: the steps a real node takes
//! (`aiot_cluster::node::migrate`), synchronous and in virtual time, so that moves run under
//! the world's faults and seeds.
//!
//! Out: the subtree stops with its state and waiting messages (the handoff), which goes to
//! the target on the root's lane once this node's lanes delivered what they carried (what the
//! moved actors sent before they stopped goes first); frames for the subtree that reach this node meanwhile wait
//! until the handoff is on the lane, then follow it on the same lane; once the move is done,
//! frames from senders whose directory lags are forwarded for `FORWARD_AFTER`. An aborted move
//! starts the subtree here again from the kept handoff (or keeps it for this node's claim).
//!
//! In: an arrived handoff the coordinator accepts is kept until it starts the subtree; the
//! subtree's frames are held meanwhile and delivered in arrival order once every declared
//! actor of it is up.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use aiot_cluster::relay::{Drain, Origin, Relay};
use aiot_runtime::migration::{Handoff, PendingHandoff};
use aiot_runtime::{ActorPath, Instant};

/// How long frames for a subtree that moved away are still forwarded to where it went (as on
/// a real node).
pub const FORWARD_AFTER: Duration = Duration::from_secs(30);

/// A fault built into every node's moves on purpose, for tests proving the invariants catch it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenMoves {
    /// The mover starts the subtree again from its handoff once sent: two live copies.
    KeepsRunning,
    /// Frames that should follow a moving or moved subtree to its target are dropped.
    DropsFollowers,
    /// Senders do not wait for their earlier frames to a subtree that moved (no fences; the
    /// forwarding node's relay is left as it is).
    Unfenced,
}

/// What a simulated node keeps for its moves in progress.
#[derive(Default)]
pub struct Moves {
    /// Subtrees moving away.
    pub(crate) outgoing: BTreeMap<ActorPath, Outgoing>,
    /// Handoffs to start here: arrived, or kept by this node to claim its subtree back.
    pub(crate) incoming: BTreeMap<ActorPath, Handoff>,
    /// Frames for subtrees moving in, in arrival order.
    pub(crate) held: BTreeMap<ActorPath, Held>,
    /// Subtrees that moved away: where to, and until when their frames are forwarded.
    pub(crate) moved_away: BTreeMap<ActorPath, (String, Instant)>,
    /// Broken on purpose (`BrokenMoves::DropsFollowers`).
    pub(crate) drops_followers: bool,
}

pub(crate) struct Outgoing {
    pub(crate) to: String,
    /// The subtree stopping, until its handoff is complete.
    pub(crate) pending: Option<PendingHandoff>,
    pub(crate) handoff: Option<Handoff>,
    /// The handoff is on the lane: frames may follow it directly once none waits.
    pub(crate) sent: bool,
    /// Frames for the subtree that came before the handoff was on the lane, each with the
    /// inbound lane and sequence it came as (none: sent by an actor here).
    pub(crate) waiting: VecDeque<Waiting>,
    /// Aborted while the subtree was still stopping: what to do once it is out.
    pub(crate) aborted: Option<Abort>,
    /// The target hosts the subtree while frames still wait for room on the lane: the entry
    /// goes once they are all on it.
    pub(crate) done: bool,
    /// Before the handoff goes: this node's lanes deliver what they carry (`relay::Drain`);
    /// `None` once they have (or it was given up).
    pub(crate) drain: Option<Drain>,
}

/// A frame waiting to follow its subtree: (path, bytes, where it came from).
pub(crate) type Waiting = (ActorPath, Vec<u8>, Origin);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// Start it here again.
    Restart,
    /// Keep the handoff for this node's claim.
    Reclaim,
}

/// Frames held for a subtree moving in.
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) frames: VecDeque<(ActorPath, Vec<u8>)>,
    /// Set once the subtree started here (or will not): deliver them once these are all up.
    pub(crate) release_when_up: Option<Vec<ActorPath>>,
}

impl Moves {
    /// The frames held for the subtree `to` belongs to, if any.
    pub(crate) fn held_for(&mut self, to: &ActorPath) -> Option<&mut Held> {
        self.held.iter_mut().find(|(root, _)| to.is_within(root)).map(|(_, held)| held)
    }

    /// Where a frame for `to` goes if its subtree moved away from here lately.
    pub(crate) fn moved_to(&self, to: &ActorPath, now: Instant) -> Option<(ActorPath, String)> {
        self.moved_away
            .iter()
            .find(|(root, (_, until))| to.is_within(root) && *until > now)
            .map(|(root, (target, _))| (root.clone(), target.clone()))
    }

    /// Keeps what an outgoing move had for this node's own claim: its handoff, and its
    /// waiting frames held for the subtree's start (delivered here, in order: they wait for
    /// no target any more).
    pub(crate) fn keep_for_claim(&mut self, root: &ActorPath, outgoing: Outgoing, relay: &mut Relay) {
        if let Some(handoff) = outgoing.handoff {
            self.incoming.insert(root.clone(), handoff);
        }
        let held = self.held.entry(root.clone()).or_default();
        held.frames.extend(outgoing.waiting.into_iter().map(|frame| settle(frame, relay)));
    }
}

/// A waiting frame that will not follow its subtree after all: the relay stops waiting for it.
pub(crate) fn settle((path, bytes, origin): Waiting, relay: &mut Relay) -> (ActorPath, Vec<u8>) {
    relay.not_relayed(&origin);
    (path, bytes)
}
