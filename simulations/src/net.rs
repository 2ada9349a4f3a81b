//! The simulated node-to-node channel, as BLUEPRINT section 10 states it: within a pair,
//! ordered and reliable while the connection lives; a connection that breaks (a cut, a crash)
//! loses what was in flight; latency with jitter; symmetric and one-way cuts; clogging (a pair
//! made slow). It never drops or duplicates single messages inside a live connection.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiot_cluster::control::ControlMsg;
use aiot_runtime::Instant;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Base one-way latency and its jitter.
pub const LATENCY: Duration = Duration::from_micros(500);
pub const JITTER: Duration = Duration::from_micros(1500);

/// What travels between two nodes: control messages, and batches of a data lane's frames.
#[derive(Debug, Clone, serde::Serialize)]
pub enum Payload {
    Control(ControlMsg),
    /// Wire frames of lane `lane` from the sender's incarnation `incarnation`.
    Lane {
        incarnation: u64,
        lane: u16,
        bytes: Vec<u8>,
    },
}

/// A message on its way.
#[derive(Debug, Clone)]
pub struct Packet {
    pub from: String,
    pub to: String,
    pub msg: Payload,
    /// The pair's connection epoch when it was sent: a break in between loses it.
    epoch: u64,
}

#[derive(Debug, Default)]
pub struct SimNet {
    /// (arrival time, sequence) -> packet: delivered in that order.
    in_flight: BTreeMap<(Instant, u64), Packet>,
    next_seq: u64,
    /// Directed pairs that cannot talk.
    cut: BTreeSet<(String, String)>,
    /// Directed pairs slowed down, by a latency factor.
    clogged: BTreeMap<(String, String), u32>,
    /// Per directed pair: the latest arrival scheduled (FIFO within a connection) and the
    /// connection epoch.
    pairs: BTreeMap<(String, String), (Instant, u64)>,
}

impl SimNet {
    /// Sends `msg`; lost at once if the pair is cut.
    pub fn send(&mut self, from: &str, to: &str, msg: Payload, now: Instant, rng: &mut ChaCha8Rng) {
        let key = (from.to_string(), to.to_string());
        if self.cut.contains(&key) {
            return;
        }
        let jitter = Duration::from_nanos(rng.random_range(0..=JITTER.as_nanos() as u64));
        let factor = self.clogged.get(&key).copied().unwrap_or(1);
        let at = now + (LATENCY + jitter) * factor;
        let (last, epoch) = self.pairs.entry(key).or_insert((Instant::ZERO, 0));
        let at = at.max(*last);
        *last = at;
        self.next_seq += 1;
        let packet = Packet { from: from.to_string(), to: to.to_string(), msg, epoch: *epoch };
        self.in_flight.insert((at, self.next_seq), packet);
    }

    /// The next packet due by `now`, if its connection still lives (lost ones are skipped).
    pub fn deliver(&mut self, now: Instant) -> Option<(Instant, Packet)> {
        loop {
            let (&(at, seq), _) = self.in_flight.iter().next()?;
            if at > now {
                return None;
            }
            let packet = self.in_flight.remove(&(at, seq)).expect("just seen");
            let key = (packet.from.clone(), packet.to.clone());
            let live = self.pairs.get(&key).is_some_and(|(_, epoch)| *epoch == packet.epoch);
            if live && !self.cut.contains(&key) {
                return Some((at, packet));
            }
        }
    }

    /// The connection epoch of `from -> to`: it changes whenever that connection breaks (a
    /// sender then sends again what was not acknowledged).
    pub fn epoch(&self, from: &str, to: &str) -> u64 {
        self.pairs.get(&(from.to_string(), to.to_string())).map_or(0, |(_, epoch)| *epoch)
    }

    /// Breaks the connection between `a` and `b` (both ways): what is in flight is lost.
    pub fn break_connection(&mut self, a: &str, b: &str) {
        for key in [(a.to_string(), b.to_string()), (b.to_string(), a.to_string())] {
            self.pairs.entry(key).or_insert((Instant::ZERO, 0)).1 += 1;
        }
    }

    /// Cuts `from -> to` (the connection breaks).
    pub fn cut(&mut self, from: &str, to: &str) {
        self.cut.insert((from.to_string(), to.to_string()));
        self.break_connection(from, to);
    }

    /// Ends the cut `from -> to`: a new connection forms (a new epoch, so the sender sends
    /// again what the cut swallowed and was never acknowledged).
    pub fn uncut(&mut self, from: &str, to: &str) {
        if self.cut.remove(&(from.to_string(), to.to_string())) {
            self.break_connection(from, to);
        }
    }

    /// Slows `from -> to` down by `factor` (1: normal again).
    pub fn clog(&mut self, from: &str, to: &str, factor: u32) {
        self.clogged.insert((from.to_string(), to.to_string()), factor.max(1));
    }

    /// Every cut and clog ends (cut pairs reconnect, as `uncut`).
    pub fn heal(&mut self) {
        for (from, to) in std::mem::take(&mut self.cut) {
            self.break_connection(&from, &to);
        }
        self.clogged.clear();
    }

    pub fn is_cut(&self, from: &str, to: &str) -> bool {
        self.cut.contains(&(from.to_string(), to.to_string()))
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// What a cut swallowed is sent again only if the sender sees a new connection when the cut
    /// ends (found by a 30-minute motes run: frames sent into a cut were never resent).
    #[test]
    fn a_cut_that_ends_gives_a_new_connection() {
        let mut net = SimNet::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let before = net.epoch("a", "b");
        net.cut("a", "b");
        let during = net.epoch("a", "b");
        assert_ne!(before, during);
        net.send(
            "a",
            "b",
            Payload::Lane { incarnation: 1, lane: 0, bytes: vec![1] },
            Instant::ZERO,
            &mut rng,
        );
        assert_eq!(net.in_flight(), 0, "lost at once in the cut");
        net.uncut("a", "b");
        assert_ne!(net.epoch("a", "b"), during, "the sender must see a new connection and resend");
        net.cut("b", "a");
        let cut = net.epoch("b", "a");
        net.heal();
        assert_ne!(net.epoch("b", "a"), cut, "healing reconnects cut pairs too");
        assert!(!net.is_cut("b", "a"));
    }
}
