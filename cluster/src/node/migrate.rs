//! Live migration on a node: executing the coordinator's moves (`coordinator` decides; the
//! runtime's `migration` takes a subtree out and starts it from a handoff).
//!
//! Out: the subtree stops with its state and waiting messages (the handoff), which goes to
//! the target as one lane frame on the root's lane; the node keeps a copy until the target
//! announces the subtree, and starts it again from the copy if the move is aborted. Messages
//! that reach this node for the subtree meanwhile follow it on the same lane (`forward`).
//!
//! In: a handoff that arrived is kept until the coordinator starts the subtree from it; the
//! subtree's frames are held meanwhile, and delivered in arrival order once every actor of
//! the subtree is up (`hold`, `release_held`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::migration::Handoff;
use aiot_runtime::{ActorPath, DeliveryError};

use super::router::push_on;
use super::{NodeEvent, Shared};
use crate::lanes::Body;
use crate::wire::FRAME_LEN_MAX;

/// How long a moved-in subtree's frames are held at most while its actors start.
const HOLD_MAX: Duration = Duration::from_secs(10);
/// How long frames for a subtree that moved away are still forwarded to where it went
/// (senders whose directory has not caught up).
const FORWARD_AFTER: Duration = Duration::from_secs(30);
/// How often a held or blocked delivery tries again.
const RETRY_EVERY: Duration = Duration::from_millis(2);

/// What the node keeps for the moves in progress.
#[derive(Default)]
pub(crate) struct Moves {
    /// Subtrees moving away: the target, and the handoff once taken out.
    outgoing: BTreeMap<ActorPath, Outgoing>,
    /// Handoffs that arrived, until the subtree starts here.
    incoming: BTreeMap<ActorPath, Handoff>,
    /// Frames for subtrees moving in (root -> (path, bytes) in arrival order).
    held: BTreeMap<ActorPath, Vec<(ActorPath, Vec<u8>)>>,
    /// How moves from here ended, for admins waiting on them.
    pub(crate) outcomes: BTreeMap<ActorPath, MoveOutcome>,
    /// Subtrees that moved away: where to, and until when their frames are forwarded.
    moved_away: BTreeMap<ActorPath, (String, tokio::time::Instant)>,
}

struct Outgoing {
    handoff: Option<Handoff>,
    /// Aborted while the subtree was still stopping: start it here once taken out.
    aborted: bool,
    began: tokio::time::Instant,
}

/// How a move from this node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved { to: String, took_ms: u64, actors: usize, messages: usize, bytes: usize },
    Aborted { to: String, why: String },
}

/// `Output::MoveOut`: takes the subtree out, then sends its handoff.
pub(crate) fn move_out(shared: &Arc<Shared>, root: ActorPath, to: String) {
    let pending = match shared.system.migrate_subtree(&root) {
        Ok(pending) => pending,
        Err(e) => return abort(shared, &root, &e.to_string()),
    };
    let outgoing = Outgoing { handoff: None, aborted: false, began: tokio::time::Instant::now() };
    shared.moves.lock().outgoing.insert(root.clone(), outgoing);
    shared.moves.lock().outcomes.remove(&root);
    let shared = shared.clone();
    tokio::spawn(async move {
        let handoff = match pending.await {
            Ok(handoff) => handoff,
            Err(e) => return abort(&shared, &root, &e.to_string()),
        };
        let bytes = aiot_runtime::message::encode(&handoff);
        let aborted = {
            let mut moves = shared.moves.lock();
            let Some(outgoing) = moves.outgoing.get_mut(&root) else { return };
            outgoing.handoff = Some(handoff);
            outgoing.aborted
        };
        if aborted {
            return restart_kept(&shared, &root);
        }
        if bytes.len() + root.as_str().len() + 64 > FRAME_LEN_MAX {
            let why = format!("its state and messages take {} bytes, more than a frame carries", bytes.len());
            return abort(&shared, &root, &why);
        }
        let mut body = Body::Handoff(bytes);
        while let Err(back) = push_on(&shared, &to, &root, &root, body) {
            body = back;
            tokio::time::sleep(RETRY_EVERY).await;
        }
    });
}

