//! The runner: one actor incarnation's private half, and the one place where actor semantics
//! live (delivery, failure, supervision of its children, timers, asks, watches, backpressure).
//!
//! Executors only call `step`; everything here goes through the `Host` seam, so both executors
//! share these semantics exactly. A step handles at most one message or supervision signal.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::actor::{Actor, ActorError, Down, ExitReason};
use crate::actor_ref::ActorRef;
use crate::cell::{AnyCell, Cell, Popped, PushError};
use crate::ctx::Ctx;
use crate::error::{AskError, SendError};
use crate::host::{Host, Runnable, Step, TimerFire, TimerToken};
use crate::mailbox::{ActorId, Control, Envelope};
use crate::message::{encode_into, ErasedMessage, Message};
use crate::metrics::ActorMetrics;
use crate::path::ActorPath;
use crate::spec::{FactoryFn, Init, MakeArgs, Spec};
use crate::supervision::{should_restart, siblings_affected, Restart, RestartLog};
use crate::system::{EventKind, SystemCore};

/// A child as its supervisor tracks it.
pub(crate) struct Child {
    pub(crate) spec: Arc<Spec>,
    /// Its mailbox while this supervisor owns the path: through restarts the mailbox stays
    /// (only the message that failed is lost); `None` once it is closed for good.
    pub(crate) cell: Option<Arc<dyn AnyCell>>,
    /// An incarnation is running (false between its exit and the supervisor's decision).
    pub(crate) running: bool,
    pub(crate) metrics: Arc<ActorMetrics>,
    pub(crate) incarnation: u64,
    /// Spawned by `ctx.spawn_child` (removed when it ends) rather than declared.
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

pub(crate) struct PendingAsk<M> {
    pub(crate) token: TimerToken,
    pub(crate) on_reply: ReplyFn<M>,
}

/// A message waiting in the sender's outbox for space in a full mailbox (backpressure).
pub(crate) trait Parked: Send {
    fn try_deliver(&mut self) -> ParkedResult;
    fn target(&self) -> Arc<dyn AnyCell>;
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
}

impl<N: Send + 'static> Parked for ParkedUser<N> {
    fn try_deliver(&mut self) -> ParkedResult {
        let msg = self.msg.take().expect("a parked message is delivered once");
        match self.cell.push_user(self.from, msg) {
            Ok(()) => ParkedResult::Delivered,
            Err(PushError::Full(msg)) => {
                self.msg = Some(msg);
                ParkedResult::Full
            }
            Err(PushError::Rejected | PushError::Closed(_)) => {
                ParkedResult::Gone(AnyCell::path(&*self.cell).clone())
            }
        }
    }
    fn target(&self) -> Arc<dyn AnyCell> {
        self.cell.clone()
    }
}

/// Child ids being stopped one at a time (OTP: reverse start order, each awaited), and what
/// to do once they all have.
struct Termination {
    queue: VecDeque<ActorId>,
    awaiting: Option<ActorId>,
    then: AfterTermination,
}

