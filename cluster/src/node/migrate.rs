//! Live migration on a node: executing the coordinator's moves (`coordinator` decides; the
//! runtime's `migration` takes a subtree out and starts it from a handoff).
//!
//! Out: the subtree stops with its state and waiting messages (the handoff), which goes to
//! the target as one lane frame on the root's lane. Messages that reach this node for the
//! subtree once its mailboxes closed follow it on the same lane (`forward_moving`); those
//! that come before the handoff is on the lane wait here, so they reach the target behind
//! it. The node keeps the handoff until the target announces the subtree, and starts the
//! subtree again from it if the move is aborted (or keeps it for a claim of its own).
//!
//! In: a handoff that arrived is kept until the coordinator starts the subtree from it; the
//! subtree's frames are held meanwhile, and delivered in arrival order once every declared
//! actor of it is up (`hold`, `release_held`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::migration::Handoff;
use aiot_runtime::{ActorPath, DeliveryError};

use super::router::push_on;
use super::{NodeEvent, Shared};
use crate::lanes::{lane_of, Body};
use crate::relay::{Drain, Origin};
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
    /// Subtrees moving away.
    outgoing: BTreeMap<ActorPath, Outgoing>,
    /// Handoffs to start here: arrived, or kept by this node to claim its subtree back.
    incoming: BTreeMap<ActorPath, Handoff>,
    /// Frames for subtrees moving in (root -> (path, bytes) in arrival order).
    held: BTreeMap<ActorPath, Vec<(ActorPath, Vec<u8>)>>,
    /// How moves from here ended, for admins waiting on them.
    pub(crate) outcomes: BTreeMap<ActorPath, MoveOutcome>,
    /// Subtrees that moved away: where to, and until when their frames are forwarded.
    moved_away: BTreeMap<ActorPath, (String, tokio::time::Instant)>,
}

struct Outgoing {
    to: String,
    handoff: Option<Handoff>,
    /// The handoff is on the lane: forwarded frames may follow it directly.
    sent: bool,
    /// Frames for the subtree that came before the handoff was on the lane (with where they
    /// came from: the relay acknowledges them once the target has them).
    waiting: VecDeque<(ActorPath, Vec<u8>, Origin)>,
    /// Aborted while the subtree was still stopping: what to do once it is out.
    aborted: Option<Abort>,
    /// The target hosts the subtree (`MoveDone`) while frames still wait for room on the
    /// lane: the entry goes once they are all on it.
    done: bool,
    began: tokio::time::Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// Start it here again.
    Restart,
    /// Keep the handoff for this node's claim.
    Reclaim,
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
    let outgoing = Outgoing {
        to: to.clone(),
        handoff: None,
        sent: false,
        waiting: VecDeque::new(),
        aborted: None,
        done: false,
        began: tokio::time::Instant::now(),
    };
    shared.moves.lock().outgoing.insert(root.clone(), outgoing);
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
        match aborted {
            Some(Abort::Restart) => return restart_kept(&shared, &root),
            Some(Abort::Reclaim) => return keep_for_claim(&shared, &root),
            None => {}
        }
        if bytes.len() + root.as_str().len() + 64 > FRAME_LEN_MAX {
            let why = format!("its state and messages take {} bytes, more than a frame carries", bytes.len());
            return abort(&shared, &root, &why);
        }
        let still_moving = || shared.moves.lock().outgoing.get(&root).is_some_and(|o| o.aborted.is_none());
        // What the moved actors sent before they stopped is delivered before the handoff goes
        // (`relay::Drain`): their later frames, from the target, cannot overtake it.
        let mut drain = Drain::new(shared.now(), lanes_now(&shared));
        loop {
            match drain.poll(shared.now(), |peer, lane| acked(&shared, peer, lane)) {
                None if still_moving() => tokio::time::sleep(RETRY_EVERY).await,
                None => return,
                Some(drained) => {
                    shared.stats.fences_given_up.fetch_add(u64::from(!drained), Relaxed);
                    break;
                }
            }
        }
        let mut body = Body::Handoff(bytes);
        loop {
            if !still_moving() {
                return;
            }
            match push_on(&shared, &to, &root, &root, body) {
                Ok(_) => break,
                Err(back) => body = back,
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
        // What came meanwhile follows the handoff, in order; then frames go straight on.
        while !flush_waiting(&shared, &root) {
            tokio::time::sleep(RETRY_EVERY).await;
        }
    });
}

