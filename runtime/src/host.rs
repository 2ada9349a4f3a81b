//! The executor seam: what a runner needs from whatever drives it.
//!
//! Two executors implement it: `exec::tokio` (threads, tokio's clock) and `exec::det` (one
//! thread, virtual time, seeded choices, trace hash). Runners (`runner.rs`) hold all actor
//! semantics and call only this trait, so the same actor code runs unchanged under both.

use std::sync::Arc;
use std::time::Duration;

use crate::cell::{AnyCell, Notify};
use crate::mailbox::ActorId;
use crate::path::ActorPath;
use crate::system::SystemCore;
use crate::time::Instant;

/// What a timer pushes into its actor's mailbox when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerFire {
    /// A timer the actor set (`ctx.schedule_once` / `schedule_every`), by key.
    Timer(u64),
    /// An ask's deadline, by correlation id.
    AskTimeout(u64),
}

/// An executor's handle on a timer it armed, for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerToken(pub u64);

/// Services an executor provides to the runners it drives.
pub trait Host {
    fn core(&self) -> &Arc<SystemCore>;
    /// The executor's clock.
    fn now(&self) -> Instant;
    /// How a new cell wakes this executor: a notifier, or `None` for the task waker that
    /// `AnyCell::poll_work` registers.
    fn notifier(&mut self) -> Option<Arc<dyn Notify>>;
    /// Starts driving a new runner (its first step runs its factory and `started`).
    fn spawn(&mut self, runner: Box<dyn Runnable>);
    /// Pushes `fire` into `target` after `after`, unless cancelled first.
    fn set_timer(&mut self, target: Arc<dyn AnyCell>, after: Duration, fire: TimerFire) -> TimerToken;
    fn cancel_timer(&mut self, token: TimerToken);
    /// Whether deliveries are traced (the deterministic executor's trace hash).
    fn tracing(&self) -> bool;
    /// Records one delivery: sender, receiver and the encoded envelope.
    fn trace(&mut self, from: ActorId, to: ActorId, bytes: &[u8]);
}

/// What one step of a runner did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It handled something; `more` says whether its mailbox still holds work.
    Ran { more: bool },
    /// Nothing to do until something is pushed into its mailbox.
    Idle,
    /// Its outbox waits for space in a full mailbox (backpressure); it is notified when space frees.
    Blocked,
    /// It has stopped for good; drop it.
    Exited,
}

/// An actor as an executor sees it: something to step.
pub trait Runnable: Send {
    fn id(&self) -> ActorId;
    fn path(&self) -> &ActorPath;
    /// Compute-heavy actors are run where they cannot starve the others.
    fn heavy(&self) -> bool;
    /// Handles at most one message (or supervision signal).
    fn step(&mut self, host: &mut dyn Host) -> Step;
    /// Its mailbox (executors that poll wait on `AnyCell::poll_work`).
    fn cell(&self) -> &Arc<dyn AnyCell>;
}
