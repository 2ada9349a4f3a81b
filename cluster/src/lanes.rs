//! Data lanes between two nodes, as plain state: what goes on the wire, the retry buffer and
//! de-duplication (BLUEPRINT section 10, the node-to-node channel).
//!
//! A message to a remote actor goes on lane `lane_of(path)`: one stream per lane, so a slow
//! actor holds up only its own lane while every (sender, receiver) pair keeps its order. Each
//! lane numbers its frames; the sender keeps every frame until the receiver acknowledges it
//! (cumulatively, on the control stream) and sends the unacknowledged ones again, in order,
//! on a new connection to the same incarnation. The receiver drops any frame whose sequence it
//! has already seen on that (sender node, sender incarnation, lane). So retries never deliver
//! twice, and a break loses nothing that was acknowledged. Frames for a peer incarnation that
//! is gone are dropped and counted as dead letters by the caller.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aiot_runtime::ActorPath;
use serde::{Deserialize, Serialize};

/// Lanes per node pair. Enough that unrelated actors rarely share one; each is a QUIC stream.
pub const LANES: u16 = 8;

/// Frames a lane holds unacknowledged before it takes no more (an actor's send then parks in
/// its outbox; a send from outside any actor is refused): the bound on what one unreachable
/// peer can make a node buffer.
pub const LANE_UNACKED_MAX: usize = 64 * 1024;

/// Fault point: an acknowledgement is ignored (more retries reach the receiver's de-duplication).
pub const FAULT_IGNORE_ACK: &str = "lanes.ignore_ack";

/// The lane for messages to `path`: a stable hash (FNV-1a) of the path, so every node agrees
/// and restarts keep it.
pub fn lane_of(path: &ActorPath) -> u16 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in path.as_str().bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % u32::from(LANES)) as u16
}

/// What a data stream carries: an opening frame naming the lane and the sender's incarnation,
/// then data frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaneMsg {
    Open { incarnation: u64, lane: u16 },
    Data(DataFrame),
}

/// `LaneMsg` by reference, encoding to the same bytes (a frame is encoded out of the retry
/// buffer without copying it).
#[derive(Serialize)]
enum LaneMsgRef<'a> {
    Open { incarnation: u64, lane: u16 },
    Data(&'a DataFrame),
}

/// Appends the frame that opens a lane's stream.
pub fn encode_open(incarnation: u64, lane: u16, out: &mut Vec<u8>) {
    crate::wire::encode(&LaneMsgRef::Open { incarnation, lane }, out).expect("an open frame is small");
}

/// One message to one actor. Bodies are byte strings (`serde_bytes`: copied in bulk, not
/// element by element).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFrame {
    pub seq: u64,
    pub to: ActorPath,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// A message (bincode of the type `to` takes).
    Tell(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A reply to ask `corr` (bincode of the type the asker expects).
    Reply {
        corr: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A subtree moving to the receiver (bincode of `aiot_runtime::migration::Handoff`; the
    /// frame's path is the subtree's root).
    Handoff(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl Body {
    /// The message's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Tell(bytes) | Body::Reply { bytes, .. } | Body::Handoff(bytes) => bytes,
        }
    }

    /// The message's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Body::Tell(bytes) | Body::Reply { bytes, .. } | Body::Handoff(bytes) => bytes,
        }
    }
}

/// The sending side of one lane to one peer incarnation.
#[derive(Debug, Default)]
pub struct OutLane {
    next_seq: u64,
    /// The highest sequence handed to the stream writer.
    sent: u64,
    /// Not yet acknowledged (sent or not), in sequence order.
    unacked: VecDeque<DataFrame>,
}

impl OutLane {
    /// Numbers a frame and keeps it until acknowledged; the body comes back when the lane is
    /// full.
    pub fn push(&mut self, to: ActorPath, body: Body) -> Result<u64, Body> {
        if !self.has_room() {
            return Err(body);
        }
        self.next_seq += 1;
        self.unacked.push_back(DataFrame { seq: self.next_seq, to, body });
        Ok(self.next_seq)
    }

    /// The sequence of the last frame pushed (0: none yet).
    pub fn last_pushed(&self) -> u64 {
        self.next_seq
    }

