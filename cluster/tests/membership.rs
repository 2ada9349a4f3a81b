//! Membership over an in-test network with virtual time: convergence through one seed, crash
//! detection, restart with a new incarnation, graceful leave, majority under partition, and a
//! seeded sweep with lossy delivery that must converge once the network heals; leases: a node
//! cut off stops before any other node may take its actors, under symmetric and one-way cuts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiot_cluster::membership::{MemberEvent, MemberInfo, MemberMsg, Membership, MembershipConfig, Status};
use aiot_runtime::Instant;
use rand::{Rng, SeedableRng};

const TICK: Duration = Duration::from_millis(100);

struct Net {
    nodes: BTreeMap<String, Membership>,
    down: BTreeSet<String>,
    /// Pairs that cannot talk (both directions are listed).
    cut: BTreeSet<(String, String)>,
    now: Instant,
    events: Vec<(String, MemberEvent)>,
    loss: f64,
    rng: rand_chacha::ChaCha8Rng,
}

fn name(i: usize) -> String {
    format!("node-{i}")
}

impl Net {
    fn new(n: usize, seed: u64, loss: f64) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            now: Instant::ZERO,
            events: Vec::new(),
            loss,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        };
        for i in 0..n {
            net.start(i, 1);
        }
        net
    }

    fn start(&mut self, i: usize, incarnation: u64) {
        let me = MemberInfo {
            name: name(i),
            incarnation,
            status: Status::Up,
            tags: [("tier".to_string(), "inference".to_string())].into(),
            addr: format!("10.0.0.{i}:7000"),
        };
        let m = Membership::new(me, vec![name(0)], MembershipConfig::default(), self.now);
        self.nodes.insert(name(i), m);
        self.down.remove(&name(i));
    }

    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.now = self.now + TICK;
            let mut mail: Vec<(String, String, MemberMsg)> = Vec::new();
            for (n, m) in self.nodes.iter_mut().filter(|(n, _)| !self.down.contains(*n)) {
                m.handle_timeout(self.now);
                while let Some((to, msg)) = m.poll_send() {
                    mail.push((n.clone(), to, msg));
                }
            }
            for (from, to, msg) in mail {
                let blocked = self.down.contains(&to) || self.cut.contains(&(from.clone(), to.clone()));
                if blocked || self.rng.random_bool(self.loss) {
                    continue;
                }
                if let Some(m) = self.nodes.get_mut(&to) {
                    m.handle_message(&from, msg, self.now);
                }
            }
            for (n, m) in self.nodes.iter_mut() {
                while let Some(e) = m.poll_event() {
                    self.events.push((n.clone(), e));
                }
            }
        }
    }

    fn view(&self, of: usize) -> BTreeMap<String, Status> {
        self.nodes[&name(of)].members()
    }

    fn all_see_all_up(&self) -> bool {
        let alive: Vec<&String> = self.nodes.keys().filter(|n| !self.down.contains(*n)).collect();
        alive.iter().all(|n| {
            let view = self.nodes[*n].members();
            alive.iter().filter(|o| *o != n).all(|o| view.get(*o) == Some(&Status::Up))
        })
    }

    fn partition(&mut self, side: &[usize], n: usize) {
        for &a in side {
            for b in (0..n).filter(|b| !side.contains(b)) {
                self.cut.insert((name(a), name(b)));
                self.cut.insert((name(b), name(a)));
            }
        }
    }
}

#[test]
fn nodes_joining_through_one_seed_all_see_each_other() {
    let mut net = Net::new(5, 1, 0.0);
    net.run(Duration::from_secs(3));
    assert!(net.all_see_all_up(), "{:?}", net.view(4));
    assert!(net.nodes.values().all(Membership::has_majority));
    let up_events = net.events.iter().filter(|(_, e)| matches!(e, MemberEvent::Up(_))).count();
    assert_eq!(up_events, 5 * 4, "each node saw each other node come up once");
}

#[test]
fn a_crashed_node_is_declared_down_within_the_timeout_and_comes_back_with_a_new_incarnation() {
    let mut net = Net::new(4, 2, 0.0);
    net.run(Duration::from_secs(3));
    net.down.insert(name(3));
    net.run(MembershipConfig::default().failure_timeout + 2 * TICK);
    for i in 0..3 {
        assert_eq!(net.view(i)[&name(3)], Status::Down, "node-{i}");
    }
    let downs = net.events.iter().filter(|(_, e)| *e == MemberEvent::Down(name(3))).count();
    assert_eq!(downs, 3);
    net.start(3, 2);
    net.run(Duration::from_secs(3));
    assert!(net.all_see_all_up());
}

#[test]
fn a_node_that_leaves_is_marked_left_at_once_not_down() {
    let mut net = Net::new(4, 3, 0.0);
    net.run(Duration::from_secs(3));
    net.nodes.get_mut(&name(2)).unwrap().leave();
    net.run(2 * TICK);
    net.down.insert(name(2));
    net.run(Duration::from_secs(5));
    for i in [0, 1, 3] {
        assert_eq!(net.view(i)[&name(2)], Status::Left, "node-{i}");
        assert!(net.nodes[&name(i)].has_majority(), "a node that left does not count against the majority");
    }
    assert!(!net.events.iter().any(|(_, e)| *e == MemberEvent::Down(name(2))));
}

