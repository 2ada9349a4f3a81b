//! Failover with state on a QUIC node: the book of `crate::checkpoints` driven by the node's
//! tick, its control streams and its actor system (BLUEPRINT section 10, snapshots).
//!
//! **Host.** On each tick, every subtree hosted here whose period has passed is checkpointed
//! (the runtime's `checkpoint_subtree`, which does not stop it) and sent with its next
//! generation to every platform-tier member that is up, this node aside; a keeper holding a
//! newer one answers `CheckpointStale`.
//!
//! **Keeper** (platform-tier nodes): the newest checkpoint of each subtree, in memory and,
//! where the host gave a `CheckpointDisk` (`aiot node`: sealed files in the data directory),
//! on disk, loaded again when the node restarts. A platform-tier host keeps its own subtrees'
//! checkpoints too: with no other platform node up (counted as `checkpoints_unreplicated`)
//! they survive a crash of its process, not the loss of its disk.
//!
//! **Start.** Before a subtree declared with checkpoints starts here (after a failover, or its
//! first start: a node cannot tell them apart), this node asks every keeper it reaches for
//! the checkpoint it keeps, waits for their answers (at most `FETCH_WAIT`) and starts the
//! subtree from the newest, or afresh if there is none; the subtree's frames are held
//! meanwhile, as for a move in. What the subtree handled after its last checkpoint is lost
//! with its node: a checkpoint restores state, it does not replay messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::ActorPath;
use tokio::sync::oneshot;

use super::{migrate, NodeEvent, Shared};
use crate::checkpoints::{self as book, Generation, KeptCheckpoint, ASK_AGAIN, FETCH_WAIT};
use crate::control::ControlMsg;
use crate::membership::Status;

/// How long a checkpoint may take to gather before it is given up (an actor busy with one
/// long message).
const TAKE_MAX: Duration = Duration::from_secs(5);

/// Where a platform node keeps checkpoints across its own restarts; the host supplies it.
pub trait CheckpointDisk: Send + Sync {
    /// Every checkpoint kept, and why each unreadable one could not be read.
    fn load(&self) -> (Vec<KeptCheckpoint>, Vec<String>);
    /// Keeps `checkpoint` in place of the one kept of its subtree.
    fn save(&self, checkpoint: &KeptCheckpoint) -> Result<(), String>;
}

/// What the node keeps for checkpoints, as host and as keeper.
pub(crate) struct Checkpoints {
    book: book::Checkpoints,
    /// Where the kept ones also go (a platform node's data directory).
    disk: Option<Box<dyn CheckpointDisk>>,
    /// Starts told once every keeper they asked has answered.
    answered: BTreeMap<ActorPath, oneshot::Sender<()>>,
}

impl Checkpoints {
    /// A keeper's state at start: what `disk` kept before the node stopped, and why each
    /// checkpoint that could not be read was skipped.
    pub(crate) fn load(disk: Option<Box<dyn CheckpointDisk>>) -> (Self, Vec<String>) {
        let (loaded, unreadable) = disk.as_ref().map(|disk| disk.load()).unwrap_or_default();
        let book = book::Checkpoints::with_kept(loaded);
        (Checkpoints { book, disk, answered: BTreeMap::new() }, unreadable)
    }
}

/// Whether the subtree at `root` is declared with checkpoints.
pub(crate) fn declared(shared: &Shared, root: &ActorPath) -> bool {
    shared.topology.get(root).is_some_and(|spec| spec.checkpoint_every().is_some())
}

/// The platform-tier members up, this node aside.
fn keepers(shared: &Shared) -> Vec<String> {
    let members = shared.coordinator.lock().member_infos();
    members
        .into_iter()
        .filter(|m| m.status == Status::Up && m.name != shared.name && book::keeps_checkpoints(&m.tags))
        .map(|m| m.name)
        .collect()
}