    /// Every frame up to this sequence is acknowledged (or abandoned).
    pub fn acked(&self) -> u64 {
        self.unacked.front().map_or(self.next_seq, |f| f.seq - 1)
    }

    /// Whether a frame may be pushed.
    pub fn has_room(&self) -> bool {
        self.unacked.len() < LANE_UNACKED_MAX
    }

    /// Whether frames wait for the writer.
    pub fn has_unsent(&self) -> bool {
        self.sent < self.next_seq
    }

    /// Encodes frames not handed to the writer yet into `out` (wire frames), until `out`
    /// holds about `batch_max` bytes; returns how many frames.
    pub fn take_unsent(&mut self, out: &mut Vec<u8>, batch_max: usize) -> usize {
        let first = self.unacked.partition_point(|f| f.seq <= self.sent);
        let mut n = 0;
        for frame in self.unacked.range(first..) {
            if out.len() >= batch_max {
                break;
            }
            // Only a frame over FRAME_LEN_MAX can fail; the router refuses those before they
            // are pushed (`node::router::fits`).
            if crate::wire::encode(&LaneMsgRef::Data(frame), out).is_err() {
                continue;
            }
            self.sent = frame.seq;
            n += 1;
        }
        n
    }

    /// A new connection: everything unacknowledged goes again, in order.
    pub fn rewind(&mut self) {
        self.sent = self.unacked.front().map_or(self.next_seq, |f| f.seq - 1);
    }

    /// The receiver has every frame up to `seq`.
    pub fn ack(&mut self, seq: u64) {
        if aiot_runtime::fault::point(FAULT_IGNORE_ACK) {
            return; // kept: sent again after the next break, and dropped there as duplicates
        }
        while self.unacked.front().is_some_and(|f| f.seq <= seq) {
            self.unacked.pop_front();
        }
    }

    /// Drops everything unacknowledged (the peer incarnation is gone); returns the paths the
    /// dropped frames were for (dead letters).
    pub fn abandon(&mut self) -> Vec<ActorPath> {
        self.sent = self.next_seq;
        self.unacked.drain(..).map(|f| f.to).collect()
    }
}

/// The highest sequence accepted, and the highest delivered, on one (sender node,
/// incarnation, lane): shared by the streams that carry that lane (an old and a new connection
/// may overlap for a moment). A frame is accepted as it arrives (a retry of it is dropped from
/// then on) and delivered once it is in its mailbox (or held, or forwarded): acknowledgements
/// say how far frames were delivered.
#[derive(Debug, Default)]
pub struct LaneHigh {
    accepted: AtomicU64,
    delivered: AtomicU64,
}

impl LaneHigh {
    /// Whether `seq` is new (and records it); false for a retry already accepted.
    pub fn accept(&self, seq: u64) -> bool {
        self.accepted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |high| (seq > high).then_some(seq))
            .is_ok()
    }

    pub fn get(&self) -> u64 {
        self.accepted.load(Ordering::Acquire)
    }

    /// Frame `seq` (and so every one before it on the lane) is delivered.
    pub fn delivered(&self, seq: u64) {
        self.delivered.fetch_max(seq, Ordering::AcqRel);
    }

    /// The highest sequence delivered.
    pub fn delivered_upto(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }
}

/// The receiving side: the highest sequence seen per (sender node, incarnation, lane).
#[derive(Debug, Default)]
pub struct Dedup {
    seen: BTreeMap<(String, u64, u16), Arc<LaneHigh>>,
}

impl Dedup {
    /// The record for one lane of one sender incarnation (a stream takes it once, at its
    /// opening frame).
    pub fn lane(&mut self, node: &str, incarnation: u64, lane: u16) -> Arc<LaneHigh> {
        self.seen.entry((node.to_string(), incarnation, lane)).or_default().clone()
    }

    /// Whether a frame is new (and records it); false for a retry already delivered.
    pub fn accept(&mut self, node: &str, incarnation: u64, lane: u16, seq: u64) -> bool {
        self.lane(node, incarnation, lane).accept(seq)
    }

    /// The highest sequence delivered on a lane (what to acknowledge).
    pub fn high(&self, node: &str, incarnation: u64, lane: u16) -> u64 {
        self.seen.get(&(node.to_string(), incarnation, lane)).map_or(0, |h| h.get())
    }

