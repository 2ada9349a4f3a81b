//! The shared half of an actor: its mailbox, its counters, and the hooks other actors and
//! executors use to reach it. The other half (the actor value, its timers, asks and children)
//! is owned by its runner and touched by one thread at a time.
//!
//! A cell outlives the incarnations of its actor: a restarted actor keeps its mailbox (only the
//! message that failed is lost) and its counters. Once closed for good, every push is refused and
//! senders fall back to the registry, where a new actor may stand under the same path.
//!
//! Hot-path cost, by design: one uncontended lock per push and one per pop; counters that change
//! with the queue live under that same lock; an executor is woken only when a mailbox goes from
//! empty to non-empty (or a parked sender's target frees space).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::{Mutex, MutexGuard};

use crate::actor::Down;
use crate::mailbox::{ActorId, Control, Envelope, MailboxSpec, Overflow};
use crate::message::ErasedMessage;
use crate::metrics::MetricsSnapshot;
use crate::path::ActorPath;

/// How a cell tells an executor that doesn't poll wakers (the deterministic one) that it has
/// work. Cells without a notifier wake the task waker registered by `poll_work` instead.
pub trait Notify: Send + Sync + 'static {
    fn notify(&self, id: ActorId);
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

/// Counters kept under the queue lock (they change with the queue).
#[derive(Default, Clone, Copy)]
struct QueueCounters {
    handled: u64,
    enqueued: u64,
    dropped_oldest: u64,
    rejected: u64,
    parked: u64,
    depth_max: u64,
}

struct Queues<M> {
    /// Supervision signals (rare). Boxed on purpose: an idle mailbox pays one pointer, not an
    /// empty `VecDeque`'s four words.
    #[allow(clippy::box_collection)]
    control: Option<Box<VecDeque<Control>>>,
    queue: VecDeque<Envelope<M>>,
    /// Bounded envelopes in `queue` (user messages and port events).
    bounded_len: usize,
    /// The task to wake (executors without a notifier).
    waker: Option<Waker>,
    /// Who waits on this cell; most cells never have anyone, so it is allocated on first use.
    observers: Option<Box<Observers>>,
    counters: QueueCounters,
}

impl<M> Queues<M> {
    fn has_control(&self) -> bool {
        self.control.as_ref().is_some_and(|c| !c.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty() && !self.has_control()
    }
}

#[derive(Default)]
struct Observers {
    /// Runners parked on this mailbox under backpressure, woken when space frees.
    waiters: Vec<Arc<dyn AnyCell>>,
    /// Actors to notify with a `Down` when this one stops for good.
    watchers: Vec<Arc<dyn AnyCell>>,
}

/// One actor's mailbox and identity.
pub struct Cell<M> {
    id: ActorId,
    path: ActorPath,
    system: u64,
    spec: MailboxSpec,
    queues: Mutex<Queues<M>>,
    notifier: Option<Arc<dyn Notify>>,
    /// Set when the cell is woken; cleared by the executor when it polls (outside the lock, so
    /// a woken task checks it without locking).
    pending: AtomicBool,
    closed: AtomicBool,
    /// Its handled messages are recorded (`trace`).
    traced: AtomicBool,
    failures: AtomicU64,
    restarts: AtomicU64,
}

impl<M: Send + 'static> Cell<M> {
    pub(crate) fn new(
        id: ActorId,
        path: ActorPath,
        system: u64,
        spec: MailboxSpec,
        notifier: Option<Arc<dyn Notify>>,
    ) -> Self {
        assert!(spec.capacity > 0, "mailbox capacity must be positive (validated by the spec)");
        Cell {
            id,
            path,
            system,
            spec,
            queues: Mutex::new(Queues {
                control: None,
                queue: VecDeque::new(),
                bounded_len: 0,
                waker: None,
                observers: None,
                counters: QueueCounters::default(),
            }),
            notifier,
            pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            traced: AtomicBool::new(false),
            failures: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        }
    }

    pub(crate) fn system(&self) -> u64 {
        self.system
    }

