//! Actors inside the world: each simulated node runs its subtrees in a deterministic actor
//! system (`aiot_runtime::exec::det`), and remote sends go through the cluster's data lanes
//! (`aiot_cluster::lanes`: numbered frames, the retry buffer, de-duplication, the wire codec)
//! over the simulated network, as on a QUIC node. Subtrees move between nodes with their
//! state (`moves`), and each sender's order holds across a move as on a QUIC node
//! (`aiot_cluster::relay`: forwarded frames acknowledged once their target has them, new
//! frames held at the sender until the earlier ones are). Subtrees declared with checkpoints
//! start from their newest checkpoint (`checkpoints`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aiot_cluster::directory::Directory;
use aiot_cluster::lanes::{lane_of, Body, DataFrame, Dedup, LaneMsg, OutLane, LANES};
use aiot_cluster::relay::{Drain, Fences, Origin, Relay};
use aiot_cluster::wire::FrameDecoder;
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::migration::Handoff;
use aiot_runtime::spec::Spec;
use aiot_runtime::Topology;
use aiot_runtime::{
    ActorPath, AnyCell, DeliveryError, Instant, Remote, RemoteSendError, SendError, SystemConfig, SystemCore,
};

use crate::checkpoints::{FetchOver, NodeCheckpoints, Sends};
use crate::moves::{settle, Abort, BrokenMoves, Moves, Outgoing, FORWARD_AFTER};

/// Bytes of frames sent per lane per tick (a batch): 1 MiB per 100 ms, about 80 Mbit/s per
/// lane, a modest LAN. (It was 64 KiB, 5 Mbit/s: the 10 000-mote plant's raw windows then
/// queued behind one lane for longer than the liveness phase.)
const BATCH_BYTES: usize = 1024 * 1024;

/// The lanes to one peer.
struct PeerLanes {
    lanes: Vec<OutLane>,
    /// The connection epoch the lanes were last sent on (a change means: send again).
    epoch: u64,
    waiters: Vec<Arc<dyn AnyCell>>,
}

impl PeerLanes {
    fn new() -> Self {
        PeerLanes { lanes: (0..LANES).map(|_| OutLane::default()).collect(), epoch: 0, waiters: Vec::new() }
    }
}

#[derive(Default)]
struct Lanes {
    me: String,
    directory: Directory,
    out: BTreeMap<String, PeerLanes>,
    moves: Moves,
    /// Frames forwarded here, acknowledged to their sender once their target has them.
    relay: Relay,
    /// Subtrees that moved lately whose frames still go the way they went.
    fences: Fences,
}

impl Lanes {
    /// Puts a frame for `to` on the lane of `lane_path` to `node` (a moving subtree's frames
    /// all take its root's lane, behind its handoff); its sequence there, or the body back if
    /// the lane is full.
    fn push_on(
        &mut self,
        node: &str,
        lane_path: &ActorPath,
        to: &ActorPath,
        body: Body,
    ) -> Result<u64, Body> {
        let peer = self.out.entry(node.to_string()).or_insert_with(PeerLanes::new);
        peer.lanes[usize::from(lane_of(lane_path))].push(to.clone(), body)
    }

    /// Sends a message by the directory: to the node hosting `to`, or after its handoff if it
    /// is moving away from here.
    fn route(&mut self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
        let full = |body: Body| RemoteSendError::Full(body.into_bytes());
        match self.directory.node_of(to).map(str::to_string) {
            None => Err(RemoteSendError::NoRoute),
            // Hosted here but not running: moving away (it follows its handoff), or starting.
            Some(node) if node == self.me => match self.directory.moving_target_of(to) {
                Some((root, target)) if target != self.me => {
                    let target = target.to_string();
                    self.forward_moving(&root, &target, to, bytes, None).map_err(full)
                }
                _ => Err(RemoteSendError::NoRoute),
            },
            Some(node) => self.push_on(&node, to, to, Body::Tell(bytes)).map(|_| ()).map_err(full),
        }
    }

