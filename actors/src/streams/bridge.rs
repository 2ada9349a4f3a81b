//! The protocol bridge's uplink: frames and maintenance records from the proxies into the
//! `telemetry` and `maintenance` streams, through the event-log port.
//!
//! - A frame's receipt (`stored`) goes back to its proxy only once the log says the record is
//!   durable (`Appended`): only then is the frame acknowledged to its mote.
//! - Per mote, one append is in flight at a time and the rest wait in order behind it, so a
//!   failed append is retried before anything newer of that mote: the stream keeps each mote's
//!   records in the order the bridge took them, retries included.
//! - Failures (`AppendFailed`, a lost outcome after `APPEND_TIMEOUT`) are retried with
//!   exponential backoff; the status says the log is failing and why until an append succeeds.
//! - Bounded: at most `max_waiting` records wait. Beyond that a frame is refused without a
//!   receipt (counted): its proxy's ask times out and the mote, which still holds the frame in
//!   its ring, resends it later. That is the backpressure; nothing acknowledged is lost.
//! - A copy of a frame that is still waiting (its proxy asked again after a timeout) joins the
//!   waiting record instead of being appended twice: both receipts go out on its success.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, Ctx, Instant, PortRef, ReplyTo};
use parking_lot::Mutex;

use super::{mote_key, TelemetryRecord, MAINTENANCE, TELEMETRY};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{AppendId, AppendOutcome, LogError, Record};
use crate::things::Onward;

/// How often the bridge looks for appends to retry and outcomes overdue.
pub const RETRY_EVERY: Duration = Duration::from_millis(250);
/// An append without an outcome after this long is taken as failed and sent again.
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Backoff after the first failure of a record, doubling to `BACKOFF_MAX`.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The bridge's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Partitions of the streams it creates.
    pub partitions: u32,
    /// Records waiting (in flight included) at most.
    pub max_waiting: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig { partitions: super::PARTITIONS, max_waiting: 65_536 }
    }
}

/// The bridge's counters and status, shared with the host.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Frames taken from proxies (copies of waiting frames not included).
    pub frames_taken: AtomicU64,
    pub maintenance_taken: AtomicU64,
    /// Records durable in the log, and of them frames (each counted once: a frame's copies wait
    /// together).
    pub appended: AtomicU64,
    pub frames_appended: AtomicU64,
    /// Copies of a waiting frame that joined it.
    pub copies_joined: AtomicU64,
    /// Failed appends (each retried), and appends sent again after `APPEND_TIMEOUT`.
    pub append_failures: AtomicU64,
    pub timeouts: AtomicU64,
    /// Frames refused because `max_waiting` records were waiting (their motes resend).
    pub refused_full: AtomicU64,
    /// Records waiting now.
    pub waiting: AtomicU64,
    /// The latest failure, while the log is failing; `None` once an append succeeded since.
    pub failing: Mutex<Option<String>>,
}

impl BridgeStats {
    /// One line for a node's status: healthy, or failing and why.
    pub fn status(&self) -> String {
        let waiting = self.waiting.load(Ordering::Relaxed);
        match &*self.failing.lock() {
            None => format!(
                "bridge ok: {} records appended ({} frames), {waiting} waiting",
                self.appended.load(Ordering::Relaxed),
                self.frames_appended.load(Ordering::Relaxed)
            ),
            Some(why) => format!("bridge RETRYING ({why}), {waiting} waiting"),
        }
    }
}

/// One record waiting for the log.
struct Waiting {
    record: Record,
    /// The frame it carries, for joining copies (`None`: a maintenance record).
    frame: Option<(u32, u32)>,
    receipts: Vec<ReplyTo<()>>,
    /// The append in flight, and when it was sent.
    in_flight: Option<(AppendId, Instant)>,
    failures: u32,
    retry_at: Instant,
}

