//! Which moves `drain` and `rebalance` make, decided from the cluster's answers (pure, so it
//! is tested without a cluster). A node's load is the number of actors in the subtrees it
//! hosts; a subtree may go only to a node that is up, not cordoned, and fits its requirements
//! (`place`'s answer says which).

use std::collections::{BTreeMap, BTreeSet};

use aiot_cluster::admin::{NodeRow, SubtreeRow};
use aiot_cluster::membership::Status;

/// A move to make: the subtree and the node it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub root: String,
    pub from: String,
    pub to: String,
}

/// Actors hosted per node that is up.
fn loads(place: &[SubtreeRow], nodes: &[NodeRow]) -> BTreeMap<String, usize> {
    let mut loads: BTreeMap<String, usize> =
        nodes.iter().filter(|n| n.status == Status::Up).map(|n| (n.name.clone(), 0)).collect();
    for subtree in place {
        if let Some(load) = subtree.node.as_ref().and_then(|n| loads.get_mut(n)) {
            *load += subtree.actors;
        }
    }
    loads
}

/// The nodes a subtree may move to: up and not cordoned.
fn targets(nodes: &[NodeRow]) -> BTreeSet<&str> {
    nodes.iter().filter(|n| n.status == Status::Up && !n.cordoned).map(|n| n.name.as_str()).collect()
}

/// Moves every subtree off `node`, each to the least loaded other node that fits (then by
/// name); subtrees that fit nowhere else are reported.
pub fn drain(place: &[SubtreeRow], nodes: &[NodeRow], node: &str) -> (Vec<Planned>, Vec<String>) {
    let mut loads = loads(place, nodes);
    loads.remove(node);
    let targets = targets(nodes);
    let (mut moves, mut stuck) = (Vec::new(), Vec::new());
    for subtree in place.iter().filter(|s| s.node.as_deref() == Some(node)) {
        let target = subtree
            .fits
            .iter()
            .filter(|n| loads.contains_key(*n) && targets.contains(n.as_str()))
            .min_by_key(|n| (loads[*n], (*n).clone()));
        match target {
            Some(to) => {
                *loads.get_mut(to).expect("a node that is up") += subtree.actors;
                moves.push(Planned { root: subtree.root.clone(), from: node.into(), to: to.clone() });
            }
            None => stuck.push(format!(
                "{} stays on {node}: no other node that is up and not cordoned fits it",
                subtree.root
            )),
        }
    }
    (moves, stuck)
}

/// Moves subtrees from more to less loaded nodes while a move lowers the spread of load (the
/// sum of squared loads): each time the move that lowers it most (then by subtree and node).
pub fn rebalance(place: &[SubtreeRow], nodes: &[NodeRow]) -> Vec<Planned> {
    let mut loads = loads(place, nodes);
    let targets = targets(nodes);
    let mut at: BTreeMap<&str, String> =
        place.iter().filter_map(|s| Some((s.root.as_str(), s.node.clone()?))).collect();
    let mut moves = Vec::new();
    for _ in 0..place.len() {
        // (change in the sum of squared loads, subtree, from, to)
        let mut best: Option<(i64, &SubtreeRow, String, String)> = None;
        for subtree in place {
            let Some(from) = at.get(subtree.root.as_str()) else { continue };
            let Some(&from_load) = loads.get(from) else { continue };
            for to in subtree.fits.iter().filter(|n| *n != from && targets.contains(n.as_str())) {
                let Some(&to_load) = loads.get(to) else { continue };
                let w = subtree.actors as i64;
                let change = 2 * w * (to_load as i64 + w - from_load as i64);
                if change < 0 && best.as_ref().is_none_or(|(c, ..)| change < *c) {
                    best = Some((change, subtree, from.clone(), to.clone()));
                }
            }
        }
        let Some((_, subtree, from, to)) = best else { break };
        *loads.get_mut(&from).expect("a node that is up") -= subtree.actors;
        *loads.get_mut(&to).expect("a node that is up") += subtree.actors;
        at.insert(subtree.root.as_str(), to.clone());
        moves.push(Planned { root: subtree.root.clone(), from, to });
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, status: Status) -> NodeRow {
        NodeRow {
            name: name.into(),
            addr: String::new(),
            status,
            incarnation: 1,
            tags: Default::default(),
            hosts: Vec::new(),
            cordoned: false,
            answering: false,
        }
    }

    fn subtree(root: &str, node: &str, actors: usize, fits: &[&str]) -> SubtreeRow {
        SubtreeRow {
            root: root.into(),
            node: Some(node.into()),
            requires: Vec::new(),
            prefers: None,
            fits: fits.iter().map(|f| f.to_string()).collect(),
            actors,
        }
    }

    #[test]
    fn drain_sends_each_subtree_to_the_least_loaded_node_that_fits() {
        let nodes =
            [node("a", Status::Up), node("b", Status::Up), node("c", Status::Up), node("d", Status::Down)];
        let place = [
            subtree("/x", "a", 3, &["a", "b", "c", "d"]),
            subtree("/y", "a", 1, &["a", "b", "c"]),
            subtree("/z", "a", 1, &["a"]),
            subtree("/w", "b", 2, &["b"]),
        ];
        let (moves, stuck) = drain(&place, &nodes, "a");
        let to: Vec<(&str, &str)> = moves.iter().map(|m| (m.root.as_str(), m.to.as_str())).collect();
        // /x to c (b carries 2 already; d is down), then /y to b (c now carries 3).
        assert_eq!(to, [("/x", "c"), ("/y", "b")]);
        assert_eq!(stuck, ["/z stays on a: no other node that is up and not cordoned fits it"]);
        // A cordoned node gets nothing: /x to b now, /y to b too (the only other choice).
        let mut nodes = nodes;
        nodes[2].cordoned = true;
        let (moves, _) = drain(&place, &nodes, "a");
        let to: Vec<(&str, &str)> = moves.iter().map(|m| (m.root.as_str(), m.to.as_str())).collect();
        assert_eq!(to, [("/x", "b"), ("/y", "b")]);
    }

    #[test]
    fn rebalance_evens_load_and_stops_when_no_move_helps() {
        let nodes = [node("a", Status::Up), node("b", Status::Up)];
        let all = ["a", "b"];
        let place = [
            subtree("/p", "a", 2, &all),
            subtree("/q", "a", 2, &all),
            subtree("/r", "a", 1, &all),
            subtree("/s", "b", 1, &["b"]),
        ];
        let moves = rebalance(&place, &nodes);
        let to: Vec<(&str, &str, &str)> =
            moves.iter().map(|m| (m.root.as_str(), m.from.as_str(), m.to.as_str())).collect();
        // a 5, b 1: moving a 2 gives 3/3.
        assert_eq!(to, [("/p", "a", "b")]);
        let even = [subtree("/p", "a", 1, &all), subtree("/q", "b", 1, &all)];
        assert!(rebalance(&even, &nodes).is_empty());
    }
}
