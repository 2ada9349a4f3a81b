//! The simulated world: a virtual clock, the cluster's coordinators (membership, leases,
//! directory, placement: the same code a real node runs) on simulated nodes, the simulated
//! network between them, crashes, restarts, and clocks with their own offset and drift. One seed decides everything; the
//! trace hash covers every delivery (virtual time, sender, receiver, encoded message).

use std::collections::BTreeMap;
use std::time::Duration;

use aiot_cluster::checkpoints::KeptCheckpoint;
use aiot_cluster::control::ControlMsg;
use aiot_cluster::coordinator::{Coordinator, Output};
use aiot_cluster::membership::{MemberInfo, MembershipConfig, Status};
use aiot_runtime::{ActorPath, Instant, Topology};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::Xxh3;

use crate::actors::NodeActors;
use crate::checkpoints::{self, NodeCheckpoints};
use crate::net::{Payload, SimNet};
use crate::plant::Plant;

/// What a scenario's actors report to its checks (shared with the actors' factories).
pub type Probe = std::sync::Arc<std::sync::Mutex<ProbeData>>;

#[derive(Debug, Default)]
pub struct ProbeData {
    /// Named counts (messages sent, asks answered...).
    pub counts: BTreeMap<&'static str, u64>,
    /// Named sequences (numbers in the order an actor handled them).
    pub seqs: BTreeMap<&'static str, Vec<u64>>,
    /// Set when faults stop: workload actors stop making new work.
    pub healed: bool,
    /// The things tier's counters, for scenarios with a plant.
    pub things: crate::plant::ThingsShared,
}

/// Locks a probe (a panicking actor cannot leave it unusable for the checks).
pub fn probe(p: &Probe) -> std::sync::MutexGuard<'_, ProbeData> {
    p.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How often every node's coordinator runs (a real node's tick).
pub const TICK: Duration = Duration::from_millis(100);
/// The largest offset between two nodes' clocks.
pub const CLOCK_OFFSET_MAX: Duration = Duration::from_secs(3600);
/// The largest clock drift a node gets, in parts per million (2%: well inside what the lease's
/// `clock_skew_max` of 500 ms over 5 s tolerates).
pub const DRIFT_PPM_MAX: i64 = 20_000;

/// A node of the world: its name and CA-attested tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

impl NodeSpec {
    /// `name` with tags such as `"tier=inference,accel=gpu"`.
    pub fn new(name: &str, tags: &str) -> Self {
        let tags = tags
            .split(',')
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        NodeSpec { name: name.to_string(), tags }
    }
}

struct SimNode {
    spec: NodeSpec,
    incarnation: u64,
    drift_ppm: i64,
    /// Where this node's clock stood when the world's read zero (nodes never agree on the time
    /// of day; the cluster only ever compares a node's readings with its own).
    offset: Duration,
    /// `None` while crashed (everything not persisted is lost).
    coordinator: Option<Coordinator>,
    actors: Option<NodeActors>,
    /// What a platform node kept of checkpoints on its disk: a crash does not lose it.
    disk: Vec<KeptCheckpoint>,
}

/// Counts for the run's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages delivered.
    pub events: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    pub invariants_checked: u64,
    /// Live moves of subtrees that completed, and that were taken back.
    pub moves_done: u64,
    pub moves_aborted: u64,
    /// Peers a node let go (declared down): what its lanes still held for them was lost.
    pub releases: u64,
    /// Checkpoints gathered, and those that could not be.
    pub checkpoints: u64,
    pub checkpoints_failed: u64,
    /// Subtrees started from a checkpoint (failover with state).
    pub restores: u64,
    /// Fences that fell before their earlier frames were acknowledged (`relay::Fences`): order
    /// across those moves is not guaranteed.
    pub fences_given_up: u64,
}