    /// Sends the frames whose fence fell (their subtree's earlier frames are delivered), in
    /// order; those that find their lane full wait for the next call.
    fn release_fenced(&mut self, now: Instant, core: &SystemCore) {
        let Lanes { fences, out, .. } = self;
        let acked =
            |node: &str, lane: u16| out.get(node).map_or(u64::MAX, |p| p.lanes[usize::from(lane)].acked());
        let ready = fences.release(now, acked);
        let mut fences = std::mem::take(&mut self.fences);
        fences.send_released(ready, now, core, |to, bytes| self.route(to, bytes));
        self.fences = fences;
    }

    /// Forwards a frame that came from `origin` to `target` on `root`'s lane; the relay
    /// holds its acknowledgement until the target has it.
    fn forward(
        &mut self,
        origin: Origin,
        target: &str,
        root: &ActorPath,
        to: &ActorPath,
        body: Body,
    ) -> Result<(), Body> {
        let seq = self.push_on(target, root, to, body)?;
        self.relay.relayed(origin, target, lane_of(root), seq);
        Ok(())
    }

    /// A frame for a subtree this node is moving to `target`: it waits until the handoff is
    /// on the lane, then follows it.
    fn forward_moving(
        &mut self,
        root: &ActorPath,
        target: &str,
        to: &ActorPath,
        bytes: Vec<u8>,
        origin: Origin,
    ) -> Result<(), Body> {
        if self.moves.drops_followers {
            return Ok(());
        }
        if let Some(outgoing) = self.moves.outgoing.get_mut(root) {
            if !outgoing.sent || !outgoing.waiting.is_empty() {
                if let Some((key, seq)) = &origin {
                    self.relay.forwarding(key, *seq);
                }
                outgoing.waiting.push_back((to.clone(), bytes, origin));
                return Ok(());
            }
        }
        self.forward(origin, target, root, to, Body::Tell(bytes))
    }

    /// Where a frame for `to`, which has no actor here, follows its subtree: moving away from
    /// here, or moved away lately. `None`: it does not.
    fn follow(
        &mut self,
        to: &ActorPath,
        bytes: Vec<u8>,
        now: Instant,
        origin: Origin,
    ) -> Option<Result<(), Body>> {
        let moving = self.directory.moving_target_of(to).map(|(root, t)| (root, t.to_string()));
        match moving.filter(|(_, t)| *t != self.me) {
            Some((root, target)) => Some(self.forward_moving(&root, &target, to, bytes, origin)),
            None => {
                let (root, target) = self.moves.moved_to(to, now).filter(|(_, t)| *t != self.me)?;
                // Behind the move's frames still waiting for room, if any.
                Some(self.forward_moving(&root, &target, to, bytes, origin))
            }
        }
    }
}

/// Every outbound lane: (peer, lane, last pushed, last acknowledged).
fn lanes_now(out: &BTreeMap<String, PeerLanes>) -> Vec<(String, u16, u64, u64)> {
    let lanes = out.iter().flat_map(|(peer, p)| {
        p.lanes
            .iter()
            .enumerate()
            .map(move |(lane, l)| (peer.clone(), lane as u16, l.last_pushed(), l.acked()))
    });
    lanes.collect()
}

/// The runtime's `Remote` for a simulated node.
struct SimRemote(Arc<Mutex<Lanes>>);

fn locked(lanes: &Mutex<Lanes>) -> MutexGuard<'_, Lanes> {
    lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Remote for SimRemote {
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
        let mut lanes = locked(&self.0);
        let bytes = match lanes.fences.is_empty() {
            true => bytes,
            // A subtree that moved lately: the frame waits behind the earlier ones.
            false => match lanes.fences.hold(to, bytes) {
                Some(bytes) => bytes,
                None => return Ok(()),
            },
        };
        lanes.route(to, bytes)
    }

    fn wait_for_room(&self, to: &ActorPath, waiter: Arc<dyn AnyCell>) -> bool {
        let mut lanes = locked(&self.0);
        // A path moving away from here waits on the lane to its target (its root's lane).
        let (node, lane_path) = match (lanes.directory.node_of(to), lanes.directory.moving_target_of(to)) {
            (Some(node), Some((root, target))) if node == lanes.me => (target.to_string(), root),
            (Some(node), _) => (node.to_string(), to.clone()),
            (None, _) => return false,
        };
        let Some(peer) = lanes.out.get_mut(&node) else { return false };
        if peer.lanes[usize::from(lane_of(&lane_path))].has_room() {
            return false;
        }
        peer.waiters.push(waiter);
        true
    }

    fn reply(&self, origin: &str, to: &ActorPath, corr: u64, bytes: Vec<u8>) -> Result<(), SendError> {
        locked(&self.0)
            .push_on(origin, to, to, Body::Reply { corr, bytes })
            .map(|_| ())
            .map_err(|_| SendError::MailboxFull(to.clone()))
    }
}