/// Starts gathering a checkpoint of every hosted subtree whose period has passed.
pub(crate) fn tick(shared: &Arc<Shared>) {
    let hosted: Vec<(ActorPath, Duration)> = {
        let coordinator = shared.coordinator.lock();
        let moving: BTreeSet<&ActorPath> = coordinator.moving_out().collect();
        coordinator
            .hosted()
            .iter()
            .filter(|root| !moving.contains(root))
            .filter_map(|root| Some((root.clone(), shared.topology.get(root)?.checkpoint_every()?)))
            .collect()
    };
    let due = shared.checkpoints.lock().book.due(&hosted, shared.now());
    for root in due {
        tokio::spawn(take(shared.clone(), root));
    }
}

/// Gathers one checkpoint of `root` and sends it to the keepers.
async fn take(shared: Arc<Shared>, root: ActorPath) {
    let gathered = match shared.system.checkpoint_subtree(&root) {
        Ok(pending) => match tokio::time::timeout(TAKE_MAX, pending).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("its actors did not answer within {TAKE_MAX:?}")),
        },
        Err(e) => Err(e.to_string()),
    };
    let bytes = match gathered.and_then(|handoff| book::encode(&handoff)) {
        Ok(bytes) => bytes,
        Err(why) => {
            shared.checkpoints.lock().book.gather_failed(&root);
            shared.stats.checkpoints_failed.fetch_add(1, Relaxed);
            shared.emit(NodeEvent::CheckpointFailed { root, why });
            return;
        }
    };
    let Some(generation) = shared.checkpoints.lock().book.gathered(&root) else { return };
    let mut sent = false;
    for keeper in keepers(&shared) {
        let msg = ControlMsg::Checkpoint { root: root.clone(), generation, handoff: bytes.clone() };
        sent |= shared.control(&keeper, msg);
    }
    if book::keeps_checkpoints(&shared.tls.me.tags) {
        if let Err(kept) = keep_newest(&shared, root.clone(), generation, bytes) {
            shared.checkpoints.lock().book.go_above(&root, kept);
        }
    }
    let counter = if sent { &shared.stats.checkpoints_sent } else { &shared.stats.checkpoints_unreplicated };
    counter.fetch_add(1, Relaxed);
}

/// A checkpoint message from `peer`.
pub(crate) fn handle(shared: &Arc<Shared>, peer: &str, msg: ControlMsg) {
    match msg {
        ControlMsg::Checkpoint { root, generation, handoff } => keep(shared, peer, root, generation, handoff),
        ControlMsg::CheckpointStale { root, kept } => shared.checkpoints.lock().book.go_above(&root, kept),
        ControlMsg::CheckpointWanted { root } => {
            let kept = shared.checkpoints.lock().book.kept(&root);
            shared.control(peer, ControlMsg::CheckpointKept { root, kept });
        }
        ControlMsg::CheckpointKept { root, kept } => answered(shared, &root, peer, kept),
        _ => {}
    }
}

/// `keeper` answered (or cannot be asked) for the start of `root`.
fn answered(shared: &Shared, root: &ActorPath, keeper: &str, kept: Option<Generation>) {
    let mut checkpoints = shared.checkpoints.lock();
    if checkpoints.book.answered(root, keeper, kept) {
        if let Some(answered) = checkpoints.answered.remove(root) {
            let _ = answered.send(());
        }
    }
}

/// As keeper: keeps a checkpoint newer than the one kept, tells the host if it is not.
fn keep(shared: &Shared, peer: &str, root: ActorPath, generation: u64, handoff: Vec<u8>) {
    if !book::valid_for(&root, &handoff) || !declared(shared, &root) {
        shared.stats.decode_errors.fetch_add(1, Relaxed);
        return;
    }
    if let Err(kept) = keep_newest(shared, root.clone(), generation, handoff) {
        shared.control(peer, ControlMsg::CheckpointStale { root, kept });
    }
}

