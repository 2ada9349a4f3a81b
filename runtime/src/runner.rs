//! The runner: one actor incarnation's private half, and the one place where actor semantics
//! live (delivery, failure, supervision of its children, timers, asks, watches, backpressure).
//!
//! Executors only call `step`; everything here goes through the `Host` seam, so both executors
//! share these semantics exactly. A step handles at most one message or supervision signal.
//! State that most actors never use (children, timers, asks, watches, ports) sits in `Extras`,
//! allocated on first use, so an idle actor stays small.

use std::any::Any;
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;

use crate::actor::{Actor, ActorError, Down, ExitReason};
use crate::actor_ref::ActorRef;
use crate::cell::{AnyCell, Cell, Popped, PushError};
use crate::ctx::{ActorRng, Ctx};
use crate::error::{AskError, SendError};
use crate::host::{Host, Runnable, Step, TimerFire, TimerToken};
use crate::mailbox::{ActorId, Control, Envelope};
use crate::message::{encode_into, Message};
use crate::migration::{ActorHandoff, MigrateError, MigrationSink};
use crate::path::ActorPath;
use crate::remote::{Remote, RemoteSendError};
use crate::spec::{BuildActor, Init, MakeArgs, Spec};
use crate::supervision::{should_restart, siblings_affected, Restart, RestartLog, Strategy};
use crate::system::{EventKind, SystemCore};
use crate::time::Instant;

/// A child as its supervisor tracks it.
pub(crate) struct Child {
    pub(crate) spec: Arc<Spec>,
    /// Its mailbox while this supervisor owns the path: through restarts the mailbox stays
    /// (only the message that failed is lost); `None` once it is closed for good.
    pub(crate) cell: Option<Arc<dyn AnyCell>>,
    /// An incarnation is running (false between its exit and the supervisor's decision).
    pub(crate) running: bool,
    pub(crate) incarnation: u64,
    /// Spawned by `ctx.spawn_child` (forgotten when it ends) rather than declared.
    pub(crate) dynamic: bool,
}

pub(crate) enum TimerMsg<M> {
    Once(Option<M>),
    Every(Box<dyn Fn() -> M + Send>),
}

pub(crate) struct TimerEntry<M> {
    pub(crate) token: TimerToken,
    pub(crate) every: Option<Duration>,
    pub(crate) msg: TimerMsg<M>,
}

pub(crate) type ReplyFn<M> = Box<dyn FnOnce(Result<Box<dyn Any + Send>, AskError>) -> M + Send>;
pub(crate) type PortFn<M> = Box<dyn Fn(Box<dyn Any + Send>) -> Option<M> + Send>;
pub(crate) type DownFn<M> = Box<dyn FnOnce(Down) -> M + Send>;

pub(crate) struct PendingAsk<M> {
    pub(crate) token: TimerToken,
    pub(crate) on_reply: ReplyFn<M>,
}

/// Messages parked under backpressure, in send order. Boxed on purpose: an actor that never
/// parks pays one pointer, not an empty `VecDeque`'s four words.
#[derive(Default)]
#[allow(clippy::box_collection)]
pub(crate) struct Outbox(Option<Box<VecDeque<Box<dyn Parked>>>>);

impl Outbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }
    fn push_back(&mut self, parked: Box<dyn Parked>) {
        self.0.get_or_insert_with(Default::default).push_back(parked);
    }
    fn front_mut(&mut self) -> Option<&mut Box<dyn Parked>> {
        self.0.as_mut()?.front_mut()
    }
    fn pop_front(&mut self) {
        if let Some(q) = self.0.as_mut() {
            q.pop_front();
        }
    }
    fn clear(&mut self) {
        self.0 = None;
    }
}

/// A message waiting in the sender's outbox for space in a full mailbox (backpressure).
pub(crate) trait Parked: Send {
    fn try_deliver(&mut self) -> ParkedResult;
    /// Registers `waiter` to be notified when there may be room; false if there is already.
    fn wait(&self, waiter: Arc<dyn AnyCell>) -> bool;
}

pub(crate) enum ParkedResult {
    Delivered,
    Full,
    Gone(ActorPath),
}

pub(crate) struct ParkedUser<N> {
    pub(crate) cell: Arc<Cell<N>>,
    pub(crate) from: ActorId,
    pub(crate) msg: Option<N>,
    /// The cluster's router: a message whose mailbox closed while it waited (its actor moved
    /// away) goes where the path lives now.
    pub(crate) remote: Option<Arc<dyn Remote>>,
}

