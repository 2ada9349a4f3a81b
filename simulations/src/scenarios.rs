//! The named scenarios of `aiot sim`.
//!
//! - `membership`: five nodes under partitions, one-way cuts, crashes, clogs and resets.
//!   Invariant: a node without its lease hosts nothing. Liveness: every live node sees every
//!   other up.
//! - `failover`: the same faults on five nodes of three tiers running a topology spread by tags.
//!   Invariants: no subtree is live on two nodes; nothing runs on a node lacking a tag it
//!   requires. Liveness: membership agrees and every subtree that fits a node is hosted once.
//! - `request-reply`: a client actor on one node tells numbered pushes to a counter actor on
//!   another and asks it for its count, while connections reset (losing what was in flight)
//!   and clog. Invariant: the counter handles 0, 1, 2... each exactly once, in order, despite
//!   the retries. Liveness: every push the client sent is handled, every ask answered or timed
//!   out.
//! - `motes`: 100 motes (the firmware core fed by the motor physics) on a flaky simulated
//!   broker (QoS 1 duplicates, jitter, crashes), rebooting now and then, feeding the things
//!   tier (gateway on one of two things nodes, proxies, sink) of a three-node cluster under
//!   partitions, crashes, resets and clogs. Invariants: no frame processed twice (across mote
//!   reboots and proxy restarts too); no mote has more frames processed than it originated. Liveness: every
//!   mote's ring empties through end-to-end acknowledgements, and every frame a ring did not
//!   drop reached the sink.
//! - `migration` (`migration.rs`): a stateful counter and its client moved live between nodes
//!   under partitions, resets and crashes, also in the middle of moves.
//! - `failover-state` (`migration.rs`): the same with the counter checkpointed to two platform
//!   nodes: after a crash it starts elsewhere from its newest checkpoint.

use std::time::Duration;

use aiot_runtime::prelude::*;
use aiot_runtime::Supervisor;
use serde::{Deserialize, Serialize};

use crate::plant::Feed;
use crate::scenario::Scenario;
use crate::world::{NodeSpec, Probe, World};

mod migration;
pub use migration::Migration;

/// Every scenario, by name.
pub fn all() -> Vec<&'static dyn Scenario> {
    vec![
        &Membership,
        &Failover,
        &RequestReply,
        &Migration::MOVES,
        &Migration::FAILOVER_STATE,
        &Motes::PLANT,
        &Motes::BRIDGE,
        &Motes::OTA,
    ]
}

pub fn by_name(name: &str) -> Option<&'static dyn Scenario> {
    all().into_iter().find(|s| s.name() == name)
}

fn five_nodes() -> Vec<NodeSpec> {
    vec![
        NodeSpec::new("platform-1", "tier=platform"),
        NodeSpec::new("things-1", "tier=things"),
        NodeSpec::new("inference-1", "tier=inference"),
        NodeSpec::new("inference-2", "tier=inference,accel=gpu"),
        NodeSpec::new("inference-3", "tier=inference"),
    ]
}

fn membership_not_live(world: &World) -> String {
    let views: Vec<String> = world
        .node_names()
        .iter()
        .filter_map(|n| world.coordinator(n).map(|c| format!("{n} sees {:?}", c.members())))
        .collect();
    views.join("; ")
}

pub struct Membership;

impl Scenario for Membership {
    fn name(&self) -> &'static str {
        "membership"
    }
    fn about(&self) -> &'static str {
        "5 nodes under partitions, one-way cuts, crashes, clogs, resets; views agree after healing"
    }
    fn nodes(&self) -> Vec<NodeSpec> {
        five_nodes()
    }
    fn topology(&self, _probe: &Probe) -> Topology {
        Topology::builder().build().expect("an empty topology is valid")
    }
    fn invariant(&self, world: &World) -> Result<(), String> {
        for name in world.node_names() {
            if let Some(c) = world.coordinator(&name) {
                if !c.holds_lease() && !c.hosted().is_empty() {
                    return Err(format!("{name} hosts {:?} without its lease", c.hosted()));
                }
            }
        }
        Ok(())
    }
    fn live(&self, world: &World) -> bool {
        world.membership_agrees()
    }
    fn not_live(&self, world: &World) -> String {
        membership_not_live(world)
    }
}

pub struct Failover;

impl Failover {
    fn nodes_fitting_all(&self, world: &World) -> bool {
        let hosts = world.hosts();
        world.topology().roots().iter().all(|root| hosts.get(root.path()).is_some_and(|n| n.len() == 1))
    }
}