/// Tells the coordinator the move failed; it answers `MoveAborted`.
fn abort(shared: &Arc<Shared>, root: &ActorPath, why: &str) {
    shared.coordinator.lock().abort_move(root, why);
    super::drive::execute(shared);
}

/// `Output::MoveAborted`: the subtree runs here again from the kept handoff (or will, once
/// it has been taken out).
pub(crate) fn aborted(shared: &Arc<Shared>, root: ActorPath, to: String, why: String) {
    {
        let mut moves = shared.moves.lock();
        let Some(outgoing) = moves.outgoing.get_mut(&root) else { return };
        if outgoing.handoff.is_none() {
            outgoing.aborted = true;
            return;
        }
        moves.outcomes.insert(root.clone(), MoveOutcome::Aborted { to: to.clone(), why: why.clone() });
    }
    shared.emit(NodeEvent::MoveAborted { root: root.clone(), to, why });
    restart_kept(shared, &root);
}

fn restart_kept(shared: &Arc<Shared>, root: &ActorPath) {
    let Some(outgoing) = shared.moves.lock().outgoing.remove(root) else { return };
    let (Some(handoff), Some(spec)) = (outgoing.handoff, shared.topology.get(root)) else { return };
    if let Err(e) = shared.system.start_subtree_from(spec, handoff) {
        shared.emit(NodeEvent::Stopped { root: root.clone(), why: format!("could not start again: {e}") });
    }
}

/// `Output::MoveDone`: the target hosts the subtree; the kept handoff goes.
pub(crate) fn done(shared: &Shared, root: ActorPath, to: String) {
    let Some(outgoing) = shared.moves.lock().outgoing.remove(&root) else { return };
    let handoff = outgoing.handoff.unwrap_or_else(|| Handoff { root: root.clone(), actors: Vec::new() });
    let outcome = MoveOutcome::Moved {
        to: to.clone(),
        took_ms: u64::try_from(outgoing.began.elapsed().as_millis()).unwrap_or(u64::MAX),
        actors: handoff.actors.len(),
        messages: handoff.pending_len(),
        bytes: handoff.byte_len(),
    };
    shared.stats.migrations.fetch_add(1, Relaxed);
    let mut moves = shared.moves.lock();
    moves.outcomes.insert(root.clone(), outcome);
    let until = tokio::time::Instant::now() + FORWARD_AFTER;
    moves.moved_away.retain(|_, (_, until)| *until > tokio::time::Instant::now());
    moves.moved_away.insert(root.clone(), (to.clone(), until));
    drop(moves);
    shared.emit(NodeEvent::Moved { root, to });
}

/// A handoff frame from `from`: the coordinator accepts (the subtree is claimed, its frames
/// held until it is up) or refuses it.
pub(crate) fn arrived(shared: &Arc<Shared>, from: &str, root: &ActorPath, bytes: &[u8]) {
    let handoff = match aiot_runtime::message::decode::<Handoff>(bytes) {
        Ok(handoff) if handoff.root == *root => handoff,
        Ok(_) | Err(_) => {
            shared.stats.decode_errors.fetch_add(1, Relaxed);
            return;
        }
    };
    if shared.coordinator.lock().handoff_arrived(root, from) {
        let mut moves = shared.moves.lock();
        moves.incoming.insert(root.clone(), handoff);
        if moves.held.insert(root.clone(), Vec::new()).is_none() {
            shared.holds.fetch_add(1, Relaxed);
        }
    }
    super::drive::execute(shared);
}

