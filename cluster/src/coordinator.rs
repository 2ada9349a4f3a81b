//! A node's decisions as one sans-IO state machine: membership, leases, the directory and
//! placement together. It says which subtrees to start and stop here, what to tell each peer on
//! the control stream, and what an operator should see; it reads no clock and does no IO. The
//! QUIC node (`node`) executes its outputs on tokio; the simulator executes the same outputs
//! over its simulated network, so failover is the same code under both.
//!
//! Each `handle_timeout` (the host calls it every tick, 100 ms on a real node):
//! 1. membership's timers run (heartbeats, the failure detector);
//! 2. nodes down for longer than their lease are released: their subtrees leave the directory;
//! 3. without the lease, every subtree hosted here stops;
//! 4. with it, seeing a majority up, and one failure timeout after start, subtrees held by
//!    nobody are placed by the sticky plan; this node *claims* those placed on itself and
//!    starts each once a majority granted the claim; a subtree that a node with a lower name
//!    also hosts stops here;
//! 5. with each heartbeat, the peer also hears what this node hosts.
//!
//! **Claims** make placement safe when views differ (a one-way cut, a node that has not yet
//! seen another go down): each node grants a subtree to one claimant at a time, and keeps the
//! grant while that claimant hosts it (or, if it never announces it, for `GRANT_TTL`); a
//! claimant starts only if a majority granted it within `CLAIM_WINDOW`. Two majorities share a
//! node, so two claimants never both start. A node grants nothing before it has settled (it may
//! not know yet who hosts what), and never a subtree another live node hosts.
//!
//! **Moves** (live migration, `begin_move`): the holder keeps announcing the subtree, marked
//! as moving to the target, so nobody else places it and only the target may be granted it;
//! it takes the subtree out (`Output::MoveOut`; the host sends the handoff). The target, once
//! the handoff arrived (`handoff_arrived`), claims the subtree like any other and starts it
//! from the handoff when a majority granted it; its announcement completes the move at the
//! holder (`Output::MoveDone`). A target that refuses gives the subtree back to the holder
//! (`Output::MoveAborted`: the host starts it again from the handoff it kept). A target that
//! is released, or a move not done within `MOVE_TIMEOUT`, may have started the subtree all
//! the same (a one-way cut): the holder then lets go of it and claims it again like any
//! other, starting it from the kept handoff only if a majority grants it
//! (`MoveAborted { reclaim: true }`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use aiot_runtime::{ActorPath, Instant, Topology};

use crate::control::ControlMsg;
use crate::directory::{Away, Directory};
use crate::membership::{MemberEvent, MemberInfo, MemberMsg, Membership, MembershipConfig, Status};
use crate::placement::{plan, NodeView};

/// Fault point: a heartbeat goes without this node's hosting announcement (peers' directories
/// lag behind).
pub const FAULT_SKIP_HOSTING: &str = "coordinator.skip_hosting";

/// How long a claimant waits for a majority of grants before it gives the claim up (and claims
/// again on a later tick).
pub const CLAIM_WINDOW: Duration = Duration::from_secs(1);
/// How long a grant binds its giver when the claimant never announces hosting the subtree:
/// longer than the claim window plus an announcement's way and the clock skew.
pub const GRANT_TTL: Duration = Duration::from_secs(5);
/// How long a node that moved a subtree away still announces it as moving to its new node:
/// a member that hears the mover let go before it hears the target take over still has a
/// way to send (through the mover, which forwards).
pub const MOVED_ANNOUNCED: Duration = Duration::from_secs(10);
/// How long a move may take before the holder takes it back (by claim, as after a release).
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a target keeps an arrived handoff while no announcement says it is moving there
/// (the announcement and the handoff travel different streams).
pub const HANDOFF_UNCONFIRMED_MAX: Duration = Duration::from_secs(5);

