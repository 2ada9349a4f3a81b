//! Live migration, the runtime's half (BLUEPRINT section 4): a top-level subtree taken out of a
//! running system with its state, and started in another from what was taken.
//!
//! Out: each actor of the subtree stops as for a shutdown (children first, in reverse start
//! order), but first gives its `Actor::snapshot`, and after `stopped` its mailbox is closed
//! and emptied in one step: the user messages still waiting in it are encoded, in order, so
//! nothing that reached the mailbox is lost. What cannot move (timers, which the restored
//! actor sets again in `started`; replies to asks, which end with their incarnation; port
//! events, which belong to this node) is counted as dead letters, as at any stop. The parts
//! make a `Handoff` once the subtree's root has stopped.
//!
//! In: `start_subtree_from` starts the declared subtree with each actor's snapshot given to
//! `Actor::restore` before `started`, and its waiting messages put ahead of anything that
//! reached the new mailbox meanwhile.
//!
//! Moving the handoff between nodes, and routing the messages sent meanwhile, is the
//! cluster's half.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::path::ActorPath;

/// A subtree taken out of a system: what starts it elsewhere as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub root: ActorPath,
    /// Every actor of the subtree, in the order they stopped (children before their parent).
    pub actors: Vec<ActorHandoff>,
}

/// One actor's part of a handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorHandoff {
    pub path: ActorPath,
    /// Its `Actor::snapshot` as it stopped (`None`: it keeps no state, and starts fresh).
    pub snapshot: Option<Vec<u8>>,
    /// User messages that were waiting in its mailbox (encoded as its message type), in order.
    pub pending: Vec<Vec<u8>>,
}

impl Handoff {
    /// Messages that move with the subtree.
    pub fn pending_len(&self) -> usize {
        self.actors.iter().map(|a| a.pending.len()).sum()
    }

    /// Snapshot bytes and message bytes together.
    pub fn byte_len(&self) -> usize {
        let part = |a: &ActorHandoff| {
            a.snapshot.as_ref().map_or(0, Vec::len) + a.pending.iter().map(Vec::len).sum::<usize>()
        };
        self.actors.iter().map(part).sum()
    }
}

/// Why a subtree could not be taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrateError {
    /// No running top-level subtree has this path here.
    NotHosted(ActorPath),
    /// Only top-level subtrees move (supervision never crosses nodes).
    NotTopLevel(ActorPath),
}

impl std::fmt::Display for MigrateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MigrateError::NotHosted(path) => write!(f, "{path} does not run here"),
            MigrateError::NotTopLevel(path) => {
                write!(f, "{path} is not a top-level subtree (a subtree moves as a whole, from its root)")
            }
        }
    }
}

impl std::error::Error for MigrateError {}

/// Gathers a moving subtree's parts as its actors stop.
#[doc(hidden)]
pub struct MigrationSink {
    root: ActorPath,
    state: Mutex<SinkState>,
}

#[derive(Default)]
struct SinkState {
    parts: Vec<ActorHandoff>,
    done: bool,
    failed: Option<MigrateError>,
    waker: Option<Waker>,
}

impl MigrationSink {
    pub(crate) fn new(root: ActorPath) -> Arc<Self> {
        Arc::new(MigrationSink { root, state: Mutex::new(SinkState::default()) })
    }

    /// An actor of the subtree has stopped; the root's part completes the handoff.
    pub(crate) fn add(&self, part: ActorHandoff) {
        let mut state = self.state.lock();
        let last = part.path == self.root;
        state.parts.push(part);
        if last {
            state.done = true;
            Self::wake(&mut state);
        }
    }

    /// The subtree could not be moved out (nothing stopped).
    pub(crate) fn fail(&self, error: MigrateError) {
        let mut state = self.state.lock();
        state.failed = Some(error);
        state.done = true;
        Self::wake(&mut state);
    }

    fn wake(state: &mut SinkState) {
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }
}

/// A subtree on its way out: resolves to its `Handoff` once the subtree's root has stopped.
pub struct PendingHandoff {
    pub(crate) sink: Arc<MigrationSink>,
}

impl PendingHandoff {
    /// The handoff, once complete (for executors that step by hand).
    pub fn try_take(&mut self) -> Option<Result<Handoff, MigrateError>> {
        self.take(None)
    }

    /// The outcome if complete; otherwise `waker` (if any) is woken once it is.
    fn take(&self, waker: Option<&Waker>) -> Option<Result<Handoff, MigrateError>> {
        let mut state = self.sink.state.lock();
        if !state.done {
            state.waker = waker.cloned();
            return None;
        }
        state.done = false;
        if let Some(error) = state.failed.take() {
            return Some(Err(error));
        }
        Some(Ok(Handoff { root: self.sink.root.clone(), actors: std::mem::take(&mut state.parts) }))
    }
}

impl Future for PendingHandoff {
    type Output = Result<Handoff, MigrateError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.take(Some(cx.waker())) {
            Some(handoff) => Poll::Ready(handoff),
            None => Poll::Pending,
        }
    }
}
