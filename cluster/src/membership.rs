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
//!
//! **Leases** (split brain, BLUEPRINT section 10). Each heartbeat carries its send time on the
//! sender's clock and echoes the latest send time it got from the receiver. A node holds its
//! lease while a majority (itself included) has echoed one of its heartbeats sent less than
//! `lease` ago: the lease is rooted at the node's own send time, so it lapses no later than
//! `lease` after the last moment a majority demonstrably heard it. The others place a down
//! node's actors again only `lease + clock_skew_max` after their last evidence that it was
//! alive (their own hearing of it, or a member reporting it up): by then its lease has lapsed
//! and it has stopped them.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use aiot_runtime::Instant;
use serde::{Deserialize, Serialize};

/// Fault point: one heartbeat to one peer is not sent.
pub const FAULT_SKIP_HEARTBEAT: &str = "membership.skip_heartbeat";

/// Timing of the failure detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a node tells every member it is alive.
    pub heartbeat_interval: Duration,
    /// Silence after which a member is declared down: several missed heartbeats, so one lost
    /// packet or a short pause never takes a node down.
    pub failure_timeout: Duration,
    /// How long a node may run actors after a majority last acknowledged it (`lease_ms`).
    pub lease: Duration,
    /// The largest clock rate difference tolerated over one lease (`clock_skew_max_ms`).
    pub clock_skew_max: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            heartbeat_interval: Duration::from_millis(500),
            failure_timeout: Duration::from_millis(2500),
            lease: Duration::from_millis(5000),
            clock_skew_max: Duration::from_millis(500),
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
    /// "I am alive; this is what I know." `sent_at` is on the sender's clock; `echo` is the
    /// latest `sent_at` the sender got from the receiver (the receiver's lease evidence).
    /// `heard` gives, for each member the sender sees up, how long ago it last heard from it
    /// (an age, so clocks need not agree): evidence that member was alive.
    Heartbeat {
        from: MemberInfo,
        known: Vec<MemberInfo>,
        heard: Vec<(String, u64, Duration)>,
        sent_at: Instant,
        echo: Option<Instant>,
    },
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
    /// The last time this node had evidence the member was alive: its own heartbeat, or an up
    /// member reporting it up.
    alive_evidence: Instant,
    /// When the member left (its actors are released at once).
    left_at: Option<Instant>,
    /// The latest of this node's send times the member echoed (lease support).
    echoed: Option<Instant>,
    /// The member's latest send time, echoed back in the next heartbeat to it.
    their_sent_at: Option<Instant>,
}

