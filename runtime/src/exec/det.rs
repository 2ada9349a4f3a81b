//! The deterministic executor: one thread, virtual time, seeded choices, a trace hash.
//!
//! Scheduling: an event queue of timers ordered by (virtual time, sequence), and a set of
//! runners with work. While any runner has work, one is picked at random with the system's
//! seeded rng and steps once (one message); only when none has work does the clock jump to the
//! next timer. Each mailbox is FIFO, so no (sender, receiver) pair is ever reordered, while the
//! interleaving across actors is explored by seed.
//!
//! Every delivery feeds the trace hash with its virtual time, sender, receiver and the
//! bincode bytes of what was delivered: the same seed gives the same hash, in any process.

use crate::checkpoint::{CheckpointError, PendingCheckpoint};
use crate::migration::{Handoff, MigrateError, PendingHandoff};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xxhash_rust::xxh3::Xxh3;

use crate::actor::{Actor, ExitReason};
use crate::actor_ref::{ActorRef, ReplyTo};
use crate::cell::{AnyCell, Notify};
use crate::error::{AskError, SendError, SpawnError};
use crate::external::{self, PendingReply};
use crate::host::{Host, Runnable, Step, TimerFire, TimerToken};
use crate::mailbox::{ActorId, Control};
use crate::message::Message;
use crate::path::ActorPath;
use crate::port::{port_path, Port, PortCall};
use crate::spec::{ActorSpec, Spec};
use crate::system::{SystemConfig, SystemCore};
use crate::time::Instant;
use crate::topology::Topology;

/// Runners with work, picked at random. Insertion order is deterministic, and so is the pick.
#[derive(Default)]
struct ReadySet {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    list: Vec<ActorId>,
    member: BTreeSet<ActorId>,
}

