//! Membership as a sans-IO state machine: join through seeds, heartbeats that carry what each
//! node knows (so members learn of each other through any one of them), a timeout failure
//! detector, up/down/left events, graceful leave, and whether this node sees a majority.
//!
//! Inputs are `handle_*` calls with the current time; outputs are drained with `poll_send`
//! (messages to peers) and `poll_event` (changes for the layer above). No clock is read and
//! no IO is done here, so the simulator runs this same code over its simulated network
//! (quinn-proto's shape, EXAMPLES.md).
//!
//! A node's `incarnation` grows with each start: news about a higher incarnation always wins,
//! so a node that restarts is taken back even while others still think its old self is down.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use aiot_runtime::Instant;
use serde::{Deserialize, Serialize};

/// Timing of the failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a node tells every member it is alive.
    pub heartbeat_interval: Duration,
    /// Silence after which a member is declared down: several missed heartbeats, so one lost
    /// packet or a short pause never takes a node down.
    pub failure_timeout: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            heartbeat_interval: Duration::from_millis(500),
            failure_timeout: Duration::from_millis(2500),
        }
    }
}

/// What one node says about a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub name: String,
    pub incarnation: u64,
    pub status: Status,
    /// CA-attested capability tags.
    pub tags: BTreeMap<String, String>,
    /// Where the member's endpoint listens (so members met second-hand can be reached).
    pub addr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Status {
    Up,
    Down,
    Left,
}

/// Membership traffic between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberMsg {
    /// "I am alive; this is what I know."
    Heartbeat { from: MemberInfo, known: Vec<MemberInfo> },
    /// "I am leaving for good."
    Leave { name: String, incarnation: u64 },
}

/// A change the layer above acts on (placement, the directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberEvent {
    Up(String),
    Down(String),
    Left(String),
}

#[derive(Debug, Clone)]
struct Member {
    info: MemberInfo,
    /// When this node last heard from the member itself (not gossip about it).
    last_heard: Instant,
}

/// One node's view of the cluster.
#[derive(Debug)]
pub struct Membership {
    me: MemberInfo,
    config: MembershipConfig,
    members: BTreeMap<String, Member>,
    /// Peers to contact before they are known members (the seeds).
    seeds: Vec<String>,
    next_heartbeat: Instant,
    outbox: VecDeque<(String, MemberMsg)>,
    events: VecDeque<MemberEvent>,
}

