//! Failover with state on a simulated node: the book of `aiot_cluster::checkpoints` driven as
//! a QUIC node drives it (`aiot_cluster::node::checkpoints`), synchronous and in virtual time.
//!
//! Hosts gather a checkpoint of each subtree declared with `checkpoint_every` once per period
//! (the subtree keeps running) and send it to every platform-tier member up; keepers keep the
//! newest. A platform node's kept checkpoints are on its disk: a crash does not lose them
//! (`World` carries them across its restart). A start of such a subtree asks the keepers
//! (again each `ASK_AGAIN` while some have not answered), holds its frames, and starts it from
//! the newest answer once all answered or `FETCH_WAIT` is over.

use std::collections::BTreeMap;
use std::time::Duration;

use aiot_cluster::checkpoints::{self as book, KeptCheckpoint};
use aiot_cluster::control::ControlMsg;
use aiot_cluster::coordinator::Coordinator;
use aiot_cluster::membership::Status;
use aiot_runtime::checkpoint::PendingCheckpoint;
use aiot_runtime::migration::Handoff;
use aiot_runtime::{ActorPath, Instant, Topology};

/// What a simulated node keeps for checkpoints.
#[derive(Default)]
pub struct NodeCheckpoints {
    book: book::Checkpoints,
    /// Checkpoints being gathered.
    gathering: BTreeMap<ActorPath, PendingCheckpoint>,
    /// Whether this node is a keeper (platform tier).
    keeper: bool,
}

/// Control messages to send: (to, message).
pub type Sends = Vec<(String, ControlMsg)>;

/// What a tick of checkpoints did.
pub struct Gathered {
    pub sends: Sends,
    /// Checkpoints gathered (sent, or kept here by a keeper with no other one up).
    pub taken: u64,
    /// Checkpoints that could not be gathered (an actor stopped or restarting, too large).
    pub failed: u64,
}

/// A fetch that ended: start the subtree from this (none: afresh).
pub struct FetchOver {
    pub root: ActorPath,
    pub restored: Option<(u64, Handoff)>,
}

impl NodeCheckpoints {
    /// A node's checkpoints at start: a keeper's `disk` holds what it kept before.
    pub fn new(keeper: bool, disk: Vec<KeptCheckpoint>) -> Self {
        let book = book::Checkpoints::with_kept(if keeper { disk } else { Vec::new() });
        NodeCheckpoints { book, gathering: BTreeMap::new(), keeper }
    }

    /// What a keeper's disk holds now (written as each checkpoint is kept).
    pub fn disk(&self) -> Vec<KeptCheckpoint> {
        if self.keeper {
            self.book.all_kept()
        } else {
            Vec::new()
        }
    }

