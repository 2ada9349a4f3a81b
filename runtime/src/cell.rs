//! The shared half of an actor: its mailbox and the hooks other actors and executors use to
//! reach it. The other half (the actor value, its timers, asks and children) is owned by its
//! runner and touched by one thread at a time.
//!
//! A cell lives as long as any ref caches it; once closed, every push is refused and senders
//! fall back to the registry, where a restarted incarnation may stand under the same path.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::actor::Down;
use crate::mailbox::{ActorId, Control, Envelope, MailboxSpec, Overflow};
use crate::message::ErasedMessage;
use crate::metrics::{ActorMetrics, MetricsSnapshot};
use crate::path::ActorPath;

/// How a cell tells its executor that it has something to run (executor-specific).
pub trait Notify: Send + Sync + 'static {
    fn notify(&self, id: ActorId);
    fn as_any(&self) -> &dyn Any;
}

/// Why a push did not enqueue.
pub(crate) enum PushError<T> {
    /// Full under backpressure: the caller gets the message back to park it.
    Full(T),
    /// Full under the reject policy (counted).
    Rejected,
    /// The actor has stopped.
    Closed(T),
}

/// What pop hands the runner.
pub(crate) enum Popped<M> {
    Control(Control),
    Envelope(Envelope<M>),
}

struct Queues<M> {
    control: VecDeque<Control>,
    queue: VecDeque<Envelope<M>>,
    /// Bounded envelopes in `queue` (user messages and port events).
    bounded_len: usize,
    closed: bool,
    /// Runners parked on this mailbox under backpressure, woken when space frees.
    waiters: Vec<Arc<dyn AnyCell>>,
    /// Actors to notify with a `Down` when this one stops.
    watchers: Vec<Arc<dyn AnyCell>>,
}

/// One actor's mailbox and identity.
pub struct Cell<M> {
    id: ActorId,
    path: ActorPath,
    system: u64,
    spec: MailboxSpec,
    queues: Mutex<Queues<M>>,
    notifier: Arc<dyn Notify>,
    metrics: Arc<ActorMetrics>,
    closed: AtomicBool,
}