/// One node's actors and the receiving side of its lanes.
pub struct NodeActors {
    pub system: DetSystem,
    lanes: Arc<Mutex<Lanes>>,
    dedup: Dedup,
    /// Frames that found their mailbox full, per (peer, incarnation, lane), delivered first on
    /// the next tick.
    backlog: BTreeMap<(String, u64, u16), VecDeque<DataFrame>>,
    acked: BTreeMap<(String, u64, u16), u64>,
    /// Handoffs that arrived, for the world to offer the coordinator: (from, handoff).
    arrived: Vec<(String, Handoff)>,
    broken_moves: Option<BrokenMoves>,
    /// Handoffs sent before this node's lanes delivered what they carried (`relay::Drain`
    /// gave up).
    drains_given_up: u64,
    /// Checkpoints taken here, kept here (a keeper) and fetched for starts.
    pub checkpoints: NodeCheckpoints,
}

impl NodeActors {
    pub fn new(me: &str, seed: u64) -> Self {
        let lanes = Arc::new(Mutex::new(Lanes { me: me.to_string(), ..Lanes::default() }));
        let system = DetSystem::new(SystemConfig::with_seed(seed));
        system.core().set_remote(me, Arc::new(SimRemote(lanes.clone())));
        NodeActors {
            system,
            lanes,
            dedup: Dedup::default(),
            backlog: BTreeMap::new(),
            acked: BTreeMap::new(),
            arrived: Vec::new(),
            broken_moves: None,
            drains_given_up: 0,
            checkpoints: NodeCheckpoints::default(),
        }
    }

    /// `Output::Start` of a subtree declared with checkpoints: its frames are held while its
    /// keepers are asked (the sends returned); it starts once the fetch is over
    /// (`start_fetched`).
    pub fn fetch_checkpoint(&mut self, root: &ActorPath, keepers: Vec<String>) -> Sends {
        locked(&self.lanes).moves.held.entry(root.clone()).or_default();
        self.checkpoints.fetch(root, keepers, self.system.now())
    }

    /// Starts the subtrees whose checkpoint fetch is over, if `hosted` says they are still
    /// placed here: from the newest checkpoint answered, or afresh. Their held frames are
    /// delivered once they are up (or as if never held). Returns (root, started) for each
    /// start tried, and the generation each one started from (0: afresh).
    pub fn start_fetched(
        &mut self,
        topology: &Topology,
        hosted: impl Fn(&ActorPath) -> bool,
    ) -> Vec<(ActorPath, bool, u64)> {
        let mut tried = Vec::new();
        for FetchOver { root, restored } in self.checkpoints.fetches_over(self.system.now()) {
            let spec = topology.get(&root).filter(|_| hosted(&root));
            let started = spec.map(|spec| {
                let generation = restored.as_ref().map_or(0, |(generation, _)| *generation);
                let started = match restored {
                    Some((_, handoff)) => self.system.start_subtree_from(spec, handoff).is_ok(),
                    None => self.system.start_subtrees(std::slice::from_ref(spec)).is_ok(),
                };
                if started {
                    let due = self.system.now() + spec.checkpoint_every().unwrap_or_default();
                    self.checkpoints.started(root.clone(), generation, due);
                }
                (started, generation, spec.subtree_paths())
            });
            let mut lanes = locked(&self.lanes);
            if let Some(held) = lanes.moves.held.get_mut(&root) {
                held.release_when_up = Some(match &started {
                    Some((true, _, paths)) => paths.clone(),
                    _ => Vec::new(),
                });
            }
            if let Some((started, generation, _)) = started {
                tried.push((root, started, generation));
            }
        }
        tried
    }