    /// Every lane's highest sequence: (sender node, incarnation, lane) -> seq.
    pub fn highs(&self) -> impl Iterator<Item = (&(String, u64, u16), u64)> {
        self.seen.iter().map(|(key, high)| (key, high.get()))
    }

    /// Every lane's highest sequence delivered (see `LaneHigh`).
    pub fn delivered(&self) -> impl Iterator<Item = (&(String, u64, u16), u64)> {
        self.seen.iter().map(|(key, high)| (key, high.delivered_upto()))
    }

    /// Forgets a sender's older incarnations (it restarted).
    pub fn forget_before(&mut self, node: &str, incarnation: u64) {
        self.seen.retain(|(n, inc, _), _| n != node || *inc >= incarnation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ActorPath {
        ActorPath::parse(s).unwrap()
    }

    #[test]
    fn lanes_are_stable_and_spread() {
        assert_eq!(lane_of(&p("/counter")), lane_of(&p("/counter")));
        let lanes: std::collections::BTreeSet<u16> =
            (0..64).map(|i| lane_of(&p(&format!("/a{i}")))).collect();
        assert_eq!(lanes.len(), usize::from(LANES), "64 paths use every lane");
    }

    /// Decodes a batch the way the receiving stream does.
    fn frames(bytes: &[u8]) -> Vec<DataFrame> {
        let mut decoder = crate::wire::FrameDecoder::new();
        decoder.push(bytes);
        let mut out = Vec::new();
        while let Some(msg) = decoder.next_frame::<LaneMsg>().unwrap() {
            match msg {
                LaneMsg::Data(f) => out.push(f),
                LaneMsg::Open { incarnation, lane } => assert_eq!((incarnation, lane), (1, 0)),
            }
        }
        out
    }

    #[test]
    fn retries_after_a_break_are_delivered_once_in_order() {
        let mut out = OutLane::default();
        let mut dedup = Dedup::default();
        let mut delivered = Vec::new();
        for i in 0..5 {
            out.push(p("/x"), Body::Tell(vec![i])).unwrap();
        }
        let mut batch = Vec::new();
        encode_open(1, 0, &mut batch);
        assert_eq!(out.take_unsent(&mut batch, usize::MAX), 5);
        assert!(!out.has_unsent());
        // The first three arrive; the connection breaks after the ack of the second.
        for f in &frames(&batch)[..3] {
            if dedup.accept("a", 1, 0, f.seq) {
                delivered.push(f.seq);
            }
        }
        out.ack(2);
        // On the new connection every unacknowledged frame goes again.
        out.rewind();
        let mut batch = Vec::new();
        out.take_unsent(&mut batch, usize::MAX);
        let retried = frames(&batch);
        assert_eq!(retried.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![3, 4, 5]);
        for f in &retried {
            if dedup.accept("a", 1, 0, f.seq) {
                delivered.push(f.seq);
            }
        }
        assert_eq!(delivered, vec![1, 2, 3, 4, 5]);
        out.ack(dedup.high("a", 1, 0));
        out.rewind();
        assert!(!out.has_unsent());
        // A new incarnation of the sender starts its sequences afresh.
        assert!(dedup.accept("a", 2, 0, 1));
        dedup.forget_before("a", 2);
        assert_eq!(dedup.high("a", 1, 0), 0);
    }

    #[test]
    fn batches_stop_near_their_size_and_continue_where_they_stopped() {
        let mut out = OutLane::default();
        for _ in 0..10 {
            out.push(p("/x"), Body::Tell(vec![0; 100])).unwrap();
        }
        let mut batch = Vec::new();
        let first = out.take_unsent(&mut batch, 300);
        assert!(first < 10 && first > 0);
        let mut rest = Vec::new();
        assert_eq!(out.take_unsent(&mut rest, usize::MAX), 10 - first);
        assert_eq!(frames(&rest)[0].seq, first as u64 + 1);
    }

    #[test]
    fn a_full_lane_refuses_and_abandon_counts() {
        let mut out = OutLane::default();
        for _ in 0..LANE_UNACKED_MAX {
            assert!(out.push(p("/x"), Body::Tell(Vec::new())).is_ok());
        }
        assert!(out.push(p("/x"), Body::Tell(Vec::new())).is_err());
        assert_eq!(out.abandon().len(), LANE_UNACKED_MAX);
    }
}
