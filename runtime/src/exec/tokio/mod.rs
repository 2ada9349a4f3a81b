//! The tokio executor (production): each actor is a tokio task that steps its runner while
//! it has work and sleeps on its mailbox otherwise. Compute-heavy actors step on tokio's
//! blocking pool so they cannot starve the async workers. Timers run on tokio's clock, fired
//! by one task per system ([`timers`]).
//!
//! This module (with its `timers`) is the only place in `aiot-runtime` that imports tokio.
// Spawning tasks is this module's job; actor code never does it (clippy bans it there).
#![allow(clippy::disallowed_methods)]

use crate::checkpoint::{CheckpointError, PendingCheckpoint};
use crate::migration::{Handoff, MigrateError, PendingHandoff};
mod timers;

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::actor::{Actor, ExitReason};
use crate::actor_ref::{ActorRef, ReplyTo};
use crate::cell::{AnyCell, Notify};
use crate::error::{AskError, SendError, SpawnError};
use crate::external;
use crate::host::{Host, Runnable, Step, TimerFire, TimerToken};
use crate::mailbox::{ActorId, Control};
use crate::message::Message;
use crate::path::ActorPath;
use crate::port::{port_path, Port, PortCall};
use crate::spec::{ActorSpec, Spec};
use crate::system::{SystemConfig, SystemCore};
use crate::time::Instant;
use crate::topology::Topology;
use timers::Timers;

/// Steps an actor takes before yielding to other tasks: fairness under load without paying a
/// yield per message.
const STEPS_PER_YIELD: u32 = 64;
/// How long `run` waits for a topology's top-level actors to come up.
const START_WAIT_MAX: Duration = Duration::from_secs(10);
/// How often `run` looks while it waits.
const START_POLL: Duration = Duration::from_millis(1);

struct Shared {
    core: Arc<SystemCore>,
    epoch: tokio::time::Instant,
    handle: Handle,
    timers: Arc<Timers>,
    root: OnceLock<Arc<dyn AnyCell>>,
    finished: AtomicBool,
    done: tokio::sync::Notify,
}

#[derive(Clone)]
struct TokioHost {
    shared: Arc<Shared>,
}