impl<N: Message> Parked for ParkedUser<N> {
    fn try_deliver(&mut self) -> ParkedResult {
        let msg = self.msg.take().expect("a parked message is delivered once");
        let path = AnyCell::path(&*self.cell);
        match self.cell.push_user(self.from, msg) {
            Ok(()) => ParkedResult::Delivered,
            Err(PushError::Full(msg)) => {
                self.msg = Some(msg);
                ParkedResult::Full
            }
            Err(PushError::Closed(msg)) => {
                let Some(remote) = &self.remote else { return ParkedResult::Gone(path.clone()) };
                match remote.send(path, crate::message::encode(&msg)) {
                    Ok(()) => ParkedResult::Delivered,
                    Err(RemoteSendError::Full(_)) => {
                        self.msg = Some(msg);
                        ParkedResult::Full
                    }
                    Err(RemoteSendError::NoRoute | RemoteSendError::TooLarge { .. }) => {
                        ParkedResult::Gone(path.clone())
                    }
                }
            }
            Err(PushError::Rejected) => ParkedResult::Gone(path.clone()),
        }
    }
    fn wait(&self, waiter: Arc<dyn AnyCell>) -> bool {
        match &self.remote {
            Some(remote) if self.cell.is_closed() => remote.wait_for_room(AnyCell::path(&*self.cell), waiter),
            _ => self.cell.add_waiter(waiter),
        }
    }
}

/// A message for an actor on another node, waiting for room on the way there.
pub(crate) struct ParkedRemote {
    pub(crate) remote: Arc<dyn Remote>,
    pub(crate) to: ActorPath,
    pub(crate) bytes: Option<Vec<u8>>,
}

impl Parked for ParkedRemote {
    fn try_deliver(&mut self) -> ParkedResult {
        let bytes = self.bytes.take().expect("a parked message is delivered once");
        match self.remote.send(&self.to, bytes) {
            Ok(()) => ParkedResult::Delivered,
            Err(RemoteSendError::Full(bytes)) => {
                self.bytes = Some(bytes);
                ParkedResult::Full
            }
            // Sizes are checked before a message parks: a message this long never does.
            Err(RemoteSendError::NoRoute | RemoteSendError::TooLarge { .. }) => {
                ParkedResult::Gone(self.to.clone())
            }
        }
    }
    fn wait(&self, waiter: Arc<dyn AnyCell>) -> bool {
        self.remote.wait_for_room(&self.to, waiter)
    }
}

/// Children (by start-order key) being stopped one at a time (OTP: reverse start order, each
/// awaited), and what to do once they all have.
struct Termination {
    queue: VecDeque<u64>,
    awaiting: Option<u64>,
    then: AfterTermination,
}