impl Scenario for Failover {
    fn name(&self) -> &'static str {
        "failover"
    }
    fn about(&self) -> &'static str {
        "a topology spread by tags on 5 nodes under crashes and partitions: never two live copies"
    }
    fn nodes(&self) -> Vec<NodeSpec> {
        five_nodes()
    }
    fn topology(&self, _probe: &Probe) -> Topology {
        let mut t = Topology::builder();
        t.actor("/gateway", |_| Supervisor).requires("tier=things");
        t.actor("/dsp-a", |_| Supervisor).requires("tier=inference");
        t.actor("/dsp-b", |_| Supervisor).requires("tier=inference");
        t.actor("/trainer", |_| Supervisor).requires("accel=* | tier=platform").prefers("accel=gpu");
        t.actor("/registry", |_| Supervisor).requires("tier=platform");
        t.actor("/anywhere", |_| Supervisor);
        t.build().expect("a valid topology")
    }
    fn invariant(&self, world: &World) -> Result<(), String> {
        for (root, nodes) in world.hosts() {
            if nodes.len() > 1 {
                return Err(format!("{root} is live on {nodes:?}"));
            }
            let spec = world.topology().get(&root).expect("hosted roots are declared");
            let requires = &spec.placement().requires;
            let node = &nodes[0];
            let tags = &five_nodes().into_iter().find(|n| n.name == *node).expect("a known node").tags;
            if !requires.is_none() && !requires.matches(tags) {
                return Err(format!("{root} runs on {node}, which lacks {requires}"));
            }
        }
        Ok(())
    }
    fn live(&self, world: &World) -> bool {
        world.membership_agrees() && self.nodes_fitting_all(world)
    }
    fn not_live(&self, world: &World) -> String {
        format!("hosts {:?}; {}", world.hosts(), membership_not_live(world))
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum CounterMsg {
    Push(u64),
    Get(ReplyTo<u64>),
}

/// Records every number it is pushed, in order, in the probe's `counter` sequence.
struct Counter {
    probe: Probe,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    fn handle(&mut self, msg: CounterMsg, ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Push(n) => {
                crate::world::probe(&self.probe).seqs.entry("counter").or_default().push(n)
            }
            CounterMsg::Get(reply) => {
                let len = crate::world::probe(&self.probe).seqs.get("counter").map_or(0, Vec::len);
                let _ = ctx.reply(&reply, len as u64);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientMsg {
    Tick,
    Answer(Result<u64, AskError>),
}

/// Every tick pushes the next number to the counter; every fifth also asks for the count.
struct Client {
    counter: ActorRef<CounterMsg>,
    next: u64,
    ticks: u64,
    probe: Probe,
}

const CLIENT_EVERY: Duration = Duration::from_millis(100);
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

impl Actor for Client {
    type Msg = ClientMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, ClientMsg>) -> Result<(), ActorError> {
        ctx.schedule_every(CLIENT_EVERY, ClientMsg::Tick);
        Ok(())
    }
    fn handle(&mut self, msg: ClientMsg, ctx: &mut Ctx<'_, ClientMsg>) -> Result<(), ActorError> {
        let count =
            |name: &'static str| *crate::world::probe(&self.probe).counts.entry(name).or_insert(0) += 1;
        match msg {
            ClientMsg::Tick => {
                if crate::world::probe(&self.probe).healed {
                    return Ok(()); // faults have stopped: no new work, the rest must land
                }
                self.ticks += 1;
                if ctx.send(&self.counter, CounterMsg::Push(self.next)).is_ok() {
                    self.next += 1;
                    count("sent");
                }
                if self.ticks.is_multiple_of(5)
                    && ctx.ask(&self.counter, CounterMsg::Get, ASK_TIMEOUT, ClientMsg::Answer).is_ok()
                {
                    count("asked");
                }
            }
            ClientMsg::Answer(Ok(_)) => count("answered"),
            ClientMsg::Answer(Err(_)) => count("timed out"),
        }
        Ok(())
    }
}

pub struct RequestReply;

impl Scenario for RequestReply {
    fn name(&self) -> &'static str {
        "request-reply"
    }
    fn about(&self) -> &'static str {
        "tells and asks between actors on two nodes across connection resets: exactly once, in order"
    }
    fn nodes(&self) -> Vec<NodeSpec> {
        vec![
            NodeSpec::new("platform-1", "tier=platform"),
            NodeSpec::new("things-1", "tier=things"),
            NodeSpec::new("inference-1", "tier=inference"),
        ]
    }
    fn topology(&self, probe: &Probe) -> Topology {
        let mut t = Topology::builder();
        let p = probe.clone();
        t.actor("/client", move |_| Client {
            counter: ActorRef::parse("/counter").expect("a path"),
            next: 0,
            ticks: 0,
            probe: p.clone(),
        })
        .requires("tier=things");
        let p = probe.clone();
        t.actor("/counter", move |_| Counter { probe: p.clone() }).requires("tier=inference");
        t.build().expect("a valid topology")
    }
    fn faults(&self) -> &'static [&'static str] {
        &["reset", "clog"]
    }
    fn invariant(&self, world: &World) -> Result<(), String> {
        let probe = crate::world::probe(world.probe());
        let seq = probe.seqs.get("counter").map_or(&[][..], Vec::as_slice);
        match seq.iter().enumerate().find(|(i, n)| **n != *i as u64) {
            Some((i, n)) => {
                Err(format!("the counter handled {n} as its message #{i} (lost, doubled or reordered)"))
            }
            None => Ok(()),
        }
    }
    fn live(&self, world: &World) -> bool {
        let probe = crate::world::probe(world.probe());
        let count = |name: &str| probe.counts.get(name).copied().unwrap_or(0);
        let handled = probe.seqs.get("counter").map_or(0, Vec::len) as u64;
        count("sent") > 0
            && handled == count("sent")
            && count("asked") == count("answered") + count("timed out")
    }
    fn not_live(&self, world: &World) -> String {
        let probe = crate::world::probe(world.probe());
        format!(
            "counts {:?}, counter handled {}",
            probe.counts,
            probe.seqs.get("counter").map_or(0, Vec::len)
        )
    }
}