/// What the host does for the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send on the control stream to `to` (dialling it first if need be, at `addr` when
    /// membership knows it).
    Send { to: String, addr: Option<String>, msg: ControlMsg },
    /// Start the topology's subtree at this root here (report a failure with `start_failed`).
    Start(ActorPath),
    /// Stop the subtree at this root here.
    Stop { root: ActorPath, why: String },
    /// `node` is gone for good: drop what was queued for it.
    Released(String),
    /// The directory changed (hosts keep a copy for lookups on the send path).
    DirectoryChanged,
    /// Something an operator wants to see.
    Note(Note),
    /// Take the subtree at `root` out (it keeps running nowhere until the target starts it)
    /// and send its handoff to `to`.
    MoveOut { root: ActorPath, to: String },
    /// `to` hosts the subtree now: the kept handoff may go.
    MoveDone { root: ActorPath, to: String },
    /// The move to `to` failed: start the subtree here again from the kept handoff, or, with
    /// `reclaim`, keep the handoff for the `Start` of a claim this node makes for it again.
    MoveAborted { root: ActorPath, to: String, why: String, reclaim: bool },
    /// A handoff that arrived here will not be started (its move is over): drop it, and
    /// deliver what was held for the subtree.
    MoveInDropped { root: ActorPath },
}

/// Operator-facing news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Member(MemberEvent),
    /// Subtrees that fit no node that is up, each with what it needs (only when it changes).
    Unplaced(Vec<String>),
    /// The lease was gained (true) or lost (false).
    Lease(bool),
}

pub struct Coordinator {
    name: String,
    incarnation: u64,
    membership: Membership,
    directory: Directory,
    topology: Topology,
    hosted: BTreeSet<ActorPath>,
    lease_held: bool,
    unplaced: Vec<String>,
    left: bool,
    /// Subtree -> the claimant this node granted it to.
    grants: BTreeMap<ActorPath, Granted>,
    /// This node's claims awaiting a majority.
    claims: BTreeMap<ActorPath, Pending>,
    /// Test-only breakage: start what the plan says without claims (see `break_claims`).
    claims_skipped: bool,
    /// Subtrees hosted here that are moving away: root -> (target, since).
    moves_out: BTreeMap<ActorPath, (String, Instant)>,
    /// Subtrees whose handoff is here (arrived, or kept by a mover taking it back): root ->
    /// (the node moving them, since), until started here.
    moves_in: BTreeMap<ActorPath, (String, Instant)>,
    /// Subtrees moved away: root -> (where to, when), announced as moving for `MOVED_ANNOUNCED`.
    moved: BTreeMap<ActorPath, (String, Instant)>,
    outputs: VecDeque<Output>,
}

#[derive(Debug, Clone)]
struct Granted {
    node: String,
    incarnation: u64,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Pending {
    since: Instant,
    granted: BTreeSet<String>,
}

impl Coordinator {
    /// Node `me` (its attested tags inside), joining through `seeds`, running `topology`.
    pub fn new(
        me: MemberInfo,
        seeds: Vec<String>,
        config: MembershipConfig,
        topology: Topology,
        now: Instant,
    ) -> Self {
        let (name, incarnation) = (me.name.clone(), me.incarnation);
        Coordinator {
            name,
            incarnation,
            membership: Membership::new(me, seeds, config, now),
            directory: Directory::new(),
            topology,
            hosted: BTreeSet::new(),
            lease_held: false,
            unplaced: Vec::new(),
            left: false,
            grants: BTreeMap::new(),
            claims: BTreeMap::new(),
            claims_skipped: false,
            moves_out: BTreeMap::new(),
            moves_in: BTreeMap::new(),
            moved: BTreeMap::new(),
            outputs: VecDeque::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Subtrees running here.
    pub fn hosted(&self) -> &BTreeSet<ActorPath> {
        &self.hosted
    }

    /// Members (not this node) and their status.
    pub fn members(&self) -> BTreeMap<String, Status> {
        self.membership.members()
    }

    /// Every member this node knows, itself included, by name.
    pub fn member_infos(&self) -> Vec<MemberInfo> {
        self.membership.all().into_iter().cloned().collect()
    }

    pub fn holds_lease(&self) -> bool {
        self.lease_held
    }

    /// Breaks this coordinator on purpose: it starts what its own plan says without asking for
    /// grants. Only for tests that prove the simulator's invariants catch such a bug.
    #[doc(hidden)]
    pub fn break_claims(&mut self) {
        self.claims_skipped = true;
    }

    /// The next thing for the host to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The tick.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.left {
            return;
        }
        self.membership.handle_timeout(now);
        let announced = self.moved.len();
        self.moved.retain(|_, (_, at)| now.saturating_since(*at) < MOVED_ANNOUNCED);
        if self.moved.len() != announced {
            self.announce();
        }
        while let Some(event) = self.membership.poll_event() {
            self.outputs.push_back(Output::Note(Note::Member(event)));
        }
        self.release_gone(now);
        let holds = self.membership.holds_lease(now);
        if holds != self.lease_held {
            self.lease_held = holds;
            self.outputs.push_back(Output::Note(Note::Lease(holds)));
        }
        if !holds {
            self.claims.clear();
            self.stop_all("lease lost: cut off from the majority");
        } else if self.membership.settled(now) && self.membership.has_majority() {
            // A node that still holds its lease but no longer sees a majority places nothing
            // new: the majority side may be placing the same subtrees.
            self.place(now);
        } else {
            self.claims.clear();
        }
        self.flush_membership(true);
    }