#[test]
fn under_a_partition_only_the_majority_side_keeps_a_majority() {
    let mut net = Net::new(5, 4, 0.0);
    net.run(Duration::from_secs(3));
    net.partition(&[3, 4], 5);
    net.run(Duration::from_secs(5));
    for i in 0..3 {
        assert!(net.nodes[&name(i)].has_majority(), "node-{i} is on the majority side");
    }
    for i in 3..5 {
        assert!(!net.nodes[&name(i)].has_majority(), "node-{i} is cut off from the majority");
    }
    net.cut.clear();
    net.run(Duration::from_secs(3));
    assert!(net.all_see_all_up());
}

#[test]
fn a_peer_cannot_speak_for_another_node() {
    let mut net = Net::new(3, 5, 0.0);
    net.run(Duration::from_secs(3));
    net.down.insert(name(2));
    net.run(Duration::from_secs(4));
    assert_eq!(net.view(0)[&name(2)], Status::Down);
    let forged = MemberMsg::Heartbeat {
        from: MemberInfo {
            name: name(2),
            incarnation: 9,
            status: Status::Up,
            tags: BTreeMap::new(),
            addr: "10.0.0.2:7000".into(),
        },
        known: Vec::new(),
        heard: Vec::new(),
        sent_at: Instant::ZERO,
        echo: None,
    };
    let now = net.now;
    net.nodes.get_mut(&name(0)).unwrap().handle_message(&name(1), forged, now);
    assert_eq!(net.view(0)[&name(2)], Status::Down, "node-1's certificate does not make it node-2");
}

#[test]
fn lossy_runs_converge_once_the_network_heals() {
    for seed in 0..60 {
        let mut net = Net::new(6, seed, 0.1);
        net.run(Duration::from_secs(5));
        net.loss = 0.0;
        net.run(Duration::from_secs(5));
        assert!(
            net.all_see_all_up(),
            "seed {seed}: views {:?}",
            (0..6).map(|i| net.view(i)).collect::<Vec<_>>()
        );
    }
}

impl Net {
    /// Runs `span` tick by tick, checking the split-brain rule for `watched` at every tick: while
    /// it holds its lease, no node that sees it down may have released its actors. Returns the
    /// first tick at which some node released them, if any.
    fn run_checking_lease(&mut self, watched: usize, span: Duration) -> Option<Instant> {
        let end = self.now + span;
        let mut released = None;
        while self.now < end {
            self.run(TICK);
            let holder = &self.nodes[&name(watched)];
            let holds = !self.down.contains(&name(watched)) && holder.holds_lease(self.now);
            for (n, m) in self.nodes.iter().filter(|(n, _)| **n != name(watched) && !self.down.contains(*n)) {
                let gone = m.has_majority() && m.release_at(&name(watched)).is_some_and(|t| self.now >= t);
                assert!(
                    !(holds && gone),
                    "at {:?} {n} released {} while it holds its lease",
                    self.now,
                    name(watched)
                );
                if gone && released.is_none() {
                    released = Some(self.now);
                }
            }
        }
        released
    }
}

#[test]
fn a_node_cut_off_loses_its_lease_before_the_others_release_its_actors() {
    let config = MembershipConfig::default();
    let mut net = Net::new(4, 6, 0.0);
    net.run(Duration::from_secs(3));
    assert!(net.nodes.values().all(|m| m.holds_lease(net.now)), "a connected cluster holds its leases");
    let cut_at = net.now;
    net.partition(&[3], 4);
    let released = net.run_checking_lease(3, Duration::from_secs(12)).expect("the majority takes over");
    assert!(!net.nodes[&name(3)].holds_lease(net.now));
    // Bound: the last evidence is at most one tick after the cut; release lease + skew later.
    let bound = cut_at + config.lease + config.clock_skew_max + 2 * TICK;
    assert!(released <= bound, "released at {released:?}, bound {bound:?}");
}

#[test]
fn a_one_way_cut_never_gives_two_holders() {
    // node-3 still hears everyone, but nobody hears node-3: its lease must lapse all the same.
    let mut net = Net::new(4, 7, 0.0);
    net.run(Duration::from_secs(3));
    for b in 0..3 {
        net.cut.insert((name(3), name(b)));
    }
    assert!(net.run_checking_lease(3, Duration::from_secs(12)).is_some());
    // The reverse: node-3 hears nobody but is heard by one other node only (node-0 hears it,
    // node-1 and node-2 do not, and node-3 hears no one).
    let mut net = Net::new(4, 8, 0.0);
    net.run(Duration::from_secs(3));
    for b in 0..3 {
        net.cut.insert((name(b), name(3)));
    }
    net.cut.insert((name(3), name(1)));
    net.cut.insert((name(3), name(2)));
    net.run_checking_lease(3, Duration::from_secs(12));
}

#[test]
fn a_node_alone_with_unmet_seeds_has_no_majority_and_no_lease() {
    let me = MemberInfo {
        name: "late".into(),
        incarnation: 1,
        status: Status::Up,
        tags: BTreeMap::new(),
        addr: "10.0.0.9:7000".into(),
    };
    let m = Membership::new(me, vec![name(0), name(1)], MembershipConfig::default(), Instant::ZERO);
    assert!(!m.has_majority());
    assert!(!m.holds_lease(Instant::ZERO));
    assert!(!m.settled(Instant::ZERO));
}
