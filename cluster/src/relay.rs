//! Per-sender order across a move (BLUEPRINT section 4: FIFO per sender and receiver, across
//! nodes), as plain state that the QUIC node and the simulator drive alike.
//!
//! The race it closes: a sender's frame reaches the node a subtree is leaving, which forwards
//! it to the target; the sender, having learnt where the subtree went, sends its next frame
//! straight to the target, and that one can arrive first. Two halves close it:
//!
//! - **Relay** (the forwarding node): a frame it forwards counts as delivered, for the
//!   acknowledgement it owes the sender, only once the target acknowledged the forwarded
//!   copy. Acknowledgements are cumulative, so the sender's lane is acknowledged up to just
//!   before its first forwarded frame still unconfirmed.
//! - **Fences** (the sending node): when its directory moves a subtree from a node that
//!   announces it as moved to the new host, new frames for that subtree wait at the sender
//!   while the lanes to the old host hold frames it has not acknowledged; once it has (so
//!   every earlier frame was delivered where the subtree is), they go to the new host in
//!   order. On the mover itself, its own actors' frames wait while the subtree's root lane to
//!   the target (the one its earlier frames followed the handoff on) holds unacknowledged
//!   frames. Waiting, not sending the old way: a steady sender would keep the old way's
//!   acknowledgements forever behind.
//! - **Drain** (the mover, for a moving sender): the handoff goes only once the frames its
//!   node's lanes carry are acknowledged, so the moved actors' earlier frames are delivered
//!   before any they send from their new node.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use aiot_runtime::{ActorPath, Instant, RemoteSendError, SystemCore};

use crate::directory::Directory;
use crate::lanes::lane_of;

/// One inbound lane: (sender node, its incarnation, lane).
pub type LaneKey = (String, u64, u16);

/// Where a frame came from: its inbound lane and sequence (none: an actor of this node sent
/// it).
pub type Origin = Option<(LaneKey, u64)>;

/// The forwarding half: frames forwarded and not yet acknowledged by their target.
#[derive(Debug, Default)]
pub struct Relay {
    /// (target, lane, sequence there) -> the inbound lane and sequence it came as.
    forwarded: BTreeMap<(String, u16, u64), (LaneKey, u64)>,
    /// Inbound lane -> sequences taken for forwarding and not yet confirmed.
    unconfirmed: BTreeMap<LaneKey, BTreeSet<u64>>,
}

impl Relay {
    /// Frame `seq` of `origin` is being forwarded (it may wait before it is on a lane).
    pub fn forwarding(&mut self, origin: &LaneKey, seq: u64) {
        self.unconfirmed.entry(origin.clone()).or_default().insert(seq);
    }

    /// Frame `seq` of `origin` went to `target` as frame `out_seq` of `lane` (`forwarding`
    /// included).
    pub fn relayed(&mut self, origin: Origin, target: &str, lane: u16, out_seq: u64) {
        if let Some((key, seq)) = origin {
            self.forwarding(&key, seq);
            self.forwarded(key, seq, target, lane, out_seq);
        }
    }

    /// A waiting frame from `origin` will not be forwarded after all.
    pub fn not_relayed(&mut self, origin: &Origin) {
        if let Some((key, seq)) = origin {
            self.settled(key, *seq);
        }
    }

    /// ... and is now frame `out_seq` of `lane` to `target`.
    pub fn forwarded(&mut self, origin: LaneKey, seq: u64, target: &str, lane: u16, out_seq: u64) {
        self.forwarded.insert((target.to_string(), lane, out_seq), (origin, seq));
    }