impl Membership {
    /// This node (`me`, taken as up), joining through `seeds` (node names).
    pub fn new(me: MemberInfo, seeds: Vec<String>, config: MembershipConfig, now: Instant) -> Self {
        assert!(config.failure_timeout > config.heartbeat_interval, "the timeout must span heartbeats");
        let me = MemberInfo { status: Status::Up, ..me };
        let seeds = seeds.into_iter().filter(|s| *s != me.name).collect();
        Membership {
            me,
            config,
            members: BTreeMap::new(),
            seeds,
            next_heartbeat: now,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.me.name
    }

    /// What this node knows about `name` (not itself).
    pub fn member(&self, name: &str) -> Option<&MemberInfo> {
        self.members.get(name).map(|m| &m.info)
    }

    /// Members (not this node) and their status, by name.
    pub fn members(&self) -> BTreeMap<String, Status> {
        self.members.iter().map(|(n, m)| (n.clone(), m.info.status)).collect()
    }

    /// Up members, this node included, by name (a stable order).
    pub fn up(&self) -> Vec<&MemberInfo> {
        let others = self.members.values().map(|m| &m.info).filter(|i| i.status == Status::Up);
        let mut up: Vec<&MemberInfo> = others.chain(std::iter::once(&self.me)).collect();
        up.sort_by(|a, b| a.name.cmp(&b.name));
        up
    }

    /// Whether this node sees a strict majority of the members it knows (itself included, nodes
    /// that left excluded). A node without one must stop its actors (split brain, section 10).
    pub fn has_majority(&self) -> bool {
        let known = 1 + self.members.values().filter(|m| m.info.status != Status::Left).count();
        let up = 1 + self.members.values().filter(|m| m.info.status == Status::Up).count();
        2 * up > known
    }

    /// Time passes: heartbeats go out when due, silent members are declared down.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.me.status == Status::Left {
            return;
        }
        for member in self.members.values_mut() {
            if member.info.status == Status::Up
                && now.saturating_since(member.last_heard) >= self.config.failure_timeout
            {
                member.info.status = Status::Down;
                self.events.push_back(MemberEvent::Down(member.info.name.clone()));
            }
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + self.config.heartbeat_interval;
            let known: Vec<MemberInfo> = self.members.values().map(|m| m.info.clone()).collect();
            let mut targets: Vec<String> = self
                .members
                .values()
                .filter(|m| m.info.status != Status::Left)
                .map(|m| m.info.name.clone())
                .collect();
            for seed in &self.seeds {
                if !self.members.contains_key(seed) {
                    targets.push(seed.clone());
                }
            }
            for to in targets {
                self.outbox
                    .push_back((to, MemberMsg::Heartbeat { from: self.me.clone(), known: known.clone() }));
            }
        }
    }

    /// When the next `handle_timeout` has work to do.
    pub fn poll_timeout(&self) -> Instant {
        let silent = self
            .members
            .values()
            .filter(|m| m.info.status == Status::Up)
            .map(|m| m.last_heard + self.config.failure_timeout);
        silent.chain(std::iter::once(self.next_heartbeat)).min().unwrap_or(self.next_heartbeat)
    }

    /// A message from the (authenticated) peer `from`.
    pub fn handle_message(&mut self, from: &str, msg: MemberMsg, now: Instant) {
        match msg {
            MemberMsg::Heartbeat { from: info, known } => {
                if info.name != from {
                    return; // a peer speaks only for itself; its certificate named it
                }
                self.learn(info, Some(now));
                for other in known {
                    if other.name != self.me.name {
                        self.learn(other, None);
                    }
                }
            }
            MemberMsg::Leave { name, incarnation } => {
                if name == from {
                    let info = self.members.get(&name).map(|m| m.info.clone());
                    if let Some(info) = info {
                        self.learn(MemberInfo { incarnation, status: Status::Left, ..info }, Some(now));
                    }
                }
            }
        }
    }

    /// Merges news about a member. `heard` is set when the member spoke for itself: it is the
    /// authority on itself (unless the news is about an older incarnation). Second-hand news
    /// only makes a member known (as down, until its own heartbeat arrives) or marks it left.
    fn learn(&mut self, info: MemberInfo, heard: Option<Instant>) {
        let name = info.name.clone();
        let before = self.members.get(&name).map(|m| (m.info.status, m.info.incarnation));
        if before.is_some_and(|(_, incarnation)| info.incarnation < incarnation) {
            return; // news about a previous life of the member
        }
        match (heard, before) {
            (Some(now), _) => {
                self.members.insert(name.clone(), Member { info, last_heard: now });
            }
            (None, None) => {
                let status = if info.status == Status::Left { Status::Left } else { Status::Down };
                self.members.insert(
                    name.clone(),
                    Member { info: MemberInfo { status, ..info }, last_heard: Instant::ZERO },
                );
            }
            (None, Some(_)) if info.status == Status::Left => {
                let member = self.members.get_mut(&name).expect("known");
                member.info.status = Status::Left;
                member.info.incarnation = info.incarnation;
            }
            (None, Some(_)) => {}
        }
        let after = self.members[&name].info.status;
        if before.map(|(status, _)| status) != Some(after) {
            match after {
                Status::Up => self.events.push_back(MemberEvent::Up(name)),
                Status::Left => self.events.push_back(MemberEvent::Left(name)),
                // A member first heard of second-hand was never up: nothing went down.
                Status::Down if before.is_some() => self.events.push_back(MemberEvent::Down(name)),
                Status::Down => {}
            }
        }
    }

    /// Leaves the cluster for good: every member is told at once.
    pub fn leave(&mut self) {
        self.me.status = Status::Left;
        let targets: Vec<String> = self
            .members
            .values()
            .filter(|m| m.info.status == Status::Up)
            .map(|m| m.info.name.clone())
            .collect();
        for to in targets {
            self.outbox.push_back((
                to,
                MemberMsg::Leave { name: self.me.name.clone(), incarnation: self.me.incarnation },
            ));
        }
    }

    /// The next message to send, to the named peer.
    pub fn poll_send(&mut self) -> Option<(String, MemberMsg)> {
        self.outbox.pop_front()
    }

    /// The next membership change.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }
}
