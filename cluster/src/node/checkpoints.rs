//! Failover with state: checkpoints of the subtrees declared with `checkpoint_every`, kept
//! off their node by the platform-tier nodes (BLUEPRINT section 10, snapshots), and the start
//! of such a subtree from the newest checkpoint kept.
//!
//! **Host.** On each tick, every subtree hosted here whose period has passed is checkpointed
//! (the runtime's `checkpoint_subtree`, which does not stop it) and sent with its next
//! *generation* to every platform-tier member that is up, this node aside. Generations order
//! a subtree's checkpoints across the nodes it ran on: a start from a checkpoint goes on above
//! its generation, and a keeper that holds a newer one than it is sent answers
//! `CheckpointStale`, so a host that started without one (a move in, a start while no keeper
//! answered) goes on above it from its next checkpoint.
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

use aiot_runtime::migration::Handoff;
use aiot_runtime::ActorPath;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{migrate, NodeEvent, Shared};
use crate::control::ControlMsg;
use crate::membership::Status;
use crate::wire::FRAME_LEN_MAX;

/// How long a start waits for the keepers' answers.
const FETCH_WAIT: Duration = Duration::from_secs(2);
/// How long a checkpoint may take to gather before it is given up (an actor busy with one
/// long message).
const TAKE_MAX: Duration = Duration::from_secs(5);
/// The largest encoded checkpoint sent: it travels as one control frame, with room to spare
/// for the path and framing.
const CHECKPOINT_MAX: usize = FRAME_LEN_MAX - 4096;

/// A checkpoint as a keeper keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptCheckpoint {
    pub root: ActorPath,
    pub generation: u64,
    /// An encoded `Handoff` of `root`.
    pub handoff: Vec<u8>,
}

/// Where a platform node keeps checkpoints across its own restarts; the host supplies it.
pub trait CheckpointDisk: Send + Sync {
    /// Every checkpoint kept, and why each unreadable one could not be read.
    fn load(&self) -> (Vec<KeptCheckpoint>, Vec<String>);
    /// Keeps `checkpoint` in place of the one kept of its subtree.
    fn save(&self, checkpoint: &KeptCheckpoint) -> Result<(), String>;
}

/// What the node keeps for checkpoints, as host and as keeper.
#[derive(Default)]
pub(crate) struct Checkpoints {
    /// As keeper: the newest checkpoint of each subtree (generation, encoded `Handoff`).
    kept: BTreeMap<ActorPath, (u64, Vec<u8>)>,
    /// Where the kept ones also go (a platform node's data directory).
    disk: Option<Box<dyn CheckpointDisk>>,
    /// As host: each checkpointed subtree hosted here.
    hosted: BTreeMap<ActorPath, Hosted>,
    /// Starts waiting for the keepers' answers.
    fetches: BTreeMap<ActorPath, Fetch>,
}

struct Hosted {
    /// The generation of the last checkpoint sent (or started from).
    generation: u64,
    due: Instant,
    /// A checkpoint is being gathered.
    taking: bool,
}

struct Fetch {
    /// Keepers asked that have not answered yet.
    waiting: BTreeSet<String>,
    /// The newest checkpoint answered so far.
    best: Option<(u64, Vec<u8>)>,
    /// Told once every keeper asked has answered.
    answered: Option<oneshot::Sender<()>>,
}

