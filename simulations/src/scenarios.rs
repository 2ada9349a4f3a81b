//! The named scenarios of `aiot sim`.
//!
//! - `membership`: five nodes under partitions, one-way cuts, crashes, clogs and resets.
//!   Invariant: a node without its lease hosts nothing. Liveness: every live node sees every
//!   other up.
//! - `failover`: the same faults on five nodes of three tiers running a topology spread by tags.
//!   Invariants: no subtree is live on two nodes; nothing runs on a node lacking a tag it
//!   requires. Liveness: membership agrees and every subtree that fits a node is hosted once.

use aiot_runtime::{Supervisor, Topology};

use crate::scenario::Scenario;
use crate::world::{NodeSpec, World};

/// Every scenario, by name.
pub fn all() -> Vec<&'static dyn Scenario> {
    vec![&Membership, &Failover]
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
    fn topology(&self) -> Topology {
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
    fn topology(&self) -> Topology {
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