    /// Frame `seq` of `origin` will not wait for a target (delivered here after all, or lost).
    pub fn settled(&mut self, origin: &LaneKey, seq: u64) {
        if let Some(seqs) = self.unconfirmed.get_mut(origin) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.unconfirmed.remove(origin);
            }
        }
    }

    /// `target` acknowledged `lane` up to `upto`: the frames forwarded there are delivered.
    pub fn acked(&mut self, target: &str, lane: u16, upto: u64) {
        let first = (target.to_string(), lane, 0);
        let confirmed: Vec<(String, u16, u64)> = self
            .forwarded
            .range(first..=(target.to_string(), lane, upto))
            .map(|(key, _)| key.clone())
            .collect();
        for key in confirmed {
            if let Some((origin, seq)) = self.forwarded.remove(&key) {
                self.settled(&origin, seq);
            }
        }
    }

    /// `target` is gone: what was forwarded there is lost (counted by the lanes), and waits no
    /// longer.
    pub fn released(&mut self, target: &str) {
        let gone: Vec<(String, u16, u64)> =
            self.forwarded.keys().filter(|(t, _, _)| t == target).cloned().collect();
        for key in gone {
            if let Some((origin, seq)) = self.forwarded.remove(&key) {
                self.settled(&origin, seq);
            }
        }
    }

    /// What may be acknowledged on `origin`, of the `delivered` frames: those before its first
    /// forwarded frame not yet confirmed.
    pub fn ceiling(&self, origin: &LaneKey, delivered: u64) -> u64 {
        match self.unconfirmed.get(origin).and_then(|seqs| seqs.first()) {
            Some(&first) => delivered.min(first - 1),
            None => delivered,
        }
    }

    /// Forgets a sender's older incarnations (it restarted: its lanes start afresh).
    pub fn forget_before(&mut self, node: &str, incarnation: u64) {
        self.unconfirmed.retain(|(n, inc, _), _| n != node || *inc >= incarnation);
        self.forwarded.retain(|_, ((n, inc, _), _)| n != node || *inc >= incarnation);
    }
}

/// The mover's half for a moving *sender*: before a handoff goes, the frames this node's lanes
/// carry unacknowledged (the moving actors' among them) are acknowledged, so none of the
/// moved actors' earlier frames can be overtaken by one it sends from its new node. At most
/// `FENCE_MAX`, as for fences (a peer that never acknowledges must not stop a move for good).
#[derive(Debug)]
pub struct Drain {
    /// (peer, lane) -> the last frame on it to be acknowledged.
    until: BTreeMap<(String, u16), u64>,
    since: Instant,
}

impl Drain {
    /// What the lanes hold now: (peer, lane, last pushed, last acknowledged) each.
    pub fn new(now: Instant, lanes: impl IntoIterator<Item = (String, u16, u64, u64)>) -> Drain {
        let held = lanes.into_iter().filter(|(_, _, pushed, acked)| pushed > acked);
        let until = held.map(|(peer, lane, pushed, _)| ((peer, lane), pushed)).collect();
        Drain { until, since: now }
    }

    /// `None` while frames wait; then `Some(true)` once all are acknowledged, `Some(false)`
    /// if `FENCE_MAX` passed first (order is not guaranteed for this move: count it).
    pub fn poll(&mut self, now: Instant, acked: impl Fn(&str, u16) -> u64) -> Option<bool> {
        self.until.retain(|(peer, lane), last| acked(peer, *lane) < *last);
        if self.until.is_empty() {
            Some(true)
        } else if now >= self.since + FENCE_MAX {
            Some(false)
        } else {
            None
        }
    }
}

/// A subtree that moved lately, whose new frames wait at the sender until its earlier ones
/// are delivered.
#[derive(Debug)]
struct Fence {
    /// The node the earlier frames went to (the old host; the target, on the mover).
    via: String,
    /// Lane to `via` -> the last earlier frame on it, to be acknowledged first.
    until: BTreeMap<u16, u64>,
    /// New frames for the subtree, in the order they were sent.
    held: Held,
    since: Instant,
}

/// Frames waiting at the sender, in the order they were sent: (path, message bytes).
pub type Held = VecDeque<(ActorPath, Vec<u8>)>;