/// Every outbound lane: (peer, lane, last pushed, last acknowledged).
fn lanes_now(shared: &Shared) -> Vec<(String, u16, u64, u64)> {
    let out = shared.out.read();
    let lanes = out.iter().flat_map(|(peer, o)| {
        o.lanes.iter().enumerate().map(move |(lane, l)| {
            let state = l.state.lock();
            (peer.clone(), lane as u16, state.last_pushed(), state.acked())
        })
    });
    lanes.collect()
}

/// The last frame `peer` acknowledged on `lane` (none: all of them).
pub(crate) fn acked(shared: &Shared, peer: &str, lane: u16) -> u64 {
    let out = shared.out.read();
    out.get(peer).map_or(u64::MAX, |o| o.lanes[usize::from(lane)].state.lock().acked())
}

/// Puts the frames that waited for the handoff on the lane; true once none waits (from then
/// on frames follow directly; a move done meanwhile is forgotten).
fn flush_waiting(shared: &Shared, root: &ActorPath) -> bool {
    let mut moves = shared.moves.lock();
    let Some(outgoing) = moves.outgoing.get_mut(root) else { return true };
    outgoing.sent = true;
    while let Some((to, bytes, origin)) = outgoing.waiting.pop_front() {
        if let Err((bytes, origin)) = relay(shared, origin, &outgoing.to, root, &to, bytes) {
            outgoing.waiting.push_front((to, bytes, origin));
            return false;
        }
    }
    if outgoing.done {
        moves.outgoing.remove(root);
    }
    true
}

/// Puts a frame that came from `origin` (or from an actor here) on `root`'s lane to `target`;
/// the relay acknowledges it to its sender once the target has it. Gives it back if the lane
/// is full.
fn relay(
    shared: &Shared,
    origin: Origin,
    target: &str,
    root: &ActorPath,
    to: &ActorPath,
    bytes: Vec<u8>,
) -> Result<(), (Vec<u8>, Origin)> {
    match push_on(shared, target, root, to, Body::Tell(bytes)) {
        Ok(seq) => {
            shared.relay.lock().relayed(origin, target, lane_of(root), seq);
            Ok(())
        }
        Err(body) => Err((body.into_bytes(), origin)),
    }
}

/// Waiting frames that will not follow the subtree after all (it stays, or runs here again):
/// the relay no longer waits for a target to have them.
fn not_relayed(
    shared: &Shared,
    waiting: VecDeque<(ActorPath, Vec<u8>, Origin)>,
) -> Vec<(ActorPath, Vec<u8>)> {
    let mut relay = shared.relay.lock();
    waiting
        .into_iter()
        .map(|(to, bytes, origin)| {
            relay.not_relayed(&origin);
            (to, bytes)
        })
        .collect()
}

/// Tells the coordinator the move failed; it answers `MoveAborted`.
fn abort(shared: &Arc<Shared>, root: &ActorPath, why: &str) {
    shared.coordinator.lock().abort_move(root, why);
    super::drive::execute(shared);
}

/// `Output::MoveAborted`: the subtree runs here again from the kept handoff, or the handoff
/// waits for this node's claim (`reclaim`); if the subtree is still stopping, once it is out.
pub(crate) fn aborted(shared: &Arc<Shared>, root: ActorPath, to: String, why: String, reclaim: bool) {
    let how = if reclaim { Abort::Reclaim } else { Abort::Restart };
    let ready = {
        let mut moves = shared.moves.lock();
        moves.outcomes.insert(root.clone(), MoveOutcome::Aborted { to: to.clone(), why: why.clone() });
        match moves.outgoing.get_mut(&root) {
            Some(outgoing) if outgoing.handoff.is_none() => {
                outgoing.aborted = Some(how);
                false
            }
            Some(_) => true,
            None => false,
        }
    };
    shared.emit(NodeEvent::MoveAborted { root: root.clone(), to, why });
    if ready {
        match how {
            Abort::Restart => restart_kept(shared, &root),
            Abort::Reclaim => keep_for_claim(shared, &root),
        }
    }
}

/// Starts the subtree here again from the kept handoff; frames that waited for it go to it.
fn restart_kept(shared: &Arc<Shared>, root: &ActorPath) {
    let Some(outgoing) = shared.moves.lock().outgoing.remove(root) else { return };
    let (Some(handoff), Some(spec)) = (outgoing.handoff, shared.topology.get(root)) else { return };
    match shared.system.start_subtree_from(spec, handoff) {
        Ok(()) => redeliver(shared, root, not_relayed(shared, outgoing.waiting)),
        Err(e) => {
            shared.emit(NodeEvent::Stopped { root: root.clone(), why: format!("could not start again: {e}") })
        }
    }
}

