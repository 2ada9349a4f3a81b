//! The coordinator (membership + leases + directory + placement) over an in-test network with
//! virtual time: subtrees spread by tags, a crashed node's subtrees come back elsewhere after
//! its lease, and a seeded sweep of partitions and crashes in which no subtree is ever hosted
//! by two nodes at once, and every subtree is hosted once the network heals; the same sweep
//! with live moves of subtrees between nodes in the middle of it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiot_cluster::control::ControlMsg;
use aiot_cluster::coordinator::{Coordinator, Output};
use aiot_cluster::membership::{MemberInfo, MembershipConfig, Status};
use aiot_runtime::{ActorPath, Instant, Supervisor, Topology};
use rand::{Rng, SeedableRng};

const TICK: Duration = Duration::from_millis(100);

fn topology() -> Topology {
    let mut t = Topology::builder();
    t.actor("/gateway", |_| Supervisor).requires("tier=things");
    t.actor("/dsp-a", |_| Supervisor).requires("tier=inference");
    t.actor("/dsp-b", |_| Supervisor).requires("tier=inference");
    t.actor("/store", |_| Supervisor).requires("tier=platform");
    t.actor("/anywhere", |_| Supervisor);
    t.build().unwrap()
}

const NODES: [(&str, &str); 5] = [
    ("inference-1", "inference"),
    ("inference-2", "inference"),
    ("inference-3", "inference"),
    ("platform-1", "platform"),
    ("things-1", "things"),
];

struct Net {
    nodes: BTreeMap<String, Coordinator>,
    down: BTreeSet<String>,
    cut: BTreeSet<(String, String)>,
    now: Instant,
    incarnations: BTreeMap<String, u64>,
    /// Messages sent while handling messages: delivered at the next tick.
    in_flight: Vec<(String, String, ControlMsg)>,
    /// Handoffs on their way (from, to, root): like a lane's frames, they wait out a cut and
    /// are lost with a crashed sender or receiver.
    handoffs: Vec<(String, String, ActorPath)>,
    /// Moves that completed (`MoveDone`) and that were taken back (`MoveAborted`).
    moves_done: usize,
    moves_aborted: usize,
    /// The sweep's seed, named in failures.
    seed: u64,
}

impl Net {
    fn new() -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            now: Instant::ZERO,
            incarnations: BTreeMap::new(),
            in_flight: Vec::new(),
            handoffs: Vec::new(),
            moves_done: 0,
            moves_aborted: 0,
            seed: 0,
        };
        for (name, _) in NODES {
            net.start(name);
        }
        net
    }

    fn start(&mut self, name: &str) {
        let tier = NODES.iter().find(|(n, _)| *n == name).unwrap().1;
        let incarnation = self.incarnations.entry(name.to_string()).or_insert(0);
        *incarnation += 1;
        let me = MemberInfo {
            name: name.to_string(),
            incarnation: *incarnation,
            status: Status::Up,
            tags: [("tier".to_string(), tier.to_string())].into(),
            addr: format!("{name}:7000"),
        };
        let seeds = vec!["platform-1".to_string()];
        let c = Coordinator::new(me, seeds, MembershipConfig::default(), topology(), self.now);
        self.nodes.insert(name.to_string(), c);
        self.down.remove(name);
    }

    fn crash(&mut self, name: &str) {
        self.down.insert(name.to_string());
        self.handoffs.retain(|(from, to, _)| from != name && to != name);
    }

    /// One tick: every live node's timers, then every message delivered (unless cut).
    fn tick(&mut self) {
        self.now = self.now + TICK;
        let mut mail = std::mem::take(&mut self.in_flight);
        for (name, c) in self.nodes.iter_mut().filter(|(n, _)| !self.down.contains(*n)) {
            c.handle_timeout(self.now);
            while let Some(output) = c.poll_output() {
                match output {
                    Output::Send { to, msg, .. } => mail.push((name.clone(), to, msg)),
                    // The host takes the subtree out at once and sends its handoff.
                    Output::MoveOut { root, to } => self.handoffs.push((name.clone(), to, root)),
                    Output::MoveAborted { .. } => self.moves_aborted += 1,
                    _ => {}
                }
            }
        }
        let (now, down, cut) = (self.now, &self.down, &self.cut);
        let mut waiting = Vec::new();
        for (from, to, root) in std::mem::take(&mut self.handoffs) {
            if cut.contains(&(from.clone(), to.clone())) {
                waiting.push((from, to, root));
            } else if let Some(c) = self.nodes.get_mut(&to).filter(|_| !down.contains(&to)) {
                c.handoff_arrived(&root, &from, now);
            }
        }
        self.handoffs = waiting;
        for (from, to, msg) in mail {
            if self.down.contains(&to) || self.cut.contains(&(from.clone(), to.clone())) {
                continue;
            }
            if let Some(c) = self.nodes.get_mut(&to) {
                c.handle_control(&from, msg, self.now);
                while let Some(output) = c.poll_output() {
                    match output {
                        Output::Send { to: next, msg, .. } => self.in_flight.push((to.clone(), next, msg)),
                        Output::MoveDone { .. } => self.moves_done += 1,
                        Output::MoveAborted { .. } => self.moves_aborted += 1,
                        _ => {}
                    }
                }
            }
        }
    }

    /// Root -> the live nodes running it (a subtree a node is moving away is stopped there).
    fn hosts(&self) -> BTreeMap<ActorPath, Vec<String>> {
        let mut hosts: BTreeMap<ActorPath, Vec<String>> = BTreeMap::new();
        for (name, c) in self.nodes.iter().filter(|(n, _)| !self.down.contains(*n)) {
            let moving: Vec<&ActorPath> = c.moving_out().collect();
            for root in c.hosted().iter().filter(|r| !moving.contains(r)) {
                hosts.entry(root.clone()).or_default().push(name.clone());
            }
        }
        hosts
    }

    fn run_checking(&mut self, span: Duration) {
        let end = self.now + span;
        while self.now < end {
            self.tick();
            for (root, nodes) in self.hosts() {
                assert!(
                    nodes.len() <= 1,
                    "seed {}: at {:?} {root} is live on {nodes:?}",
                    self.seed,
                    self.now
                );
            }
        }
    }

    fn partition(&mut self, side: &[&str]) {
        for a in side {
            for (b, _) in NODES.iter().filter(|(b, _)| !side.contains(b)) {
                self.cut.insert((a.to_string(), b.to_string()));
                self.cut.insert((b.to_string(), a.to_string()));
            }
        }
    }
}

