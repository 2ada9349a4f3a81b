//! Actors inside the world: each simulated node runs its subtrees in a deterministic actor
//! system (`aiot_runtime::exec::det`), and remote sends go through the cluster's data lanes
//! (`aiot_cluster::lanes`: numbered frames, the retry buffer, de-duplication, the wire codec)
//! over the simulated network, as on a QUIC node.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aiot_cluster::directory::Directory;
use aiot_cluster::lanes::{lane_of, Body, DataFrame, Dedup, LaneMsg, OutLane, LANES};
use aiot_cluster::wire::FrameDecoder;
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{ActorPath, AnyCell, DeliveryError, Remote, RemoteSendError, SendError, SystemConfig};

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
}

/// The runtime's `Remote` for a simulated node.
struct SimRemote(Arc<Mutex<Lanes>>);

fn locked(lanes: &Mutex<Lanes>) -> MutexGuard<'_, Lanes> {
    lanes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimRemote {
    fn push(&self, node: &str, to: &ActorPath, body: Body) -> Result<(), Body> {
        let mut lanes = locked(&self.0);
        let peer = lanes.out.entry(node.to_string()).or_insert_with(PeerLanes::new);
        peer.lanes[usize::from(lane_of(to))].push(to.clone(), body).map(|_| ())
    }
}

impl Remote for SimRemote {
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
        let node = {
            let lanes = locked(&self.0);
            match lanes.directory.node_of(to) {
                Some(node) if node != lanes.me => node.to_string(),
                _ => return Err(RemoteSendError::NoRoute),
            }
        };
        self.push(&node, to, Body::Tell(bytes)).map_err(|body| RemoteSendError::Full(body.into_bytes()))
    }

    fn wait_for_room(&self, to: &ActorPath, waiter: Arc<dyn AnyCell>) -> bool {
        let mut lanes = locked(&self.0);
        let Some(node) = lanes.directory.node_of(to).map(str::to_string) else { return false };
        let Some(peer) = lanes.out.get_mut(&node) else { return false };
        if peer.lanes[usize::from(lane_of(to))].has_room() {
            return false;
        }
        peer.waiters.push(waiter);
        true
    }

    fn reply(&self, origin: &str, to: &ActorPath, corr: u64, bytes: Vec<u8>) -> Result<(), SendError> {
        self.push(origin, to, Body::Reply { corr, bytes }).map_err(|_| SendError::MailboxFull(to.clone()))
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
        }
    }

    pub fn set_directory(&self, directory: Directory) {
        locked(&self.lanes).directory = directory;
    }

    /// `peer` is gone: what it had not acknowledged is dropped (dead letters). The lanes keep
    /// their sequence counters: a peer back after a partition (same incarnation) remembers the
    /// highest sequence it delivered, and would drop restarted sequences as retries.
    pub fn release(&self, peer: &str) {
        let mut lanes = locked(&self.lanes);
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

    /// Delivers what waits, lane by lane, stopping a lane at a full mailbox.
    pub fn deliver_backlog(&mut self) {
        let core = self.system.core().clone();
        for queue in self.backlog.values_mut() {
            while let Some(frame) = queue.front() {
                let result = match &frame.body {
                    Body::Tell(bytes) => core.deliver_remote(&frame.to, bytes),
                    Body::Reply { corr, bytes } => core.deliver_remote_reply(&frame.to, *corr, bytes),
                    // Simulated nodes never send handoffs (they do not move subtrees yet).
                    Body::Handoff(_) => {
                        core.dead_letter(&frame.to, 1);
                        Ok(())
                    }
                };
                if let Err(DeliveryError::Full(_)) = result {
                    break;
                }
                queue.pop_front();
            }
        }
        self.backlog.retain(|_, q| !q.is_empty());
    }

    /// Acknowledgements due: (peer, its incarnation, lane, seq) for lanes that advanced.
    pub fn acks(&mut self) -> Vec<(String, u64, u16, u64)> {
        let mut due = Vec::new();
        for ((peer, incarnation, lane), high) in self.dedup.highs() {
            let key = (peer.clone(), *incarnation, *lane);
            let waiting = self.backlog.get(&key).and_then(|q| q.front()).map(|f| f.seq);
            // Only what was delivered: frames still in the backlog are not acknowledged.
            let delivered = waiting.map_or(high, |first| first - 1);
            if self.acked.get(&key).is_none_or(|a| delivered > *a) {
                due.push((peer.clone(), *incarnation, *lane, delivered));
            }
        }
        for (peer, incarnation, lane, seq) in &due {
            self.acked.insert((peer.clone(), *incarnation, *lane), *seq);
        }
        due
    }

    /// Runs the actors for one tick of virtual time.
    pub fn run(&mut self, tick: Duration) {
        self.deliver_backlog();
        self.system.run_for(tick);
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
