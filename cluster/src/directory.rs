//! The directory: which node hosts each placed subtree, replicated by announcement.
//!
//! Every node tells every member, with each heartbeat, which top-level subtrees it hosts (a
//! `Hosting` announcement tagged with its incarnation). The directory keeps the latest
//! announcement per node; a lookup walks a path up to the subtree root it belongs to. It is a
//! plain value: no clock, no IO, so the simulator runs it as it is.
//!
//! Announcements from a newer incarnation replace the old ones (a restarted node hosts nothing
//! of its previous life); older ones are ignored. If two nodes claim one subtree (views that
//! disagreed for a moment), lookups answer the lowest name, and `conflicts` tells the others
//! to stop their copy.
//!
//! A node moving a subtree to another (live migration) announces it as hosted *and away to*
//! that node: while the move is in progress it still holds it (nobody else places it, and
//! only the target may be granted it); once the target announces it, lookups answer the
//! target and the mover's claim is no conflict; a move done is still announced for a while,
//! the weakest claim of all (after one in progress), so a member that has not yet heard the
//! target still has a way to send.

use std::collections::{BTreeMap, BTreeSet};

use aiot_runtime::ActorPath;
use serde::{Deserialize, Serialize};

/// A root a node announces but is moving away, or has moved away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Away {
    pub to: String,
    /// The target took it over (announced for a while after, for the way there).
    pub done: bool,
}

/// One node's announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hosted {
    incarnation: u64,
    roots: BTreeSet<ActorPath>,
    /// Roots among `roots` it is moving or has moved away.
    away: BTreeMap<ActorPath, Away>,
}

impl Hosted {
    /// How strongly it claims `root`: 0 hosting, 1 moving away, 2 moved away.
    fn claim_rank(&self, root: &ActorPath) -> u8 {
        match self.away.get(root) {
            None => 0,
            Some(Away { done: false, .. }) => 1,
            Some(Away { done: true, .. }) => 2,
        }
    }
}

/// Path -> node, for the subtrees every node says it hosts; and the nodes that said they are
/// cordoned (drained: nothing new is placed or moved there).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    by_node: BTreeMap<String, Hosted>,
    cordoned: BTreeSet<String>,
    /// Subtree root -> its holder (the lowest name among claimants), rebuilt on change.
    index: BTreeMap<ActorPath, String>,
}