impl Host for TokioHost {
    fn core(&self) -> &Arc<SystemCore> {
        &self.shared.core
    }
    fn now(&self) -> Instant {
        let nanos = self.shared.epoch.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
    fn notifier(&mut self) -> Option<Arc<dyn Notify>> {
        // Cells wake this executor's tasks through the waker `drive` registers.
        None
    }
    fn spawn(&mut self, runner: Box<dyn Runnable>) {
        let host = self.clone();
        if runner.heavy() {
            self.shared.handle.spawn(drive_heavy(runner, host));
        } else {
            self.shared.handle.spawn(drive(runner, host));
        }
    }
    fn set_timer(&mut self, target: Arc<dyn AnyCell>, after: Duration, fire: TimerFire) -> TimerToken {
        self.shared.timers.set(target, after, fire)
    }
    fn cancel_timer(&mut self, token: TimerToken) {
        self.shared.timers.cancel(token);
    }
    fn tracing(&self) -> bool {
        false
    }
    fn trace(&mut self, _from: ActorId, _to: ActorId, _bytes: &[u8]) {}
}

/// Waits until `cell` is woken. The task's waker is registered with the cell on the first wait
/// only: a task keeps its waker, so later waits cost one flag check (a wake that races with the
/// check re-polls the task, which then sees the flag).
async fn wait_for_work(cell: &Arc<dyn AnyCell>, registered: &mut bool) {
    poll_fn(|cx| {
        if !*registered {
            cell.register_waker(cx.waker());
            *registered = true;
        }
        if cell.take_pending() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// An actor's task: step while there is work, sleep on the mailbox otherwise.
async fn drive(mut runner: Box<dyn Runnable>, mut host: TokioHost) {
    let id = runner.id();
    let cell = runner.cell().clone();
    let mut registered = false;
    let mut budget = STEPS_PER_YIELD;
    loop {
        match runner.step(&mut host) {
            Step::Ran { more: true } => {
                budget -= 1;
                if budget == 0 {
                    budget = STEPS_PER_YIELD;
                    tokio::task::yield_now().await;
                }
            }
            Step::Ran { more: false } | Step::Idle | Step::Blocked => {
                wait_for_work(&cell, &mut registered).await
            }
            Step::Exited => break,
        }
    }
    finished(&host, id);
}

/// A compute-heavy actor's task: each step runs on tokio's blocking pool, so a long handler
/// never holds an async worker thread.
async fn drive_heavy(mut runner: Box<dyn Runnable>, mut host: TokioHost) {
    let id = runner.id();
    let cell = runner.cell().clone();
    loop {
        let stepped = tokio::task::spawn_blocking(move || {
            let step = runner.step(&mut host);
            (runner, host, step)
        })
        .await;
        let Ok((r, h, step)) = stepped else { return };
        (runner, host) = (r, h);
        match step {
            Step::Ran { more: true } => {}
            Step::Ran { more: false } | Step::Idle | Step::Blocked => poll_fn(|cx| cell.poll_work(cx)).await,
            Step::Exited => break,
        }
    }
    finished(&host, id);
}

/// Marks the system finished when the root's task ends.
fn finished(host: &TokioHost, id: ActorId) {
    if host.shared.root.get().is_some_and(|r| r.id() == id) {
        host.shared.finished.store(true, Ordering::Release);
        host.shared.timers.stop();
        host.shared.done.notify_waiters();
    }
}

/// Why `TokioSystem::run` could not bring a topology up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    /// A top-level path is taken.
    Spawn(SpawnError),
    /// These declared actors were still down when the wait ended.
    NotUp(Vec<ActorPath>),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Spawn(e) => write!(f, "{e}"),
            StartError::NotUp(paths) => write!(f, "these actors did not come up: {paths:?}"),
        }
    }
}

impl std::error::Error for StartError {}

/// An actor system on the current tokio runtime.
#[derive(Clone)]
pub struct TokioSystem {
    shared: Arc<Shared>,
}

impl TokioSystem {
    /// Starts the root guardian. Call from within a tokio runtime.
    pub fn start(config: SystemConfig) -> Self {
        let root_spec = config.root;
        let shared = Arc::new(Shared {
            core: SystemCore::new(config),
            epoch: tokio::time::Instant::now(),
            handle: Handle::current(),
            timers: Arc::new(Timers::default()),
            root: OnceLock::new(),
            finished: AtomicBool::new(false),
            done: tokio::sync::Notify::new(),
        });
        shared.handle.spawn(Arc::clone(&shared.timers).run());
        let mut host = TokioHost { shared: shared.clone() };
        let (runner, root) = external::make_root(&mut host, root_spec);
        shared.root.set(root).ok().expect("root set once");
        host.spawn(runner);
        TokioSystem { shared }
    }

    fn host(&self) -> TokioHost {
        TokioHost { shared: self.shared.clone() }
    }

