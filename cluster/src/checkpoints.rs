//! Failover with state (BLUEPRINT section 10, snapshots), as plain state that the QUIC node
//! (`node::checkpoints`) and the simulator drive alike: which checkpoints a node takes of the
//! subtrees it hosts, which it keeps for others, and the start of a subtree from the newest
//! one its keepers answer with.
//!
//! - **Host.** Each hosted subtree declared with `checkpoint_every` is due once per period;
//!   a checkpoint gathered gets the subtree's next *generation*. Generations order a
//!   subtree's checkpoints across the nodes it ran on: a start from a checkpoint goes on above
//!   its generation, and a keeper holding a newer one than it is sent says so (`go_above`),
//!   so a host that started without one goes on above it from its next checkpoint.
//! - **Keeper** (platform-tier nodes): the newest checkpoint of each subtree.
//! - **Start** (a subtree declared with checkpoints placed here): the keepers are asked; the
//!   start waits until every one answered or the wait is over, then starts from the newest
//!   answered (this node's own kept one counts too), or afresh if there is none.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiot_runtime::migration::Handoff;
use aiot_runtime::{ActorPath, Instant};

use crate::wire::FRAME_LEN_MAX;

/// How long a start waits for the keepers' answers.
pub const FETCH_WAIT: Duration = Duration::from_secs(2);
/// How often a start asks again the keepers that have not answered (a request sent before
/// the connection to a keeper was up, or lost with it).
pub const ASK_AGAIN: Duration = Duration::from_millis(200);
/// The largest encoded checkpoint sent: it travels as one control frame, with room to spare
/// for the path and framing.
pub const CHECKPOINT_MAX: usize = FRAME_LEN_MAX - 4096;

/// A checkpoint as a keeper keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptCheckpoint {
    pub root: ActorPath,
    pub generation: u64,
    /// An encoded `Handoff` of `root`.
    pub handoff: Vec<u8>,
}

/// A checkpoint's generation and encoded `Handoff`.
pub type Generation = (u64, Vec<u8>);

/// One node's checkpoints, as host and as keeper.
#[derive(Debug, Default)]
pub struct Checkpoints {
    /// As keeper: the newest checkpoint of each subtree.
    kept: BTreeMap<ActorPath, Generation>,
    /// As host: each checkpointed subtree hosted here.
    hosted: BTreeMap<ActorPath, Hosted>,
    /// Starts waiting for the keepers' answers.
    fetches: BTreeMap<ActorPath, Fetch>,
}

#[derive(Debug)]
struct Hosted {
    /// The generation of the last checkpoint gathered (or started from).
    generation: u64,
    due: Instant,
    /// A checkpoint is being gathered.
    gathering: bool,
}

#[derive(Debug)]
struct Fetch {
    /// Keepers asked that have not answered yet.
    waiting: BTreeSet<String>,
    /// The newest checkpoint answered so far.
    best: Option<Generation>,
    until: Instant,
    /// When the keepers still waited for are asked again.
    ask_again: Instant,
}

impl Checkpoints {
    /// A keeper that kept these before (loaded from its disk).
    pub fn with_kept(kept: impl IntoIterator<Item = KeptCheckpoint>) -> Self {
        let kept = kept.into_iter().map(|c| (c.root, (c.generation, c.handoff))).collect();
        Checkpoints { kept, ..Checkpoints::default() }
    }

    /// The checkpointed subtrees hosted now, with their periods: those due are returned and
    /// marked as being gathered (a subtree no longer listed is forgotten).
    pub fn due(&mut self, hosted: &[(ActorPath, Duration)], now: Instant) -> Vec<ActorPath> {
        self.hosted.retain(|root, _| hosted.iter().any(|(r, _)| r == root));
        let mut due = Vec::new();
        for (root, every) in hosted {
            let entry = self.hosted.entry(root.clone()).or_insert(Hosted {
                generation: 0,
                due: now + *every,
                gathering: false,
            });
            if entry.gathering || entry.due > now {
                continue;
            }
            entry.gathering = true;
            entry.due = now + *every;
            due.push(root.clone());
        }
        due
    }

    /// A checkpoint of `root` was gathered: its generation, or `None` if `root` is no longer
    /// hosted here.
    pub fn gathered(&mut self, root: &ActorPath) -> Option<u64> {
        let hosted = self.hosted.get_mut(root)?;
        hosted.gathering = false;
        hosted.generation += 1;
        Some(hosted.generation)
    }

    /// Gathering a checkpoint of `root` failed; the next one is due on its period.
    pub fn gather_failed(&mut self, root: &ActorPath) {
        if let Some(hosted) = self.hosted.get_mut(root) {
            hosted.gathering = false;
        }
    }