impl Member {
    fn new(info: MemberInfo, heard: Instant) -> Self {
        Member {
            info,
            last_heard: heard,
            alive_evidence: heard,
            left_at: None,
            echoed: None,
            their_sent_at: None,
        }
    }
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
    /// When this node started (it places nothing before it has had time to hear the others).
    started: Instant,
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
            started: now,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.me.name
    }

    /// This node, as it announces itself.
    pub fn me(&self) -> &MemberInfo {
        &self.me
    }

    /// What this node knows about `name` (not itself).
    pub fn member(&self, name: &str) -> Option<&MemberInfo> {
        self.members.get(name).map(|m| &m.info)
    }

    /// Members (not this node) and their status, by name.
    pub fn members(&self) -> BTreeMap<String, Status> {
        self.members.iter().map(|(n, m)| (n.clone(), m.info.status)).collect()
    }

    /// Every member this node knows, itself included, by name (a stable order).
    pub fn all(&self) -> Vec<&MemberInfo> {
        let mut all: Vec<&MemberInfo> =
            self.members.values().map(|m| &m.info).chain(std::iter::once(&self.me)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Up members, this node included, by name (a stable order).
    pub fn up(&self) -> Vec<&MemberInfo> {
        let others = self.members.values().map(|m| &m.info).filter(|i| i.status == Status::Up);
        let mut up: Vec<&MemberInfo> = others.chain(std::iter::once(&self.me)).collect();
        up.sort_by(|a, b| a.name.cmp(&b.name));
        up
    }

    /// How many nodes make a strict majority: of the members known (itself included, nodes
    /// that left excluded), counting seeds not met yet, so a node that has heard from no one
    /// never thinks itself a majority of one.
    pub fn majority(&self) -> usize {
        let members = self.members.values().filter(|m| m.info.status != Status::Left).count();
        let unmet_seeds = self.seeds.iter().filter(|s| !self.members.contains_key(*s)).count();
        (1 + members + unmet_seeds) / 2 + 1
    }

    /// Whether this node sees a strict majority of the members it knows as up.
    pub fn has_majority(&self) -> bool {
        1 + self.members.values().filter(|m| m.info.status == Status::Up).count() >= self.majority()
    }

    /// Whether this node may run actors now: a majority (itself included) echoed one of its
    /// heartbeats sent less than `lease` ago. A node without the lease stops its actors.
    pub fn holds_lease(&self, now: Instant) -> bool {
        let others_needed = self.majority() - 1;
        if others_needed == 0 {
            return true;
        }
        let mut echoes: Vec<Instant> = self
            .members
            .values()
            .filter(|m| m.info.status != Status::Left)
            .filter_map(|m| m.echoed)
            .collect();
        echoes.sort_unstable_by(|a, b| b.cmp(a));
        echoes.get(others_needed - 1).is_some_and(|&oldest_needed| now < oldest_needed + self.config.lease)
    }

    /// Whether this node has been up long enough to have heard from every live member (one
    /// failure timeout): before that it places nothing, so a restarted node does not take
    /// actors that are live elsewhere.
    pub fn settled(&self, now: Instant) -> bool {
        now.saturating_since(self.started) >= self.config.failure_timeout
    }

    /// When the actors of member `name` may be placed elsewhere: `lease + clock_skew_max`
    /// after the last evidence it was alive if it is down, at once if it left; `None` while it
    /// is up (or unknown).
    pub fn release_at(&self, name: &str) -> Option<Instant> {
        let member = self.members.get(name)?;
        match member.info.status {
            Status::Up => None,
            Status::Left => member.left_at.or(Some(Instant::ZERO)),
            Status::Down => Some(member.alive_evidence + self.config.lease + self.config.clock_skew_max),
        }
    }

    /// The incarnation this node knows for member `name`.
    pub fn incarnation_of(&self, name: &str) -> Option<u64> {
        if name == self.me.name {
            return Some(self.me.incarnation);
        }
        self.members.get(name).map(|m| m.info.incarnation)
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
            let heard: Vec<(String, u64, Duration)> = self
                .members
                .values()
                .filter(|m| m.info.status == Status::Up)
                .map(|m| (m.info.name.clone(), m.info.incarnation, now.saturating_since(m.last_heard)))
                .collect();
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
                if aiot_runtime::fault::point(FAULT_SKIP_HEARTBEAT) {
                    continue;
                }
                let echo = self.members.get(&to).and_then(|m| m.their_sent_at);
                let heartbeat = MemberMsg::Heartbeat {
                    from: self.me.clone(),
                    known: known.clone(),
                    heard: heard.clone(),
                    sent_at: now,
                    echo,
                };
                self.outbox.push_back((to, heartbeat));
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
            MemberMsg::Heartbeat { from: info, known, heard, sent_at, echo } => {
                if info.name != from {
                    return; // a peer speaks only for itself; its certificate named it
                }
                let incarnation = info.incarnation;
                self.learn(info, Some(now));
                if let Some(member) = self.members.get_mut(from) {
                    if member.info.incarnation == incarnation {
                        member.their_sent_at = member.their_sent_at.max(Some(sent_at));
                        member.echoed = member.echoed.max(echo);
                    }
                }
                for other in known {
                    if other.name != self.me.name {
                        self.learn(other, None);
                    }
                }
                // A member that heard another recently is evidence that one was alive then
                // (taken as received now minus the age: later than the truth by the latency,
                // which only delays a release).
                for (name, incarnation, age) in heard {
                    if let Some(m) = self.members.get_mut(&name) {
                        if m.info.incarnation == incarnation {
                            let at = Instant::from_nanos(
                                now.as_nanos()
                                    .saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX)),
                            );
                            m.alive_evidence = m.alive_evidence.max(at);
                        }
                    }
                }
            }
            MemberMsg::Leave { name, incarnation } => {
                if name == from {
                    let info = self.members.get(&name).map(|m| m.info.clone());
                    if let Some(info) = info {
                        self.learn(MemberInfo { incarnation, status: Status::Left, ..info }, Some(now));
                        if let Some(member) = self.members.get_mut(&name) {
                            member.left_at = Some(now);
                        }
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
            (Some(now), Some((_, incarnation))) if incarnation == info.incarnation => {
                let member = self.members.get_mut(&name).expect("known");
                member.info = info;
                member.last_heard = now;
                member.alive_evidence = member.alive_evidence.max(now);
            }
            (Some(now), _) => {
                self.members.insert(name.clone(), Member::new(info, now));
            }
            (None, None) => {
                let status = if info.status == Status::Left { Status::Left } else { Status::Down };
                self.members.insert(name.clone(), Member::new(MemberInfo { status, ..info }, Instant::ZERO));
            }
            (None, Some(_)) if info.status == Status::Left => {
                let member = self.members.get_mut(&name).expect("known");
                member.info.status = Status::Left;
                member.info.incarnation = info.incarnation;
                member.left_at.get_or_insert(member.last_heard);
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
