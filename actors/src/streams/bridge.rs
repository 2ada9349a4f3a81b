//! The protocol bridge's uplink: frames and maintenance records from the proxies into the
//! `telemetry` and `maintenance` streams, through the event-log port.
//!
//! - A frame's receipt (`stored`) goes back to its proxy only once the log says the record is
//!   durable (`Appended`): only then is the frame acknowledged to its mote.
//! - Per mote, records go to the log in the order the bridge took them, one append in flight
//!   at a time, failures retried with backoff until durable ([`super::appender`]); the status
//!   says the log is failing and why until an append succeeds.
//! - Bounded: at most `max_waiting` records wait. Beyond that a frame is refused without a
//!   receipt (counted): its proxy's ask times out and the mote, which still holds the frame in
//!   its ring, resends it later. That is the backpressure; nothing acknowledged is lost.
//! - A copy of a frame that is still waiting (its proxy asked again after a timeout) joins the
//!   waiting record instead of being appended twice: both receipts go out on its success.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aiot_runtime::{Actor, ActorError, Ctx, Instant, PortRef, ReplyTo};

use super::appender::{AppendStats, KeyedAppender, BACKOFF_MAX, RETRY_EVERY};
use super::{mote_key, TelemetryRecord, MAINTENANCE, TELEMETRY};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{AppendOutcome, Record};
use crate::things::Onward;

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
    /// Frames durable in the log (each counted once: a frame's copies wait together).
    pub frames_appended: AtomicU64,
    /// Copies of a waiting frame that joined it.
    pub copies_joined: AtomicU64,
    /// Frames refused because `max_waiting` records were waiting (their motes resend).
    pub refused_full: AtomicU64,
    /// Every record's append: durable, failed and retried, waiting.
    pub appends: Arc<AppendStats>,
}

impl BridgeStats {
    /// One line for a node's status: healthy, or failing and why.
    pub fn status(&self) -> String {
        let appends = &self.appends;
        let waiting = appends.waiting.load(Ordering::Relaxed);
        match &*appends.failing.lock() {
            None => format!(
                "bridge ok: {} records appended ({} frames), {waiting} waiting",
                appends.appended.load(Ordering::Relaxed),
                self.frames_appended.load(Ordering::Relaxed)
            ),
            Some(why) => format!("bridge RETRYING ({why}), {waiting} waiting"),
        }
    }
}

/// What a waiting record owes once durable.
struct Owed {
    /// The frame it carries, for joining copies (`None`: a maintenance record).
    frame: Option<(u32, u32)>,
    receipts: Vec<ReplyTo<()>>,
}

/// The bridge actor, at `/bridge` (platform tier; it needs the log port on its node).
pub struct Bridge {
    config: BridgeConfig,
    stats: Arc<BridgeStats>,
    log: Option<PortRef<Log>>,
    /// Per mote, in the order taken.
    appender: KeyedAppender<u32, Owed>,
    /// A topic could not be created: try again at this time.
    create_topics_at: Option<Instant>,
}

impl Bridge {
    pub fn new(config: BridgeConfig, stats: Arc<BridgeStats>) -> Self {
        Bridge {
            config,
            stats: Arc::clone(&stats),
            log: None,
            appender: KeyedAppender::new(Arc::clone(&stats.appends)),
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

    fn on_frame(&mut self, record: TelemetryRecord, stored: ReplyTo<()>, ctx: &mut Ctx<'_, Onward>) {
        let (mote, frame) = (record.mote, (record.boot_epoch, record.seq));
        if let Some(copy) = self.appender.find_mut(mote, |owed| owed.frame == Some(frame)) {
            copy.receipts.push(stored);
            self.stats.copies_joined.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.appender.len() >= self.config.max_waiting {
            // No receipt: the proxy's ask times out and the mote resends the frame later.
            self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.stats.frames_taken.fetch_add(1, Ordering::Relaxed);
        let record = Record::new(TELEMETRY, mote_key(mote), record.encode(), record.received_ms);
        let owed = Owed { frame: Some(frame), receipts: vec![stored] };
        self.appender.push(mote, record, owed, self.log.as_ref(), ctx);
    }

    fn on_maintenance(&mut self, record: crate::maintenance::MaintenanceRecord, ctx: &mut Ctx<'_, Onward>) {
        self.stats.maintenance_taken.fetch_add(1, Ordering::Relaxed);
        let mote = record.mote;
        let record = Record::new(MAINTENANCE, mote_key(mote), record.to_json(), record.time_ms);
        let owed = Owed { frame: None, receipts: Vec::new() };
        self.appender.push(mote, record, owed, self.log.as_ref(), ctx);
    }

    fn on_outcome(&mut self, outcome: AppendOutcome, ctx: &mut Ctx<'_, Onward>) {
        let Some(durable) = self.appender.on_outcome(outcome, self.log.as_ref(), ctx) else { return };
        if durable.tag.frame.is_some() {
            self.stats.frames_appended.fetch_add(1, Ordering::Relaxed);
        }
        for receipt in durable.tag.receipts {
            // A proxy that has gone is a dead letter; its mote resends.
            let _ = ctx.reply(&receipt, ());
        }
    }

    /// Retries what is due, and topic creation once its backoff has passed.
    fn on_retry_due(&mut self, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        // Re-armed each time (`Onward` carries receipts, so it is not `Clone` for a periodic timer).
        ctx.schedule_once(RETRY_EVERY, Onward::RetryDue);
        if self.create_topics_at.is_some_and(|at| at <= ctx.now()) {
            self.create_topics_at = None;
            self.create_topics(ctx)?;
        }
        self.appender.retry_due(self.log.as_ref(), ctx);
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
                *self.stats.appends.failing.lock() = Some(format!("{request}: {error}"));
                tracing::warn!("bridge: the log refused to {request}: {error}");
                self.create_topics_at.get_or_insert(ctx.now() + BACKOFF_MAX);
            }
            Onward::Log(LogEvent::TopicReady { .. } | LogEvent::Consumer(_)) => {}
            Onward::RetryDue => self.on_retry_due(ctx)?,
        }
        Ok(())
    }
}