impl ReadySet {
    fn insert(&self, id: ActorId) {
        let mut r = self.inner.lock();
        if r.member.insert(id) {
            r.list.push(id);
        }
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> Option<ActorId> {
        let mut r = self.inner.lock();
        if r.list.is_empty() {
            return None;
        }
        let i = rng.random_range(0..r.list.len());
        let id = r.list.swap_remove(i);
        r.member.remove(&id);
        Some(id)
    }
}

impl Notify for ReadySet {
    fn notify(&self, id: ActorId) {
        self.insert(id);
    }
}

type TimerQueue = BTreeMap<(Instant, u64), (Arc<dyn AnyCell>, TimerFire)>;

/// The executor's side of the seam (what runners see as their `Host`).
struct DetHost {
    core: Arc<SystemCore>,
    now: Instant,
    ready: Arc<ReadySet>,
    timers: TimerQueue,
    timer_at: BTreeMap<u64, Instant>,
    next_seq: u64,
    spawned: Vec<Box<dyn Runnable>>,
    hash: Xxh3,
    deliveries: u64,
}

impl Host for DetHost {
    fn core(&self) -> &Arc<SystemCore> {
        &self.core
    }
    fn now(&self) -> Instant {
        self.now
    }
    fn notifier(&mut self) -> Option<Arc<dyn Notify>> {
        Some(self.ready.clone())
    }
    fn spawn(&mut self, runner: Box<dyn Runnable>) {
        self.ready.insert(runner.id());
        self.spawned.push(runner);
    }
    fn set_timer(&mut self, target: Arc<dyn AnyCell>, after: Duration, fire: TimerFire) -> TimerToken {
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = self.now + after;
        self.timers.insert((at, seq), (target, fire));
        self.timer_at.insert(seq, at);
        TimerToken(seq)
    }
    fn cancel_timer(&mut self, token: TimerToken) {
        if let Some(at) = self.timer_at.remove(&token.0) {
            self.timers.remove(&(at, token.0));
        }
    }
    fn tracing(&self) -> bool {
        true
    }
    fn trace(&mut self, from: ActorId, to: ActorId, bytes: &[u8]) {
        self.hash.update(&self.now.as_nanos().to_le_bytes());
        self.hash.update(&from.0.to_le_bytes());
        self.hash.update(&to.0.to_le_bytes());
        self.hash.update(&(bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
        self.deliveries += 1;
    }
}

/// An actor system driven deterministically by one seed.
pub struct DetSystem {
    host: DetHost,
    rng: ChaCha8Rng,
    runners: BTreeMap<ActorId, Box<dyn Runnable>>,
    root: Arc<dyn AnyCell>,
}

impl DetSystem {
    /// A system whose every choice derives from `config.seed`.
    pub fn new(config: SystemConfig) -> Self {
        let (seed, root_spec) = (config.seed, config.root);
        let mut host = DetHost {
            core: SystemCore::new(config),
            now: Instant::ZERO,
            ready: Arc::new(ReadySet::default()),
            timers: BTreeMap::new(),
            timer_at: BTreeMap::new(),
            next_seq: 0,
            spawned: Vec::new(),
            hash: Xxh3::new(),
            deliveries: 0,
        };
        let (runner, root) = external::make_root(&mut host, root_spec);
        host.spawn(runner);
        let mut system =
            DetSystem { host, rng: ChaCha8Rng::seed_from_u64(seed), runners: BTreeMap::new(), root };
        system.absorb_spawned();
        system
    }

    /// A system with default settings and `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self::new(SystemConfig::with_seed(seed))
    }

    /// Starts a topology's top-level subtrees under the root guardian and runs until every
    /// declared actor is up (children start synchronously, each initialised before the next,
    /// as in OTP) or nothing is left to run.
    pub fn start(&mut self, topology: &Topology) -> Result<(), SpawnError> {
        external::start_topology(&mut self.host, &self.root, topology)?;
        let paths = external::declared_paths(topology);
        self.run_until(|s| paths.iter().all(|p| s.core().lookup(p).is_some()));
        Ok(())
    }

    /// Starts top-level subtrees declared in a topology (all or none) without waiting for
    /// them to be up: a cluster node starts the subtrees placed on it so.
    pub fn start_subtrees(&mut self, subtrees: &[Arc<Spec>]) -> Result<(), SpawnError> {
        external::start_subtrees(&mut self.host, &self.root, subtrees)
    }

    /// Moves the top-level subtree at `path` out (live migration's runtime half): it stops with
    /// each actor's snapshot and waiting messages, which the returned future yields.
    pub fn migrate_subtree(&self, path: &ActorPath) -> Result<PendingHandoff, MigrateError> {
        external::migrate_subtree(self.core(), &self.root, path)
    }

    /// Takes the snapshots of the running top-level subtree at `path` without stopping it
    /// (a checkpoint, for failover); they are ready once the system has run.
    pub fn checkpoint_subtree(&self, path: &ActorPath) -> Result<PendingCheckpoint, CheckpointError> {
        external::checkpoint_subtree(self.core(), path)
    }

    /// Starts the declared subtree `spec` from a handoff another system gave (see
    /// `migrate_subtree`).
    pub fn start_subtree_from(&mut self, spec: &Arc<Spec>, handoff: Handoff) -> Result<(), SpawnError> {
        external::start_subtree_from(&mut self.host, &self.root, spec, handoff)
    }

    /// Stops the top-level subtree at `path` for good; false if the system has stopped.
    pub fn stop_subtree(&self, path: &ActorPath) -> bool {
        external::stop_subtree(&self.root, path)
    }

    /// Starts one top-level actor at `/name`; its mailbox takes messages at once.
    pub fn spawn<A: Actor>(
        &mut self,
        name: &str,
        spec: ActorSpec<A>,
    ) -> Result<ActorRef<A::Msg>, SpawnError> {
        let path = external::top_level_path(name)?;
        external::spawn_top_level(&mut self.host, &self.root, path, spec)
    }

    /// Installs port `P`'s adapter (an actor taking `PortCall<P>`) at `/port-{NAME}`.
    pub fn install_port<P: Port, A: Actor<Msg = PortCall<P>>>(
        &mut self,
        spec: ActorSpec<A>,
    ) -> Result<(), SpawnError> {
        external::spawn_top_level(&mut self.host, &self.root, port_path::<P>(), spec).map(|_| ())
    }

    /// Sends from outside the system.
    pub fn tell<M: Message>(&self, to: &ActorRef<M>, msg: M) -> Result<(), SendError> {
        external::tell(&self.host.core, to, msg)
    }

    /// Sends a request from outside; run the system, then `try_take` the reply.
    pub fn ask<Q: Message, R: Message>(
        &mut self,
        to: &ActorRef<Q>,
        request: impl FnOnce(ReplyTo<R>) -> Q,
        timeout: Duration,
    ) -> Result<PendingReply<R>, AskError> {
        external::ask(&mut self.host, to, request, timeout)
    }

    fn absorb_spawned(&mut self) {
        for runner in self.host.spawned.drain(..) {
            self.runners.insert(runner.id(), runner);
        }
    }

    /// One event: a step of a random runner with work, or else the next timer. False when
    /// nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.step_ready() || self.fire_next_timer(None)
    }