    /// Closed for good (the flag is set under the queue lock, so a reader holding it agrees).
    fn is_closed_now(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Wakes the executor for this cell (called with the queue lock held).
    fn wake(&self, q: &mut Queues<M>) {
        self.pending.store(true, Ordering::Release);
        match &self.notifier {
            Some(notifier) => notifier.notify(self.id),
            None => {
                if let Some(waker) = &q.waker {
                    waker.wake_by_ref();
                }
            }
        }
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
        if self.is_closed_now() {
            return Err(PushError::Closed(env));
        }
        if q.bounded_len >= self.spec.capacity {
            match self.spec.overflow {
                Overflow::Backpressure => {
                    q.counters.parked += 1;
                    return Err(PushError::Full(env));
                }
                Overflow::Reject => {
                    q.counters.rejected += 1;
                    return Err(PushError::Rejected);
                }
                Overflow::DropOldest => {
                    let oldest = q.queue.iter().position(Envelope::is_bounded);
                    let oldest = oldest.expect("bounded_len > 0 means a bounded envelope is queued");
                    q.queue.remove(oldest);
                    q.bounded_len -= 1;
                    q.counters.dropped_oldest += 1;
                }
            }
        }
        q.bounded_len += 1;
        q.counters.enqueued += 1;
        q.counters.depth_max = q.counters.depth_max.max(q.bounded_len as u64);
        self.enqueue(q, env);
        Ok(())
    }

    /// Enqueues an envelope that does not count against capacity (never refused unless closed).
    fn push_unbounded(&self, env: Envelope<M>) -> bool {
        let q = self.queues.lock();
        if self.is_closed_now() {
            return false;
        }
        self.enqueue(q, env);
        true
    }

    fn enqueue(&self, mut q: MutexGuard<'_, Queues<M>>, env: Envelope<M>) {
        let was_empty = q.is_empty();
        q.queue.push_back(env);
        if was_empty {
            self.wake(&mut q);
        }
    }

    /// Takes the next thing to handle (supervision signals first, then the ordered queue; only
    /// signals if `control_only`), and says whether more work remains.
    pub(crate) fn pop(&self, control_only: bool) -> Option<(Popped<M>, bool)> {
        let mut q = self.queues.lock();
        if let Some(c) = q.control.as_mut().and_then(|c| c.pop_front()) {
            let more = q.has_control() || (!control_only && !q.queue.is_empty());
            return Some((Popped::Control(c), more));
        }
        if control_only {
            return None;
        }
        let env = q.queue.pop_front()?;
        q.counters.handled += 1;
        let more = !q.queue.is_empty();
        if env.is_bounded() {
            q.bounded_len -= 1;
            if let Some(observers) = q.observers.as_mut().filter(|o| !o.waiters.is_empty()) {
                // Notify after unlocking: a waiter's lock is never taken under ours.
                let waiters = std::mem::take(&mut observers.waiters);
                drop(q);
                for waiter in waiters {
                    waiter.notify();
                }
            }
        }
        Some((Popped::Envelope(env), more))
    }

    pub(crate) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    fn close_queues(&self) -> (usize, Vec<Arc<dyn AnyCell>>) {
        let mut q = self.queues.lock();
        self.closed.store(true, Ordering::Release);
        let undelivered = q.queue.len();
        q.queue.clear();
        q.control = None;
        q.bounded_len = 0;
        let observers = q.observers.take().map(|o| *o).unwrap_or_default();
        let (waiters, watchers) = (observers.waiters, observers.watchers);
        self.wake(&mut q);
        drop(q);
        for w in waiters {
            w.notify();
        }
        (undelivered, watchers)
    }
}

impl<M: crate::message::Message> Cell<M> {
    /// Closes the mailbox for a move and empties it in the same step: the user messages
    /// waiting (encoded, in order) and how many envelopes of other kinds stay behind.
    pub(crate) fn drain_for_migration(&self) -> (Vec<Vec<u8>>, u64) {
        let mut q = self.queues.lock();
        self.closed.store(true, Ordering::Release);
        let mut moving = Vec::new();
        let mut stay = 0;
        for env in std::mem::take(&mut q.queue) {
            match env {
                Envelope::User { msg, .. } => moving.push(crate::message::encode(&msg)),
                _ => stay += 1,
            }
        }
        q.control = None;
        q.bounded_len = 0;
        // Senders parked on this mailbox retry, find it closed, and route the message anew.
        let waiters = q.observers.as_mut().map(|o| std::mem::take(&mut o.waiters)).unwrap_or_default();
        drop(q);
        for w in waiters {
            w.notify();
        }
        (moving, stay)
    }