pub struct World {
    now: Instant,
    nodes: BTreeMap<String, SimNode>,
    net: SimNet,
    /// The network's choices (latency jitter).
    net_rng: ChaCha8Rng,
    topology: Topology,
    pub stats: Stats,
    hash: Xxh3,
    broken_claims: bool,
    broken_moves: Option<crate::moves::BrokenMoves>,
    /// Seeds each node's actor system (with its name and incarnation).
    actor_seed: u64,
    probe: Probe,
    /// Motes and their broker, when the scenario has them.
    plant: Option<Plant>,
}

impl World {
    /// `nodes` all start at time zero, each listing every other as a seed (so a restarted node
    /// that has heard from no one never counts itself a majority); each draws its clock drift
    /// from its own stream forked from `rng`.
    pub fn new(rng: &mut ChaCha8Rng, nodes: &[NodeSpec], topology: Topology, probe: Probe) -> World {
        let mut world = World {
            now: Instant::ZERO,
            nodes: BTreeMap::new(),
            net: SimNet::default(),
            net_rng: ChaCha8Rng::seed_from_u64(rng.random()),
            topology,
            stats: Stats::default(),
            hash: Xxh3::new(),
            broken_claims: false,
            broken_moves: None,
            actor_seed: rng.random(),
            probe,
            plant: None,
        };
        for spec in nodes {
            let drift_ppm = rng.random_range(-DRIFT_PPM_MAX..=DRIFT_PPM_MAX);
            let offset = Duration::from_millis(rng.random_range(0..=CLOCK_OFFSET_MAX.as_millis() as u64));
            let node = SimNode {
                spec: spec.clone(),
                incarnation: 0,
                drift_ppm,
                offset,
                coordinator: None,
                actors: None,
                disk: Vec::new(),
            };
            world.nodes.insert(spec.name.clone(), node);
        }
        // Started once all are known, so each lists all the others as seeds.
        for spec in nodes {
            world.restart(&spec.name);
        }
        world
    }

    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn is_live(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|n| n.coordinator.is_some())
    }

    pub fn coordinator(&self, name: &str) -> Option<&Coordinator> {
        self.nodes.get(name)?.coordinator.as_ref()
    }

    /// A node's own clock: the world's, drifted, from its own offset.
    fn node_now(&self, name: &str) -> Instant {
        let (drift, offset) = self.nodes.get(name).map_or((0, Duration::ZERO), |n| (n.drift_ppm, n.offset));
        let ns = self.now.as_nanos() as i128;
        let drifted = (ns + ns * i128::from(drift) / 1_000_000).max(0) as u64;
        Instant::from_nanos(drifted) + offset
    }

    /// Crashes a node: its coordinator and everything it held in memory are gone, and its
    /// connections break.
    pub fn crash(&mut self, name: &str) {
        if let Some(node) = self.nodes.get_mut(name) {
            node.coordinator = None;
            // A keeper writes each checkpoint to its disk as it keeps it: what it kept stays.
            if let Some(actors) = node.actors.take() {
                node.disk = actors.checkpoints.disk();
            }
        }
        for other in self.node_names() {
            self.net.break_connection(name, &other);
        }
    }

    /// Starts a node (again) with a higher incarnation.
    pub fn restart(&mut self, name: &str) {
        let now = self.node_now(name);
        let seeds: Vec<String> = self.nodes.keys().filter(|n| *n != name).cloned().collect();
        let topology = self.topology.clone();
        let (actor_seed, broken_claims, broken_moves) =
            (self.actor_seed, self.broken_claims, self.broken_moves);
        let Some(node) = self.nodes.get_mut(name) else { return };
        node.incarnation += 1;
        let name_hash = name
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let mut actors = NodeActors::new(name, actor_seed ^ name_hash ^ node.incarnation);
        actors.break_moves(broken_moves);
        let keeper = checkpoints::keeps_checkpoints(&node.spec.tags);
        actors.checkpoints = NodeCheckpoints::new(keeper, node.disk.clone());
        node.actors = Some(actors);
        let me = MemberInfo {
            name: name.to_string(),
            incarnation: node.incarnation,
            status: Status::Up,
            tags: node.spec.tags.clone(),
            addr: format!("sim://{name}"),
        };
        if let (Some(plant), Some(actors)) = (&self.plant, node.actors.as_mut()) {
            plant.install(name, node.spec.tags.get("tier").map_or("", String::as_str), &mut actors.system);
        }
        let mut coordinator = Coordinator::new(me, seeds, MembershipConfig::default(), topology, now);
        if broken_claims {
            coordinator.break_claims();
        }
        node.coordinator = Some(coordinator);
    }

    /// Breaks every node's moves on purpose, now and after restarts: for tests proving the
    /// invariants catch such a bug.
    #[doc(hidden)]
    pub fn break_moves(&mut self, how: crate::moves::BrokenMoves) {
        self.broken_moves = Some(how);
        for node in self.nodes.values_mut() {
            if let Some(actors) = node.actors.as_mut() {
                actors.break_moves(Some(how));
            }
        }
    }

    /// Breaks every node's coordinator on purpose (`Coordinator::break_claims`), now and after
    /// restarts: for tests proving the invariants catch such a bug.
    #[doc(hidden)]
    pub fn break_claims(&mut self) {
        self.broken_claims = true;
        for node in self.nodes.values_mut() {
            if let Some(c) = node.coordinator.as_mut() {
                c.break_claims();
            }
        }
    }

    pub fn net(&mut self) -> &mut SimNet {
        &mut self.net
    }

    /// A seed for a part of the world (`what` names it), derived from the run's seed.
    pub fn seed_for(&self, what: &str) -> u64 {
        what.bytes().fold(self.actor_seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
    }

    /// Adds motes and their broker (and perhaps streams); nodes install the plant's ports (now
    /// and at every restart: `Plant::install`).
    pub fn attach_plant(&mut self, plant: Plant) {
        for (name, node) in self.nodes.iter_mut() {
            if let Some(actors) = node.actors.as_mut() {
                plant.install(
                    name,
                    node.spec.tags.get("tier").map_or("", String::as_str),
                    &mut actors.system,
                );
            }
        }
        self.plant = Some(plant);
    }

    pub fn plant(&self) -> Option<&Plant> {
        self.plant.as_ref()
    }

    pub fn plant_mut(&mut self) -> Option<&mut Plant> {
        self.plant.as_mut()
    }

    /// One tick: every live node's coordinator runs (in name order), then every message due
    /// is delivered in arrival order (and what handling it sends goes on the network), then
    /// every node's actors run for the tick and their lanes' frames go out.
    pub fn tick(&mut self) {
        self.now = self.now + TICK;
        for name in self.node_names() {
            let now = self.node_now(&name);
            if let Some(c) = self.nodes.get_mut(&name).and_then(|n| n.coordinator.as_mut()) {
                c.handle_timeout(now);
            }
            self.flush(&name);
        }
        while let Some((at, packet)) = self.net.deliver(self.now) {
            self.stats.events += 1;
            self.hash.update(&at.as_nanos().to_le_bytes());
            self.hash.update(packet.from.as_bytes());
            self.hash.update(packet.to.as_bytes());
            let encoded = bincode::serde::encode_to_vec(&packet.msg, bincode::config::standard());
            self.hash.update(&encoded.unwrap_or_default());
            let now = self.node_now(&packet.to);
            let Some(node) = self.nodes.get_mut(&packet.to) else { continue };
            let (Some(c), Some(actors)) = (node.coordinator.as_mut(), node.actors.as_mut()) else { continue };
            match packet.msg {
                Payload::Control(ControlMsg::Ack { incarnation, lane, seq }) => {
                    if incarnation == node.incarnation {
                        actors.ack(&packet.from, lane, seq);
                    }
                }
                Payload::Control(msg) if msg.is_checkpoint() => {
                    for (to, answer) in actors.checkpoints.handle(&packet.from, msg, &self.topology) {
                        self.net.send(&packet.to, &to, Payload::Control(answer), self.now, &mut self.net_rng);
                    }
                }
                Payload::Control(msg) => {
                    c.handle_control(&packet.from, msg, now);
                    self.flush(&packet.to);
                }
                Payload::Lane { incarnation, lane, bytes } => {
                    let refused = actors.receive(&packet.from, incarnation, lane, &bytes).is_err();
                    let arrived = actors.take_arrived();
                    let any_arrived = !arrived.is_empty();
                    for (from, handoff) in arrived {
                        if c.handoff_arrived(&handoff.root, &from, now) {
                            actors.accept_handoff(handoff);
                        }
                    }
                    if refused {
                        self.count_fault("refused frame");
                    }
                    if any_arrived {
                        self.flush(&packet.to);
                        if let Some(actors) = self.nodes.get_mut(&packet.to).and_then(|n| n.actors.as_mut()) {
                            actors.deliver_backlog();
                        }
                    }
                }
            }
        }
        for name in self.node_names() {
            self.run_actors(&name);
        }
        if let Some(plant) = self.plant.as_mut() {
            plant.step(self.now);
        }
    }

    /// Runs a node's actors for a tick; their lane frames and acknowledgements go out.
    fn run_actors(&mut self, name: &str) {
        let Some(node) = self.nodes.get_mut(name) else { return };
        let incarnation = node.incarnation;
        let Some(actors) = node.actors.as_mut() else { return };
        actors.run(TICK);
        let failed = actors.progress_moves(&self.topology);
        if !failed.is_empty() {
            if let Some(c) = node.coordinator.as_mut() {
                failed.iter().for_each(|(root, why)| c.abort_move(root, why));
            }
            self.flush(name);
        }
        self.run_checkpoints(name);
        let Some(actors) = self.nodes.get_mut(name).and_then(|n| n.actors.as_mut()) else { return };
        self.stats.fences_given_up += actors.take_fences_given_up();
        self.hash.update(&actors.system.trace_hash().to_le_bytes());
        let net = &self.net;
        let outgoing = actors.outgoing(|peer| net.epoch(name, peer));
        let acks = actors.acks();
        for (peer, lane, bytes) in outgoing {
            self.net.send(
                name,
                &peer,
                Payload::Lane { incarnation, lane, bytes },
                self.now,
                &mut self.net_rng,
            );
        }
        for (peer, their_incarnation, lane, seq) in acks {
            let ack = Payload::Control(ControlMsg::Ack { incarnation: their_incarnation, lane, seq });
            self.net.send(name, &peer, ack, self.now, &mut self.net_rng);
        }
    }

    /// A node's checkpoints for this tick: those due are gathered and sent to the keepers,
    /// and subtrees whose fetch is over start (from the newest checkpoint answered).
    fn run_checkpoints(&mut self, name: &str) {
        let Some(node) = self.nodes.get_mut(name) else { return };
        let (Some(c), Some(actors)) = (node.coordinator.as_mut(), node.actors.as_mut()) else { return };
        let hosted = checkpoints::checkpointed(c, &self.topology);
        let keepers = checkpoints::keepers(c, name);
        let now = actors.system.now();
        let gathered = actors.checkpoints.tick(&hosted, &keepers, now, &actors.system);
        self.stats.checkpoints += gathered.taken;
        self.stats.checkpoints_failed += gathered.failed;
        let mut start_failed = false;
        for (root, started, generation) in
            actors.start_fetched(&self.topology, |root| c.hosted().contains(root))
        {
            if !started {
                c.start_failed(&root);
                start_failed = true;
            } else if generation > 0 {
                self.stats.restores += 1;
            }
        }
        let again = actors.checkpoints.ask_again(now);
        for (to, msg) in gathered.sends.into_iter().chain(again) {
            self.net.send(name, &to, Payload::Control(msg), self.now, &mut self.net_rng);
        }
        if start_failed {
            self.flush(name);
        }
    }

    /// Carries out a node's coordinator outputs: messages go on the network, subtrees start
    /// and stop in its actor system, its lanes learn the directory and released peers.
    fn flush(&mut self, name: &str) {
        let Some(node) = self.nodes.get_mut(name) else { return };
        let (Some(c), Some(actors)) = (node.coordinator.as_mut(), node.actors.as_mut()) else { return };
        let mut sends: Vec<(String, ControlMsg)> = Vec::new();
        while let Some(output) = c.poll_output() {
            match output {
                Output::Send { to, msg, .. } => sends.push((to, msg)),
                Output::Start(root) => {
                    let Some(spec) = self.topology.get(&root) else {
                        c.start_failed(&root);
                        continue;
                    };
                    match actors.start_moved_in(spec) {
                        Some(true) => c.moved_in(&root),
                        Some(false) => c.start_failed(&root),
                        None if spec.checkpoint_every().is_some() => {
                            sends.extend(actors.fetch_checkpoint(&root, checkpoints::keepers(c, name)));
                        }
                        None if actors.system.start_subtrees(std::slice::from_ref(spec)).is_ok() => {}
                        None => c.start_failed(&root),
                    }
                }
                Output::Stop { root, .. } => {
                    actors.system.stop_subtree(&root);
                }
                Output::DirectoryChanged => actors.set_directory(c.directory().clone()),
                Output::Released(peer) => {
                    actors.release(&peer);
                    self.stats.releases += 1;
                }
                Output::Note(_) => {}
                Output::MoveOut { root, to } => {
                    if let Err(why) = actors.move_out(&root, &to) {
                        c.abort_move(&root, &why);
                    }
                }
                Output::MoveDone { root, to } => {
                    actors.move_done(&root, &to);
                    self.stats.moves_done += 1;
                }
                Output::MoveAborted { root, reclaim, .. } => {
                    actors.move_aborted(&root, reclaim, &self.topology);
                    self.stats.moves_aborted += 1;
                }
                Output::MoveInDropped { root } => actors.move_in_dropped(&root),
            }
        }
        for (to, msg) in sends {
            self.net.send(name, &to, Payload::Control(msg), self.now, &mut self.net_rng);
        }
    }

    /// What the scenario's actors report.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Subtree root -> the live nodes hosting it.
    pub fn hosts(&self) -> BTreeMap<ActorPath, Vec<String>> {
        let mut hosts: BTreeMap<ActorPath, Vec<String>> = BTreeMap::new();
        for (name, node) in &self.nodes {
            for root in node.coordinator.iter().flat_map(|c| c.hosted()) {
                hosts.entry(root.clone()).or_default().push(name.clone());
            }
        }
        hosts
    }

    /// The live nodes on which an actor at `path` runs (a live copy).
    pub fn running(&self, path: &ActorPath) -> Vec<String> {
        let runs = |n: &SimNode| n.actors.as_ref().is_some_and(|a| a.runs(path));
        self.nodes.iter().filter(|(_, n)| runs(n)).map(|(name, _)| name.clone()).collect()
    }

    /// Asks `from`'s coordinator to move the subtree at `root` to `to` live (with its state);
    /// an error says why it will not.
    pub fn begin_move(&mut self, from: &str, root: &ActorPath, to: &str) -> Result<(), String> {
        let now = self.node_now(from);
        let c = self.nodes.get_mut(from).and_then(|n| n.coordinator.as_mut()).ok_or("not running")?;
        c.begin_move(root, to, now)?;
        self.flush(from);
        Ok(())
    }

    /// Whether every live node sees every other live node up (and the crashed ones not up).
    pub fn membership_agrees(&self) -> bool {
        self.nodes.iter().filter_map(|(name, n)| n.coordinator.as_ref().map(|c| (name, c))).all(
            |(name, c)| {
                let view = c.members();
                self.nodes
                    .keys()
                    .filter(|o| *o != name)
                    .all(|o| (view.get(o) == Some(&Status::Up)) == self.is_live(o))
            },
        )
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The hash of every delivery so far.
    pub fn trace_hash(&self) -> u64 {
        self.hash.digest()
    }

    pub fn count_fault(&mut self, kind: &'static str) {
        *self.stats.faults.entry(kind).or_insert(0) += 1;
    }
}