impl Checkpoints {
    /// A keeper's state at start: what `disk` kept before the node stopped, and why each
    /// checkpoint that could not be read was skipped.
    pub(crate) fn load(disk: Option<Box<dyn CheckpointDisk>>) -> (Self, Vec<String>) {
        let (loaded, unreadable) = disk.as_ref().map(|disk| disk.load()).unwrap_or_default();
        let kept = loaded.into_iter().map(|c| (c.root, (c.generation, c.handoff))).collect();
        (Checkpoints { kept, disk, ..Checkpoints::default() }, unreadable)
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
        .filter(|m| m.status == Status::Up && m.name != shared.name && platform_tier(&m.tags))
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
    let now = Instant::now();
    let mut checkpoints = shared.checkpoints.lock();
    checkpoints.hosted.retain(|root, _| hosted.iter().any(|(r, _)| r == root));
    for (root, every) in hosted {
        let entry = checkpoints.hosted.entry(root.clone()).or_insert(Hosted {
            generation: 0,
            due: now + every,
            taking: false,
        });
        if entry.taking || entry.due > now {
            continue;
        }
        entry.taking = true;
        entry.due = now + every;
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
    let encoded = gathered.and_then(|handoff| {
        let bytes = aiot_runtime::message::encode(&handoff);
        if bytes.len() > CHECKPOINT_MAX {
            return Err(format!("{} bytes, over the {CHECKPOINT_MAX} a checkpoint may have", bytes.len()));
        }
        Ok(bytes)
    });
    let generation = {
        let mut checkpoints = shared.checkpoints.lock();
        let Some(hosted) = checkpoints.hosted.get_mut(&root) else { return };
        hosted.taking = false;
        match &encoded {
            Ok(_) => {
                hosted.generation += 1;
                hosted.generation
            }
            Err(_) => 0,
        }
    };
    let bytes = match encoded {
        Ok(bytes) => bytes,
        Err(why) => {
            shared.stats.checkpoints_failed.fetch_add(1, Relaxed);
            shared.emit(NodeEvent::CheckpointFailed { root, why });
            return;
        }
    };
    let mut sent = false;
    for keeper in keepers(&shared) {
        let msg = ControlMsg::Checkpoint { root: root.clone(), generation, handoff: bytes.clone() };
        sent |= shared.control(&keeper, msg);
    }
    if platform_tier(&shared.tls.me.tags) {
        if let Err(kept) = keep_newest(&shared, root.clone(), generation, bytes) {
            go_above(&shared, &root, kept);
        }
    }
    let counter = if sent { &shared.stats.checkpoints_sent } else { &shared.stats.checkpoints_unreplicated };
    counter.fetch_add(1, Relaxed);
}

/// A checkpoint message from `peer`.
pub(crate) fn handle(shared: &Arc<Shared>, peer: &str, msg: ControlMsg) {
    match msg {
        ControlMsg::Checkpoint { root, generation, handoff } => keep(shared, peer, root, generation, handoff),
        ControlMsg::CheckpointStale { root, kept } => go_above(shared, &root, kept),
        ControlMsg::CheckpointWanted { root } => {
            let kept = shared.checkpoints.lock().kept.get(&root).cloned();
            shared.control(peer, ControlMsg::CheckpointKept { root, kept });
        }
        ControlMsg::CheckpointKept { root, kept } => {
            let mut checkpoints = shared.checkpoints.lock();
            let Some(fetch) = checkpoints.fetches.get_mut(&root) else { return };
            if !fetch.waiting.remove(peer) {
                return;
            }
            if kept.as_ref().is_some_and(|(g, _)| fetch.best.as_ref().is_none_or(|(best, _)| g > best)) {
                fetch.best = kept;
            }
            if fetch.waiting.is_empty() {
                if let Some(answered) = fetch.answered.take() {
                    let _ = answered.send(());
                }
            }
        }
        _ => {}
    }
}

/// The host's next checkpoint of `root` goes above generation `kept`.
fn go_above(shared: &Shared, root: &ActorPath, kept: u64) {
    if let Some(hosted) = shared.checkpoints.lock().hosted.get_mut(root) {
        hosted.generation = hosted.generation.max(kept);
    }
}

/// Whether these tags put a node on the platform tier (a keeper of checkpoints).
fn platform_tier(tags: &BTreeMap<String, String>) -> bool {
    tags.get("tier").is_some_and(|tier| tier == "platform")
}

/// As keeper: keeps a checkpoint newer than the one kept, tells the host if it is not.
fn keep(shared: &Shared, peer: &str, root: ActorPath, generation: u64, handoff: Vec<u8>) {
    // A checkpoint that would not start its subtree is refused now, not at the failover.
    let valid = aiot_runtime::message::decode::<Handoff>(&handoff).is_ok_and(|h| h.root == root);
    if !valid || !declared(shared, &root) {
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
    if let Some(&(kept, _)) = checkpoints.kept.get(&root) {
        if kept >= generation {
            shared.stats.checkpoints_stale.fetch_add(1, Relaxed);
            return Err(kept);
        }
    }
    shared.stats.checkpoints_kept.fetch_add(1, Relaxed);
    let saved = checkpoints.disk.as_ref().map(|disk| {
        let checkpoint = KeptCheckpoint { root: root.clone(), generation, handoff: handoff.clone() };
        disk.save(&checkpoint)
    });
    checkpoints.kept.insert(root.clone(), (generation, handoff));
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
    let (answered, all_answered) = oneshot::channel();
    let keepers = keepers(shared);
    {
        let mut checkpoints = shared.checkpoints.lock();
        // What this node keeps itself counts too (a platform node taking a subtree over).
        let best = checkpoints.kept.get(&root).cloned();
        // Registered before asking: an answer may come back at once.
        let fetch = Fetch { waiting: keepers.iter().cloned().collect(), best, answered: None };
        checkpoints.fetches.insert(root.clone(), fetch);
    }
    for keeper in keepers {
        if !shared.control(&keeper, ControlMsg::CheckpointWanted { root: root.clone() }) {
            if let Some(fetch) = shared.checkpoints.lock().fetches.get_mut(&root) {
                fetch.waiting.remove(&keeper);
            }
        }
    }
    match shared.checkpoints.lock().fetches.get_mut(&root) {
        Some(fetch) if !fetch.waiting.is_empty() => fetch.answered = Some(answered),
        // Every keeper answered already (or none was asked).
        _ => {
            let _ = answered.send(());
        }
    }
    tokio::spawn(start_from_newest(shared.clone(), root, all_answered));
}

async fn start_from_newest(shared: Arc<Shared>, root: ActorPath, all_answered: oneshot::Receiver<()>) {
    let _ = tokio::time::timeout(FETCH_WAIT, all_answered).await;
    let best = shared.checkpoints.lock().fetches.remove(&root).and_then(|f| f.best);
    let restored =
        best.and_then(|(generation, bytes)| match aiot_runtime::message::decode::<Handoff>(&bytes) {
            Ok(handoff) => Some((generation, handoff)),
            Err(_) => {
                shared.stats.decode_errors.fetch_add(1, Relaxed);
                None
            }
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
        let due = Instant::now() + spec.checkpoint_every().unwrap_or_default();
        shared.checkpoints.lock().hosted.insert(root.clone(), Hosted { generation, due, taking: false });
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