enum AfterTermination {
    /// Finish stopping this actor.
    Exit(ExitReason),
    /// Start these children again (indices, in start order).
    Restart(BTreeSet<usize>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Running,
    Stopping,
    Exited,
}

/// Everything of a runner except the actor value: what `Ctx` works on.
pub(crate) struct RunnerCore<M> {
    pub(crate) id: ActorId,
    pub(crate) cell: Arc<Cell<M>>,
    pub(crate) any_cell: Arc<dyn AnyCell>,
    pub(crate) me: ActorRef<M>,
    pub(crate) spec: Arc<Spec>,
    parent: Option<Arc<dyn AnyCell>>,
    pub(crate) incarnation: u64,
    pub(crate) children: Vec<Child>,
    /// Children stopped by `ctx.stop_child`: not restarted when they exit.
    pub(crate) stopped_on_request: BTreeSet<ActorId>,
    restart_log: RestartLog,
    termination: Option<Termination>,
    phase: Phase,
    pub(crate) stop_request: Option<ExitReason>,
    pub(crate) timers: BTreeMap<u64, TimerEntry<M>>,
    pub(crate) asks: BTreeMap<u64, PendingAsk<M>>,
    pub(crate) watching: BTreeMap<ActorPath, Box<dyn FnOnce(Down) -> M + Send>>,
    pub(crate) ports: BTreeMap<&'static str, PortFn<M>>,
    pub(crate) outbox: VecDeque<Box<dyn Parked>>,
    pub(crate) rng: ChaCha8Rng,
    scratch: Vec<u8>,
}

/// One actor incarnation, ready to be stepped by an executor.
pub(crate) struct Runner<A: Actor> {
    actor: Option<A>,
    factory: Arc<FactoryFn<A>>,
    core: RunnerCore<A::Msg>,
}

/// Seeds an actor's rng from the system seed, its path and its incarnation.
fn actor_seed(seed: u64, path: &ActorPath, incarnation: u64) -> u64 {
    let mut bytes = Vec::with_capacity(path.as_str().len() + 8);
    bytes.extend_from_slice(path.as_str().as_bytes());
    bytes.extend_from_slice(&incarnation.to_le_bytes());
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
        factory: Arc<FactoryFn<A>>,
        cell: Arc<Cell<A::Msg>>,
        spec: Arc<Spec>,
        parent: Option<Arc<dyn AnyCell>>,
        incarnation: u64,
        core: &SystemCore,
    ) -> Self {
        let any_cell: Arc<dyn AnyCell> = cell.clone();
        let seed = actor_seed(core.config().seed, &spec.path, incarnation);
        Runner {
            actor: None,
            factory,
            core: RunnerCore {
                id: any_cell.id(),
                me: ActorRef::resolved(cell.clone()),
                cell,
                any_cell,
                spec,
                parent,
                incarnation,
                children: Vec::new(),
                stopped_on_request: BTreeSet::new(),
                restart_log: RestartLog::default(),
                termination: None,
                phase: Phase::Starting,
                stop_request: None,
                timers: BTreeMap::new(),
                asks: BTreeMap::new(),
                watching: BTreeMap::new(),
                ports: BTreeMap::new(),
                outbox: VecDeque::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
                scratch: Vec::new(),
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
        let init = Init::new(&core.spec.path, core.incarnation, &core.spec.links);
        match catch_unwind(AssertUnwindSafe(|| (self.factory)(&init))) {
            Ok(actor) => self.actor = Some(actor),
            Err(payload) => {
                let reason = format!("factory {}", panic_reason(payload));
                self.core.fail(host, reason);
            }
        }
        self.with_actor(host, ActorId::EXTERNAL, |a, ctx| a.started(ctx));
        if self.core.stop_request.is_none() {
            for spec in self.core.spec.children.clone() {
                self.core.add_child(spec, false);
                let idx = self.core.children.len() - 1;
                self.core.start_child(idx, host);
            }
        }
        self.core.phase = Phase::Running;
    }

    fn deliver(&mut self, env: Envelope<A::Msg>, host: &mut dyn Host) {
        let core = &mut self.core;
        if host.tracing() {
            core.scratch.clear();
            let from = encode_envelope(&env, &mut core.scratch);
            host.trace(from, core.id, &core.scratch);
        }
        ActorMetrics::bump(&core.cell.metrics_arc().handled);
        let (from, msg) = match env {
            Envelope::User { from, msg } => (from, msg),
            Envelope::PortEvent { from, port, event } => {
                match core.ports.get(port).and_then(|convert| convert(event.into_any())) {
                    Some(msg) => (from, msg),
                    None => return host.core().dead_letter(&core.spec.path, 1),
                }
            }
            Envelope::Reply { from, corr, value } => {
                let Some(pending) = core.asks.remove(&corr) else {
                    // A reply after its timeout: the asker already got `AskError::Timeout`.
                    return host.core().dead_letter(&core.spec.path, 1);
                };
                host.cancel_timer(pending.token);
                (from, (pending.on_reply)(Ok(value.into_any())))
            }
            Envelope::AskTimeout { corr } => {
                let Some(pending) = core.asks.remove(&corr) else { return };
                (core.id, (pending.on_reply)(Err(AskError::Timeout)))
            }
            Envelope::Timer { key } => match core.fire_timer(key, host) {
                Some(msg) => (core.id, msg),
                None => return,
            },
            Envelope::Down { from, down } => match core.watching.remove(&down.path) {
                Some(on_down) => (from, on_down(down)),
                None => return,
            },
        };
        self.with_actor(host, from, |a, ctx| a.handle(msg, ctx));
    }

    fn control(&mut self, control: Control, host: &mut dyn Host) {
        if host.tracing() {
            let core = &mut self.core;
            core.scratch.clear();
            encode_control(&control, &mut core.scratch);
            host.trace(ActorId::EXTERNAL, core.id, &core.scratch);
        }
        match control {
            Control::Terminate => {
                if self.core.phase != Phase::Stopping {
                    self.core.stop_request = Some(ExitReason::Shutdown);
                }
            }
            Control::Adopt(spec) => {
                if self.core.phase != Phase::Stopping {
                    self.core.add_child(spec, false);
                    let idx = self.core.children.len() - 1;
                    self.core.start_child(idx, host);
                }
            }
            Control::ChildExited { id, reason } => self.core.child_exited(id, reason, host),
        }
    }

    /// Begins stopping: timers and asks end, children stop one by one in reverse start order.
    fn begin_exit(&mut self, reason: ExitReason, host: &mut dyn Host) {
        let core = &mut self.core;
        core.phase = Phase::Stopping;
        for (_, timer) in std::mem::take(&mut core.timers) {
            host.cancel_timer(timer.token);
        }
        for (_, ask) in std::mem::take(&mut core.asks) {
            host.cancel_timer(ask.token);
        }
        let queue: VecDeque<ActorId> = core.children.iter().rev().filter_map(Child::running_id).collect();
        core.termination = Some(Termination { queue, awaiting: None, then: AfterTermination::Exit(reason) });
        self.continue_termination(host);
    }

    fn continue_termination(&mut self, host: &mut dyn Host) {
        match self.core.terminate_next() {
            None => {}
            Some(AfterTermination::Exit(reason)) => self.finish_exit(reason, host),
            Some(AfterTermination::Restart(indices)) => {
                for idx in indices {
                    self.core.start_child(idx, host);
                }
                self.core.children.retain(|c| c.cell.is_some() || !c.dynamic);
            }
        }
    }

    fn finish_exit(&mut self, reason: ExitReason, host: &mut dyn Host) {
        self.with_actor(host, ActorId::EXTERNAL, |a, ctx| {
            a.stopped(ctx);
            Ok(())
        });
        let core = &mut self.core;
        let path = core.spec.path.clone();
        // Messages parked in this incarnation's outbox die with it.
        host.core().dead_letter(&path, core.outbox.len() as u64);
        core.outbox.clear();
        host.core().event(host.now(), &path, EventKind::Stopped { reason: reason.clone() });
        match &core.parent {
            // The mailbox outlives the incarnation: the supervisor restarts into it or closes it.
            Some(parent) => {
                parent.push_control(Control::ChildExited { id: core.id, reason });
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
                    if front.target().add_waiter(core.any_cell.clone()) {
                        return false;
                    }
                }
            }
        }
        true
    }
}

impl<M: Message> RunnerCore<M> {
    pub(crate) fn fail(&mut self, host: &mut dyn Host, reason: String) {
        ActorMetrics::bump(&self.cell.metrics_arc().failures);
        host.core().event(host.now(), &self.spec.path, EventKind::Failed { reason: reason.clone() });
        self.stop_request = Some(ExitReason::Failed(reason));
    }