    /// The host's next checkpoint of `root` goes above generation `kept`.
    pub fn go_above(&mut self, root: &ActorPath, kept: u64) {
        if let Some(hosted) = self.hosted.get_mut(root) {
            hosted.generation = hosted.generation.max(kept);
        }
    }

    /// As keeper: keeps a checkpoint newer than the one kept; if it is not, the generation
    /// kept is the error (the host is told to go above it).
    pub fn keep(&mut self, root: ActorPath, generation: u64, handoff: Vec<u8>) -> Result<(), u64> {
        if let Some(&(kept, _)) = self.kept.get(&root) {
            if kept >= generation {
                return Err(kept);
            }
        }
        self.kept.insert(root, (generation, handoff));
        Ok(())
    }

    /// The newest checkpoint kept of `root`.
    pub fn kept(&self, root: &ActorPath) -> Option<Generation> {
        self.kept.get(root).cloned()
    }

    /// Every checkpoint kept (what a keeper's disk holds).
    pub fn all_kept(&self) -> Vec<KeptCheckpoint> {
        let kept = self.kept.iter();
        kept.map(|(root, (generation, handoff))| KeptCheckpoint {
            root: root.clone(),
            generation: *generation,
            handoff: handoff.clone(),
        })
        .collect()
    }

    /// A start of `root` asks `keepers` for their checkpoints and waits `FETCH_WAIT` at most;
    /// what this node keeps itself counts as answered.
    pub fn fetch(&mut self, root: ActorPath, keepers: impl IntoIterator<Item = String>, now: Instant) {
        let best = self.kept(&root);
        let waiting = keepers.into_iter().collect();
        let fetch = Fetch { waiting, best, until: now + FETCH_WAIT, ask_again: now + ASK_AGAIN };
        self.fetches.insert(root, fetch);
    }

    /// The keepers to ask again now (each `ASK_AGAIN`, until the wait is over): (root, keeper).
    pub fn ask_again(&mut self, now: Instant) -> Vec<(ActorPath, String)> {
        let mut again = Vec::new();
        for (root, fetch) in &mut self.fetches {
            if fetch.ask_again <= now && now < fetch.until {
                fetch.ask_again = now + ASK_AGAIN;
                again.extend(fetch.waiting.iter().map(|keeper| (root.clone(), keeper.clone())));
            }
        }
        again
    }

    /// `keeper` answered the fetch of `root` with what it keeps (`None` too when it cannot be
    /// asked); whether every keeper asked has answered now.
    pub fn answered(&mut self, root: &ActorPath, keeper: &str, kept: Option<Generation>) -> bool {
        let Some(fetch) = self.fetches.get_mut(root) else { return false };
        if !fetch.waiting.remove(keeper) {
            return false;
        }
        if kept.as_ref().is_some_and(|(g, _)| fetch.best.as_ref().is_none_or(|(best, _)| g > best)) {
            fetch.best = kept;
        }
        fetch.waiting.is_empty()
    }

    /// Whether the fetch of `root` has every answer.
    pub fn all_answered(&self, root: &ActorPath) -> bool {
        self.fetches.get(root).is_some_and(|f| f.waiting.is_empty())
    }

    /// The fetches that have every answer or waited long enough.
    pub fn fetches_over(&self, now: Instant) -> Vec<ActorPath> {
        let over = self.fetches.iter().filter(|(_, f)| f.waiting.is_empty() || f.until <= now);
        over.map(|(root, _)| root.clone()).collect()
    }

    /// Ends the fetch of `root`: the newest checkpoint answered, decoded (one that does not
    /// decode is an `Err`: the start goes on afresh).
    pub fn end_fetch(&mut self, root: &ActorPath) -> Result<Option<(u64, Handoff)>, String> {
        let Some((generation, bytes)) = self.fetches.remove(root).and_then(|f| f.best) else {
            return Ok(None);
        };
        match aiot_runtime::message::decode::<Handoff>(&bytes) {
            Ok(handoff) if handoff.root == *root => Ok(Some((generation, handoff))),
            Ok(handoff) => Err(format!("checkpoint of {} kept as {root}'s", handoff.root)),
            Err(e) => Err(format!("checkpoint of {root} does not decode: {e}")),
        }
    }

    /// `root` started here from generation `generation` (0: afresh); its next checkpoint is
    /// due in `every`.
    pub fn started(&mut self, root: ActorPath, generation: u64, due: Instant) {
        self.hosted.insert(root, Hosted { generation, due, gathering: false });
    }
}

/// Whether these tags put a node on the platform tier (a keeper of checkpoints).
pub fn keeps_checkpoints(tags: &BTreeMap<String, String>) -> bool {
    tags.get("tier").is_some_and(|tier| tier == "platform")
}

