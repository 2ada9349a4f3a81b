//! Placement by capability tags, as a pure decision (BLUEPRINT sections 4 and 10).
//!
//! The unit of placement is a top-level subtree of the topology: a supervisor and its children
//! live on one node, so supervision never crosses the network. A subtree may go to a node that
//! is up and meets every requirement declared inside it (any-of lists of all-of tag sets); among
//! those, nodes meeting the subtree root's preference come first, then the least loaded (actors
//! already placed there), then the lowest name; a cordoned node gets nothing new. The same
//! inputs always give the same plan.
//! Placement is sticky: subtrees already hosted (the directory) stay where they are.
//!
//! Tags here are the CA-attested ones (`identity::read_identity`); a node's own claims never
//! reach this module.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aiot_runtime::spec::Spec;
use aiot_runtime::{ActorPath, Requirement, Topology};

/// A node as the placer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// CA-attested capability tags.
    pub tags: BTreeMap<String, String>,
    pub up: bool,
    /// Drained by an operator: it keeps what it holds, and gets nothing new.
    pub cordoned: bool,
}

/// Why a subtree could not be placed (it is placed once a fitting node joins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    pub root: ActorPath,
    /// Every requirement in the subtree, by actor path.
    pub requires: Vec<(ActorPath, Requirement)>,
}

impl fmt::Display for Unplaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no node that is up can host {}: it needs", self.root)?;
        for (i, (path, req)) in self.requires.iter().enumerate() {
            write!(f, "{} {path}: {req}", if i == 0 { "" } else { ";" })?;
        }
        Ok(())
    }
}

/// Where every top-level subtree goes, and which could not go anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Subtree root -> node name.
    pub placed: BTreeMap<ActorPath, String>,
    pub unplaced: Vec<Unplaced>,
}

impl Plan {
    /// The node hosting `path` (an actor inside a placed subtree goes with its root).
    pub fn node_of(&self, path: &ActorPath) -> Option<&str> {
        crate::directory::subtree_entry(&self.placed, path).map(String::as_str)
    }
}

/// Every requirement declared in the subtree under `spec` (itself included).
pub fn requirements(spec: &Arc<Spec>, out: &mut Vec<(ActorPath, Requirement)>) {
    let requires = &spec.placement().requires;
    if !requires.is_none() {
        out.push((spec.path().clone(), requires.clone()));
    }
    for child in spec.children() {
        requirements(child, out);
    }
}

/// Actors in the subtree under `spec` (itself included).
pub fn subtree_len(spec: &Arc<Spec>) -> usize {
    1 + spec.children().iter().map(subtree_len).sum::<usize>()
}

/// Places every top-level subtree of `topology` on `nodes`. Subtrees in `held` (root -> node)
/// stay where they are (placement is sticky: a node joining moves nothing) and count towards
/// their node's load; the rest go to the best fitting node.
pub fn plan(topology: &Topology, nodes: &[NodeView], held: &BTreeMap<ActorPath, String>) -> Plan {
    let mut load: BTreeMap<&str, usize> = nodes.iter().map(|n| (n.name.as_str(), 0)).collect();
    let mut plan = Plan::default();
    for root in topology.roots() {
        if let Some(node) = held.get(root.path()) {
            if let Some(l) = load.get_mut(node.as_str()) {
                *l += subtree_len(root);
            }
            plan.placed.insert(root.path().clone(), node.clone());
        }
    }
    for root in topology.roots().iter().filter(|r| !held.contains_key(r.path())) {
        let mut requires = Vec::new();
        requirements(root, &mut requires);
        let prefers = &root.placement().prefers;
        // Sort key: preferred first (`false` sorts first), then least loaded, then by name.
        let not_preferred = |n: &NodeView| prefers.is_none() || !prefers.matches(&n.tags);
        let fits = |n: &&NodeView| n.up && !n.cordoned && requires.iter().all(|(_, r)| r.matches(&n.tags));
        let best =
            nodes.iter().filter(fits).min_by_key(|n| (not_preferred(n), load[n.name.as_str()], &n.name));
        match best {
            Some(node) => {
                *load.get_mut(node.name.as_str()).expect("every node has a load") += subtree_len(root);
                plan.placed.insert(root.path().clone(), node.name.clone());
            }
            None => plan.unplaced.push(Unplaced { root: root.path().clone(), requires }),
        }
    }
    plan
}