    pub(crate) fn add_child(&mut self, spec: Arc<Spec>, dynamic: bool) {
        self.children.push(Child {
            spec,
            cell: None,
            running: false,
            metrics: Arc::new(ActorMetrics::default()),
            incarnation: 0,
            dynamic,
        });
    }

    /// Starts (or restarts) child `idx`; a spawn error is a child failure left not running.
    pub(crate) fn start_child(&mut self, idx: usize, host: &mut dyn Host) -> Option<Arc<dyn AnyCell>> {
        let child = &mut self.children[idx];
        let args = MakeArgs {
            spec: child.spec.clone(),
            reuse: child.cell.clone(),
            parent: Some(self.any_cell.clone()),
            metrics: child.metrics.clone(),
            incarnation: child.incarnation,
            host,
        };
        match child.spec.make.make(args) {
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

    fn child_index(&self, id: ActorId) -> Option<usize> {
        self.children.iter().position(|c| c.cell.as_ref().is_some_and(|cell| cell.id() == id))
    }

    /// Sends `Terminate` to the next child in the termination queue; when none is left,
    /// returns what to do next.
    fn terminate_next(&mut self) -> Option<AfterTermination> {
        let term = self.termination.as_mut()?;
        if term.awaiting.is_some() {
            return None;
        }
        while let Some(id) = term.queue.pop_front() {
            let cell = self
                .children
                .iter()
                .filter(|c| c.running)
                .find_map(|c| c.cell.as_ref().filter(|cell| cell.id() == id));
            if let Some(cell) = cell {
                cell.push_control(Control::Terminate);
                term.awaiting = Some(id);
                return None;
            }
        }
        self.termination.take().map(|t| t.then)
    }

    /// Closes child `idx`'s mailbox for good (no restart): dead letters, watchers, registry.
    fn close_child(&mut self, idx: usize, reason: &ExitReason, host: &mut dyn Host) {
        if let Some(cell) = self.children[idx].cell.take() {
            close_for_good(&cell, reason, host);
        }
    }

    fn child_exited(&mut self, id: ActorId, reason: ExitReason, host: &mut dyn Host) {
        let Some(idx) = self.child_index(id) else { return };
        self.children[idx].running = false;
        let requested = self.stopped_on_request.remove(&id);
        if let Some(term) = self.termination.as_mut() {
            term.queue.retain(|&q| q != id);
            let awaited = term.awaiting == Some(id);
            if awaited {
                // The runner's step goes on with the termination after this signal.
                term.awaiting = None;
            }
            match &term.then {
                AfterTermination::Exit(_) => return self.close_child(idx, &reason, host),
                AfterTermination::Restart(set) if awaited => {
                    if !set.contains(&idx) {
                        self.close_child(idx, &reason, host);
                    }
                    return;
                }
                AfterTermination::Restart(_) => {}
            }
        }
        let child = &self.children[idx];
        if requested || !should_restart(child.spec.settings.restart, &reason) {
            self.close_child(idx, &reason, host);
            if self.children[idx].dynamic {
                self.children.remove(idx);
            }
            return;
        }
        let sup = self.spec.settings.supervision;
        if !self.restart_log.allow(host.now(), &sup) {
            let why = format!(
                "restart intensity exceeded (more than {} restarts in {:?}); last: {} {}",
                sup.max_restarts, sup.within, child.spec.path, reason
            );
            host.core().event(host.now(), &self.spec.path, EventKind::Escalated { reason: why.clone() });
            self.close_child(idx, &reason, host);
            self.stop_request = Some(ExitReason::Failed(why));
            return;
        }
        self.plan_restart(idx, host);
    }

    /// Restarts child `idx` and the siblings its strategy takes down with it.
    fn plan_restart(&mut self, idx: usize, host: &mut dyn Host) {
        self.bump_incarnation(idx);
        if let Some(Termination { then: AfterTermination::Restart(set), .. }) = self.termination.as_mut() {
            set.insert(idx);
            return;
        }
        let strategy = self.spec.settings.supervision.strategy;
        let running: Vec<usize> = siblings_affected(strategy, idx, self.children.len())
            .into_iter()
            .filter(|&i| self.children[i].running)
            .collect();
        if running.is_empty() {
            self.start_child(idx, host);
            return;
        }
        let mut restart = BTreeSet::from([idx]);
        for &i in &running {
            if self.children[i].spec.settings.restart != Restart::Temporary {
                self.bump_incarnation(i);
                restart.insert(i);
            }
        }
        let queue = running.iter().rev().filter_map(|&i| self.children[i].running_id()).collect();
        self.termination =
            Some(Termination { queue, awaiting: None, then: AfterTermination::Restart(restart) });
    }

    fn bump_incarnation(&mut self, idx: usize) {
        let child = &mut self.children[idx];
        child.incarnation += 1;
        ActorMetrics::bump(&child.metrics.restarts);
    }

    fn fire_timer(&mut self, key: u64, host: &mut dyn Host) -> Option<M> {
        let entry = self.timers.get_mut(&key)?;
        let msg = match &mut entry.msg {
            TimerMsg::Once(msg) => msg.take(),
            TimerMsg::Every(make) => Some(make()),
        };
        match entry.every {
            Some(every) => entry.token = host.set_timer(self.any_cell.clone(), every, TimerFire::Timer(key)),
            None => {
                self.timers.remove(&key);
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
        let cell = match to.resolve(host.core()) {
            Ok(cell) => cell,
            Err(e) => {
                if matches!(e, SendError::NoActor(_) | SendError::Stopped(_)) {
                    host.core().dead_letter(to.path(), 1);
                }
                return Err(e);
            }
        };
        if !self.outbox.is_empty() {
            // Keep per-pair order: once anything waits, later sends wait behind it.
            self.outbox.push_back(Box::new(ParkedUser { cell, from: self.id, msg: Some(msg) }));
            return Ok(());
        }
        match cell.push_user(self.id, msg) {
            Ok(()) => Ok(()),
            Err(PushError::Rejected) => Err(SendError::MailboxFull(to.path().clone())),
            Err(PushError::Closed(_)) => {
                host.core().dead_letter(to.path(), 1);
                Err(SendError::Stopped(to.path().clone()))
            }
            Err(PushError::Full(msg)) => {
                if AnyCell::id(&*cell) == self.id {
                    // An actor cannot wait for its own mailbox to drain.
                    return Err(SendError::MailboxFull(to.path().clone()));
                }
                self.outbox.push_back(Box::new(ParkedUser { cell, from: self.id, msg: Some(msg) }));
                Ok(())
            }
        }
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

    fn step(&mut self, host: &mut dyn Host) -> Step {
        match self.core.phase {
            Phase::Exited => return Step::Exited,
            Phase::Starting => self.start(host),
            Phase::Running | Phase::Stopping => {
                if !self.flush_outbox(host) {
                    return Step::Blocked;
                }
                let popped = if self.core.phase == Phase::Stopping {
                    self.core.cell.pop_control()
                } else {
                    self.core.cell.pop()
                };
                match popped {
                    None => return Step::Idle,
                    Some(Popped::Control(c)) => self.control(c, host),
                    Some(Popped::Envelope(env)) => self.deliver(env, host),
                }
            }
        }
        if self.core.phase != Phase::Stopping {
            if let Some(reason) = self.core.stop_request.take() {
                self.begin_exit(reason, host);
            }
        }
        if self.core.termination.as_ref().is_some_and(|t| t.awaiting.is_none()) {
            self.continue_termination(host);
        }
        if let Some(reason) = self.core.stop_request.take() {
            // A failure or stop while restarting children: stop everything instead.
            if self.core.phase != Phase::Stopping {
                self.begin_exit(reason, host);
            }
        }
        if self.core.phase == Phase::Exited {
            return Step::Exited;
        }
        if !self.flush_outbox(host) {
            return Step::Blocked;
        }
        match self.core.phase {
            Phase::Stopping => Step::Ran { more: self.core.cell.has_control() },
            _ => Step::Ran { more: !self.core.cell.is_empty() },
        }
    }
}

impl Child {
    fn running_id(&self) -> Option<ActorId> {
        self.cell.as_ref().filter(|_| self.running).map(|cell| cell.id())
    }
}

/// Ends a path's life: its mailbox closes (what was queued is counted as dead letters), it
/// leaves the registry, and its watchers get their `Down`.
fn close_for_good(cell: &Arc<dyn AnyCell>, reason: &ExitReason, host: &mut dyn Host) {
    let (undelivered, watchers) = cell.close();
    let path = cell.path().clone();
    host.core().dead_letter(&path, undelivered as u64);
    host.core().unregister(&path, cell.id());
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
        Envelope::PortEvent { from, port, event } => {
            out.push(1);
            out.extend_from_slice(port.as_bytes());
            event.encode_into(out);
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
        Control::ChildExited { id, reason } => {
            out.push(6);
            out.extend_from_slice(&id.0.to_le_bytes());
            encode_into(reason, out);
        }
        Control::Terminate => out.push(7),
        Control::Adopt(spec) => {
            out.push(8);
            out.extend_from_slice(spec.path.as_str().as_bytes());
        }
    }
}

impl<M: Message> RunnerCore<M> {
    pub(crate) fn erase_reply<R: Message>(
        on_reply: impl FnOnce(Result<R, AskError>) -> M + Send + 'static,
    ) -> ReplyFn<M> {
        Box::new(move |result| match result {
            Ok(value) => match value.downcast::<R>() {
                Ok(r) => on_reply(Ok(*r)),
                Err(_) => on_reply(Err(AskError::WrongReplyType)),
            },
            Err(e) => on_reply(Err(e)),
        })
    }

    pub(crate) fn erased_value<R: Message>(value: R) -> Box<dyn ErasedMessage> {
        Box::new(value)
    }
}
