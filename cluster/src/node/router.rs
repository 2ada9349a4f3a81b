//! The runtime's `Remote` for a node: a send whose path has no local actor goes, by the
//! directory, on the lane for that path to the node hosting it; a reply goes to the asker's
//! node. Sends never wait: a frame waits in its lane's retry buffer until acknowledged; when
//! the buffer is full, an actor's send parks in its outbox until acknowledgements make room.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use aiot_runtime::{ActorPath, AnyCell, Remote, RemoteSendError, SendError};

use super::Shared;
use crate::lanes::{lane_of, Body};
use crate::wire::FRAME_LEN_MAX;

pub(crate) struct Router {
    /// Weak: the system (which holds the router) is itself held by `Shared`.
    shared: Weak<Shared>,
}

impl Router {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        Router { shared: Arc::downgrade(shared) }
    }

    /// Puts a frame on `to`'s lane to `node`; the body comes back if the lane is full.
    fn push(&self, shared: &Shared, node: &str, to: &ActorPath, body: Body) -> Result<(), Body> {
        push_on(shared, node, to, to, body).map(|_| ())
    }
}

/// Puts a frame for `to` on the lane of `lane_path` to `node` (a moving subtree's frames all
/// take its root's lane: `migrate` puts them behind its handoff); the body comes back if the
/// lane is full; its sequence on the lane if not.
pub(crate) fn push_on(
    shared: &Shared,
    node: &str,
    lane_path: &ActorPath,
    to: &ActorPath,
    body: Body,
) -> Result<u64, Body> {
    let out = shared.peer_out(node);
    let lane = &out.lanes[usize::from(lane_of(lane_path))];
    let len = body.bytes().len() as u64;
    let pushed = lane.state.lock().push(to.clone(), body);
    match pushed {
        Ok(seq) => {
            lane.wake.notify_one();
            shared.stats.remote_sent.fetch_add(1, Relaxed);
            shared.stats.remote_bytes_sent.fetch_add(len, Relaxed);
            Ok(seq)
        }
        Err(body) => {
            shared.stats.lane_full.fetch_add(1, Relaxed);
            Err(body)
        }
    }
}

/// Sends a message by the directory: to the node hosting `to`, or after its handoff if it is
/// moving away from here.
pub(crate) fn route(shared: &Shared, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
    let directory = shared.directory.read();
    match directory.node_of(to) {
        // Not hosted anywhere.
        None => Err(RemoteSendError::NoRoute),
        // Hosted here but not running: moving away (it follows its handoff), or starting or
        // stopping.
        Some(node) if node == shared.name => match directory.moving_target_of(to) {
            Some((root, target)) => super::migrate::forward_moving(shared, &root, target, to, bytes, None)
                .map_err(|(bytes, _)| RemoteSendError::Full(bytes)),
            None => Err(RemoteSendError::NoRoute),
        },
        Some(node) => push_on(shared, node, to, to, Body::Tell(bytes))
            .map(|_| ())
            .map_err(|body| RemoteSendError::Full(body.into_bytes())),
    }
}

/// What a data frame adds to its message besides the path: the frame's length, version, lane
/// message tag, sequence number and body tag, with room to spare.
const FRAME_OVERHEAD: usize = 64;

/// Refuses a message whose frame would be over `wire::FRAME_LEN_MAX` (the peer would refuse
/// it, and the lane could not send it): the sender gets `TooLarge` instead of a silent loss.
fn fits(to: &ActorPath, bytes: &[u8]) -> Result<(), RemoteSendError> {
    let max = FRAME_LEN_MAX - FRAME_OVERHEAD - to.as_str().len();
    if bytes.len() > max {
        return Err(RemoteSendError::TooLarge { len: bytes.len(), max });
    }
    Ok(())
}

impl Remote for Router {
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
        fits(to, &bytes)?;
        let shared = self.shared.upgrade().ok_or(RemoteSendError::NoRoute)?;
        // A subtree that moved lately: the frame waits behind the earlier ones (`relay`).
        let bytes = match shared.fenced.load(Relaxed) {
            false => bytes,
            true => match shared.fences.lock().hold(to, bytes) {
                Some(bytes) => bytes,
                None => return Ok(()),
            },
        };
        route(&shared, to, bytes)
    }

    fn wait_for_room(&self, to: &ActorPath, waiter: Arc<dyn AnyCell>) -> bool {
        let Some(shared) = self.shared.upgrade() else { return false };
        // A path moving away from here waits on the lane to its target (its root's lane).
        let (node, lane_path) = {
            let directory = shared.directory.read();
            match (directory.node_of(to), directory.moving_target_of(to)) {
                (Some(node), Some((root, target))) if node == shared.name => (target.to_string(), root),
                (Some(node), _) => (node.to_string(), to.clone()),
                (None, _) => return false,
            }
        };
        if node == shared.name {
            return false;
        }
        let out = shared.peer_out(&node);
        let lane = &out.lanes[usize::from(lane_of(&lane_path))];
        let state = lane.state.lock();
        if state.has_room() {
            return false;
        }
        lane.waiters.lock().push(waiter);
        true
    }

    /// Replies are not held back: an asker waits for them (a full lane drops the reply, and
    /// the ask times out).
    fn reply(&self, origin: &str, to: &ActorPath, corr: u64, bytes: Vec<u8>) -> Result<(), SendError> {
        if let Err(RemoteSendError::TooLarge { len, max }) = fits(to, &bytes) {
            return Err(SendError::TooLarge { path: to.clone(), len, max });
        }
        let shared = self.shared.upgrade().ok_or_else(|| SendError::NoActor(to.clone()))?;
        self.push(&shared, origin, to, Body::Reply { corr, bytes })
            .map_err(|_| SendError::MailboxFull(to.clone()))
    }
}