/// Motes in the `motes` scenario.
pub const MOTES: u32 = 100;

/// The plant's motes feeding the things tier; `aiot sim` has the 100-mote one (`Motes::PLANT`),
/// the simulation benchmark also larger fleets. With `streams` (the `bridge` scenario), the
/// proxies feed the protocol bridge, which appends to a flaky simulated log that also crashes.
pub struct Motes {
    pub count: u32,
    pub feed: Feed,
}

impl Motes {
    pub const PLANT: Motes = Motes { count: MOTES, feed: Feed::Sink };
    pub const BRIDGE: Motes = Motes { count: MOTES, feed: Feed::Bridge };
    /// Rollouts take an hour of plant time: a smaller fleet.
    pub const OTA: Motes = Motes { count: 12, feed: Feed::Ota };
}

impl Scenario for Motes {
    fn name(&self) -> &'static str {
        match self.feed {
            Feed::Sink => "motes",
            Feed::Bridge => "bridge",
            Feed::Ota => "ota",
        }
    }
    fn about(&self) -> &'static str {
        match self.feed {
            Feed::Sink => "motes (100 here) on a flaky broker feed the things tier of a faulty cluster: each frame processed once, none lost beyond ring drops; wearing motors tripped by their motes by the rule",
            Feed::Bridge => "motes (100 here) through a faulty cluster's things tier and the protocol bridge into a flaky, crashing event log: every frame acknowledged to a mote is in the stream, each once after de-duplication, none lost beyond ring drops",
            Feed::Ota => "the bridge scenario with 12 motes and two signed OTA rollouts through it, canary first: a good model reaches every mote, a regression is rolled back from its canary cohort and reaches no other mote",
        }
    }
    fn nodes(&self) -> Vec<NodeSpec> {
        vec![
            NodeSpec::new("platform-1", "tier=platform"),
            NodeSpec::new("things-1", "tier=things"),
            NodeSpec::new("things-2", "tier=things"),
        ]
    }
    fn topology(&self, probe: &Probe) -> Topology {
        let mut t = Topology::builder();
        let shared = crate::world::probe(probe).things.clone();
        crate::plant::declare(&mut t, &crate::plant::fleet(self.count), &shared, self.feed);
        t.build().expect("the things topology is valid")
    }
    fn faults(&self) -> &'static [&'static str] {
        if self.feed.streams() {
            &["partition", "crash", "clog", "reset", "mote reboot", "broker crash", "log crash"]
        } else {
            &["partition", "crash", "clog", "reset", "mote reboot", "broker crash"]
        }
    }
    fn liveness_max(&self) -> Duration {
        match self.feed {
            // Rollouts run on the plant's time: transfers, a 10-minute canary, trials.
            Feed::Ota => Duration::from_secs(2 * 3600),
            _ => crate::scenario::LIVENESS_MAX,
        }
    }
    fn prepare(&self, world: &mut World) {
        let shared = crate::world::probe(world.probe()).things.clone();
        let plant = crate::plant::Plant::new(
            world.seed_for("plant"),
            crate::plant::fleet(self.count),
            shared,
            self.feed,
        );
        world.attach_plant(plant);
    }
    fn invariant(&self, world: &World) -> Result<(), String> {
        world.plant().map_or(Ok(()), |p| p.check())
    }
    fn live(&self, world: &World) -> bool {
        world.membership_agrees() && world.plant().is_some_and(|p| p.settled().is_ok())
    }
    fn not_live(&self, world: &World) -> String {
        match world.plant().map(|p| p.settled()) {
            Some(Err(why)) => why,
            _ => format!("membership agrees: {}", world.membership_agrees()),
        }
    }
}