    /// A control message from the authenticated peer `from` (lane acknowledgements are the
    /// host's, and ignored here).
    pub fn handle_control(&mut self, from: &str, msg: ControlMsg, now: Instant) {
        match msg {
            ControlMsg::Member(msg) => self.membership.handle_message(from, msg, now),
            ControlMsg::Hosting { incarnation, roots, moving, cordoned } => {
                // Only from the incarnation membership knows: an older life's claims are void.
                let current = self.membership.incarnation_of(from);
                if current.is_some_and(|c| incarnation >= c) {
                    self.directory.set_cordoned(from, cordoned);
                    // Done once the target hosts it (not merely announces it as moved away).
                    let arrived: Vec<ActorPath> = self
                        .moves_out
                        .iter()
                        .filter(|(root, (to, _))| *to == from && roots.contains(root))
                        .filter(|(root, _)| !moving.iter().any(|(r, _)| r == *root))
                        .map(|(root, _)| root.clone())
                        .collect();
                    if self.directory.announce_moving(from, incarnation, roots, moving.into_iter().collect())
                    {
                        self.outputs.push_back(Output::DirectoryChanged);
                    }
                    for root in arrived {
                        self.moves_out.remove(&root);
                        self.hosted.remove(&root);
                        self.moved.insert(root.clone(), (from.to_string(), now));
                        self.outputs.push_back(Output::MoveDone { root, to: from.to_string() });
                    }
                    self.announce();
                }
            }
            ControlMsg::MoveRefused { root, why } => {
                if self.moves_out.get(&root).is_some_and(|(to, _)| to == from) {
                    self.abort_move(&root, &format!("{from} refused it: {why}"));
                }
            }
            // Checkpoints are the host's (a node's `checkpoints`), not the coordinator's.
            ControlMsg::Checkpoint { .. }
            | ControlMsg::CheckpointStale { .. }
            | ControlMsg::CheckpointWanted { .. }
            | ControlMsg::CheckpointKept { .. } => {}
            ControlMsg::Claim { root, incarnation } => {
                if self.membership.settled(now) && self.may_grant(&root, from, incarnation, now) {
                    self.grants
                        .insert(root.clone(), Granted { node: from.to_string(), incarnation, at: now });
                    self.send(from.to_string(), ControlMsg::Grant { root, incarnation });
                }
            }
            ControlMsg::Grant { root, incarnation } => {
                if incarnation == self.incarnation {
                    if let Some(claim) = self.claims.get_mut(&root) {
                        claim.granted.insert(from.to_string());
                    }
                }
            }
            ControlMsg::Ack { .. } => {}
        }
        self.hurry_moves_in(now);
    }