impl<M: Send + 'static> Cell<M> {
    pub(crate) fn new(
        id: ActorId,
        path: ActorPath,
        system: u64,
        spec: MailboxSpec,
        notifier: Arc<dyn Notify>,
        metrics: Arc<ActorMetrics>,
    ) -> Self {
        assert!(spec.capacity > 0, "mailbox capacity must be positive (validated by the spec)");
        Cell {
            id,
            path,
            system,
            spec,
            queues: Mutex::new(Queues {
                control: VecDeque::new(),
                queue: VecDeque::with_capacity(spec.capacity.min(64)),
                bounded_len: 0,
                closed: false,
                waiters: Vec::new(),
                watchers: Vec::new(),
            }),
            notifier,
            metrics,
            closed: AtomicBool::new(false),
        }
    }

    pub(crate) fn system(&self) -> u64 {
        self.system
    }

    /// Enqueues a user message under the mailbox policy.
    pub(crate) fn push_user(&self, from: ActorId, msg: M) -> Result<(), PushError<M>> {
        match self.push_bounded(Envelope::User { from, msg }) {
            Ok(()) => Ok(()),
            Err(PushError::Rejected) => Err(PushError::Rejected),
            Err(PushError::Full(Envelope::User { msg, .. })) => Err(PushError::Full(msg)),
            Err(PushError::Closed(Envelope::User { msg, .. })) => Err(PushError::Closed(msg)),
            Err(_) => unreachable!("push_bounded returns the envelope it was given"),
        }
    }

    fn push_bounded(&self, env: Envelope<M>) -> Result<(), PushError<Envelope<M>>> {
        debug_assert!(env.is_bounded());
        let mut q = self.queues.lock();
        if q.closed {
            return Err(PushError::Closed(env));
        }
        if q.bounded_len >= self.spec.capacity {
            match self.spec.overflow {
                Overflow::Backpressure => {
                    ActorMetrics::bump(&self.metrics.parked);
                    return Err(PushError::Full(env));
                }
                Overflow::Reject => {
                    ActorMetrics::bump(&self.metrics.rejected);
                    return Err(PushError::Rejected);
                }
                Overflow::DropOldest => {
                    let oldest = q.queue.iter().position(Envelope::is_bounded);
                    let oldest = oldest.expect("bounded_len > 0 means a bounded envelope is queued");
                    q.queue.remove(oldest);
                    q.bounded_len -= 1;
                    ActorMetrics::bump(&self.metrics.dropped_oldest);
                }
            }
        }
        q.bounded_len += 1;
        ActorMetrics::bump(&self.metrics.enqueued);
        self.metrics.saw_depth(q.bounded_len);
        self.enqueue(q, env);
        Ok(())
    }

    /// Enqueues an envelope that does not count against capacity (never refused unless closed).
    fn push_unbounded(&self, env: Envelope<M>) -> bool {
        let q = self.queues.lock();
        if q.closed {
            return false;
        }
        self.enqueue(q, env);
        true
    }

    fn enqueue(&self, mut q: parking_lot::MutexGuard<'_, Queues<M>>, env: Envelope<M>) {
        let was_empty = q.queue.is_empty() && q.control.is_empty();
        q.queue.push_back(env);
        drop(q);
        if was_empty {
            self.notifier.notify(self.id);
        }
    }

    /// Takes the next thing to handle: supervision signals first, then the ordered queue.
    pub(crate) fn pop(&self) -> Option<Popped<M>> {
        let mut q = self.queues.lock();
        if let Some(c) = q.control.pop_front() {
            return Some(Popped::Control(c));
        }
        let env = q.queue.pop_front()?;
        if env.is_bounded() {
            q.bounded_len -= 1;
        }
        let waiters = if q.waiters.is_empty() { Vec::new() } else { std::mem::take(&mut q.waiters) };
        drop(q);
        for w in waiters {
            w.notify();
        }
        Some(Popped::Envelope(env))
    }

    /// Takes the next supervision signal only (a stopping actor handles no more messages).
    pub(crate) fn pop_control(&self) -> Option<Popped<M>> {
        self.queues.lock().control.pop_front().map(Popped::Control)
    }

    pub(crate) fn has_control(&self) -> bool {
        !self.queues.lock().control.is_empty()
    }

    fn close_queues(&self) -> (usize, Vec<Arc<dyn AnyCell>>) {
        let mut q = self.queues.lock();
        q.closed = true;
        self.closed.store(true, Ordering::Release);
        let undelivered = q.queue.len();
        q.queue.clear();
        q.control.clear();
        q.bounded_len = 0;
        let waiters = std::mem::take(&mut q.waiters);
        let watchers = std::mem::take(&mut q.watchers);
        drop(q);
        for w in waiters {
            w.notify();
        }
        (undelivered, watchers)
    }

    pub(crate) fn metrics_arc(&self) -> &Arc<ActorMetrics> {
        &self.metrics
    }
}