impl Directory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what `node` (at `incarnation`) hosts now; true if that changed the directory
    /// (news older than what the directory has changes nothing).
    pub fn announce(
        &mut self,
        node: &str,
        incarnation: u64,
        roots: impl IntoIterator<Item = ActorPath>,
    ) -> bool {
        self.announce_moving(node, incarnation, roots, BTreeMap::new())
    }

    /// `announce`, with the roots among them that `node` is moving or has moved away.
    pub fn announce_moving(
        &mut self,
        node: &str,
        incarnation: u64,
        roots: impl IntoIterator<Item = ActorPath>,
        away: BTreeMap<ActorPath, Away>,
    ) -> bool {
        if self.by_node.get(node).is_some_and(|h| h.incarnation > incarnation) {
            return false;
        }
        let hosted = Hosted { incarnation, roots: roots.into_iter().collect(), away };
        if self.by_node.get(node) == Some(&hosted) {
            return false;
        }
        self.by_node.insert(node.to_string(), hosted);
        self.reindex();
        true
    }

    /// Forgets everything `node` announced (its actors were released).
    pub fn forget(&mut self, node: &str) {
        self.cordoned.remove(node);
        if self.by_node.remove(node).is_some() {
            self.reindex();
        }
    }

    /// Records whether `node` is cordoned; true if that changed.
    pub fn set_cordoned(&mut self, node: &str, cordoned: bool) -> bool {
        if cordoned {
            self.cordoned.insert(node.to_string())
        } else {
            self.cordoned.remove(node)
        }
    }

    pub fn is_cordoned(&self, node: &str) -> bool {
        self.cordoned.contains(node)
    }

    fn reindex(&mut self) {
        self.index = self.held(|_| true);
    }

    /// The node hosting `path`: the one hosting the subtree root it belongs to (the lowest
    /// name if two claim it).
    pub fn node_of(&self, path: &ActorPath) -> Option<&str> {
        subtree_entry(&self.index, path).map(String::as_str)
    }

    /// Nodes claiming the subtree root `root` and not moving it away, by name.
    fn holders_of<'a>(&'a self, root: &ActorPath) -> impl Iterator<Item = &'a str> + 'a {
        let root = root.clone();
        self.by_node
            .iter()
            .filter(move |(_, h)| h.roots.contains(&root) && !h.away.contains_key(&root))
            .map(|(n, _)| n.as_str())
    }

    /// Subtree root -> the node that hosts it (the lowest name if two claim it; a node moving
    /// it away only while no node hosts it, and one that moved it away only while no other
    /// claims it), for the nodes `keep` accepts.
    pub fn held(&self, keep: impl Fn(&str) -> bool) -> BTreeMap<ActorPath, String> {
        let mut held = BTreeMap::new();
        let kept: Vec<(&String, &Hosted)> = self.by_node.iter().filter(|(n, _)| keep(n)).collect();
        for rank in 0..=2 {
            for (node, hosted) in &kept {
                for root in hosted.roots.iter().filter(|r| hosted.claim_rank(r) == rank) {
                    held.entry(root.clone()).or_insert_with(|| (*node).clone());
                }
            }
        }
        held
    }

    /// Where `node` announces it is moving, or has moved, `root`.
    pub fn moved_to(&self, node: &str, root: &ActorPath) -> Option<&str> {
        self.by_node.get(node)?.away.get(root).map(|away| away.to.as_str())
    }

    /// Where the holder of `root` is moving it, if a move is in progress.
    pub fn moving_to(&self, root: &ActorPath) -> Option<&str> {
        let holder = self.index.get(root)?;
        match self.by_node.get(holder)?.away.get(root)? {
            Away { to, done: false } => Some(to),
            Away { done: true, .. } => None,
        }
    }

    /// The root of the subtree `path` belongs to, and the node its holder is moving it to, if
    /// it is moving.
    pub fn moving_target_of(&self, path: &ActorPath) -> Option<(ActorPath, &str)> {
        let root = subtree_root(&self.index, path)?;
        let to = self.moving_to(&root)?;
        Some((root, to))
    }

    /// Roots that `me` hosts (and is not moving away) but a node with a lower name also
    /// claims: `me` stops them.
    pub fn conflicts(&self, me: &str) -> Vec<ActorPath> {
        let Some(mine) = self.by_node.get(me) else { return Vec::new() };
        mine.roots
            .iter()
            .filter(|root| !mine.away.contains_key(*root))
            .filter(|root| self.holders_of(root).next().is_some_and(|first| first != me))
            .cloned()
            .collect()
    }

    /// The nodes that announced what they host, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.by_node.keys().map(String::as_str)
    }

    /// Every node's announced roots, by node name.
    pub fn entries(&self) -> BTreeMap<String, Vec<ActorPath>> {
        self.by_node.iter().map(|(n, h)| (n.clone(), h.roots.iter().cloned().collect())).collect()
    }
}

/// The key of `map` (keyed by subtree root) for the subtree `path` belongs to: `path`
/// itself, or its nearest ancestor in `map`.
fn subtree_root<T>(map: &BTreeMap<ActorPath, T>, path: &ActorPath) -> Option<ActorPath> {
    let mut at = Some(path.clone());
    while let Some(p) = at {
        if map.contains_key(&p) {
            return Some(p);
        }
        at = p.parent();
    }
    None
}

/// The entry of `map` for the subtree `path` belongs to (see `subtree_root`).
pub(crate) fn subtree_entry<'a, T>(map: &'a BTreeMap<ActorPath, T>, path: &ActorPath) -> Option<&'a T> {
    map.get(&subtree_root(map, path)?)
}