    /// Whether this node may grant `root` to `node` (at `incarnation`): no other live node
    /// hosts it (unless it is moving it to `node`), and no grant to another claimant still
    /// binds.
    fn may_grant(&self, root: &ActorPath, node: &str, incarnation: u64, now: Instant) -> bool {
        // Alive unless membership released it: a node not heard of yet (a one-way cut) counts
        // as alive, so a grant to it binds.
        let alive = |n: &str| n == self.name || self.membership.release_at(n).is_none_or(|at| now < at);
        let moving_to_claimant = self.directory.moving_to(root) == Some(node);
        if let Some(holder) = self.directory.node_of(root) {
            if holder != node && alive(holder) && !moving_to_claimant {
                return false;
            }
        }
        match self.grants.get(root) {
            Some(g) if g.node == node && g.incarnation == incarnation => true,
            Some(g) => {
                // A holder moving the subtree to the claimant no longer binds its grant.
                let hosts_it = self.directory.node_of(root) == Some(g.node.as_str());
                let handing_over = hosts_it && moving_to_claimant;
                let restarted = self.membership.incarnation_of(&g.node).is_some_and(|i| i > g.incarnation);
                let binding =
                    alive(&g.node) && !restarted && (hosts_it || now.saturating_since(g.at) < GRANT_TTL);
                !binding || handing_over
            }
            None => true,
        }
    }

    /// The host could not start `root` (its path is still taken by a copy being stopped): it
    /// is placed again on a later tick.
    pub fn start_failed(&mut self, root: &ActorPath) {
        if self.hosted.remove(root) {
            self.announce();
        }
    }

    /// Starts moving the subtree at `root`, hosted here, to `to`: refused (with the reason) if
    /// it does not run here, is already moving, or `to` is not up or lacks a tag a
    /// requirement inside the subtree needs.
    pub fn begin_move(&mut self, root: &ActorPath, to: &str, now: Instant) -> Result<(), String> {
        if let Some((target, _)) = self.moves_out.get(root) {
            return Err(format!("{root} is already moving to {target}"));
        }
        if !self.hosted.contains(root) {
            return Err(format!("{root} does not run on {}", self.name));
        }
        if !self.lease_held {
            return Err(format!("{} does not hold its lease", self.name));
        }
        if to == self.name {
            return Err(format!("{root} already runs on {to}"));
        }
        let target = self.membership.member(to).filter(|m| m.status == Status::Up);
        let target = target.ok_or_else(|| format!("{to} is not a member that is up"))?;
        if self.directory.is_cordoned(to) {
            return Err(format!("{to} is cordoned (drained): uncordon it first"));
        }
        let spec =
            self.topology.get(root).ok_or_else(|| format!("{root} is not a subtree of the topology"))?;
        let mut requires = Vec::new();
        crate::placement::requirements(spec, &mut requires);
        if let Some((path, requirement)) = requires.iter().find(|(_, r)| !r.matches(&target.tags)) {
            return Err(format!("{to} cannot host {root}: {path} requires {requirement}"));
        }
        self.moves_out.insert(root.clone(), (to.to_string(), now));
        self.moved.remove(root);
        // Announced first: the host's directory says "moving" before any mailbox closes.
        self.announce();
        self.outputs.push_back(Output::MoveOut { root: root.clone(), to: to.to_string() });
        Ok(())
    }

    /// Cordons this node (an operator drains it: nothing new is placed or moved here; what it
    /// hosts stays until moved away) or lifts the cordon; every member hears it at once.
    pub fn set_cordoned(&mut self, cordoned: bool) {
        if !self.directory.set_cordoned(&self.name, cordoned) {
            return;
        }
        let msg = self.hosting_msg();
        for (to, status) in self.membership.members() {
            if status == Status::Up {
                self.send(to, msg.clone());
            }
        }
    }

    pub fn is_cordoned(&self) -> bool {
        self.directory.is_cordoned(&self.name)
    }

