//! Placement: requirements are never violated, preference then load then name decide, a
//! subtree that fits nowhere is reported and placed once a fitting node appears.

use std::collections::BTreeMap;

use aiot_cluster::placement::{plan, NodeView};
use aiot_runtime::{ActorPath, Supervisor, Topology};
use rand::{Rng, SeedableRng};

fn node(name: &str, tags: &str, up: bool) -> NodeView {
    let tags = tags
        .split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap())
        .collect();
    NodeView { name: name.to_string(), tags, up, cordoned: false }
}

fn path(p: &str) -> ActorPath {
    ActorPath::parse(p).unwrap()
}

fn cluster() -> Vec<NodeView> {
    vec![
        node("things-1", "tier=things", true),
        node("inference-1", "tier=inference", true),
        node("inference-2", "tier=inference,accel=gpu", true),
        node("platform-1", "tier=platform", true),
    ]
}

/// A cordoned (drained) node keeps what it holds and gets nothing new, even when it is the
/// least loaded; with every fitting node cordoned, a subtree is unplaced.
#[test]
fn a_cordoned_node_keeps_what_it_holds_and_gets_nothing_new() {
    let mut t = Topology::builder();
    t.actor("/dsp-a", |_| Supervisor).requires("tier=inference");
    t.actor("/dsp-b", |_| Supervisor).requires("tier=inference");
    t.actor("/dsp-c", |_| Supervisor).requires("tier=inference");
    let topology = t.build().unwrap();
    let mut nodes = cluster();
    nodes[1].cordoned = true; // inference-1
    let held = BTreeMap::from([(path("/dsp-a"), "inference-1".to_string())]);
    let p = plan(&topology, &nodes, &held);
    assert_eq!(p.placed[&path("/dsp-a")], "inference-1", "it keeps what it holds");
    assert_eq!(p.placed[&path("/dsp-b")], "inference-2");
    assert_eq!(p.placed[&path("/dsp-c")], "inference-2", "not to the less loaded cordoned node");
    nodes[2].cordoned = true;
    let p = plan(&topology, &nodes, &held);
    assert_eq!(p.unplaced.len(), 2, "{p:?}");
}

#[test]
fn requirements_preferences_load_and_names_decide() {
    let mut t = Topology::builder();
    t.actor("/trainer", |_| Supervisor).requires("accel=* | tier=platform").prefers("accel=gpu");
    t.actor("/dsp-a", |_| Supervisor).requires("tier=inference");
    t.actor("/dsp-b", |_| Supervisor).requires("tier=inference");
    t.actor("/gateway", |_| Supervisor).requires("tier=things");
    let p = plan(&t.build().unwrap(), &cluster(), &BTreeMap::new());
    assert!(p.unplaced.is_empty());
    assert_eq!(p.placed[&path("/trainer")], "inference-2", "the preference (a GPU) wins");
    // inference-2 carries the trainer already: the least loaded inference node takes dsp-a,
    // then the tie between the two is broken by name.
    assert_eq!(p.placed[&path("/dsp-a")], "inference-1");
    assert_eq!(p.placed[&path("/dsp-b")], "inference-1", "1 actor each: tie broken by name");
    assert_eq!(p.placed[&path("/gateway")], "things-1");
}

#[test]
fn a_subtree_fitting_nowhere_is_reported_and_placed_when_a_fitting_node_joins() {
    let mut t = Topology::builder();
    t.supervisor("/plant", Default::default()).requires("tier=inference");
    t.actor("/plant/probe", |_| Supervisor).requires("mem=8g");
    let topology = t.build().unwrap();
    let p = plan(&topology, &cluster(), &BTreeMap::new());
    assert!(p.placed.is_empty());
    let why = p.unplaced[0].to_string();
    assert_eq!(
        why,
        "no node that is up can host /plant: it needs /plant: tier=inference; /plant/probe: mem=8g"
    );
    let mut nodes = cluster();
    nodes.push(node("inference-3", "tier=inference,mem=8g", true));
    let p = plan(&topology, &nodes, &BTreeMap::new());
    assert_eq!(p.node_of(&path("/plant/probe")), Some("inference-3"));
}