fn p(s: &str) -> ActorPath {
    ActorPath::parse(s).unwrap()
}

#[test]
fn subtrees_spread_by_tags_and_a_crashed_node_s_come_back_after_its_lease() {
    let mut net = Net::new();
    net.run_checking(Duration::from_secs(5));
    let hosts = net.hosts();
    assert_eq!(hosts.len(), 5, "{hosts:?}");
    assert_eq!(hosts[&p("/gateway")], vec!["things-1"]);
    assert_eq!(hosts[&p("/store")], vec!["platform-1"]);
    let dsp_a = hosts[&p("/dsp-a")][0].clone();
    assert!(dsp_a.starts_with("inference-"));
    assert_ne!(hosts[&p("/dsp-b")][0], dsp_a, "load spreads the two dsp subtrees");
    let crashed_at = net.now;
    net.crash(&dsp_a);
    let mut back = None;
    while back.is_none() {
        net.run_checking(TICK);
        back = net.hosts().get(&p("/dsp-a")).map(|n| (n[0].clone(), net.now));
        assert!(net.now.saturating_since(crashed_at) < Duration::from_secs(10), "never re-placed");
    }
    let (node, at) = back.unwrap();
    assert_ne!(node, dsp_a);
    let config = MembershipConfig::default();
    let waited = at.saturating_since(crashed_at);
    assert!(waited >= config.lease + config.clock_skew_max - Duration::from_millis(600), "{waited:?}");
    assert!(waited <= config.lease + config.clock_skew_max + 2 * TICK, "{waited:?}");
}

#[test]
fn partitions_and_crashes_never_leave_a_subtree_live_on_two_nodes() {
    // 1500 seeds passed when this was written (about a minute in release); CI runs the first 100.
    for seed in 0..100u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut net = Net::new();
        net.seed = seed;
        net.run_checking(Duration::from_secs(5));
        for _ in 0..4 {
            match rng.random_range(0..3) {
                0 => {
                    let k = rng.random_range(1..3);
                    let side: Vec<&str> = (0..k).map(|_| NODES[rng.random_range(0..5)].0).collect();
                    net.partition(&side);
                }
                1 => {
                    let victim = NODES[rng.random_range(0..5)].0;
                    net.crash(victim);
                }
                _ => {
                    let a = NODES[rng.random_range(0..5)].0;
                    let b = NODES[rng.random_range(0..5)].0;
                    net.cut.insert((a.to_string(), b.to_string()));
                }
            }
            net.run_checking(Duration::from_millis(rng.random_range(500..12_000)));
        }
        // Heal: cuts end, crashed nodes restart; within 60 s everything is hosted exactly once.
        net.cut.clear();
        let crashed: Vec<String> = net.down.iter().cloned().collect();
        for name in crashed {
            net.start(&name);
        }
        net.run_checking(Duration::from_secs(60));
        let hosts = net.hosts();
        assert_eq!(hosts.len(), 5, "seed {seed}: {hosts:?}");
    }
}