    /// The directory changed: subtrees that moved from another node keep their way while
    /// it holds unacknowledged frames (`relay::Fences`).
    pub fn set_directory(&self, directory: Directory) {
        let now = self.system.now();
        let mut lanes = locked(&self.lanes);
        let old = std::mem::replace(&mut lanes.directory, directory);
        let Lanes { me, directory, out, fences, .. } = &mut *lanes;
        let lane = |node: &str, l: u16| out.get(node).map(|p| &p.lanes[usize::from(l)]);
        let pushed = |node: &str, l: u16| lane(node, l).map_or(0, OutLane::last_pushed);
        let acked = |node: &str, l: u16| lane(node, l).map_or(0, OutLane::acked);
        if self.broken_moves != Some(BrokenMoves::Unfenced) {
            fences.directory_changed(me, &old, directory, now, pushed, acked);
        }
    }

    /// `peer` is gone: what it had not acknowledged is dropped (dead letters). The lanes keep
    /// their sequence counters: a peer back after a partition (same incarnation) remembers the
    /// highest sequence it delivered, and would drop restarted sequences as retries.
    pub fn release(&self, peer: &str) {
        let mut lanes = locked(&self.lanes);
        lanes.relay.released(peer);
        lanes.fences.released(peer);
        if let Some(gone) = lanes.out.get_mut(peer) {
            for lane in &mut gone.lanes {
                for path in lane.abandon() {
                    self.system.core().dead_letter(&path, 1);
                }
            }
            for waiter in std::mem::take(&mut gone.waiters) {
                waiter.notify();
            }
        }
    }

    /// The peer has every frame up to `seq` on `lane`.
    pub fn ack(&self, peer: &str, lane: u16, seq: u64) {
        let mut lanes = locked(&self.lanes);
        lanes.relay.acked(peer, lane, seq);
        if let Some(p) = lanes.out.get_mut(peer) {
            if let Some(l) = p.lanes.get_mut(usize::from(lane)) {
                l.ack(seq);
                if l.has_room() {
                    for waiter in std::mem::take(&mut p.waiters) {
                        waiter.notify();
                    }
                }
            }
        }
        lanes.release_fenced(self.system.now(), self.system.core());
    }

    /// Frames to send now, per peer and lane; a connection that broke since the last batch
    /// (its epoch changed) gets everything unacknowledged again.
    pub fn outgoing(&self, epoch: impl Fn(&str) -> u64) -> Vec<(String, u16, Vec<u8>)> {
        let mut lanes = locked(&self.lanes);
        let mut out = Vec::new();
        for (peer, p) in lanes.out.iter_mut() {
            let now = epoch(peer);
            if now != p.epoch {
                p.epoch = now;
                p.lanes.iter_mut().for_each(OutLane::rewind);
            }
            for (i, lane) in p.lanes.iter_mut().enumerate() {
                if lane.has_unsent() {
                    let mut bytes = Vec::new();
                    lane.take_unsent(&mut bytes, BATCH_BYTES);
                    out.push((peer.clone(), i as u16, bytes));
                }
            }
        }
        out
    }

    /// A batch of frames from `peer`'s incarnation `incarnation` on `lane`: retries already
    /// delivered are dropped, the rest delivered in order. Returns a protocol error, if any.
    pub fn receive(&mut self, peer: &str, incarnation: u64, lane: u16, bytes: &[u8]) -> Result<(), String> {
        let mut decoder = FrameDecoder::new();
        decoder.push(bytes);
        let key = (peer.to_string(), incarnation, lane);
        while let Some(msg) = decoder.next_frame::<LaneMsg>().map_err(|e| e.to_string())? {
            let LaneMsg::Data(frame) = msg else { return Err("an Open frame inside a batch".into()) };
            if self.dedup.accept(peer, incarnation, lane, frame.seq) {
                self.backlog.entry(key.clone()).or_default().push_back(frame);
            } else {
                // A retry of a frame delivered before: our acknowledgement was lost (or the
                // sender resent before it came). Acknowledge again, or the sender's window
                // would stay full of frames it believes undelivered.
                self.acked.remove(&key);
            }
        }
        self.deliver_backlog();
        Ok(())
    }