/// `subtree_entry`, mutable.
pub(crate) fn subtree_entry_mut<'a, T>(
    map: &'a mut BTreeMap<ActorPath, T>,
    path: &ActorPath,
) -> Option<&'a mut T> {
    let root = subtree_root(map, path)?;
    map.get_mut(&root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ActorPath {
        ActorPath::parse(s).unwrap()
    }

    #[test]
    fn lookups_walk_up_to_the_hosted_subtree_root() {
        let mut d = Directory::new();
        d.announce("b", 1, [p("/sensor"), p("/infer")]);
        d.announce("a", 1, [p("/store")]);
        assert_eq!(d.node_of(&p("/sensor/proxy-7")), Some("b"));
        assert_eq!(d.node_of(&p("/store")), Some("a"));
        assert_eq!(d.node_of(&p("/elsewhere")), None);
        d.forget("b");
        assert_eq!(d.node_of(&p("/sensor")), None);
    }

    #[test]
    fn a_newer_incarnation_replaces_and_an_older_one_is_ignored() {
        let mut d = Directory::new();
        assert!(d.announce("b", 2, [p("/x")]));
        assert!(!d.announce("b", 1, [p("/y")]));
        assert!(!d.announce("b", 2, [p("/x")]), "the same news again changes nothing");
        assert_eq!(d.node_of(&p("/x")), Some("b"));
        assert!(d.announce("b", 3, []));
        assert_eq!(d.node_of(&p("/x")), None);
    }

    #[test]
    fn a_moving_subtree_stays_its_holders_until_the_target_announces_it() {
        let mut d = Directory::new();
        let moving = BTreeMap::from([(p("/bank"), Away { to: "b".into(), done: false })]);
        d.announce_moving("a", 1, [p("/bank"), p("/till")], moving);
        assert_eq!(d.node_of(&p("/bank/ledger")), Some("a"));
        assert_eq!(d.moving_target_of(&p("/bank/ledger")), Some((p("/bank"), "b")));
        assert_eq!(d.moving_target_of(&p("/till")), None);
        // The target announces it: lookups answer the target, and neither side conflicts.
        d.announce("b", 1, [p("/bank")]);
        assert_eq!(d.node_of(&p("/bank")), Some("b"));
        assert_eq!(d.moving_target_of(&p("/bank")), None);
        assert!(d.conflicts("a").is_empty() && d.conflicts("b").is_empty());
        // The mover lets go.
        d.announce("a", 1, [p("/till")]);
        assert_eq!(d.node_of(&p("/bank")), Some("b"));
    }

    #[test]
    fn a_move_in_progress_outranks_a_move_done() {
        // a moved /bank to b a moment ago; b is moving it back to a.
        let mut d = Directory::new();
        d.announce_moving(
            "a",
            1,
            [p("/bank")],
            BTreeMap::from([(p("/bank"), Away { to: "b".into(), done: true })]),
        );
        d.announce_moving(
            "b",
            1,
            [p("/bank")],
            BTreeMap::from([(p("/bank"), Away { to: "a".into(), done: false })]),
        );
        assert_eq!(
            d.node_of(&p("/bank")),
            Some("b"),
            "the lower name does not win over the move in progress"
        );
        assert_eq!(d.moving_to(&p("/bank")), Some("a"));
    }

    #[test]
    fn two_claims_resolve_to_the_lowest_name_and_the_other_stops() {
        let mut d = Directory::new();
        d.announce("b", 1, [p("/x")]);
        d.announce("a", 1, [p("/x"), p("/y")]);
        assert_eq!(d.node_of(&p("/x")), Some("a"));
        assert_eq!(d.conflicts("b"), vec![p("/x")]);
        assert!(d.conflicts("a").is_empty());
        assert_eq!(d.held(|n| n != "a").get(&p("/x")).map(String::as_str), Some("b"));
    }
}
