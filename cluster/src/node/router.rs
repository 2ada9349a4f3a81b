//! The runtime's `Remote` for a node: a send whose path has no local actor goes, by the
//! directory, on the lane for that path to the node hosting it; a reply goes to the asker's
//! node. Sends never wait: a frame waits in its lane's retry buffer until acknowledged.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use aiot_runtime::{ActorPath, Remote, SendError};

use super::Shared;
use crate::lanes::{lane_of, Body};

pub(crate) struct Router {
    /// Weak: the system (which holds the router) is itself held by `Shared`.
    shared: Weak<Shared>,
}

impl Router {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        Router { shared: Arc::downgrade(shared) }
    }

    fn push(&self, shared: &Shared, node: &str, to: &ActorPath, body: Body) -> Result<(), SendError> {
        let out = shared.peer_out(node);
        let lane = &out.lanes[usize::from(lane_of(to))];
        let pushed = lane.state.lock().push(to.clone(), body);
        match pushed {
            Some(_) => {
                lane.wake.notify_one();
                shared.stats.remote_sent.fetch_add(1, Relaxed);
                Ok(())
            }
            None => {
                shared.stats.lane_full.fetch_add(1, Relaxed);
                Err(SendError::MailboxFull(to.clone()))
            }
        }
    }
}

impl Remote for Router {
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), SendError> {
        let shared = self.shared.upgrade().ok_or_else(|| SendError::NoActor(to.clone()))?;
        let directory = shared.directory.read();
        match directory.node_of(to) {
            // Not hosted anywhere, or hosted here but not running (starting or stopping).
            None => Err(SendError::NoActor(to.clone())),
            Some(node) if node == shared.name => Err(SendError::NoActor(to.clone())),
            Some(node) => self.push(&shared, node, to, Body::Tell(bytes)),
        }
    }

    fn reply(&self, origin: &str, to: &ActorPath, corr: u64, bytes: Vec<u8>) -> Result<(), SendError> {
        let shared = self.shared.upgrade().ok_or_else(|| SendError::NoActor(to.clone()))?;
        self.push(&shared, origin, to, Body::Reply { corr, bytes })
    }
}