    /// Delivers what waits, lane by lane, stopping a lane at a full mailbox (or a full lane
    /// for a frame that follows its subtree elsewhere). A frame for a subtree moving in is
    /// held; a handoff stops its lane until the world offered it to the coordinator
    /// (`take_arrived`, `accept_handoff`), so the frames behind it are held for it.
    pub fn deliver_backlog(&mut self) {
        if !self.arrived.is_empty() {
            return;
        }
        let core = self.system.core().clone();
        let now = self.system.now();
        let mut lanes = locked(&self.lanes);
        for (key, queue) in self.backlog.iter_mut() {
            let peer = &key.0;
            while let Some(frame) = queue.pop_front() {
                let DataFrame { to, body, seq } = frame;
                let origin = Some((key.clone(), seq));
                let kept = |body| DataFrame { to: to.clone(), body, seq };
                let result = match body {
                    Body::Handoff(bytes) => {
                        match aiot_runtime::message::decode::<Handoff>(&bytes) {
                            Ok(handoff) if handoff.root == to => self.arrived.push((peer.clone(), handoff)),
                            _ => core.dead_letter(&to, 1),
                        }
                        break;
                    }
                    Body::Tell(bytes) => match lanes.moves.held_for(&to) {
                        Some(held) => {
                            held.frames.push_back((to, bytes));
                            Ok(())
                        }
                        None if core.lookup(&to).is_none() => match lanes.follow(&to, bytes, now, origin) {
                            Some(Ok(())) => Ok(()),
                            Some(Err(body)) => Err(kept(body)),
                            None => {
                                core.dead_letter(&to, 1);
                                Ok(())
                            }
                        },
                        None => match core.deliver_remote(&to, &bytes) {
                            Err(DeliveryError::Full(_)) => Err(kept(Body::Tell(bytes))),
                            _ => Ok(()),
                        },
                    },
                    Body::Reply { corr, bytes } => match core.deliver_remote_reply(&to, corr, &bytes) {
                        Err(DeliveryError::Full(_)) => Err(kept(Body::Reply { corr, bytes })),
                        _ => Ok(()),
                    },
                };
                if let Err(frame) = result {
                    queue.push_front(frame);
                    break;
                }
            }
        }
        self.backlog.retain(|_, q| !q.is_empty());
    }

    /// Handoffs that arrived since the last call: (from, handoff). Lanes stay stopped behind
    /// them until this is called.
    pub fn take_arrived(&mut self) -> Vec<(String, Handoff)> {
        std::mem::take(&mut self.arrived)
    }

    /// The coordinator accepted a handoff: kept until it starts the subtree; the subtree's
    /// frames are held meanwhile.
    pub fn accept_handoff(&mut self, handoff: Handoff) {
        let mut lanes = locked(&self.lanes);
        lanes.moves.held.entry(handoff.root.clone()).or_default();
        lanes.moves.incoming.insert(handoff.root.clone(), handoff);
    }

    /// `Output::MoveOut`: the subtree starts stopping with its state; its handoff goes out
    /// once complete (`progress_moves`). An error says why the move cannot start.
    pub fn move_out(&mut self, root: &ActorPath, to: &str) -> Result<(), String> {
        let pending = self.system.migrate_subtree(root).map_err(|e| e.to_string())?;
        let outgoing = Outgoing {
            to: to.to_string(),
            pending: Some(pending),
            handoff: None,
            sent: false,
            waiting: VecDeque::new(),
            aborted: None,
            done: false,
            drain: None,
        };
        locked(&self.lanes).moves.outgoing.insert(root.clone(), outgoing);
        Ok(())
    }