    /// The host could not take the subtree out or hand it over, or the target refused it
    /// (`why`): it runs here again.
    pub fn abort_move(&mut self, root: &ActorPath, why: &str) {
        if let Some((to, _)) = self.moves_out.remove(root) {
            let why = why.to_string();
            self.outputs.push_back(Output::MoveAborted { root: root.clone(), to, why, reclaim: false });
            self.announce();
        }
    }

    /// The target may have started the subtree all the same (released, or too slow): this
    /// node lets go of it and claims it again, with the kept handoff, like any other.
    fn reclaim_move(&mut self, root: &ActorPath, why: String, now: Instant) {
        if let Some((to, _)) = self.moves_out.remove(root) {
            self.hosted.remove(root);
            self.moves_in.insert(root.clone(), (self.name.clone(), now));
            self.outputs.push_back(Output::MoveAborted { root: root.clone(), to, why, reclaim: true });
            self.announce();
        }
    }

    /// The handoff of `root` arrived from `from`: this node claims it (and starts it from the
    /// handoff once granted), or refuses it. True if accepted.
    pub fn handoff_arrived(&mut self, root: &ActorPath, from: &str, now: Instant) -> bool {
        let top_level = self.topology.roots().iter().find(|s| s.path() == root);
        let refusal = match top_level {
            None => Some(format!("{root} is not a top-level subtree of the topology")),
            Some(_) if self.hosted.contains(root) => Some(format!("{root} already runs on {}", self.name)),
            Some(_) if self.moves_in.contains_key(root) => {
                Some(format!("{root} is already moving to {}", self.name))
            }
            Some(spec) => {
                let mut requires = Vec::new();
                crate::placement::requirements(spec, &mut requires);
                let tags = &self.membership.me().tags;
                requires
                    .iter()
                    .find(|(_, r)| !r.matches(tags))
                    .map(|(path, r)| format!("{} cannot host {root}: {path} requires {r}", self.name))
            }
        };
        if let Some(why) = refusal {
            self.send(from.to_string(), ControlMsg::MoveRefused { root: root.clone(), why });
            return false;
        }
        self.moved.remove(root);
        self.moves_in.insert(root.clone(), (from.to_string(), now));
        self.hurry_moves_in(now);
        true
    }

    /// Subtrees this node is moving away (stopped here, not yet running there).
    pub fn moving_out(&self) -> impl Iterator<Item = &ActorPath> {
        self.moves_out.keys()
    }

    /// The host started a subtree from its handoff.
    pub fn moved_in(&mut self, root: &ActorPath) {
        self.moves_in.remove(root);
    }

    /// Leaves for good: stops everything hosted here, says so, and tells every member.
    pub fn leave(&mut self) {
        self.stop_all("this node leaves the cluster");
        self.membership.leave();
        self.flush_membership(false);
        self.left = true;
    }

    /// Releases the subtrees of nodes down for longer than their lease; a move to such a node
    /// is taken back (it runs nothing now).
    fn release_gone(&mut self, now: Instant) {
        let released =
            |c: &Self, n: &str| n != c.name && c.membership.release_at(n).is_some_and(|at| now >= at);
        let failed: Vec<(ActorPath, String)> = self
            .moves_out
            .iter()
            .filter(|(_, (to, since))| released(self, to) || now.saturating_since(*since) >= MOVE_TIMEOUT)
            .map(|(r, (t, _))| (r.clone(), t.clone()))
            .collect();
        for (root, to) in failed {
            let why = if released(self, &to) {
                format!("{to} went down before it was seen to host it")
            } else {
                format!("{to} did not host it within {MOVE_TIMEOUT:?}")
            };
            self.reclaim_move(&root, why, now);
        }
        let gone: Vec<String> =
            self.directory.nodes().filter(|n| released(self, n)).map(str::to_string).collect();
        for node in gone {
            self.directory.forget(&node);
            self.outputs.push_back(Output::Released(node));
            self.outputs.push_back(Output::DirectoryChanged);
        }
    }