/// `Output::Start` of a subtree whose handoff arrived: starts it from the handoff, and
/// delivers its held frames once every actor of it is up. False if no handoff is here.
pub(crate) fn start_moved_in(shared: &Arc<Shared>, root: &ActorPath) -> Option<bool> {
    let handoff = shared.moves.lock().incoming.remove(root)?;
    let spec = shared.topology.get(root)?;
    let started = shared.system.start_subtree_from(spec, handoff).is_ok();
    if started {
        tokio::spawn(release_held(shared.clone(), root.clone()));
    }
    Some(started)
}

/// Holds a frame for a subtree moving in; gives it back if none is held for its path.
pub(crate) fn hold(shared: &Shared, to: &ActorPath, bytes: Vec<u8>) -> Option<Vec<u8>> {
    let mut moves = shared.moves.lock();
    match crate::directory::subtree_entry_mut(&mut moves.held, to) {
        Some(held) => {
            held.push((to.clone(), bytes));
            None
        }
        None => Some(bytes),
    }
}

/// Waits until every declared actor of the moved-in subtree is up (at most `HOLD_MAX`), then
/// delivers the frames held for it in arrival order, and stops holding.
async fn release_held(shared: Arc<Shared>, root: ActorPath) {
    let paths: Vec<ActorPath> =
        shared.topology.specs().map(|s| s.path().clone()).filter(|p| under(p, &root)).collect();
    let deadline = tokio::time::Instant::now() + HOLD_MAX;
    let core = shared.system.core().clone();
    while !paths.iter().all(|p| core.lookup(p).is_some()) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(RETRY_EVERY).await;
    }
    loop {
        let batch = {
            let mut moves = shared.moves.lock();
            let Some(held) = moves.held.get_mut(&root) else { return };
            if held.is_empty() {
                moves.held.remove(&root);
                shared.holds.fetch_sub(1, Relaxed);
                return;
            }
            std::mem::take(held)
        };
        for (to, bytes) in batch {
            loop {
                match core.deliver_remote(&to, &bytes) {
                    Err(DeliveryError::Full(_)) => tokio::time::sleep(RETRY_EVERY).await,
                    Err(DeliveryError::Decode { .. }) => {
                        shared.stats.decode_errors.fetch_add(1, Relaxed);
                        break;
                    }
                    Ok(()) => {
                        shared.stats.remote_received.fetch_add(1, Relaxed);
                        break;
                    }
                    Err(DeliveryError::NoActor(_) | DeliveryError::Rejected(_)) => break,
                }
            }
        }
    }
}

/// Whether `path` is `root` or inside its subtree.
fn under(path: &ActorPath, root: &ActorPath) -> bool {
    let mut at = Some(path.clone());
    while let Some(p) = at {
        if p == *root {
            return true;
        }
        at = p.parent();
    }
    false
}

/// What `forward` did with a frame.
pub(crate) enum Forward {
    /// Its subtree is not moving away from here.
    NotMoving,
    Sent,
    /// The lane to the target is full: try again.
    Full,
}

/// A frame for a path with no actor here: if this node is moving its subtree away (or moved
/// it in the last `FORWARD_AFTER`), it follows the subtree on the root's lane.
pub(crate) fn forward(shared: &Shared, to: &ActorPath, bytes: &[u8]) -> Forward {
    let moving = shared.directory.read().moving_target_of(to).map(|(root, t)| (root, t.to_string()));
    let target = moving.or_else(|| {
        let moves = shared.moves.lock();
        let now = tokio::time::Instant::now();
        let root = moves.moved_away.keys().find(|root| under(to, root))?;
        let (target, until) = &moves.moved_away[root];
        (*until > now).then(|| (root.clone(), target.clone()))
    });
    let Some((root, target)) = target.filter(|(_, t)| *t != shared.name) else { return Forward::NotMoving };
    match push_on(shared, &target, &root, to, Body::Tell(bytes.to_vec())) {
        Ok(()) => Forward::Sent,
        Err(_) => Forward::Full,
    }
}