    /// Puts moved-in messages ahead of whatever is queued, in order (they were sent earlier);
    /// the capacity does not refuse them. Returns how many did not decode as `M`.
    pub(crate) fn push_front_encoded(&self, pending: &[Vec<u8>]) -> u64 {
        let mut decoded = Vec::with_capacity(pending.len());
        let mut undecodable = 0;
        for bytes in pending {
            match crate::message::decode::<M>(bytes) {
                Ok(msg) => decoded.push(Envelope::User { from: ActorId::EXTERNAL, msg }),
                Err(_) => undecodable += 1,
            }
        }
        if decoded.is_empty() {
            return undecodable;
        }
        let mut q = self.queues.lock();
        let was_empty = q.is_empty();
        q.bounded_len += decoded.len();
        q.counters.enqueued += decoded.len() as u64;
        q.counters.depth_max = q.counters.depth_max.max(q.bounded_len as u64);
        for env in decoded.into_iter().rev() {
            q.queue.push_front(env);
        }
        if was_empty {
            self.wake(&mut q);
        }
        undecodable
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
    /// Whether the messages it handles are recorded (`trace`).
    fn is_traced(&self) -> bool;
    fn set_traced(&self, traced: bool);
    /// Messages waiting (every kind).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn metrics(&self) -> MetricsSnapshot;
    /// Tells its executor it may run (used to wake runners parked under backpressure).
    fn notify(&self);
    /// Ready once the cell was woken since the last poll; otherwise registers the task's waker.
    fn poll_work(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take_pending() {
            return Poll::Ready(());
        }
        self.register_waker(cx.waker());
        // A wake between the check and the registration set the flag: look again.
        if self.take_pending() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
    /// Whether the cell was woken since the last call (and clears that).
    fn take_pending(&self) -> bool;
    /// The task to wake from now on (replaces the previous one).
    fn register_waker(&self, waker: &Waker);

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
    /// Counts a restart of the actor living here.
    #[doc(hidden)]
    fn count_restart(&self);
    /// Decodes `bytes` (from the network) into this mailbox's message type and enqueues it
    /// under the mailbox policy, from outside any actor.
    #[doc(hidden)]
    fn push_encoded(&self, bytes: &[u8]) -> Result<(), crate::remote::DeliveryError>;
}

impl<M: crate::message::Message> AnyCell for Cell<M> {
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
    fn is_traced(&self) -> bool {
        self.traced.load(Ordering::Relaxed)
    }
    fn set_traced(&self, traced: bool) {
        self.traced.store(traced, Ordering::Relaxed);
    }
    fn len(&self) -> usize {
        let q = self.queues.lock();
        q.queue.len() + q.control.as_ref().map_or(0, |c| c.len())
    }
    fn metrics(&self) -> MetricsSnapshot {
        let q = self.queues.lock();
        let c = q.counters;
        MetricsSnapshot {
            handled: c.handled,
            enqueued: c.enqueued,
            dropped_oldest: c.dropped_oldest,
            rejected: c.rejected,
            parked: c.parked,
            failures: self.failures.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            depth_max: c.depth_max,
            depth: q.bounded_len as u64,
        }
    }
    fn notify(&self) {
        let mut q = self.queues.lock();
        self.wake(&mut q);
    }
    fn take_pending(&self) -> bool {
        // Plain load first: the common idle case costs no read-modify-write.
        self.pending.load(Ordering::Acquire) && self.pending.swap(false, Ordering::AcqRel)
    }
    fn register_waker(&self, waker: &Waker) {
        let mut q = self.queues.lock();
        if !q.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            q.waker = Some(waker.clone());
        }
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
        match self.push_bounded(Envelope::PortEvent { from, event: Box::new((port, event)) }) {
            Ok(()) => Ok(()),
            Err(PushError::Closed(_)) => Err(crate::SendError::Stopped(self.path.clone())),
            Err(PushError::Full(_) | PushError::Rejected) => {
                Err(crate::SendError::MailboxFull(self.path.clone()))
            }
        }
    }
    fn push_encoded(&self, bytes: &[u8]) -> Result<(), crate::remote::DeliveryError> {
        use crate::remote::DeliveryError;
        let msg: M = crate::message::decode(bytes).map_err(|reason| DeliveryError::Decode {
            path: self.path.clone(),
            expected: std::any::type_name::<M>(),
            reason,
        })?;
        match self.push_user(ActorId::EXTERNAL, msg) {
            Ok(()) => Ok(()),
            Err(PushError::Full(_)) => Err(DeliveryError::Full(self.path.clone())),
            Err(PushError::Rejected) => Err(DeliveryError::Rejected(self.path.clone())),
            Err(PushError::Closed(_)) => Err(DeliveryError::NoActor(self.path.clone())),
        }
    }
    fn push_timer(&self, key: u64) -> bool {
        self.push_unbounded(Envelope::Timer { key })
    }
    fn push_ask_timeout(&self, corr: u64) -> bool {
        self.push_unbounded(Envelope::AskTimeout { corr })
    }
    fn push_down(&self, from: ActorId, down: Down) -> bool {
        self.push_unbounded(Envelope::Down { from, down: Box::new(down) })
    }
    fn push_control(&self, control: Control) -> bool {
        let mut q = self.queues.lock();
        if self.is_closed_now() {
            return false;
        }
        // Wake on the first signal even with messages queued: a runner blocked on a full
        // mailbox elsewhere waits for room, yet takes signals (`Terminate`) meanwhile.
        let first_signal = !q.has_control();
        q.control.get_or_insert_with(Default::default).push_back(control);
        if first_signal {
            self.wake(&mut q);
        }
        true
    }
    fn add_waiter(&self, waiter: Arc<dyn AnyCell>) -> bool {
        let mut q = self.queues.lock();
        if self.is_closed_now() || q.bounded_len < self.spec.capacity {
            return false;
        }
        q.observers.get_or_insert_with(Default::default).waiters.push(waiter);
        true
    }
    fn add_watcher(&self, watcher: Arc<dyn AnyCell>) -> bool {
        let mut q = self.queues.lock();
        if self.is_closed_now() {
            return false;
        }
        q.observers.get_or_insert_with(Default::default).watchers.push(watcher);
        true
    }
    fn remove_watcher(&self, watcher: ActorId) {
        if let Some(observers) = self.queues.lock().observers.as_mut() {
            observers.watchers.retain(|w| w.id() != watcher);
        }
    }
    fn close(&self) -> (usize, Vec<Arc<dyn AnyCell>>) {
        self.close_queues()
    }
    fn clear_control(&self) {
        self.queues.lock().control = None;
    }
    fn count_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
}