#[test]
fn a_moved_subtree_runs_at_its_new_node_and_a_target_lacking_a_tag_is_refused() {
    let mut net = Net::new();
    net.run_checking(Duration::from_secs(5));
    let from = net.hosts()[&p("/dsp-a")][0].clone();
    let to = ["inference-1", "inference-2", "inference-3"].into_iter().find(|n| *n != from).unwrap();
    let now = net.now;
    let refused = net.nodes.get_mut(&from).unwrap().begin_move(&p("/dsp-a"), "platform-1", now);
    assert_eq!(refused, Err("platform-1 cannot host /dsp-a: /dsp-a requires tier=inference".into()));
    net.nodes.get_mut(&from).unwrap().begin_move(&p("/dsp-a"), to, now).unwrap();
    net.run_checking(Duration::from_secs(2));
    assert_eq!(net.hosts()[&p("/dsp-a")], vec![to.to_string()]);
    assert_eq!((net.moves_done, net.moves_aborted), (1, 0));
    assert!(!net.nodes[&from].hosted().contains(&p("/dsp-a")), "the mover let go");
}

/// A cordoned (drained) node is told to every member: a crashed node's subtree goes to a
/// busier node rather than to it, and a move to it is refused until the cordon is lifted.
#[test]
fn a_cordoned_node_gets_nothing_new_until_uncordoned() {
    let mut net = Net::new();
    net.run_checking(Duration::from_secs(5));
    let hosts = net.hosts();
    let (a, b) = (hosts[&p("/dsp-a")][0].clone(), hosts[&p("/dsp-b")][0].clone());
    let idle =
        ["inference-1", "inference-2", "inference-3"].into_iter().find(|n| *n != a && *n != b).unwrap();
    net.nodes.get_mut(idle).unwrap().set_cordoned(true);
    net.run_checking(Duration::from_secs(1));
    assert!(net.nodes.values().all(|c| c.directory().is_cordoned(idle)), "every member heard it");
    net.crash(&a);
    net.run_checking(Duration::from_secs(10));
    assert_eq!(net.hosts()[&p("/dsp-a")], vec![b.clone()], "not to the idle cordoned node");
    let now = net.now;
    let refused = net.nodes.get_mut(&b).unwrap().begin_move(&p("/dsp-a"), idle, now);
    assert_eq!(refused, Err(format!("{idle} is cordoned (drained): uncordon it first")));
    net.nodes.get_mut(idle).unwrap().set_cordoned(false);
    net.run_checking(Duration::from_secs(1));
    let now = net.now;
    net.nodes.get_mut(&b).unwrap().begin_move(&p("/dsp-a"), idle, now).unwrap();
    net.run_checking(Duration::from_secs(2));
    assert_eq!(net.hosts()[&p("/dsp-a")], vec![idle.to_string()]);
}

#[test]
fn moves_during_partitions_and_crashes_never_leave_a_subtree_live_on_two_nodes() {
    let (mut done, mut aborted) = (0, 0);
    // 800 seeds passed when this was written; CI runs the first 100.
    for seed in 0..100u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut net = Net::new();
        net.seed = seed;
        net.run_checking(Duration::from_secs(5));
        for _ in 0..6 {
            match rng.random_range(0..4) {
                0 => {
                    let k = rng.random_range(1..3);
                    let side: Vec<&str> = (0..k).map(|_| NODES[rng.random_range(0..5)].0).collect();
                    net.partition(&side);
                }
                1 => net.crash(NODES[rng.random_range(0..5)].0),
                2 => {
                    let a = NODES[rng.random_range(0..5)].0;
                    let b = NODES[rng.random_range(0..5)].0;
                    net.cut.insert((a.to_string(), b.to_string()));
                }
                _ => {
                    // A move of whatever some node hosts, to any node: refusals are fine.
                    let (from, _) = NODES[rng.random_range(0..5)];
                    let (to, _) = NODES[rng.random_range(0..5)];
                    let now = net.now;
                    if let Some(c) = net.nodes.get_mut(from).filter(|_| !net.down.contains(from)) {
                        if let Some(root) = c.hosted().iter().next().cloned() {
                            let _ = c.begin_move(&root, to, now);
                        }
                    }
                }
            }
            net.run_checking(Duration::from_millis(rng.random_range(200..12_000)));
        }
        net.cut.clear();
        let crashed: Vec<String> = net.down.iter().cloned().collect();
        for name in crashed {
            net.start(&name);
        }
        // Moves time out after 30 s, then their subtrees are claimed again.
        net.run_checking(Duration::from_secs(90));
        let hosts = net.hosts();
        assert_eq!(hosts.len(), 5, "seed {seed}: {hosts:?}");
        done += net.moves_done;
        aborted += net.moves_aborted;
    }
    println!("{done} moves done, {aborted} taken back");
    // The sweep exercised both ends, not only refusals.
    assert!(done >= 20 && aborted >= 1, "{done} moves done, {aborted} taken back");
}