/// Keeps the handoff for the `Start` of this node's claim; frames that waited are held for it.
fn keep_for_claim(shared: &Shared, root: &ActorPath) {
    let mut moves = shared.moves.lock();
    let Some(outgoing) = moves.outgoing.remove(root) else { return };
    if let Some(handoff) = outgoing.handoff {
        moves.incoming.insert(root.clone(), handoff);
    }
    held_for(shared, &mut moves, root).extend(not_relayed(shared, outgoing.waiting));
}

/// `Output::MoveDone`: the target hosts the subtree; the kept handoff goes. Frames still
/// waiting for room on the lane (under load) keep their place: the move's flush puts them on
/// it, and frames that follow the subtree queue behind them until it has.
pub(crate) fn done(shared: &Shared, root: ActorPath, to: String) {
    let mut moves = shared.moves.lock();
    let Some(outgoing) = moves.outgoing.get_mut(&root) else { return };
    let (began, handoff) = (outgoing.began, outgoing.handoff.take());
    outgoing.done = true;
    if outgoing.waiting.is_empty() {
        moves.outgoing.remove(&root);
    }
    let handoff = handoff.unwrap_or_else(|| Handoff { root: root.clone(), actors: Vec::new() });
    let outcome = MoveOutcome::Moved {
        to: to.clone(),
        took_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
        actors: handoff.actors.len(),
        messages: handoff.pending_len(),
        bytes: handoff.byte_len(),
    };
    moves.outcomes.insert(root.clone(), outcome);
    let now = tokio::time::Instant::now();
    moves.moved_away.retain(|_, (_, until)| *until > now);
    moves.moved_away.insert(root.clone(), (to.clone(), now + FORWARD_AFTER));
    drop(moves);
    shared.stats.migrations.fetch_add(1, Relaxed);
    shared.emit(NodeEvent::Moved { root, to });
}

/// A handoff frame from `from`: the coordinator accepts (the subtree is claimed once its
/// move is confirmed, its frames held until it is up) or refuses it.
pub(crate) fn arrived(shared: &Arc<Shared>, from: &str, root: &ActorPath, bytes: &[u8]) {
    let handoff = match aiot_runtime::message::decode::<Handoff>(bytes) {
        Ok(handoff) if handoff.root == *root => handoff,
        Ok(_) | Err(_) => {
            shared.stats.decode_errors.fetch_add(1, Relaxed);
            return;
        }
    };
    let now = shared.now();
    if shared.coordinator.lock().handoff_arrived(root, from, now) {
        let mut moves = shared.moves.lock();
        moves.incoming.insert(root.clone(), handoff);
        held_for(shared, &mut moves, root);
    }
    super::drive::execute(shared);
}

/// `Output::Start` of a subtree whose handoff is here: starts it from the handoff and
/// delivers its held frames once every actor of it is up. `None` if no handoff is here.
pub(crate) fn start_moved_in(shared: &Arc<Shared>, root: &ActorPath) -> Option<bool> {
    let handoff = shared.moves.lock().incoming.remove(root)?;
    let spec = shared.topology.get(root)?;
    match shared.system.start_subtree_from(spec, handoff.clone()) {
        Ok(()) => {
            shared.coordinator.lock().moved_in(root);
            tokio::spawn(release_held(shared.clone(), root.clone()));
            Some(true)
        }
        Err(_) => {
            // Kept for the next claim's start.
            shared.moves.lock().incoming.insert(root.clone(), handoff);
            Some(false)
        }
    }
}

/// `Output::MoveInDropped`: the handoff will not start here; what was held is delivered (or
/// forwarded, or counted as dead letters) as if never held.
pub(crate) fn dropped(shared: &Arc<Shared>, root: ActorPath) {
    shared.moves.lock().incoming.remove(&root);
    tokio::spawn(release_held(shared.clone(), root));
}

/// The frames held for the subtree at `root`, which are held from now on.
fn held_for<'a>(
    shared: &Shared,
    moves: &'a mut Moves,
    root: &ActorPath,
) -> &'a mut Vec<(ActorPath, Vec<u8>)> {
    moves.held.entry(root.clone()).or_insert_with(|| {
        shared.holds.fetch_add(1, Relaxed);
        Vec::new()
    })
}

