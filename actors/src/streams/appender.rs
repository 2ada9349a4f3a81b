//! Appends to the event log in order per key, retried until durable: what the bridge and the
//! stream stages share.
//!
//! - Per key (a mote), one append is in flight at a time and the rest wait in order behind it,
//!   so a failed append is retried before anything newer under that key: the stream keeps each
//!   key's records in the order they were pushed, retries included.
//! - Failures (`AppendFailed`, a refused port request, an outcome lost for `APPEND_TIMEOUT`) are
//!   retried with exponential backoff from `BACKOFF_MIN` to `BACKOFF_MAX`. The owner calls
//!   [`KeyedAppender::retry_due`] every `RETRY_EVERY`.
//! - Each record carries its owner's tag (receipts to send, an input offset to commit), handed
//!   back once the log says the record is durable.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aiot_runtime::{Ctx, Instant, Message, PortRef};
use parking_lot::Mutex;

use crate::ports::eventlog::adapter::{Log, LogRequest};
use crate::ports::eventlog::{AppendId, AppendOutcome, LogError, Record, TopicPartition};

/// How often the owner should call [`KeyedAppender::retry_due`].
pub const RETRY_EVERY: Duration = Duration::from_millis(250);
/// An append without an outcome after this long is taken as failed and sent again.
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Backoff after the first failure of a record, doubling to `BACKOFF_MAX`.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// An appender's counters, shared with the host.
#[derive(Debug, Default)]
pub struct AppendStats {
    /// Records durable in the log.
    pub appended: AtomicU64,
    /// Failed appends (each retried), and of them appends whose outcome never came.
    pub failures: AtomicU64,
    pub timeouts: AtomicU64,
    /// Records waiting now (in flight included).
    pub waiting: AtomicU64,
    /// The latest failure, while the log is failing; `None` once an append succeeded since.
    pub failing: Mutex<Option<String>>,
}

/// A record the log has made durable, with its owner's tag.
#[derive(Debug)]
pub struct Durable<T> {
    pub tag: T,
    pub partition: TopicPartition,
    pub offset: u64,
}

/// One record waiting for the log.
struct Queued<T> {
    record: Record,
    tag: T,
    /// The append in flight, and when it was sent.
    in_flight: Option<(AppendId, Instant)>,
    failures: u32,
    retry_at: Instant,
}

/// Per-key ordered, retried appends through the log port.
pub struct KeyedAppender<K, T> {
    stats: std::sync::Arc<AppendStats>,
    /// Per key, its records in the order pushed; only keys with records waiting.
    queues: BTreeMap<K, VecDeque<Queued<T>>>,
    /// Appends in flight: id -> key.
    in_flight: BTreeMap<AppendId, K>,
    next_id: AppendId,
    len: usize,
}

impl<K: Ord + Copy, T> KeyedAppender<K, T> {
    pub fn new(stats: std::sync::Arc<AppendStats>) -> Self {
        KeyedAppender { stats, queues: BTreeMap::new(), in_flight: BTreeMap::new(), next_id: 1, len: 0 }
    }

    /// Records waiting (in flight included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The tag of a waiting record under `key` that `matches`, to join a copy to it.
    pub fn find_mut(&mut self, key: K, matches: impl Fn(&T) -> bool) -> Option<&mut T> {
        self.queues.get_mut(&key)?.iter_mut().map(|q| &mut q.tag).find(|tag| matches(tag))
    }

    /// Queues `record` behind the others of `key`; sent at once if it is the only one.
    pub fn push<M: Message>(
        &mut self,
        key: K,
        record: Record,
        tag: T,
        log: Option<&PortRef<Log>>,
        ctx: &mut Ctx<'_, M>,
    ) {
        self.len += 1;
        self.stats.waiting.store(self.len as u64, Ordering::Relaxed);
        let queue = self.queues.entry(key).or_default();
        queue.push_back(Queued { record, tag, in_flight: None, failures: 0, retry_at: ctx.now() });
        if queue.len() == 1 {
            self.send_head(key, log, ctx);
        }
    }

    /// Takes an append's outcome: the record and its tag once durable (the next of its key is
    /// sent then); `None` for a failure (retried later) or an outcome of no append of ours.
    pub fn on_outcome<M: Message>(
        &mut self,
        outcome: AppendOutcome,
        log: Option<&PortRef<Log>>,
        ctx: &mut Ctx<'_, M>,
    ) -> Option<Durable<T>> {
        match outcome {
            AppendOutcome::Appended { id, partition, offset } => {
                let key = self.in_flight.remove(&id)?;
                let queue = self.queues.get_mut(&key)?;
                let done = queue.pop_front().expect("an append in flight is its key's head");
                if queue.is_empty() {
                    self.queues.remove(&key);
                }
                self.len -= 1;
                self.stats.waiting.store(self.len as u64, Ordering::Relaxed);
                self.stats.appended.fetch_add(1, Ordering::Relaxed);
                *self.stats.failing.lock() = None;
                self.send_head(key, log, ctx);
                Some(Durable { tag: done.tag, partition, offset })
            }
            AppendOutcome::AppendFailed { id, error } => {
                self.failed(id, error, ctx.now());
                None
            }
        }
    }

    /// Retries what is due and gives up waiting for outcomes overdue (retried after a backoff).
    pub fn retry_due<M: Message>(&mut self, log: Option<&PortRef<Log>>, ctx: &mut Ctx<'_, M>) {
        let now = ctx.now();
        let mut due = Vec::new();
        for (&key, queue) in &self.queues {
            let Some(head) = queue.front() else { continue };
            match head.in_flight {
                Some((id, sent)) if now.saturating_since(sent) >= APPEND_TIMEOUT => due.push((key, Some(id))),
                Some(_) => {}
                None if head.retry_at <= now => due.push((key, None)),
                None => {}
            }
        }
        for (key, overdue) in due {
            match overdue {
                Some(id) => {
                    self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                    self.failed(id, LogError::Unavailable("no outcome from the log in time".into()), now);
                }
                None => self.send_head(key, log, ctx),
            }
        }
    }

    /// Sends the head of a key's queue to the log.
    fn send_head<M: Message>(&mut self, key: K, log: Option<&PortRef<Log>>, ctx: &mut Ctx<'_, M>) {
        let now = ctx.now();
        let Some(head) = self.queues.get_mut(&key).and_then(|q| q.front_mut()) else { return };
        let id = self.next_id;
        self.next_id += 1;
        head.in_flight = Some((id, now));
        self.in_flight.insert(id, key);
        let sent = match log {
            Some(log) => {
                ctx.port_request(log, LogRequest::Append { id, record: head.record.clone() }).is_ok()
            }
            None => false,
        };
        if !sent {
            self.failed(id, LogError::Unavailable("the log port refused the request".into()), now);
        }
    }

    /// The append `id` failed: its record waits for a retry, after a backoff.
    fn failed(&mut self, id: AppendId, error: LogError, now: Instant) {
        let Some(key) = self.in_flight.remove(&id) else { return };
        let Some(head) = self.queues.get_mut(&key).and_then(|q| q.front_mut()) else { return };
        head.in_flight = None;
        head.failures += 1;
        let backoff = BACKOFF_MIN.saturating_mul(1 << head.failures.min(16)).min(BACKOFF_MAX);
        head.retry_at = now + backoff;
        self.stats.failures.fetch_add(1, Ordering::Relaxed);
        *self.stats.failing.lock() = Some(error.to_string());
    }
}