/// The untyped face of a cell: what the registry stores and what system signals need.
pub trait AnyCell: Send + Sync + 'static {
    fn id(&self) -> ActorId;
    fn path(&self) -> &ActorPath;
    /// `std::any::type_name` of the messages it takes.
    fn msg_type(&self) -> &'static str;
    fn into_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn is_closed(&self) -> bool;
    /// Messages waiting (every kind).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn metrics(&self) -> MetricsSnapshot;
    fn notifier(&self) -> &Arc<dyn Notify>;
    /// Tells its executor it may run (used to wake runners parked under backpressure).
    fn notify(&self);

    #[doc(hidden)]
    fn push_reply(&self, from: ActorId, corr: u64, value: Box<dyn ErasedMessage>) -> bool;
    #[doc(hidden)]
    fn push_port_event(
        &self,
        from: ActorId,
        port: &'static str,
        event: Box<dyn ErasedMessage>,
    ) -> Result<(), crate::SendError>;
    #[doc(hidden)]
    fn push_timer(&self, key: u64) -> bool;
    #[doc(hidden)]
    fn push_ask_timeout(&self, corr: u64) -> bool;
    #[doc(hidden)]
    fn push_down(&self, from: ActorId, down: Down) -> bool;
    #[doc(hidden)]
    fn push_control(&self, control: Control) -> bool;
    /// Registers `waiter` to be notified when space frees; false if space is free already.
    #[doc(hidden)]
    fn add_waiter(&self, waiter: Arc<dyn AnyCell>) -> bool;
    /// Registers a watcher; false if this actor has already stopped.
    #[doc(hidden)]
    fn add_watcher(&self, watcher: Arc<dyn AnyCell>) -> bool;
    #[doc(hidden)]
    fn remove_watcher(&self, watcher: ActorId);
    /// Closes the mailbox for good: returns how many messages were still queued (dead
    /// letters) and the watchers to notify.
    #[doc(hidden)]
    fn close(&self) -> (usize, Vec<Arc<dyn AnyCell>>);
    /// Drops leftover supervision signals before a new incarnation moves in.
    #[doc(hidden)]
    fn clear_control(&self);
}

impl<M: Send + 'static> AnyCell for Cell<M> {
    fn id(&self) -> ActorId {
        self.id
    }
    fn path(&self) -> &ActorPath {
        &self.path
    }
    fn msg_type(&self) -> &'static str {
        std::any::type_name::<M>()
    }
    fn into_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
    fn len(&self) -> usize {
        let q = self.queues.lock();
        q.queue.len() + q.control.len()
    }
    fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot(self.queues.lock().bounded_len)
    }
    fn notifier(&self) -> &Arc<dyn Notify> {
        &self.notifier
    }
    fn notify(&self) {
        self.notifier.notify(self.id);
    }
    fn push_reply(&self, from: ActorId, corr: u64, value: Box<dyn ErasedMessage>) -> bool {
        self.push_unbounded(Envelope::Reply { from, corr, value })
    }
    fn push_port_event(
        &self,
        from: ActorId,
        port: &'static str,
        event: Box<dyn ErasedMessage>,
    ) -> Result<(), crate::SendError> {
        match self.push_bounded(Envelope::PortEvent { from, port, event }) {
            Ok(()) => Ok(()),
            Err(PushError::Closed(_)) => Err(crate::SendError::Stopped(self.path.clone())),
            Err(PushError::Full(_) | PushError::Rejected) => {
                Err(crate::SendError::MailboxFull(self.path.clone()))
            }
        }
    }
    fn push_timer(&self, key: u64) -> bool {
        self.push_unbounded(Envelope::Timer { key })
    }
    fn push_ask_timeout(&self, corr: u64) -> bool {
        self.push_unbounded(Envelope::AskTimeout { corr })
    }
    fn push_down(&self, from: ActorId, down: Down) -> bool {
        self.push_unbounded(Envelope::Down { from, down })
    }
    fn push_control(&self, control: Control) -> bool {
        let mut q = self.queues.lock();
        if q.closed {
            return false;
        }
        let was_empty = q.queue.is_empty() && q.control.is_empty();
        q.control.push_back(control);
        drop(q);
        if was_empty {
            self.notifier.notify(self.id);
        }
        true
    }
    fn add_waiter(&self, waiter: Arc<dyn AnyCell>) -> bool {
        let mut q = self.queues.lock();
        if q.closed || q.bounded_len < self.spec.capacity {
            return false;
        }
        q.waiters.push(waiter);
        true
    }
    fn add_watcher(&self, watcher: Arc<dyn AnyCell>) -> bool {
        let mut q = self.queues.lock();
        if q.closed {
            return false;
        }
        q.watchers.push(watcher);
        true
    }
    fn remove_watcher(&self, watcher: ActorId) {
        self.queues.lock().watchers.retain(|w| w.id() != watcher);
    }
    fn close(&self) -> (usize, Vec<Arc<dyn AnyCell>>) {
        self.close_queues()
    }
    fn clear_control(&self) {
        self.queues.lock().control.clear();
    }
}