/// How long new frames wait for earlier ones at most (then they go, order or not: an old host
/// that never acknowledges must not stop a subtree's traffic for good).
pub const FENCE_MAX: Duration = Duration::from_secs(10);

/// The sending half: per subtree that moved lately, the frames that wait.
#[derive(Debug, Default)]
pub struct Fences {
    by_root: BTreeMap<ActorPath, Fence>,
    /// Fences that fell before their earlier frames were acknowledged (`FENCE_MAX` passed, or
    /// the old host was let go): the frames they held may overtake earlier ones.
    given_up: u64,
}

impl Fences {
    /// Whether no fence stands (the send path's fast check).
    pub fn is_empty(&self) -> bool {
        self.by_root.is_empty()
    }

    /// How many fences fell before their earlier frames were acknowledged (order across
    /// those moves is not guaranteed), since the last call.
    pub fn take_given_up(&mut self) -> u64 {
        std::mem::take(&mut self.given_up)
    }

    /// The directory changed from `old` to `new`. Each subtree now held by another node than
    /// before, whose old holder announces it as moved there, gets a fence while the lanes its
    /// earlier frames took hold unacknowledged ones: to the old host (any lane), or on the
    /// mover itself, the root's lane to the target (where its actors' frames followed the
    /// handoff). `pushed(node, lane)` is the last sequence put on a lane, `acked(node, lane)`
    /// the last acknowledged.
    pub fn directory_changed(
        &mut self,
        me: &str,
        old: &Directory,
        new: &Directory,
        now: Instant,
        pushed: impl Fn(&str, u16) -> u64,
        acked: impl Fn(&str, u16) -> u64,
    ) {
        // Not on the new host: its actors' sends to the subtree are local from now on.
        for (root, host) in new.held(|_| true).into_iter().filter(|(_, host)| host != me) {
            let Some(was) = old.node_of(&root).filter(|was| *was != host) else { continue };
            if new.moved_to(was, &root) != Some(host.as_str()) || self.by_root.contains_key(&root) {
                continue; // not a move (a failover: the old host forwards nothing), or fenced
            }
            let (via, lanes) = if was == me {
                (host.clone(), vec![lane_of(&root)])
            } else {
                (was.to_string(), (0..crate::lanes::LANES).collect())
            };
            let until: BTreeMap<u16, u64> = lanes
                .into_iter()
                .map(|lane| (lane, pushed(&via, lane)))
                .filter(|&(lane, last)| last > acked(&via, lane))
                .collect();
            if !until.is_empty() {
                self.by_root.insert(root, Fence { via, until, held: VecDeque::new(), since: now });
            }
        }
    }

    /// Holds a frame for `to` if its subtree's fence stands; gives it back if not.
    pub fn hold(&mut self, to: &ActorPath, bytes: Vec<u8>) -> Option<Vec<u8>> {
        match self.by_root.iter_mut().find(|(root, _)| to.is_within(root)) {
            Some((_, fence)) => {
                fence.held.push_back((to.clone(), bytes));
                None
            }
            None => Some(bytes),
        }
    }

    /// The subtrees whose earlier frames are all acknowledged (or that waited `FENCE_MAX`):
    /// their fences fall, and their held frames are to be sent now, in order. Frames the
    /// caller cannot send (a full lane) go back with `requeue`.
    pub fn release(&mut self, now: Instant, acked: impl Fn(&str, u16) -> u64) -> Vec<(ActorPath, Held)> {
        let mut given_up = 0;
        let ready: Vec<ActorPath> = self
            .by_root
            .iter_mut()
            .filter_map(|(root, fence)| {
                fence.until.retain(|&lane, last| acked(&fence.via, lane) < *last);
                let expired = now >= fence.since + FENCE_MAX;
                given_up += u64::from(expired && !fence.until.is_empty());
                (fence.until.is_empty() || expired).then(|| root.clone())
            })
            .collect();
        self.given_up += given_up;
        ready
            .into_iter()
            .filter_map(|root| {
                let fence = self.by_root.remove(&root)?;
                Some((root, fence.held))
            })
            .collect()
    }