    fn place(&mut self, now: Instant) {
        for root in self.directory.conflicts(&self.name) {
            self.stop(&root, "another node hosts it too (the lower name keeps it)");
        }
        // Claims that gathered a majority start; stale ones are given up.
        let majority = self.membership.majority();
        let claims = std::mem::take(&mut self.claims);
        for (root, claim) in claims {
            if claim.granted.len() >= majority {
                if self.hosted.insert(root.clone()) {
                    self.outputs.push_back(Output::Start(root));
                }
            } else if now.saturating_since(claim.since) < CLAIM_WINDOW {
                self.claims.insert(root, claim);
            }
        }
        let up: Vec<NodeView> = self
            .membership
            .up()
            .into_iter()
            .map(|i| NodeView {
                name: i.name.clone(),
                tags: i.tags.clone(),
                up: true,
                cordoned: self.directory.is_cordoned(&i.name),
            })
            .collect();
        let held = self.directory.held(|_| true);
        let plan = plan(&self.topology, &up, &held);
        let mine: Vec<ActorPath> = plan
            .placed
            .iter()
            .filter(|(root, node)| **node == self.name && !held.contains_key(*root))
            .filter(|(root, _)| !self.hosted.contains(*root) && !self.claims.contains_key(*root))
            .map(|(root, _)| root.clone())
            .collect();
        // Subtrees moving here are claimed like any other, whoever the plan would pick, once an
        // announcement confirms their holder is moving them here (or this node takes its own
        // back). A handoff unconfirmed for long, or whose move is over, is dropped.
        let mut arriving = Vec::new();
        let mut dropped = Vec::new();
        for (root, (from, since)) in &self.moves_in {
            let confirmed = self.move_confirmed(root, from);
            if confirmed && !self.hosted.contains(root) && !self.claims.contains_key(root) {
                arriving.push(root.clone());
            } else if !confirmed && now.saturating_since(*since) >= HANDOFF_UNCONFIRMED_MAX {
                dropped.push(root.clone());
            }
        }
        for root in dropped {
            self.moves_in.remove(&root);
            self.outputs.push_back(Output::MoveInDropped { root });
        }
        for root in mine.into_iter().chain(arriving) {
            self.claim(root, now);
        }
        let unplaced: Vec<String> = plan.unplaced.iter().map(ToString::to_string).collect();
        if unplaced != self.unplaced {
            if !unplaced.is_empty() {
                self.outputs.push_back(Output::Note(Note::Unplaced(unplaced.clone())));
            }
            self.unplaced = unplaced;
        }
        self.announce();
    }

    /// Whether `root`'s handoff from `from` may be claimed: an announcement confirms its holder
    /// is moving it here (or this node takes its own back).
    fn move_confirmed(&self, root: &ActorPath, from: &str) -> bool {
        from == self.name
            || (self.directory.node_of(root) == Some(from)
                && self.directory.moving_to(root) == Some(self.name.as_str()))
    }

    /// Whether this node may place now, as its tick checks: it holds its lease, its view
    /// settled and it sees a majority.
    fn may_place(&self, now: Instant) -> bool {
        !self.left
            && self.membership.holds_lease(now)
            && self.membership.settled(now)
            && self.membership.has_majority()
    }

    /// Claims at once (not at the next tick) the arrived handoffs an announcement confirmed,
    /// and starts those a majority granted: a move's pause is this node's message handling,
    /// not its tick. The tick does the same for every claim.
    fn hurry_moves_in(&mut self, now: Instant) {
        if self.moves_in.is_empty() || !self.may_place(now) {
            return;
        }
        let majority = self.membership.majority();
        let moving_in: Vec<(ActorPath, String)> =
            self.moves_in.iter().map(|(root, (from, _))| (root.clone(), from.clone())).collect();
        let hosted = self.hosted.len();
        for (root, from) in moving_in {
            if self.hosted.contains(&root) {
                continue;
            }
            match self.claims.get(&root) {
                Some(claim) if claim.granted.len() >= majority => {
                    self.claims.remove(&root);
                    self.hosted.insert(root.clone());
                    self.outputs.push_back(Output::Start(root));
                }
                Some(_) => {}
                None if self.move_confirmed(&root, &from) => self.claim(root, now),
                None => {}
            }
        }
        if self.hosted.len() != hosted {
            self.announce();
        }
    }