/// Whether `handoff` is a checkpoint that would start the subtree at `root` (a keeper refuses
/// any other now, not at the failover).
pub fn valid_for(root: &ActorPath, handoff: &[u8]) -> bool {
    aiot_runtime::message::decode::<Handoff>(handoff).is_ok_and(|h| h.root == *root)
}

/// Encodes a gathered checkpoint; an `Err` says why it is too large to send.
pub fn encode(handoff: &Handoff) -> Result<Vec<u8>, String> {
    let bytes = aiot_runtime::message::encode(handoff);
    if bytes.len() > CHECKPOINT_MAX {
        return Err(format!("{} bytes, over the {CHECKPOINT_MAX} a checkpoint may have", bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> ActorPath {
        ActorPath::parse(p).unwrap()
    }

    fn handoff(root: &str) -> Vec<u8> {
        aiot_runtime::message::encode(&Handoff { root: path(root), actors: Vec::new() })
    }

    #[test]
    fn a_hosted_subtree_is_due_once_per_period_and_its_generations_rise() {
        let mut book = Checkpoints::default();
        let hosted = [(path("/c"), Duration::from_secs(1))];
        let t0 = Instant::ZERO;
        assert!(book.due(&hosted, t0).is_empty(), "the first is due a period after hosting");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(book.due(&hosted, t1), [path("/c")]);
        assert!(book.due(&hosted, t1 + Duration::from_secs(5)).is_empty(), "one gathering at a time");
        assert_eq!(book.gathered(&path("/c")), Some(1));
        book.go_above(&path("/c"), 7);
        assert_eq!(book.due(&hosted, t1 + Duration::from_secs(5)), [path("/c")]);
        assert_eq!(book.gathered(&path("/c")), Some(8), "above what a keeper said it kept");
        assert!(book.due(&[], t1).is_empty());
        assert_eq!(book.gathered(&path("/c")), None, "no longer hosted");
    }

    #[test]
    fn a_keeper_keeps_the_newest_and_names_it_to_an_older_one() {
        let mut book = Checkpoints::default();
        assert_eq!(book.keep(path("/c"), 3, handoff("/c")), Ok(()));
        assert_eq!(book.keep(path("/c"), 2, handoff("/c")), Err(3));
        assert_eq!(book.keep(path("/c"), 3, handoff("/c")), Err(3));
        assert_eq!(book.keep(path("/c"), 4, handoff("/c")), Ok(()));
        assert_eq!(book.kept(&path("/c")).map(|(g, _)| g), Some(4));
        let reloaded = Checkpoints::with_kept(book.all_kept());
        assert_eq!(reloaded.kept(&path("/c")).map(|(g, _)| g), Some(4));
    }

    #[test]
    fn a_start_takes_the_newest_answer_or_its_own_once_all_answered_or_the_wait_is_over() {
        let mut book = Checkpoints::with_kept([KeptCheckpoint {
            root: path("/c"),
            generation: 2,
            handoff: handoff("/c"),
        }]);
        let until = Instant::ZERO + FETCH_WAIT;
        book.fetch(path("/c"), ["p1".to_string(), "p2".to_string()], Instant::ZERO);
        assert!(book.fetches_over(Instant::ZERO).is_empty());
        assert!(book.ask_again(Instant::ZERO).is_empty(), "asked just now");
        assert!(!book.answered(&path("/c"), "p1", Some((5, handoff("/c")))));
        assert!(!book.answered(&path("/c"), "p1", Some((9, handoff("/c")))), "one answer per keeper");
        assert_eq!(book.ask_again(Instant::ZERO + ASK_AGAIN), [(path("/c"), "p2".to_string())]);
        assert!(book.ask_again(Instant::ZERO + ASK_AGAIN).is_empty(), "not again until the next round");
        assert_eq!(book.fetches_over(until), [path("/c")], "the wait is over");
        assert!(book.answered(&path("/c"), "p2", Some((4, handoff("/c")))));
        assert_eq!(book.fetches_over(Instant::ZERO), [path("/c")], "every keeper answered");
        let (generation, started) = book.end_fetch(&path("/c")).unwrap().unwrap();
        assert_eq!((generation, started.root), (5, path("/c")));
        assert!(matches!(book.end_fetch(&path("/c")), Ok(None)), "ended");
    }

    #[test]
    fn a_checkpoint_of_another_subtree_or_of_garbage_is_refused() {
        assert!(valid_for(&path("/c"), &handoff("/c")));
        assert!(!valid_for(&path("/c"), &handoff("/d")));
        assert!(!valid_for(&path("/c"), b"garbage"));
        let mut book = Checkpoints::default();
        book.fetch(path("/c"), ["p".to_string()], Instant::ZERO);
        book.answered(&path("/c"), "p", Some((1, b"garbage".to_vec())));
        assert!(book.end_fetch(&path("/c")).is_err());
    }
}