    /// A checkpoint message from `peer`; what to answer.
    pub fn handle(&mut self, peer: &str, msg: ControlMsg, topology: &Topology) -> Sends {
        match msg {
            ControlMsg::Checkpoint { root, generation, handoff } => {
                let declared = topology.get(&root).is_some_and(|spec| spec.checkpoint_every().is_some());
                if !self.keeper || !declared || !book::valid_for(&root, &handoff) {
                    return Vec::new();
                }
                match self.book.keep(root.clone(), generation, handoff) {
                    Ok(()) => Vec::new(),
                    Err(kept) => vec![(peer.to_string(), ControlMsg::CheckpointStale { root, kept })],
                }
            }
            ControlMsg::CheckpointStale { root, kept } => {
                self.book.go_above(&root, kept);
                Vec::new()
            }
            ControlMsg::CheckpointWanted { root } => {
                let kept = self.book.kept(&root);
                vec![(peer.to_string(), ControlMsg::CheckpointKept { root, kept })]
            }
            ControlMsg::CheckpointKept { root, kept } => {
                self.book.answered(&root, peer, kept);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A start of `root` here: its keepers are asked (the sends returned).
    pub fn fetch(&mut self, root: &ActorPath, keepers: Vec<String>, now: Instant) -> Sends {
        let sends = keepers.iter().map(|k| (k.clone(), ControlMsg::CheckpointWanted { root: root.clone() }));
        let sends = sends.collect();
        self.book.fetch(root.clone(), keepers, now);
        sends
    }

    /// The keepers of starts still waiting that are asked again now.
    pub fn ask_again(&mut self, now: Instant) -> Sends {
        let again = self.book.ask_again(now).into_iter();
        again.map(|(root, keeper)| (keeper, ControlMsg::CheckpointWanted { root })).collect()
    }

    /// Starts gathering the checkpoints due of `hosted` (root, period), and sends those
    /// gathered to `keepers` (a keeper also keeps its own).
    pub fn tick(
        &mut self,
        hosted: &[(ActorPath, Duration)],
        keepers: &[String],
        now: Instant,
        system: &aiot_runtime::exec::det::DetSystem,
    ) -> Gathered {
        let (mut failed, mut taken) = (0, 0);
        for root in self.book.due(hosted, now) {
            match system.checkpoint_subtree(&root) {
                Ok(pending) => {
                    self.gathering.insert(root, pending);
                }
                Err(_) => {
                    self.book.gather_failed(&root);
                    failed += 1;
                }
            }
        }
        let mut sends = Vec::new();
        let roots: Vec<ActorPath> = self.gathering.keys().cloned().collect();
        for root in roots {
            let Some(gathered) = self.gathering.get_mut(&root).and_then(PendingCheckpoint::try_take) else {
                continue;
            };
            self.gathering.remove(&root);
            let bytes = match gathered.map_err(|e| e.to_string()).and_then(|h| book::encode(&h)) {
                Ok(bytes) => bytes,
                Err(_) => {
                    self.book.gather_failed(&root);
                    failed += 1;
                    continue;
                }
            };
            let Some(generation) = self.book.gathered(&root) else { continue };
            taken += 1;
            for keeper in keepers {
                let msg = ControlMsg::Checkpoint { root: root.clone(), generation, handoff: bytes.clone() };
                sends.push((keeper.clone(), msg));
            }
            if self.keeper {
                if let Err(kept) = self.book.keep(root.clone(), generation, bytes) {
                    self.book.go_above(&root, kept);
                }
            }
        }
        Gathered { sends, taken, failed }
    }

    /// The fetches that have every answer or waited `FETCH_WAIT`, ended.
    pub fn fetches_over(&mut self, now: Instant) -> Vec<FetchOver> {
        let over = self.book.fetches_over(now);
        over.into_iter()
            .map(|root| {
                // One that does not decode starts the subtree afresh (a keeper checked it).
                let restored = self.book.end_fetch(&root).unwrap_or(None);
                FetchOver { root, restored }
            })
            .collect()
    }

    /// `root` started here from `generation` (0: afresh), next due after `every`.
    pub fn started(&mut self, root: ActorPath, generation: u64, due: Instant) {
        self.book.started(root, generation, due);
    }
}

pub use book::keeps_checkpoints;

/// The platform-tier members `c` sees up, itself aside.
pub fn keepers(c: &Coordinator, me: &str) -> Vec<String> {
    let members = c.member_infos().into_iter();
    let up = members.filter(|m| m.status == Status::Up && m.name != me && book::keeps_checkpoints(&m.tags));
    up.map(|m| m.name).collect()
}

/// The subtrees `c` hosts (not moving out) that are declared with checkpoints, with periods.
pub fn checkpointed(c: &Coordinator, topology: &Topology) -> Vec<(ActorPath, Duration)> {
    let moving: Vec<&ActorPath> = c.moving_out().collect();
    let hosted = c.hosted().iter().filter(|root| !moving.contains(root));
    hosted.filter_map(|root| Some((root.clone(), topology.get(root)?.checkpoint_every()?))).collect()
}
