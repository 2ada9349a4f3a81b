//! Checkpoints: a running top-level subtree's snapshots, taken without stopping it (the
//! runtime's half of failover with state; the cluster replicates them off the node).
//!
//! Each actor of the subtree gets a signal, handled between two messages like every
//! supervision signal, and gives its `Actor::snapshot` there. So each actor's part is a state
//! it really had, but the parts of a subtree are taken one after the other: they are not one
//! consistent cut across its actors. The result is a `Handoff` without waiting messages, which
//! `start_subtree_from` starts as it starts a moved subtree.
//!
//! A checkpoint completes once every actor that was asked gave its part. One that cannot (it
//! stopped, or is between two incarnations) makes the whole checkpoint fail rather than yield
//! a subtree with a state missing: a snapshot of `None` means "keeps no state", not "unknown".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

use crate::migration::{ActorHandoff, Handoff};
use crate::path::ActorPath;

/// Why no checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// Nothing runs at this top-level path here.
    NotHosted(ActorPath),
    /// This actor of the subtree could not give its snapshot (it stopped or was restarting).
    Missing(ActorPath),
}

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointError::NotHosted(path) => write!(f, "{path} does not run here"),
            CheckpointError::Missing(path) => write!(f, "{path} gave no snapshot (stopped or restarting)"),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// Gathers a subtree's parts as its actors give them.
struct Gathering {
    root: ActorPath,
    state: Mutex<GatherState>,
}

struct GatherState {
    parts: Vec<ActorHandoff>,
    outstanding: usize,
    missing: Option<ActorPath>,
    waker: Option<Waker>,
}

/// One actor's request for its snapshot (inside the signal it gets). Dropped without an
/// answer (the actor's mailbox closed first), it marks the checkpoint as failed.
#[doc(hidden)]
pub struct SnapshotRequest {
    gathering: Arc<Gathering>,
    path: ActorPath,
    answered: bool,
}

impl SnapshotRequest {
    /// The actor's snapshot (`None`: it keeps no state). `Err`: it has no instance to ask.
    pub(crate) fn answer(mut self, snapshot: Result<Option<Vec<u8>>, ()>) {
        self.answered = true;
        let mut state = self.gathering.state.lock();
        match snapshot {
            Ok(snapshot) => {
                state.parts.push(ActorHandoff { path: self.path.clone(), snapshot, pending: Vec::new() })
            }
            Err(()) => {
                state.missing.get_or_insert_with(|| self.path.clone());
            }
        }
        Self::one_less(&mut state);
    }

    fn one_less(state: &mut GatherState) {
        state.outstanding -= 1;
        if state.outstanding == 0 {
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }

    pub(crate) fn path(&self) -> &ActorPath {
        &self.path
    }
}

impl Drop for SnapshotRequest {
    fn drop(&mut self) {
        if !self.answered {
            let mut state = self.gathering.state.lock();
            state.missing.get_or_insert_with(|| self.path.clone());
            Self::one_less(&mut state);
        }
    }
}

/// A checkpoint being taken: resolves once every actor asked has answered.
pub struct PendingCheckpoint {
    gathering: Arc<Gathering>,
}

impl PendingCheckpoint {
    /// Asks each of `paths` (the subtree's running actors, `root` among them) for its part;
    /// `ask` delivers each request (one it drops unanswered fails the checkpoint).
    pub(crate) fn ask(
        root: ActorPath,
        paths: Vec<ActorPath>,
        mut ask: impl FnMut(SnapshotRequest),
    ) -> PendingCheckpoint {
        let gathering = Arc::new(Gathering {
            root,
            state: Mutex::new(GatherState {
                parts: Vec::new(),
                outstanding: paths.len(),
                missing: None,
                waker: None,
            }),
        });
        for path in paths {
            ask(SnapshotRequest { gathering: gathering.clone(), path, answered: false });
        }
        PendingCheckpoint { gathering }
    }

    /// The checkpoint, once complete (for executors that step by hand).
    pub fn try_take(&mut self) -> Option<Result<Handoff, CheckpointError>> {
        self.take(None)
    }

    fn take(&self, waker: Option<&Waker>) -> Option<Result<Handoff, CheckpointError>> {
        let mut state = self.gathering.state.lock();
        if state.outstanding > 0 {
            state.waker = waker.cloned();
            return None;
        }
        if let Some(path) = state.missing.clone() {
            return Some(Err(CheckpointError::Missing(path)));
        }
        let mut actors = std::mem::take(&mut state.parts);
        // Deepest first, as a handoff lists them (children before their parent).
        actors.sort_by(|a, b| depth(&b.path).cmp(&depth(&a.path)).then_with(|| a.path.cmp(&b.path)));
        Some(Ok(Handoff { root: self.gathering.root.clone(), actors }))
    }
}

fn depth(path: &ActorPath) -> usize {
    path.as_str().matches('/').count()
}

impl Future for PendingCheckpoint {
    type Output = Result<Handoff, CheckpointError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.take(Some(cx.waker())) {
            Some(checkpoint) => Poll::Ready(checkpoint),
            None => Poll::Pending,
        }
    }
}