    /// Steps one runner picked at random among those with work; false if none has any.
    fn step_ready(&mut self) -> bool {
        while let Some(id) = self.host.ready.pick(&mut self.rng) {
            // Ids of runners that have exited may linger in the set: skip them.
            let Some(runner) = self.runners.get_mut(&id) else { continue };
            match runner.step(&mut self.host) {
                Step::Ran { more: true } => self.host.ready.insert(id),
                Step::Exited => {
                    self.runners.remove(&id);
                }
                Step::Ran { more: false } | Step::Idle | Step::Blocked => {}
            }
            self.absorb_spawned();
            return true;
        }
        false
    }

    /// Fires the earliest timer (if due by `deadline`), advancing the clock to it.
    fn fire_next_timer(&mut self, deadline: Option<Instant>) -> bool {
        let Some((&(at, seq), _)) = self.host.timers.first_key_value() else { return false };
        if deadline.is_some_and(|d| at > d) {
            return false;
        }
        let (_, (cell, fire)) = self.host.timers.pop_first().expect("just seen");
        self.host.timer_at.remove(&seq);
        self.host.now = self.host.now.max(at);
        match fire {
            TimerFire::Timer(key) => cell.push_timer(key),
            TimerFire::AskTimeout(corr) => cell.push_ask_timeout(corr),
        };
        true
    }

    /// Runs until no runner has work and no timer is pending; returns the events processed.
    /// Interval timers keep a system busy forever: use `run_for` with them.
    pub fn run_until_idle(&mut self) -> u64 {
        let mut events = 0;
        while self.step() {
            events += 1;
        }
        events
    }

    /// Runs for `span` of virtual time: every event due by then, then the clock moves to it.
    pub fn run_for(&mut self, span: Duration) -> u64 {
        let deadline = self.host.now + span;
        let mut events = 0;
        while self.step_ready() || self.fire_next_timer(Some(deadline)) {
            events += 1;
        }
        self.host.now = self.host.now.max(deadline);
        events
    }

    /// Runs until `done` holds (checked after each event) or nothing is left; true if it held.
    pub fn run_until(&mut self, mut done: impl FnMut(&DetSystem) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
        }
    }

    /// Stops every actor (children before parents) and returns the root's exit reason.
    pub fn shutdown(&mut self) -> ExitReason {
        self.root.push_control(Control::Terminate);
        self.run_until(|s| s.core().exit_reason().is_some());
        self.core().exit_reason().expect("the root stops once terminated and idle")
    }

    pub fn now(&self) -> Instant {
        self.host.now
    }

    /// The running hash over every delivery so far.
    pub fn trace_hash(&self) -> u64 {
        self.host.hash.digest()
    }

    /// Deliveries traced so far.
    pub fn deliveries(&self) -> u64 {
        self.host.deliveries
    }

    pub fn core(&self) -> &Arc<SystemCore> {
        &self.host.core
    }

    /// Live runners (actors not yet stopped), the root included.
    pub fn live_actors(&self) -> usize {
        self.runners.len()
    }
}