/// Keeps a checkpoint (in memory, and on disk if the node has one) unless the one kept is as
/// new: then its generation is the error.
fn keep_newest(shared: &Shared, root: ActorPath, generation: u64, handoff: Vec<u8>) -> Result<(), u64> {
    let mut checkpoints = shared.checkpoints.lock();
    let checkpoint = checkpoints.disk.is_some().then(|| KeptCheckpoint {
        root: root.clone(),
        generation,
        handoff: handoff.clone(),
    });
    if let Err(kept) = checkpoints.book.keep(root.clone(), generation, handoff) {
        shared.stats.checkpoints_stale.fetch_add(1, Relaxed);
        return Err(kept);
    }
    shared.stats.checkpoints_kept.fetch_add(1, Relaxed);
    let saved = checkpoints.disk.as_ref().zip(checkpoint).map(|(disk, checkpoint)| disk.save(&checkpoint));
    drop(checkpoints);
    // Kept in memory all the same: the disk's copy is what a restart of this node loses.
    if let Some(Err(why)) = saved {
        shared.stats.checkpoint_disk_errors.fetch_add(1, Relaxed);
        shared
            .emit(NodeEvent::CheckpointDisk(format!("cannot keep the checkpoint of {root} on disk: {why}")));
    }
    Ok(())
}

/// `Output::Start` of a subtree declared with checkpoints: fetches the newest checkpoint kept
/// of it, then starts it (holding its frames meanwhile) and reports the start.
pub(crate) fn start(shared: &Arc<Shared>, root: ActorPath) {
    migrate::hold_frames_of(shared, &root);
    let (answered_tx, all_answered) = oneshot::channel();
    let keepers = keepers(shared);
    {
        // Registered before asking: an answer may come back at once.
        let mut checkpoints = shared.checkpoints.lock();
        checkpoints.book.fetch(root.clone(), keepers.iter().cloned(), shared.now());
        checkpoints.answered.insert(root.clone(), answered_tx);
    }
    // One not reached yet (its connection is not up) is asked again (`ask_again`).
    for keeper in keepers {
        shared.control(&keeper, ControlMsg::CheckpointWanted { root: root.clone() });
    }
    let mut checkpoints = shared.checkpoints.lock();
    // Every keeper answered already (or none was asked).
    if checkpoints.book.fetches_over(shared.now()).contains(&root) {
        if let Some(answered) = checkpoints.answered.remove(&root) {
            let _ = answered.send(());
        }
    }
    drop(checkpoints);
    tokio::spawn(start_from_newest(shared.clone(), root, all_answered));
}

async fn start_from_newest(shared: Arc<Shared>, root: ActorPath, mut all_answered: oneshot::Receiver<()>) {
    let deadline = tokio::time::Instant::now() + FETCH_WAIT;
    while tokio::time::timeout(ASK_AGAIN, &mut all_answered).await.is_err()
        && tokio::time::Instant::now() < deadline
    {
        let again = shared.checkpoints.lock().book.ask_again(shared.now());
        for (root, keeper) in again {
            shared.control(&keeper, ControlMsg::CheckpointWanted { root });
        }
    }
    let restored = {
        let mut checkpoints = shared.checkpoints.lock();
        checkpoints.answered.remove(&root);
        checkpoints.book.end_fetch(&root)
    };
    let restored = restored.unwrap_or_else(|_| {
        shared.stats.decode_errors.fetch_add(1, Relaxed);
        None
    });
    let Some(spec) = shared.topology.get(&root).cloned() else {
        return migrate::release_held(shared, root).await;
    };
    let generation = restored.as_ref().map_or(0, |(generation, _)| *generation);
    let started = {
        // Under the coordinator's lock: a stop decided meanwhile is not undone by this start.
        let coordinator = shared.coordinator.lock();
        if !coordinator.hosted().contains(&root) {
            None
        } else {
            Some(match restored {
                Some((_, handoff)) => shared.system.start_subtree_from(&spec, handoff).is_ok(),
                None => shared.system.start_subtrees(std::slice::from_ref(&spec)).is_ok(),
            })
        }
    };
    if started == Some(true) {
        let due = shared.now() + spec.checkpoint_every().unwrap_or_default();
        shared.checkpoints.lock().book.started(root.clone(), generation, due);
        if generation > 0 {
            shared.stats.checkpoint_starts.fetch_add(1, Relaxed);
            shared.emit(NodeEvent::Restored { root: root.clone(), generation });
        }
    }
    if let Some(started) = started {
        super::drive::report_start(&shared, &root, started);
    }
    migrate::release_held(shared, root).await;
}