enum AfterTermination {
    /// Finish stopping this actor.
    Exit(ExitReason),
    /// Start these children again (keys, in start order).
    Restart(BTreeSet<u64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Stopping,
    Exited,
}

/// What an actor may never use; allocated on first use.
pub(crate) struct Extras<M> {
    /// Children by start-order key (keys only grow, so map order is start order).
    pub(crate) children: BTreeMap<u64, Child>,
    next_child: u64,
    /// Children stopped by `ctx.stop_child`: not restarted when they exit.
    pub(crate) stopped_on_request: BTreeSet<ActorId>,
    restart_log: RestartLog,
    termination: Option<Termination>,
    pub(crate) timers: BTreeMap<u64, TimerEntry<M>>,
    pub(crate) asks: BTreeMap<u64, PendingAsk<M>>,
    pub(crate) watching: BTreeMap<ActorPath, DownFn<M>>,
    pub(crate) ports: BTreeMap<&'static str, PortFn<M>>,
}

impl<M> Default for Extras<M> {
    fn default() -> Self {
        Extras {
            children: BTreeMap::new(),
            next_child: 0,
            stopped_on_request: BTreeSet::new(),
            restart_log: RestartLog::default(),
            termination: None,
            timers: BTreeMap::new(),
            asks: BTreeMap::new(),
            watching: BTreeMap::new(),
            ports: BTreeMap::new(),
        }
    }
}

/// Everything of a runner except the actor value: what `Ctx` works on.
pub(crate) struct RunnerCore<M> {
    pub(crate) id: ActorId,
    pub(crate) cell: Arc<Cell<M>>,
    pub(crate) any_cell: Arc<dyn AnyCell>,
    pub(crate) spec: Arc<Spec>,
    parent: Option<Arc<dyn AnyCell>>,
    pub(crate) incarnation: u64,
    /// Its start-order key in its supervisor, sent back when it exits.
    child_key: u64,
    phase: Phase,
    pub(crate) stop_request: Option<ExitReason>,
    pub(crate) outbox: Outbox,
    me: OnceCell<ActorRef<M>>,
    rng: Option<Box<ActorRng>>,
    /// When this incarnation was made: part of its rng's seed.
    born: Instant,
    /// The executor traces deliveries (the deterministic one): encode each for its hash.
    tracing: bool,
    extras: Option<Box<Extras<M>>>,
    /// Set while it stops to move (live migration): where its parts go.
    migrating: Option<Arc<MigrationSink>>,
}

/// One actor incarnation, ready to be stepped by an executor.
pub(crate) struct Runner<A: Actor> {
    actor: Option<A>,
    build: Arc<dyn BuildActor<A>>,
    core: RunnerCore<A::Msg>,
}

/// Seeds an actor's rng from the system seed, its path, its incarnation and when it was made:
/// a path stopped and started afresh on the same system (incarnation 0 again) draws anew.
fn actor_seed(seed: u64, path: &ActorPath, incarnation: u64, born: Instant) -> u64 {
    let mut bytes = Vec::with_capacity(path.as_str().len() + 16);
    bytes.extend_from_slice(path.as_str().as_bytes());
    bytes.extend_from_slice(&incarnation.to_le_bytes());
    bytes.extend_from_slice(&born.as_nanos().to_le_bytes());
    xxhash_rust::xxh3::xxh3_64_with_seed(&bytes, seed)
}

fn panic_reason(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

impl<A: Actor> Runner<A> {
    pub(crate) fn new(
        build: Arc<dyn BuildActor<A>>,
        cell: Arc<Cell<A::Msg>>,
        spec: Arc<Spec>,
        parent: Option<Arc<dyn AnyCell>>,
        (incarnation, child_key): (u64, u64),
        host: &mut dyn Host,
    ) -> Self {
        let any_cell: Arc<dyn AnyCell> = cell.clone();
        Runner {
            actor: None,
            build,
            core: RunnerCore {
                id: any_cell.id(),
                cell,
                any_cell,
                spec,
                parent,
                incarnation,
                child_key,
                phase: Phase::Starting,
                stop_request: None,
                outbox: Outbox::default(),
                me: OnceCell::new(),
                rng: None,
                born: host.now(),
                tracing: host.tracing(),
                extras: None,
                migrating: None,
            },
        }
    }

    /// Runs `f` on the actor with a fresh `Ctx`, turning an error or a panic into a failure.
    fn with_actor(
        &mut self,
        host: &mut dyn Host,
        sender: ActorId,
        f: impl FnOnce(&mut A, &mut Ctx<'_, A::Msg>) -> Result<(), ActorError>,
    ) {
        let Some(actor) = self.actor.as_mut() else { return };
        let mut ctx = Ctx::new(&mut self.core, host, sender);
        let outcome = catch_unwind(AssertUnwindSafe(|| f(actor, &mut ctx)));
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.0,
            Err(payload) => panic_reason(payload),
        };
        self.core.fail(host, failure);
    }

    fn start(&mut self, host: &mut dyn Host) {
        let core = &mut self.core;
        let kind = if core.incarnation == 0 {
            EventKind::Started { incarnation: 0 }
        } else {
            EventKind::Restarted { incarnation: core.incarnation }
        };
        host.core().event(host.now(), &core.spec.path, kind);
        let init = Init::new(&core.spec.path, core.incarnation, core.spec.links());
        match catch_unwind(AssertUnwindSafe(|| self.build.build(&init))) {
            Ok(actor) => self.actor = Some(actor),
            Err(payload) => {
                let reason = format!("factory {}", panic_reason(payload));
                self.core.fail(host, reason);
            }
        }
        if let Some(part) = host.core().take_restoring(&self.core.spec.path) {
            self.restore(part, host);
        }
        self.with_actor(host, ActorId::EXTERNAL, |a, ctx| a.started(ctx));
        if self.core.stop_request.is_none() {
            for spec in self.core.spec.clone().children() {
                let key = self.core.add_child(spec.clone(), false);
                self.core.start_child(key, host);
            }
        }
        self.core.phase = Phase::Running;
    }

    /// Takes a moved actor's state and waiting messages (before `started`); messages that do
    /// not decode as its type are dead letters.
    fn restore(&mut self, part: ActorHandoff, host: &mut dyn Host) {
        if let Some(snapshot) = &part.snapshot {
            self.with_actor(host, ActorId::EXTERNAL, |a, _ctx| a.restore(snapshot));
        }
        let undecodable = self.core.cell.push_front_encoded(&part.pending);
        host.core().dead_letter(&self.core.spec.path, undecodable);
    }

    fn deliver(&mut self, env: Envelope<A::Msg>, host: &mut dyn Host) {
        let core = &mut self.core;
        if core.tracing {
            let mut bytes = Vec::new();
            let from = encode_envelope(&env, &mut bytes);
            host.trace(from, core.id, &bytes);
        }
        let traced = core.cell.is_traced().then_some(match &env {
            Envelope::User { .. } => "tell",
            Envelope::PortEvent { .. } => "port",
            Envelope::Reply { .. } => "reply",
            Envelope::AskTimeout { .. } => "ask-timeout",
            Envelope::Timer { .. } => "timer",
            Envelope::Down { .. } => "down",
        });
        let (from, msg) = match env {
            Envelope::User { from, msg } => (from, msg),
            Envelope::PortEvent { from, event } => {
                let (port, event) = *event;
                let convert = core.extras.as_ref().and_then(|x| x.ports.get(port));
                match convert.and_then(|convert| convert(event.into_any())) {
                    Some(msg) => (from, msg),
                    None => return host.core().dead_letter(&core.spec.path, 1),
                }
            }
            Envelope::Reply { from, corr, value } => {
                let Some(pending) = core.extras.as_mut().and_then(|x| x.asks.remove(&corr)) else {
                    // A reply after its timeout (or to a previous incarnation): the asker
                    // already got `AskError::Timeout`.
                    return host.core().dead_letter(&core.spec.path, 1);
                };
                host.cancel_timer(pending.token);
                (from, (pending.on_reply)(Ok(value.into_any())))
            }
            Envelope::AskTimeout { corr } => {
                let Some(pending) = core.extras.as_mut().and_then(|x| x.asks.remove(&corr)) else { return };
                (core.id, (pending.on_reply)(Err(AskError::Timeout)))
            }
            Envelope::Timer { key } => match core.fire_timer(key, host) {
                Some(msg) => (core.id, msg),
                None => return,
            },
            Envelope::Down { from, down } => {
                match core.extras.as_mut().and_then(|x| x.watching.remove(&down.path)) {
                    Some(on_down) => (from, on_down(*down)),
                    None => return,
                }
            }
        };
        if let Some(kind) = traced {
            let at_us = host.now().as_nanos() / 1_000;
            let name = crate::trace::message_name(&msg);
            if !host.core().trace_record(&core.spec.path, at_us, kind, &name) {
                core.cell.set_traced(false);
            }
        }
        self.with_actor(host, from, |a, ctx| a.handle(msg, ctx));
    }

    fn control(&mut self, control: Control, host: &mut dyn Host) {
        if self.core.tracing {
            let mut bytes = Vec::new();
            encode_control(&control, &mut bytes);
            host.trace(ActorId::EXTERNAL, self.core.id, &bytes);
        }
        match control {
            Control::Terminate => {
                if self.core.phase != Phase::Stopping {
                    self.core.stop_request = Some(ExitReason::Shutdown);
                }
            }
            Control::Adopt(spec, cell) => {
                if self.core.phase != Phase::Stopping {
                    let key = self.core.add_child(spec, false);
                    self.core.extras().children.get_mut(&key).expect("just added").cell = cell;
                    self.core.start_child(key, host);
                } else if let Some(cell) = cell {
                    close_for_good(&cell, &ExitReason::Shutdown, host);
                }
            }
            Control::ChildExited { id, key, reason } => self.core.child_exited(id, key, reason, host),
            Control::StopChild(path) => {
                self.core.stop_child(&path, Control::Terminate);
            }
            Control::Migrate(sink) => {
                if self.core.phase != Phase::Stopping {
                    self.core.stop_request = Some(ExitReason::Shutdown);
                }
                self.core.migrating = Some(sink);
            }
            Control::MigrateChild(path, sink) => {
                if !self.core.stop_child(&path, Control::Migrate(sink.clone())) {
                    sink.fail(MigrateError::NotHosted(path));
                }
            }
            Control::Snapshot(request) => {
                // A snapshot that panics is counted, and fails the checkpoint: the last one
                // taken stays the one to restore.
                let answer = match self.actor.as_ref() {
                    Some(actor) => catch_unwind(AssertUnwindSafe(|| actor.snapshot())).map_err(|_| {
                        self.core.cell.count_failure();
                    }),
                    None => Err(()),
                };
                request.answer(answer);
            }
        }
    }

    /// Begins stopping: timers and asks end, children stop one by one in reverse start order.
    fn begin_exit(&mut self, reason: ExitReason, host: &mut dyn Host) {
        let core = &mut self.core;
        core.phase = Phase::Stopping;
        let Some(extras) = core.extras.as_mut() else {
            return self.finish_exit(reason, host);
        };
        for (_, timer) in std::mem::take(&mut extras.timers) {
            host.cancel_timer(timer.token);
        }
        for (_, ask) in std::mem::take(&mut extras.asks) {
            host.cancel_timer(ask.token);
        }
        let queue = extras.children.iter().rev().filter(|(_, c)| c.running).map(|(&k, _)| k).collect();
        extras.termination =
            Some(Termination { queue, awaiting: None, then: AfterTermination::Exit(reason) });
        self.continue_termination(host);
    }

    fn continue_termination(&mut self, host: &mut dyn Host) {
        match self.core.terminate_next() {
            None => {}
            Some(AfterTermination::Exit(reason)) => self.finish_exit(reason, host),
            Some(AfterTermination::Restart(keys)) => {
                for key in keys {
                    self.core.start_child(key, host);
                }
                self.core.forget_ended_children();
            }
        }
    }

    fn finish_exit(&mut self, reason: ExitReason, host: &mut dyn Host) {
        let moving = self.core.migrating.take();
        // A snapshot that panics moves nothing: the actor starts fresh where it goes.
        let snapshot = moving.as_ref().and_then(|_| {
            let actor = self.actor.as_ref()?;
            catch_unwind(AssertUnwindSafe(|| actor.snapshot())).unwrap_or_else(|_| {
                self.core.cell.count_failure();
                None
            })
        });
        self.with_actor(host, ActorId::EXTERNAL, |a, ctx| {
            a.stopped(ctx);
            Ok(())
        });
        let core = &mut self.core;
        let path = &core.spec.path;
        if let Some(sink) = moving {
            // Closed and emptied in one step: whatever reached the mailbox moves with it.
            let (pending, stay) = core.cell.drain_for_migration();
            host.core().dead_letter(path, stay);
            sink.add(ActorHandoff { path: path.clone(), snapshot, pending });
        }
        // Messages parked in this incarnation's outbox die with it.
        host.core().dead_letter(path, core.outbox.len() as u64);
        core.outbox.clear();
        host.core().event(host.now(), path, EventKind::Stopped { reason: reason.clone() });
        match &core.parent {
            // The mailbox outlives the incarnation: the supervisor restarts into it or closes it.
            Some(parent) => {
                parent.push_control(Control::ChildExited { id: core.id, key: core.child_key, reason });
            }
            None => {
                close_for_good(&core.any_cell, &reason, host);
                host.core().set_exit(reason);
            }
        }
        core.phase = Phase::Exited;
        self.actor = None;
    }

    /// Retries parked sends; false while one still waits for space.
    fn flush_outbox(&mut self, host: &mut dyn Host) -> bool {
        let core = &mut self.core;
        while let Some(front) = core.outbox.front_mut() {
            match front.try_deliver() {
                ParkedResult::Delivered => {
                    core.outbox.pop_front();
                }
                ParkedResult::Gone(path) => {
                    host.core().dead_letter(&path, 1);
                    core.outbox.pop_front();
                }
                ParkedResult::Full => {
                    if front.wait(core.any_cell.clone()) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// After a message or signal: a requested stop begins, a termination goes on.
    fn settle(&mut self, host: &mut dyn Host) {
        if self.core.phase != Phase::Stopping {
            if let Some(reason) = self.core.stop_request.take() {
                self.begin_exit(reason, host);
            }
        }
        let ready = self
            .core
            .extras
            .as_ref()
            .and_then(|x| x.termination.as_ref())
            .is_some_and(|t| t.awaiting.is_none());
        if ready {
            self.continue_termination(host);
        }
        if let Some(reason) = self.core.stop_request.take() {
            // A failure or stop while restarting children: stop everything instead.
            if self.core.phase != Phase::Stopping {
                self.begin_exit(reason, host);
            }
        }
    }
}

impl<M: Message> RunnerCore<M> {
    /// The rarely used state, allocated on first use.
    pub(crate) fn extras(&mut self) -> &mut Extras<M> {
        self.extras.get_or_insert_with(Default::default)
    }

    /// The rarely used state, if it was ever needed.
    pub(crate) fn extras_if_any(&self) -> Option<&Extras<M>> {
        self.extras.as_deref()
    }

    pub(crate) fn me(&self) -> &ActorRef<M> {
        self.me.get_or_init(|| ActorRef::resolved(self.cell.clone()))
    }

    pub(crate) fn rng(&mut self, seed: u64) -> &mut ActorRng {
        let (path, incarnation, born) = (&self.spec.path, self.incarnation, self.born);
        self.rng.get_or_insert_with(|| {
            Box::new(ActorRng::seed_from_u64(actor_seed(seed, path, incarnation, born)))
        })
    }

    pub(crate) fn fail(&mut self, host: &mut dyn Host, reason: String) {
        self.cell.count_failure();
        host.core().event(host.now(), &self.spec.path, EventKind::Failed { reason: reason.clone() });
        self.stop_request = Some(ExitReason::Failed(reason));
    }

    /// Stops the running child at `path` for good with `how` (`Terminate`, or `Migrate` to
    /// move it out); false if no such child runs.
    pub(crate) fn stop_child(&mut self, path: &ActorPath, how: Control) -> bool {
        let extras = self.extras();
        let running = extras.children.values().find(|c| &c.spec.path == path && c.running);
        let Some(cell) = running.and_then(|c| c.cell.clone()) else { return false };
        extras.stopped_on_request.insert(cell.id());
        cell.push_control(how)
    }

    /// Records a new child; returns its start-order key.
    pub(crate) fn add_child(&mut self, spec: Arc<Spec>, dynamic: bool) -> u64 {
        let extras = self.extras();
        let key = extras.next_child;
        extras.next_child += 1;
        extras.children.insert(key, Child { spec, cell: None, running: false, incarnation: 0, dynamic });
        key
    }

    /// Starts (or restarts) child `key`; a spawn error is reported and leaves it not running.
    pub(crate) fn start_child(&mut self, key: u64, host: &mut dyn Host) -> Option<Arc<dyn AnyCell>> {
        let parent = Some(self.any_cell.clone());
        let extras = self.extras();
        let child = extras.children.get_mut(&key).expect("a known child");
        let args = MakeArgs {
            spec: child.spec.clone(),
            reuse: child.cell.clone(),
            parent,
            incarnation: child.incarnation,
            child_key: key,
            host,
        };
        match child.spec.make.clone().make(args) {
            Ok((mut runner, cell)) => {
                child.cell = Some(cell.clone());
                child.running = true;
                // OTP starts children one by one, each initialised before the next: the first
                // step (factory, `started`, declared children) runs here, synchronously.
                if runner.step(host) != Step::Exited {
                    host.spawn(runner);
                }
                Some(cell)
            }
            Err(e) => {
                let reason = format!("could not start: {e}");
                host.core().event(host.now(), &child.spec.path, EventKind::Failed { reason });
                child.cell = None;
                None
            }
        }
    }

    /// Sends `Terminate` to the next child in the termination queue; when none is left,
    /// returns what to do next.
    fn terminate_next(&mut self) -> Option<AfterTermination> {
        let extras = self.extras.as_mut()?;
        let term = extras.termination.as_mut()?;
        if term.awaiting.is_some() {
            return None;
        }
        while let Some(key) = term.queue.pop_front() {
            let child = extras.children.get(&key).filter(|c| c.running);
            if let Some(cell) = child.and_then(|c| c.cell.as_ref()) {
                // A moving actor's children move with it.
                cell.push_control(match &self.migrating {
                    Some(sink) => Control::Migrate(sink.clone()),
                    None => Control::Terminate,
                });
                term.awaiting = Some(key);
                return None;
            }
        }
        extras.termination.take().map(|t| t.then)
    }

    /// Closes child `key`'s mailbox for good (no restart): dead letters, watchers, registry.
    fn close_child(&mut self, key: u64, reason: &ExitReason, host: &mut dyn Host) {
        let extras = self.extras();
        let Some(child) = extras.children.get_mut(&key) else { return };
        if let Some(cell) = child.cell.take() {
            close_for_good(&cell, reason, host);
        }
        if child.dynamic {
            extras.children.remove(&key);
        }
    }

    /// Drops dynamic children whose mailbox has closed.
    fn forget_ended_children(&mut self) {
        self.extras().children.retain(|_, c| c.cell.is_some() || !c.dynamic);
    }

    fn child_exited(&mut self, id: ActorId, key: u64, reason: ExitReason, host: &mut dyn Host) {
        let extras = self.extras();
        let child =
            extras.children.get_mut(&key).filter(|c| c.cell.as_ref().is_some_and(|cell| cell.id() == id));
        let Some(child) = child else { return };
        child.running = false;
        let (restart_type, child_path) = (child.spec.settings.restart, child.spec.path.clone());
        let requested = extras.stopped_on_request.remove(&id);
        if let Some(term) = extras.termination.as_mut() {
            let awaited = term.awaiting == Some(key);
            if awaited {
                // The runner's `settle` goes on with the termination after this signal.
                term.awaiting = None;
            } else if !term.queue.is_empty() {
                term.queue.retain(|&k| k != key);
            }
            match &term.then {
                AfterTermination::Exit(_) => return self.close_child(key, &reason, host),
                AfterTermination::Restart(keys) if awaited => {
                    if !keys.contains(&key) {
                        self.close_child(key, &reason, host);
                    }
                    return;
                }
                AfterTermination::Restart(_) => {}
            }
        }
        if requested || !should_restart(restart_type, &reason) {
            return self.close_child(key, &reason, host);
        }
        let sup = self.spec.settings.supervision;
        if !self.extras().restart_log.allow(host.now(), &sup) {
            let why = format!(
                "restart intensity exceeded (more than {} restarts in {:?}); last: {} {}",
                sup.max_restarts, sup.within, child_path, reason
            );
            host.core().event(host.now(), &self.spec.path, EventKind::Escalated { reason: why.clone() });
            self.close_child(key, &reason, host);
            self.stop_request = Some(ExitReason::Failed(why));
            return;
        }
        self.plan_restart(key, host);
    }

    /// Restarts child `key` and the siblings its strategy takes down with it.
    fn plan_restart(&mut self, key: u64, host: &mut dyn Host) {
        let strategy = self.spec.settings.supervision.strategy;
        let extras = self.extras();
        bump_incarnation(extras, key);
        if let Some(Termination { then: AfterTermination::Restart(keys), .. }) = extras.termination.as_mut() {
            keys.insert(key);
            return;
        }
        let running: Vec<u64> = if strategy == Strategy::OneForOne {
            Vec::new()
        } else {
            let keys: Vec<u64> = extras.children.keys().copied().collect();
            let at = keys.binary_search(&key).expect("a known child");
            siblings_affected(strategy, at, keys.len())
                .into_iter()
                .map(|i| keys[i])
                .filter(|k| extras.children[k].running)
                .collect()
        };
        if running.is_empty() {
            self.start_child(key, host);
            return;
        }
        let mut restart = BTreeSet::from([key]);
        for &k in &running {
            if extras.children[&k].spec.settings.restart != Restart::Temporary {
                bump_incarnation(extras, k);
                restart.insert(k);
            }
        }
        let queue = running.into_iter().rev().collect();
        extras.termination =
            Some(Termination { queue, awaiting: None, then: AfterTermination::Restart(restart) });
    }

    fn fire_timer(&mut self, key: u64, host: &mut dyn Host) -> Option<M> {
        let any_cell = self.any_cell.clone();
        let timers = &mut self.extras.as_mut()?.timers;
        let entry = timers.get_mut(&key)?;
        let msg = match &mut entry.msg {
            TimerMsg::Once(msg) => msg.take(),
            TimerMsg::Every(make) => Some(make()),
        };
        match entry.every {
            Some(every) => entry.token = host.set_timer(any_cell, every, TimerFire::Timer(key)),
            None => {
                timers.remove(&key);
            }
        }
        msg
    }

    /// Sends to `to` under its mailbox policy (see `Ctx::send`).
    pub(crate) fn send<N: Message>(
        &mut self,
        host: &mut dyn Host,
        to: &ActorRef<N>,
        msg: N,
    ) -> Result<(), SendError> {
        let core = host.core();
        // `Err(msg)`: the mailbox closed as the message arrived (the actor stopped, or moved
        // away): the message is routed anew, like one to a path with no local actor.
        let outcome = to.with_cell(core, msg, |cell, msg| {
            let parked = |msg| {
                let remote = core.remote().cloned();
                Box::new(ParkedUser { cell: cell.clone(), from: self.id, msg: Some(msg), remote })
            };
            if !self.outbox.is_empty() {
                // Keep per-pair order: once anything waits, later sends wait behind it.
                self.outbox.push_back(parked(msg));
                return Ok(Ok(()));
            }
            match cell.push_user(self.id, msg) {
                Ok(()) => Ok(Ok(())),
                Err(PushError::Rejected) => Ok(Err(SendError::MailboxFull(to.path().clone()))),
                Err(PushError::Closed(msg)) => Err(msg),
                // An actor cannot wait for its own mailbox to drain.
                Err(PushError::Full(_)) if AnyCell::id(&**cell) == self.id => {
                    Ok(Err(SendError::MailboxFull(to.path().clone())))
                }
                Err(PushError::Full(msg)) => {
                    self.outbox.push_back(parked(msg));
                    Ok(Ok(()))
                }
            }
        });
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(msg)) | Err((SendError::NoActor(_), msg)) => self.send_remote(core, to.path(), &msg),
            Err((error, _)) => Err(error),
        };
        if let Err(SendError::NoActor(_) | SendError::Stopped(_)) = &result {
            core.dead_letter(to.path(), 1);
        }
        result
    }

    /// Sends to an actor on another node; a full way there parks the message in the outbox
    /// (backpressure), as does anything sent while the outbox holds messages (per-pair order).
    fn send_remote<N: Message>(
        &mut self,
        core: &SystemCore,
        to: &ActorPath,
        msg: &N,
    ) -> Result<(), SendError> {
        let Some(remote) = core.remote() else { return Err(SendError::NoActor(to.clone())) };
        let bytes = crate::message::encode(msg);
        let bytes = if self.outbox.is_empty() {
            match remote.send(to, bytes) {
                Ok(()) => return Ok(()),
                Err(RemoteSendError::NoRoute) => return Err(SendError::NoActor(to.clone())),
                Err(RemoteSendError::TooLarge { len, max }) => {
                    return Err(SendError::TooLarge { path: to.clone(), len, max })
                }
                Err(RemoteSendError::Full(bytes)) => bytes,
            }
        } else {
            bytes
        };
        self.outbox.push_back(Box::new(ParkedRemote {
            remote: remote.clone(),
            to: to.clone(),
            bytes: Some(bytes),
        }));
        Ok(())
    }
}

fn bump_incarnation<M>(extras: &mut Extras<M>, key: u64) {
    let child = extras.children.get_mut(&key).expect("a known child");
    child.incarnation += 1;
    if let Some(cell) = &child.cell {
        cell.count_restart();
    }
}

impl<A: Actor> Runnable for Runner<A> {
    fn id(&self) -> ActorId {
        self.core.id
    }

    fn path(&self) -> &ActorPath {
        &self.core.spec.path
    }

    fn heavy(&self) -> bool {
        self.core.spec.settings.heavy
    }

    fn cell(&self) -> &Arc<dyn AnyCell> {
        &self.core.any_cell
    }

    fn step(&mut self, host: &mut dyn Host) -> Step {
        let more;
        match self.core.phase {
            Phase::Exited => return Step::Exited,
            Phase::Starting => {
                self.start(host);
                more = !self.core.any_cell.is_empty();
            }
            Phase::Running | Phase::Stopping => {
                let blocked = !self.core.outbox.is_empty() && !self.flush_outbox(host);
                // Blocked on a full mailbox elsewhere, an actor still takes supervision signals:
                // a `Terminate` must not wait for room that may never come (its parked sends
                // die with it), or its whole subtree would hang half-stopped.
                match self.core.cell.pop(blocked || self.core.phase == Phase::Stopping) {
                    None if blocked => return Step::Blocked,
                    None => return Step::Idle,
                    Some((Popped::Control(c), rest)) => {
                        more = rest;
                        self.control(c, host);
                    }
                    Some((Popped::Envelope(env), rest)) => {
                        more = rest;
                        self.deliver(env, host);
                    }
                }
            }
        }
        if self.core.stop_request.is_some() || self.core.extras.is_some() {
            self.settle(host);
        }
        if self.core.phase == Phase::Exited {
            return Step::Exited;
        }
        if !self.core.outbox.is_empty() && !self.flush_outbox(host) {
            return Step::Blocked;
        }
        Step::Ran { more }
    }
}

/// Ends a path's life: its mailbox closes (what was queued is counted as dead letters), it
/// leaves the registry, and its watchers get their `Down`.
pub(crate) fn close_for_good(cell: &Arc<dyn AnyCell>, reason: &ExitReason, host: &mut dyn Host) {
    let (undelivered, watchers) = cell.close();
    let path = cell.path();
    host.core().dead_letter(path, undelivered as u64);
    host.core().unregister(path, cell.id());
    for watcher in watchers {
        watcher.push_down(cell.id(), Down { path: path.clone(), reason: reason.clone() });
    }
}

/// Encodes a delivered envelope for the trace hash; returns its sender.
fn encode_envelope<M: Message>(env: &Envelope<M>, out: &mut Vec<u8>) -> ActorId {
    match env {
        Envelope::User { from, msg } => {
            out.push(0);
            encode_into(msg, out);
            *from
        }
        Envelope::PortEvent { from, event } => {
            out.push(1);
            out.extend_from_slice(event.0.as_bytes());
            event.1.encode_into(out);
            *from
        }
        Envelope::Reply { from, corr, value } => {
            out.push(2);
            out.extend_from_slice(&corr.to_le_bytes());
            value.encode_into(out);
            *from
        }
        Envelope::Timer { key } => {
            out.push(3);
            out.extend_from_slice(&key.to_le_bytes());
            ActorId::EXTERNAL
        }
        Envelope::AskTimeout { corr } => {
            out.push(4);
            out.extend_from_slice(&corr.to_le_bytes());
            ActorId::EXTERNAL
        }
        Envelope::Down { from, down } => {
            out.push(5);
            encode_into(down, out);
            *from
        }
    }
}

fn encode_control(control: &Control, out: &mut Vec<u8>) {
    match control {
        Control::ChildExited { id, key: _, reason } => {
            out.push(6);
            out.extend_from_slice(&id.0.to_le_bytes());
            encode_into(reason, out);
        }
        Control::Terminate => out.push(7),
        Control::Adopt(spec, _) => {
            out.push(8);
            out.extend_from_slice(spec.path.as_str().as_bytes());
        }
        Control::StopChild(path) => {
            out.push(9);
            out.extend_from_slice(path.as_str().as_bytes());
        }
        Control::Migrate(_) => out.push(10),
        Control::MigrateChild(path, _) => {
            out.push(11);
            out.extend_from_slice(path.as_str().as_bytes());
        }
        Control::Snapshot(request) => {
            out.push(12);
            out.extend_from_slice(request.path().as_str().as_bytes());
        }
    }
}

/// Erases an ask's reply handler to take the reply as `Box<dyn Any>`.
pub(crate) fn erase_reply<M, R: Message>(
    on_reply: impl FnOnce(Result<R, AskError>) -> M + Send + 'static,
) -> ReplyFn<M> {
    Box::new(move |result| on_reply(result.and_then(crate::remote::reply_value::<R>)))
}