/// Holds the frames that arrive for the subtree at `root` from now on, until `release_held`
/// (a subtree about to start).
pub(crate) fn hold_frames_of(shared: &Shared, root: &ActorPath) {
    held_for(shared, &mut shared.moves.lock(), root);
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
pub(crate) async fn release_held(shared: Arc<Shared>, root: ActorPath) {
    let paths = shared.topology.get(&root).map(|spec| spec.subtree_paths()).unwrap_or_default();
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
            deliver_held(&shared, &to, &bytes).await;
        }
    }
}

/// Starts delivering frames that waited here for a subtree that runs here again.
fn redeliver(shared: &Arc<Shared>, root: &ActorPath, frames: Vec<(ActorPath, Vec<u8>)>) {
    if frames.is_empty() {
        return;
    }
    {
        let mut moves = shared.moves.lock();
        held_for(shared, &mut moves, root).splice(0..0, frames);
    }
    tokio::spawn(release_held(shared.clone(), root.clone()));
}

/// Delivers one held frame, waiting while its mailbox is full.
async fn deliver_held(shared: &Shared, to: &ActorPath, bytes: &[u8]) {
    loop {
        match shared.system.core().deliver_remote(to, bytes) {
            Err(DeliveryError::Full(_)) => tokio::time::sleep(RETRY_EVERY).await,
            Err(DeliveryError::Decode { .. }) => {
                shared.stats.decode_errors.fetch_add(1, Relaxed);
                return;
            }
            Ok(()) => {
                shared.stats.remote_received.fetch_add(1, Relaxed);
                return;
            }
            Err(DeliveryError::NoActor(_) | DeliveryError::Rejected(_)) => return,
        }
    }
}

/// A frame for a subtree this node is moving to `target`: it waits here until the handoff is
/// on the lane, then follows it on the root's lane. The body comes back if the lane is full.
pub(crate) fn forward_moving(
    shared: &Shared,
    root: &ActorPath,
    target: &str,
    to: &ActorPath,
    bytes: Vec<u8>,
    origin: Origin,
) -> Result<(), (Vec<u8>, Origin)> {
    let mut moves = shared.moves.lock();
    if let Some(outgoing) = moves.outgoing.get_mut(root) {
        if !outgoing.sent || !outgoing.waiting.is_empty() {
            if let Some((key, seq)) = &origin {
                shared.relay.lock().forwarding(key, *seq);
            }
            outgoing.waiting.push_back((to.clone(), bytes, origin));
            return Ok(());
        }
    }
    relay(shared, origin, target, root, to, bytes)
}

/// What `forward` did with a frame.
pub(crate) enum Forward {
    /// Its subtree is not moving away from here.
    NotMoving,
    Sent,
    /// The lane to the target is full: try again.
    Full,
}

/// A frame for a path with no actor here (from `origin`): if this node is moving its subtree
/// away (or moved it in the last `FORWARD_AFTER`), it follows the subtree.
pub(crate) fn forward(shared: &Shared, to: &ActorPath, bytes: &[u8], origin: Origin) -> Forward {
    let moving = shared.directory.read().moving_target_of(to).map(|(root, t)| (root, t.to_string()));
    let sent = match moving.filter(|(_, t)| *t != shared.name) {
        Some((root, target)) => forward_moving(shared, &root, &target, to, bytes.to_vec(), origin),
        None => {
            let moved = {
                let moves = shared.moves.lock();
                let now = tokio::time::Instant::now();
                // A move from here whose end the directory shows before `done` ran (another
                // task carries out the coordinator's outputs), or one done lately.
                let ending =
                    moves.outgoing.iter().find(|(root, o)| to.is_within(root) && o.aborted.is_none());
                let ending = ending.map(|(root, o)| (root.clone(), o.to.clone()));
                ending.or_else(|| {
                    moves
                        .moved_away
                        .iter()
                        .find(|(root, (_, until))| to.is_within(root) && *until > now)
                        .map(|(root, (target, _))| (root.clone(), target.clone()))
                })
            };
            let Some((root, target)) = moved.filter(|(_, t)| *t != shared.name) else {
                return Forward::NotMoving;
            };
            // Behind the move's frames still waiting for room, if any.
            forward_moving(shared, &root, &target, to, bytes.to_vec(), origin)
        }
    };
    match sent {
        Ok(()) => Forward::Sent,
        Err(_) => Forward::Full,
    }
}