    /// Moves out in progress: handoffs complete are sent (or, if the move was aborted
    /// meanwhile, the subtree starts here again or waits for a claim), then the frames that
    /// waited for them. Returns the moves that failed, with why, for the coordinator.
    pub fn progress_moves(&mut self, topology: &Topology) -> Vec<(ActorPath, String)> {
        let mut failed = Vec::new();
        let roots: Vec<ActorPath> = locked(&self.lanes).moves.outgoing.keys().cloned().collect();
        for root in roots {
            let mut lanes = locked(&self.lanes);
            let Lanes { moves, out, .. } = &mut *lanes;
            let Some(outgoing) = moves.outgoing.get_mut(&root) else { continue };
            if let Some(pending) = outgoing.pending.as_mut() {
                match pending.try_take() {
                    None => continue,
                    Some(Err(e)) => {
                        moves.outgoing.remove(&root);
                        failed.push((root, e.to_string()));
                        continue;
                    }
                    Some(Ok(handoff)) => {
                        outgoing.pending = None;
                        outgoing.handoff = Some(handoff);
                        outgoing.drain = Some(Drain::new(self.system.now(), lanes_now(out)));
                    }
                }
            }
            match outgoing.aborted {
                Some(Abort::Restart) => {
                    drop(lanes);
                    self.restart_kept(&root, topology);
                    continue;
                }
                Some(Abort::Reclaim) => {
                    let outgoing = lanes.moves.outgoing.remove(&root).expect("looked up above");
                    let Lanes { moves, relay, .. } = &mut *lanes;
                    moves.keep_for_claim(&root, outgoing, relay);
                    continue;
                }
                None => {}
            }
            if !outgoing.sent {
                // What the moved actors sent before they stopped is delivered first.
                let Lanes { out, moves, .. } = &mut *lanes;
                let outgoing = moves.outgoing.get_mut(&root).expect("looked up above");
                if let Some(drain) = outgoing.drain.as_mut() {
                    let acked = |peer: &str, lane: u16| {
                        out.get(peer).map_or(u64::MAX, |p| p.lanes[usize::from(lane)].acked())
                    };
                    match drain.poll(self.system.now(), acked) {
                        None => continue,
                        Some(drained) => {
                            self.drains_given_up += u64::from(!drained);
                            outgoing.drain = None;
                        }
                    }
                }
            }
            let outgoing = lanes.moves.outgoing.get_mut(&root).expect("looked up above");
            if !outgoing.sent {
                let bytes = aiot_runtime::message::encode(outgoing.handoff.as_ref().expect("taken above"));
                if bytes.len() + root.as_str().len() + 64 > aiot_cluster::wire::FRAME_LEN_MAX {
                    let why = format!(
                        "its state and messages take {} bytes, more than a frame carries",
                        bytes.len()
                    );
                    failed.push((root, why));
                    continue;
                }
                let to = outgoing.to.clone();
                if lanes.push_on(&to, &root, &root, Body::Handoff(bytes)).is_err() {
                    continue; // the lane is full: next tick
                }
                let outgoing = lanes.moves.outgoing.get_mut(&root).expect("looked up above");
                outgoing.sent = true;
                if let (Some(BrokenMoves::KeepsRunning), Some(spec), Some(handoff)) =
                    (self.broken_moves, topology.get(&root), outgoing.handoff.clone())
                {
                    let _ = self.system.start_subtree_from(spec, handoff);
                }
            }
            // What came meanwhile follows the handoff, in order.
            let outgoing = lanes.moves.outgoing.get_mut(&root).expect("looked up above");
            let (to, mut waiting) = (outgoing.to.clone(), std::mem::take(&mut outgoing.waiting));
            while let Some((path, bytes, origin)) = waiting.pop_front() {
                if let Err(body) = lanes.forward(origin.clone(), &to, &root, &path, Body::Tell(bytes)) {
                    waiting.push_front((path, body.into_bytes(), origin));
                    break;
                }
            }
            let outgoing = lanes.moves.outgoing.get_mut(&root).expect("looked up above");
            if outgoing.done && waiting.is_empty() {
                lanes.moves.outgoing.remove(&root);
            } else {
                outgoing.waiting = waiting;
            }
        }
        failed
    }