/// The bridge actor, at `/bridge` (platform tier; it needs the log port on its node).
pub struct Bridge {
    config: BridgeConfig,
    stats: Arc<BridgeStats>,
    log: Option<PortRef<Log>>,
    /// Per mote, its records in the order taken; only motes with records waiting.
    motes: BTreeMap<u32, VecDeque<Waiting>>,
    /// Appends in flight: id -> mote.
    in_flight: BTreeMap<AppendId, u32>,
    next_id: AppendId,
    waiting: usize,
    /// A topic could not be created: try again at this time.
    create_topics_at: Option<Instant>,
}

impl Bridge {
    pub fn new(config: BridgeConfig, stats: Arc<BridgeStats>) -> Self {
        Bridge {
            config,
            stats,
            log: None,
            motes: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_id: 1,
            waiting: 0,
            create_topics_at: None,
        }
    }

    fn create_topics(&self, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        let Some(log) = &self.log else { return Ok(()) };
        for topic in [TELEMETRY, MAINTENANCE] {
            ctx.port_request(
                log,
                LogRequest::CreateTopic { topic: topic.into(), partitions: self.config.partitions },
            )?;
        }
        Ok(())
    }

    fn take(&mut self, mote: u32, waiting: Waiting, ctx: &mut Ctx<'_, Onward>) {
        self.waiting += 1;
        self.stats.waiting.store(self.waiting as u64, Ordering::Relaxed);
        let queue = self.motes.entry(mote).or_default();
        queue.push_back(waiting);
        if queue.len() == 1 {
            self.send_head(mote, ctx);
        }
    }