#[test]
fn nodes_that_are_down_get_nothing() {
    let mut t = Topology::builder();
    t.actor("/a", |_| Supervisor).requires("tier=inference");
    let mut nodes = cluster();
    nodes[1].up = false;
    let p = plan(&t.build().unwrap(), &nodes, &BTreeMap::new());
    assert_eq!(p.placed[&path("/a")], "inference-2");
}

#[test]
fn random_topologies_never_land_on_a_node_lacking_a_required_tag_and_plans_repeat() {
    let keys = ["tier", "accel", "mem"];
    let values = ["a", "b", "c"];
    for seed in 0..300u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut nodes = Vec::new();
        for i in 0..rng.random_range(1..6) {
            let mut tags = BTreeMap::new();
            for key in keys {
                if rng.random_bool(0.6) {
                    tags.insert(key.to_string(), values[rng.random_range(0..3)].to_string());
                }
            }
            nodes.push(NodeView { name: format!("n{i}"), tags, up: rng.random_bool(0.8), cordoned: false });
        }
        let mut t = Topology::builder();
        let mut wanted = Vec::new();
        for a in 0..rng.random_range(1..8) {
            let key = keys[rng.random_range(0..3)];
            let value = if rng.random_bool(0.3) { "*" } else { values[rng.random_range(0..3)] };
            let req = format!("{key}={value}");
            t.actor(&format!("/a{a}"), |_| Supervisor).requires(&req);
            wanted.push((format!("/a{a}"), aiot_runtime::Requirement::parse(&req).unwrap()));
        }
        let topology = t.build().unwrap();
        let p = plan(&topology, &nodes, &BTreeMap::new());
        assert_eq!(
            p,
            plan(&topology, &nodes, &BTreeMap::new()),
            "seed {seed}: the same inputs give the same plan"
        );
        for (actor, req) in wanted {
            let eligible: Vec<&NodeView> = nodes.iter().filter(|n| n.up && req.matches(&n.tags)).collect();
            match p.placed.get(&path(&actor)) {
                Some(name) => {
                    let n = nodes.iter().find(|n| &n.name == name).unwrap();
                    assert!(n.up && req.matches(&n.tags), "seed {seed}: {actor} on {name} violates {req}");
                }
                None => assert!(
                    eligible.is_empty(),
                    "seed {seed}: {actor} unplaced but {} node(s) fit",
                    eligible.len()
                ),
            }
        }
    }
}

#[test]
fn placement_is_sticky_a_joining_node_moves_nothing() {
    let mut t = Topology::builder();
    t.actor("/dsp-a", |_| Supervisor).requires("tier=inference");
    t.actor("/dsp-b", |_| Supervisor).requires("tier=inference");
    let topology = t.build().unwrap();
    let one = vec![node("inference-2", "tier=inference", true)];
    let first = plan(&topology, &one, &BTreeMap::new());
    assert_eq!(first.placed.values().filter(|n| *n == "inference-2").count(), 2);
    // inference-1 joins (it sorts first and is empty): both subtrees stay where they are held.
    let two = vec![node("inference-1", "tier=inference", true), one[0].clone()];
    let again = plan(&topology, &two, &first.placed);
    assert_eq!(again.placed, first.placed);
    // Without the holding, the empty node would have taken one.
    let fresh = plan(&topology, &two, &BTreeMap::new());
    assert_eq!(fresh.placed[&path("/dsp-a")], "inference-1");
    // A subtree no longer held (its node's lease ran out) goes to the best fitting node.
    let mut held = first.placed.clone();
    held.remove(&path("/dsp-b"));
    let replaced = plan(&topology, &two, &held);
    assert_eq!(replaced.placed[&path("/dsp-b")], "inference-1");
}