    /// `Output::MoveAborted`: the subtree runs here again from the kept handoff, or the
    /// handoff waits for this node's claim; if the subtree is still stopping, once it is out.
    pub fn move_aborted(&mut self, root: &ActorPath, reclaim: bool, topology: &Topology) {
        let how = if reclaim { Abort::Reclaim } else { Abort::Restart };
        let mut lanes = locked(&self.lanes);
        let Some(outgoing) = lanes.moves.outgoing.get_mut(root) else { return };
        if outgoing.handoff.is_none() {
            outgoing.aborted = Some(how);
            return;
        }
        match how {
            Abort::Restart => {
                drop(lanes);
                self.restart_kept(root, topology);
            }
            Abort::Reclaim => {
                let outgoing = lanes.moves.outgoing.remove(root).expect("looked up above");
                let Lanes { moves, relay, .. } = &mut *lanes;
                moves.keep_for_claim(root, outgoing, relay);
            }
        }
    }

    /// Starts the subtree here again from its kept handoff; frames that waited go to it once
    /// it is up.
    fn restart_kept(&mut self, root: &ActorPath, topology: &Topology) {
        let Some(outgoing) = locked(&self.lanes).moves.outgoing.remove(root) else { return };
        let (Some(handoff), Some(spec)) = (outgoing.handoff, topology.get(root)) else { return };
        if self.system.start_subtree_from(spec, handoff).is_ok() {
            let mut lanes = locked(&self.lanes);
            let Lanes { moves, relay, .. } = &mut *lanes;
            let held = moves.held.entry(root.clone()).or_default();
            for frame in outgoing.waiting.into_iter().rev() {
                held.frames.push_front(settle(frame, relay));
            }
            held.release_when_up = Some(spec.subtree_paths());
        }
    }

    /// `Output::MoveDone`: the target hosts the subtree; the kept handoff goes, and frames for
    /// it are forwarded there for a while. Frames still waiting for room on the lane keep
    /// their place (`progress_moves` puts them on it), and those that follow queue behind.
    pub fn move_done(&mut self, root: &ActorPath, to: &str) {
        let now = self.system.now();
        let until = now + FORWARD_AFTER;
        let mut lanes = locked(&self.lanes);
        if let Some(outgoing) = lanes.moves.outgoing.get_mut(root) {
            outgoing.done = true;
            if outgoing.waiting.is_empty() {
                lanes.moves.outgoing.remove(root);
            }
        }
        lanes.moves.moved_away.retain(|_, (_, u)| *u > now);
        lanes.moves.moved_away.insert(root.clone(), (to.to_string(), until));
    }

    /// `Output::Start` of a subtree whose handoff is here: starts it from the handoff, its
    /// held frames delivered once it is up. `None` if no handoff is here; `Some(false)` if it
    /// could not start (the handoff is kept for the next claim).
    pub fn start_moved_in(&mut self, spec: &Arc<Spec>) -> Option<bool> {
        let root = spec.path().clone();
        let handoff = locked(&self.lanes).moves.incoming.remove(&root)?;
        if self.system.start_subtree_from(spec, handoff.clone()).is_err() {
            locked(&self.lanes).moves.incoming.insert(root, handoff);
            return Some(false);
        }
        locked(&self.lanes).moves.held.entry(root).or_default().release_when_up = Some(spec.subtree_paths());
        Some(true)
    }

    /// `Output::MoveInDropped`: the handoff will not start here; what was held is delivered
    /// (or forwarded, or counted as dead letters) as if never held.
    pub fn move_in_dropped(&mut self, root: &ActorPath) {
        let mut lanes = locked(&self.lanes);
        lanes.moves.incoming.remove(root);
        if let Some(held) = lanes.moves.held.get_mut(root) {
            held.release_when_up = Some(Vec::new());
        }
    }