    fn on_frame(&mut self, record: TelemetryRecord, stored: ReplyTo<()>, ctx: &mut Ctx<'_, Onward>) {
        let (mote, frame) = (record.mote, (record.boot_epoch, record.seq));
        if let Some(copy) =
            self.motes.get_mut(&mote).and_then(|q| q.iter_mut().find(|w| w.frame == Some(frame)))
        {
            copy.receipts.push(stored);
            self.stats.copies_joined.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.waiting >= self.config.max_waiting {
            // No receipt: the proxy's ask times out and the mote resends the frame later.
            self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.stats.frames_taken.fetch_add(1, Ordering::Relaxed);
        let record = Record::new(TELEMETRY, mote_key(mote), record.encode(), record.received_ms);
        let now = ctx.now();
        self.take(
            mote,
            Waiting {
                record,
                frame: Some(frame),
                receipts: vec![stored],
                in_flight: None,
                failures: 0,
                retry_at: now,
            },
            ctx,
        );
    }

    fn on_maintenance(&mut self, record: crate::maintenance::MaintenanceRecord, ctx: &mut Ctx<'_, Onward>) {
        self.stats.maintenance_taken.fetch_add(1, Ordering::Relaxed);
        let (mote, now) = (record.mote, ctx.now());
        let record = Record::new(MAINTENANCE, mote_key(mote), record.to_json(), record.time_ms);
        self.take(
            mote,
            Waiting {
                record,
                frame: None,
                receipts: Vec::new(),
                in_flight: None,
                failures: 0,
                retry_at: now,
            },
            ctx,
        );
    }

    /// Sends the head of a mote's queue to the log.
    fn send_head(&mut self, mote: u32, ctx: &mut Ctx<'_, Onward>) {
        let now = ctx.now();
        let Some(head) = self.motes.get_mut(&mote).and_then(|q| q.front_mut()) else { return };
        let id = self.next_id;
        self.next_id += 1;
        head.in_flight = Some((id, now));
        self.in_flight.insert(id, mote);
        let sent = match &self.log {
            Some(log) => {
                ctx.port_request(log, LogRequest::Append { id, record: head.record.clone() }).map_err(drop)
            }
            None => Err(()),
        };
        if sent.is_err() {
            self.failed(id, LogError::Unavailable("the log port refused the request".into()), now);
        }
    }

    fn on_outcome(&mut self, outcome: AppendOutcome, ctx: &mut Ctx<'_, Onward>) {
        match outcome {
            AppendOutcome::Appended { id, .. } => {
                let Some(mote) = self.in_flight.remove(&id) else { return };
                let Some(queue) = self.motes.get_mut(&mote) else { return };
                let done = queue.pop_front().expect("an append in flight is its mote's head");
                if queue.is_empty() {
                    self.motes.remove(&mote);
                }
                self.waiting -= 1;
                self.stats.waiting.store(self.waiting as u64, Ordering::Relaxed);
                self.stats.appended.fetch_add(1, Ordering::Relaxed);
                if done.frame.is_some() {
                    self.stats.frames_appended.fetch_add(1, Ordering::Relaxed);
                }
                *self.stats.failing.lock() = None;
                for receipt in done.receipts {
                    // A proxy that has gone is a dead letter; its mote resends.
                    let _ = ctx.reply(&receipt, ());
                }
                self.send_head(mote, ctx);
            }
            AppendOutcome::AppendFailed { id, error } => self.failed(id, error, ctx.now()),
        }
    }

    /// The append `id` failed: its record waits for a retry, after a backoff.
    fn failed(&mut self, id: AppendId, error: LogError, now: Instant) {
        let Some(mote) = self.in_flight.remove(&id) else { return };
        let Some(head) = self.motes.get_mut(&mote).and_then(|q| q.front_mut()) else { return };
        head.in_flight = None;
        head.failures += 1;
        let backoff = BACKOFF_MIN.saturating_mul(1 << head.failures.min(16)).min(BACKOFF_MAX);
        head.retry_at = now + backoff;
        self.stats.append_failures.fetch_add(1, Ordering::Relaxed);
        *self.stats.failing.lock() = Some(error.to_string());
    }

    /// Retries what is due and gives up waiting for outcomes overdue.
    fn on_retry_due(&mut self, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        let now = ctx.now();
        // Re-armed each time (`Onward` carries receipts, so it is not `Clone` for a periodic timer).
        ctx.schedule_once(RETRY_EVERY, Onward::RetryDue);
        if self.create_topics_at.is_some_and(|at| at <= now) {
            self.create_topics_at = None;
            self.create_topics(ctx)?;
        }
        let mut due = Vec::new();
        for (&mote, queue) in &self.motes {
            let Some(head) = queue.front() else { continue };
            match head.in_flight {
                Some((id, sent)) if now.saturating_since(sent) >= APPEND_TIMEOUT => {
                    due.push((mote, Some(id)))
                }
                Some(_) => {}
                None if head.retry_at <= now => due.push((mote, None)),
                None => {}
            }
        }
        for (mote, overdue) in due {
            if let Some(id) = overdue {
                self.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                self.failed(id, LogError::Unavailable("no outcome from the log in time".into()), now);
                continue; // retried after the backoff
            }
            self.send_head(mote, ctx);
        }
        Ok(())
    }
}

impl Actor for Bridge {
    type Msg = Onward;

    fn started(&mut self, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(Onward::Log));
        self.create_topics(ctx)?;
        ctx.schedule_once(RETRY_EVERY, Onward::RetryDue);
        Ok(())
    }

    fn handle(&mut self, msg: Onward, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        match msg {
            Onward::Telemetry { frame, faults, stored } => {
                self.on_frame(TelemetryRecord::new(frame, faults), stored, ctx)
            }
            Onward::Maintenance(record) => self.on_maintenance(record, ctx),
            Onward::Log(LogEvent::Outcome(outcome)) => self.on_outcome(outcome, ctx),
            Onward::Log(LogEvent::Refused { request, error }) => {
                // Only topic creation is requested besides appends: try again later (appends
                // to a topic not there yet fail and are retried meanwhile).
                *self.stats.failing.lock() = Some(format!("{request}: {error}"));
                tracing::warn!("bridge: the log refused to {request}: {error}");
                self.create_topics_at.get_or_insert(ctx.now() + BACKOFF_MAX);
            }
            Onward::Log(LogEvent::TopicReady { .. } | LogEvent::Consumer(_)) => {}
            Onward::RetryDue => self.on_retry_due(ctx)?,
        }
        Ok(())
    }
}