    /// Grants `root` to this node if it may, and asks every member that is up for theirs.
    fn claim(&mut self, root: ActorPath, now: Instant) {
        let me = self.name.clone();
        if !self.may_grant(&root, &me, self.incarnation, now) {
            return;
        }
        self.grants
            .insert(root.clone(), Granted { node: me.clone(), incarnation: self.incarnation, at: now });
        let granted = BTreeSet::from([me]);
        if granted.len() >= self.membership.majority() || self.claims_skipped {
            if self.hosted.insert(root.clone()) {
                self.outputs.push_back(Output::Start(root));
            }
            return;
        }
        let msg = ControlMsg::Claim { root: root.clone(), incarnation: self.incarnation };
        for (to, status) in self.membership.members() {
            if status == Status::Up {
                self.send(to, msg.clone());
            }
        }
        self.claims.insert(root, Pending { since: now, granted });
    }

    fn stop(&mut self, root: &ActorPath, why: &str) {
        self.moves_out.remove(root);
        if self.hosted.remove(root) {
            self.outputs.push_back(Output::Stop { root: root.clone(), why: why.to_string() });
        }
    }

    fn stop_all(&mut self, why: &str) {
        let hosted: Vec<ActorPath> = self.hosted.iter().cloned().collect();
        for root in hosted {
            self.stop(&root, why);
        }
        self.announce();
    }

    /// What this node hosts, as the message that replicates it.
    pub fn hosting_msg(&self) -> ControlMsg {
        let (roots, moving) = self.announced();
        ControlMsg::Hosting {
            incarnation: self.incarnation,
            roots,
            moving: moving.into_iter().collect(),
            cordoned: self.directory.is_cordoned(&self.name),
        }
    }

    /// The roots this node announces: those hosted here, and those moving or lately moved
    /// away (also listed, with their new node, as moving).
    fn announced(&self) -> (Vec<ActorPath>, BTreeMap<ActorPath, Away>) {
        let away = |to: &String, done| Away { to: to.clone(), done };
        let mut moving: BTreeMap<ActorPath, Away> =
            self.moved.iter().map(|(root, (to, _))| (root.clone(), away(to, true))).collect();
        moving.extend(self.moves_out.iter().map(|(root, (to, _))| (root.clone(), away(to, false))));
        let roots = self.hosted.iter().chain(moving.keys()).cloned().collect::<BTreeSet<_>>();
        (roots.into_iter().collect(), moving)
    }

    /// Records what this node hosts in its own directory; tells every member when it changed.
    fn announce(&mut self) {
        let (roots, moving) = self.announced();
        if !self.directory.announce_moving(&self.name, self.incarnation, roots, moving) {
            return;
        }
        self.outputs.push_back(Output::DirectoryChanged);
        let msg = self.hosting_msg();
        for (to, status) in self.membership.members() {
            if status == Status::Up {
                self.send(to, msg.clone());
            }
        }
    }

    /// Membership's messages, each heartbeat followed by this node's hosting announcement.
    fn flush_membership(&mut self, with_hosting: bool) {
        while let Some((to, msg)) = self.membership.poll_send() {
            let heartbeat = matches!(msg, MemberMsg::Heartbeat { .. });
            self.send(to.clone(), ControlMsg::Member(msg));
            if heartbeat && with_hosting && !aiot_runtime::fault::point(FAULT_SKIP_HOSTING) {
                let hosting = self.hosting_msg();
                self.send(to, hosting);
            }
        }
    }

    fn send(&mut self, to: String, msg: ControlMsg) {
        let addr = self.membership.member(&to).map(|i| i.addr.clone());
        self.outputs.push_back(Output::Send { to, addr, msg });
    }
}