    /// Delivers the frames held for subtrees that started here (once all their actors are up),
    /// in arrival order, stopping at a full mailbox or lane.
    fn release_held(&mut self) {
        let core = self.system.core().clone();
        let now = self.system.now();
        let mut lanes = locked(&self.lanes);
        let ready: Vec<ActorPath> = lanes
            .moves
            .held
            .iter()
            .filter(|(_, held)| {
                held.release_when_up
                    .as_ref()
                    .is_some_and(|paths| paths.iter().all(|p| core.lookup(p).is_some()))
            })
            .map(|(root, _)| root.clone())
            .collect();
        for root in ready {
            let mut frames =
                std::mem::take(&mut lanes.moves.held.get_mut(&root).expect("listed above").frames);
            while let Some((to, bytes)) = frames.pop_front() {
                let stuck = if core.lookup(&to).is_some() {
                    match core.deliver_remote(&to, &bytes) {
                        Err(DeliveryError::Full(_)) => Some(bytes),
                        _ => None,
                    }
                } else {
                    match lanes.follow(&to, bytes, now, None) {
                        Some(Err(body)) => Some(body.into_bytes()),
                        Some(Ok(())) => None,
                        None => {
                            core.dead_letter(&to, 1);
                            None
                        }
                    }
                };
                if let Some(bytes) = stuck {
                    frames.push_front((to, bytes));
                    break;
                }
            }
            if frames.is_empty() {
                lanes.moves.held.remove(&root);
            } else {
                lanes.moves.held.get_mut(&root).expect("listed above").frames = frames;
            }
        }
    }

    /// Acknowledgements due: (peer, its incarnation, lane, seq) for lanes that advanced.
    pub fn acks(&mut self) -> Vec<(String, u64, u16, u64)> {
        let mut due = Vec::new();
        for ((peer, incarnation, lane), high) in self.dedup.highs() {
            let key = (peer.clone(), *incarnation, *lane);
            let waiting = self.backlog.get(&key).and_then(|q| q.front()).map(|f| f.seq);
            // Only what was delivered: frames still in the backlog are not acknowledged, nor
            // those forwarded that their target does not have yet.
            let delivered = locked(&self.lanes).relay.ceiling(&key, waiting.map_or(high, |first| first - 1));
            if self.acked.get(&key).is_none_or(|a| delivered > *a) {
                due.push((peer.clone(), *incarnation, *lane, delivered));
            }
        }
        for (peer, incarnation, lane, seq) in &due {
            self.acked.insert((peer.clone(), *incarnation, *lane), *seq);
        }
        due
    }

    /// Breaks this node's moves on purpose (tests of the invariants).
    #[doc(hidden)]
    pub fn break_moves(&mut self, how: Option<BrokenMoves>) {
        self.broken_moves = how;
        locked(&self.lanes).moves.drops_followers = how == Some(BrokenMoves::DropsFollowers);
    }

    /// Runs the actors for one tick of virtual time.
    pub fn run(&mut self, tick: Duration) {
        locked(&self.lanes).release_fenced(self.system.now(), self.system.core());
        self.release_held();
        self.deliver_backlog();
        self.system.run_for(tick);
    }

    /// Fences and drains given up since the last call (`relay`): order across those moves is
    /// not guaranteed.
    pub fn take_fences_given_up(&mut self) -> u64 {
        locked(&self.lanes).fences.take_given_up() + std::mem::take(&mut self.drains_given_up)
    }

    /// Whether an actor at `path` runs here.
    pub fn runs(&self, path: &ActorPath) -> bool {
        self.system.core().lookup(path).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A retry of frames already delivered means the acknowledgement was lost: it goes out again.
    #[test]
    fn retried_frames_are_acknowledged_again() {
        let mut lane = OutLane::default();
        let to = ActorPath::parse("/nobody").unwrap();
        for n in 0..3u8 {
            lane.push(to.clone(), Body::Tell(vec![n])).unwrap();
        }
        let mut bytes = Vec::new();
        lane.take_unsent(&mut bytes, BATCH_BYTES);
        let mut node = NodeActors::new("b", 1);
        node.receive("a", 7, 0, &bytes).unwrap();
        assert_eq!(node.acks(), [("a".to_string(), 7, 0, 3)]);
        assert_eq!(node.acks(), [], "acknowledged once");
        node.receive("a", 7, 0, &bytes).unwrap();
        assert_eq!(node.acks(), [("a".to_string(), 7, 0, 3)], "the retry is acknowledged again");
    }
}