    /// Starts a topology's top-level subtrees under the root guardian and waits until every
    /// declared actor is up (children start synchronously, each initialised before the next,
    /// as in OTP). Errs with the paths still down after `START_WAIT_MAX` (for example an actor
    /// whose factory panics), or if a top-level path is taken.
    pub async fn run(&self, topology: &Topology) -> Result<(), StartError> {
        external::start_topology(&mut self.host(), self.root(), topology).map_err(StartError::Spawn)?;
        let deadline = tokio::time::Instant::now() + START_WAIT_MAX;
        let paths = external::declared_paths(topology);
        loop {
            let down: Vec<ActorPath> =
                paths.iter().filter(|p| self.core().lookup(p).is_none()).cloned().collect();
            if down.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StartError::NotUp(down));
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// Starts top-level subtrees declared in a topology (all or none) without waiting for
    /// them to be up: a cluster node starts the subtrees placed on it so.
    pub fn start_subtrees(&self, subtrees: &[Arc<Spec>]) -> Result<(), SpawnError> {
        external::start_subtrees(&mut self.host(), self.root(), subtrees)
    }

    /// Moves the top-level subtree at `path` out (live migration's runtime half): it stops with
    /// each actor's snapshot and waiting messages, which the returned future yields.
    pub fn migrate_subtree(&self, path: &ActorPath) -> Result<PendingHandoff, MigrateError> {
        external::migrate_subtree(self.core(), self.root(), path)
    }

    /// Takes the snapshots of the running top-level subtree at `path` without stopping it
    /// (a checkpoint, for failover); the returned future yields them as a handoff.
    pub fn checkpoint_subtree(&self, path: &ActorPath) -> Result<PendingCheckpoint, CheckpointError> {
        external::checkpoint_subtree(self.core(), path)
    }

    /// Starts the declared subtree `spec` from a handoff another system gave (see
    /// `migrate_subtree`).
    pub fn start_subtree_from(&self, spec: &Arc<Spec>, handoff: Handoff) -> Result<(), SpawnError> {
        external::start_subtree_from(&mut self.host(), self.root(), spec, handoff)
    }

    /// Stops the top-level subtree at `path` for good; false if the system has stopped.
    pub fn stop_subtree(&self, path: &ActorPath) -> bool {
        external::stop_subtree(self.root(), path)
    }

    /// Starts one top-level actor at `/name`; its mailbox takes messages at once.
    pub fn spawn<A: Actor>(&self, name: &str, spec: ActorSpec<A>) -> Result<ActorRef<A::Msg>, SpawnError> {
        let path = external::top_level_path(name)?;
        external::spawn_top_level(&mut self.host(), self.root(), path, spec)
    }

    /// Installs port `P`'s adapter at `/port-{NAME}`.
    pub fn install_port<P: Port, A: Actor<Msg = PortCall<P>>>(
        &self,
        spec: ActorSpec<A>,
    ) -> Result<(), SpawnError> {
        external::spawn_top_level(&mut self.host(), self.root(), port_path::<P>(), spec).map(|_| ())
    }

    fn root(&self) -> &Arc<dyn AnyCell> {
        self.shared.root.get().expect("set at start")
    }

    /// Sends from outside the system.
    pub fn tell<M: Message>(&self, to: &ActorRef<M>, msg: M) -> Result<(), SendError> {
        external::tell(&self.shared.core, to, msg)
    }

    /// Sends a request from outside and waits for its reply or its timeout.
    pub async fn ask<Q: Message, R: Message>(
        &self,
        to: &ActorRef<Q>,
        request: impl FnOnce(ReplyTo<R>) -> Q,
        timeout: Duration,
    ) -> Result<R, AskError> {
        let mut pending = external::ask(&mut self.host(), to, request, timeout)?;
        let cell = pending.cell.clone();
        loop {
            if let Some(reply) = pending.try_take() {
                return reply;
            }
            poll_fn(|cx| cell.poll_work(cx)).await;
        }
    }

    pub fn core(&self) -> &Arc<SystemCore> {
        &self.shared.core
    }

    /// The executor's clock.
    pub fn now(&self) -> Instant {
        self.host().now()
    }

    /// Waits until the root guardian stops (a shutdown, or an escalation to the root).
    pub async fn wait(&self) -> ExitReason {
        loop {
            let notified = self.shared.done.notified();
            if self.shared.finished.load(Ordering::Acquire) {
                return self.core().exit_reason().unwrap_or(ExitReason::Shutdown);
            }
            notified.await;
        }
    }

    /// Stops every actor (children before parents) and waits for the root.
    pub async fn shutdown(&self) -> ExitReason {
        self.root().push_control(Control::Terminate);
        self.wait().await
    }
}