    /// Sends what `release` gave, in order, each by `route` (the usual way of a message); a
    /// frame whose lane is full, and those after it, wait for the next release; one with no
    /// route is a dead letter.
    pub fn send_released(
        &mut self,
        ready: Vec<(ActorPath, Held)>,
        now: Instant,
        core: &SystemCore,
        mut route: impl FnMut(&ActorPath, Vec<u8>) -> Result<(), RemoteSendError>,
    ) {
        for (root, mut held) in ready {
            while let Some((to, bytes)) = held.pop_front() {
                match route(&to, bytes) {
                    Err(RemoteSendError::Full(bytes)) => {
                        held.push_front((to, bytes));
                        break;
                    }
                    Err(_) => core.dead_letter(&to, 1),
                    Ok(()) => {}
                }
            }
            if !held.is_empty() {
                self.requeue(root, held, now);
            }
        }
    }

    /// Frames `release` gave that could not be sent yet: they go first next time, and new
    /// frames for the subtree wait behind them.
    pub fn requeue(&mut self, root: ActorPath, held: Held, now: Instant) {
        let fence = Fence { via: String::new(), until: BTreeMap::new(), held, since: now };
        self.by_root.insert(root, fence);
    }

    /// `node` is gone: what went to it is lost, nothing more to wait for.
    pub fn released(&mut self, node: &str) {
        for fence in self.by_root.values_mut().filter(|f| f.via == node) {
            self.given_up += u64::from(!fence.until.is_empty());
            fence.until.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ActorPath {
        ActorPath::parse(s).unwrap()
    }

    fn key(node: &str) -> LaneKey {
        (node.to_string(), 1, 3)
    }

    #[test]
    fn a_handoff_waits_for_the_lanes_to_drain_or_for_fence_max() {
        let lanes = [("b".to_string(), 1, 5, 5), ("b".to_string(), 2, 9, 7), ("c".to_string(), 0, 3, 1)];
        let mut drain = Drain::new(Instant::ZERO, lanes.clone());
        assert_eq!(drain.poll(Instant::ZERO, |_, _| 8), None, "b's lane 2 is acknowledged up to 8 of 9");
        assert_eq!(drain.poll(Instant::ZERO, |_, _| 9), Some(true));
        let mut stuck = Drain::new(Instant::ZERO, lanes);
        assert_eq!(stuck.poll(Instant::ZERO + FENCE_MAX, |_, _| 0), Some(false), "given up");
        assert_eq!(Drain::new(Instant::ZERO, []).poll(Instant::ZERO, |_, _| 0), Some(true));
    }

    #[test]
    fn a_lane_is_acknowledged_up_to_its_first_forwarded_frame_not_yet_confirmed() {
        let mut relay = Relay::default();
        relay.forwarding(&key("s"), 4);
        relay.forwarding(&key("s"), 6);
        assert_eq!(relay.ceiling(&key("s"), 9), 3);
        assert_eq!(relay.ceiling(&key("t"), 9), 9, "other lanes are not held back");
        relay.forwarded(key("s"), 4, "b", 0, 10);
        relay.forwarded(key("s"), 6, "b", 0, 11);
        relay.acked("b", 1, 20);
        assert_eq!(relay.ceiling(&key("s"), 9), 3, "another lane's acknowledgement confirms nothing");
        relay.acked("b", 0, 10);
        assert_eq!(relay.ceiling(&key("s"), 9), 5);
        relay.released("b");
        assert_eq!(relay.ceiling(&key("s"), 9), 9, "a target gone holds nothing back");
        relay.forwarding(&key("s"), 12);
        relay.settled(&key("s"), 12);
        assert_eq!(relay.ceiling(&key("s"), 12), 12);
    }

    fn moved(from: &str, to: &str, root: &ActorPath) -> (Directory, Directory) {
        let mut old = Directory::new();
        old.announce(from, 1, [root.clone()]);
        let mut new = old.clone();
        let away = [(root.clone(), Away { to: to.to_string(), done: true })].into_iter().collect();
        new.announce_moving(from, 1, [root.clone()], away);
        new.announce(to, 1, [root.clone()]);
        (old, new)
    }

    use crate::directory::Away;

    #[test]
    fn new_frames_wait_until_the_old_hosts_lanes_have_delivered_the_earlier_ones() {
        let root = p("/counter");
        let child = p("/counter/ledger");
        let (old, new) = moved("a", "b", &root);
        let mut fences = Fences::default();
        let lane = lane_of(&root);
        // Lane `lane` to a holds frames up to 7, acknowledged up to 5; the others are clean.
        let pushed = |node: &str, l: u16| if node == "a" && l == lane { 7 } else { 0 };
        fences.directory_changed("s", &old, &new, Instant::ZERO, pushed, |_, _| 5);
        assert_eq!(fences.hold(&root, vec![1]), None);
        assert_eq!(fences.hold(&child, vec![2]), None, "the whole subtree waits");
        assert_eq!(fences.hold(&p("/other"), vec![3]), Some(vec![3]));
        let mut sent: Vec<u8> = Vec::new();
        assert!(fences.release(Instant::ZERO, |_, _| 6).is_empty(), "frame 7 is not acknowledged yet");
        // Acknowledged: they go, in order; the lane fills after the first, so the second is
        // requeued, and a new frame waits behind it.
        let mut ready = fences.release(Instant::ZERO, |_, _| 7);
        assert_eq!(ready.len(), 1);
        let (fenced, mut held) = ready.pop().unwrap();
        assert_eq!(fenced, root);
        sent.push(held.pop_front().unwrap().1[0]);
        fences.requeue(fenced, held, Instant::ZERO);
        assert_eq!(fences.hold(&root, vec![4]), None, "behind what still waits");
        for (_, held) in fences.release(Instant::ZERO, |_, _| 0) {
            sent.extend(held.into_iter().map(|(_, b)| b[0]));
        }
        assert_eq!(sent, [1, 2, 4]);
        assert!(fences.is_empty());
    }

    #[test]
    fn the_mover_watches_the_root_lane_and_a_failover_or_a_silent_old_host_stops_no_one_for_long() {
        let root = p("/counter");
        let (old, new) = moved("a", "b", &root);
        let mut fences = Fences::default();
        let lane = lane_of(&root);
        let pushed = |node: &str, l: u16| if node == "b" && l == lane { 3 } else { 0 };
        fences.directory_changed("a", &old, &new, Instant::ZERO, pushed, |_, _| 1);
        assert_eq!(fences.hold(&root, vec![1]), None, "the mover's own frames wait for the root lane");
        assert!(fences.release(Instant::ZERO, |_, _| 1).is_empty());
        let mut on_target = Fences::default();
        on_target.directory_changed("b", &old, &new, Instant::ZERO, |_, _| 3, |_, _| 1);
        assert!(on_target.is_empty(), "the new host sends to it locally");
        // Never acknowledged: after FENCE_MAX they go all the same.
        let ready = fences.release(Instant::ZERO + FENCE_MAX, |_, _| 1);
        assert_eq!(ready[0].1.len(), 1);
        // A failover: the old holder does not announce the subtree as moved.
        let mut failed_over = Directory::new();
        failed_over.announce("c", 1, [root.clone()]);
        let mut fences = Fences::default();
        fences.directory_changed("s", &old, &failed_over, Instant::ZERO, |_, _| 3, |_, _| 1);
        assert!(fences.is_empty());
    }
}
