//! A stream stage: an actor that reads topics in a consumer group, turns each record into output
//! records with a [`Process`], appends those (in order per mote, retried until durable:
//! [`super::appender`]) and commits an input's offset only once everything it produced is
//! durable. The ML loop's stages (feature extraction, stage-2 scoring, drift) are stream stages.
//!
//! Guarantees: every input record is processed at least once, and its outputs are in the log
//! before its offset is committed. After a crash or a rebalance the records past the committed
//! offset are processed again, so outputs can repeat; they carry their input's identity (mote,
//! boot epoch, sequence) for readers to de-duplicate. Replicas share the partitions through the
//! group, so each record is processed by one of them at a time (BLUEPRINT section 9: two
//! replicas must not both score every message).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, Ctx, Instant, PortRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::appender::{AppendStats, KeyedAppender, RETRY_EVERY};
use super::progress::Holdings;
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{ConsumerEvent, Record, StoredRecord, Subscription, TopicPartition};

/// Wait before subscribing again after a refusal, or committing again after a refused commit.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// One output record, and the mote whose order it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub mote: u32,
    pub record: Record,
}

/// When a record is processed: the executor's clock and the cluster time (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageTime {
    pub now: Instant,
    pub cluster_ms: u64,
}

/// What a stage does with each record: pure computation, no IO (the stage does the IO).
pub trait Process: Send + 'static {
    /// What the stage's owners may tell it besides records (stage 2: a model to install);
    /// [`NoControl`] for a stage that takes nothing.
    type Control: Serialize + DeserializeOwned + Clone + Send + Sync + std::fmt::Debug + 'static;

    /// The topics it appends to (created when the stage starts).
    fn outputs(&self) -> Vec<&'static str>;

    /// Turns one input record into outputs (none is fine). An `Err` says why the record is
    /// unusable: it is counted and skipped, never retried.
    fn process(&mut self, input: &StoredRecord, at: StageTime, out: &mut Vec<Output>) -> Result<(), String>;

    /// Takes a control message; an `Err` says why it was refused (logged and counted).
    fn control(&mut self, control: Self::Control) -> Result<(), String>;
}

/// The control of a stage that takes none: it has no values, so no such message exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoControl {}

/// Where a stage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageConfig {
    pub inputs: Vec<&'static str>,
    pub group: String,
    /// This replica's name within the group.
    pub member: String,
    /// Partitions of the output topics it creates.
    pub partitions: u32,
    /// Input records being processed at most (the consumer's credit).
    pub in_flight: u32,
}

/// A stage's counters, shared with the host.
#[derive(Debug, Default)]
pub struct StageStats {
    pub read: AtomicU64,
    /// Inputs whose outputs are all durable (or that had none).
    pub done: AtomicU64,
    /// Inputs the process refused (counted, skipped).
    pub refused: AtomicU64,
    /// Control messages the process refused.
    pub controls_refused: AtomicU64,
    /// Partitions assigned to this replica now.
    pub assigned: AtomicU64,
    pub outputs: Arc<AppendStats>,
}

impl StageStats {
    /// One line for a node's status.
    pub fn status(&self, name: &str) -> String {
        let failing = self.outputs.failing.lock().clone();
        let health = failing.map_or_else(|| "ok".to_string(), |why| format!("RETRYING ({why})"));
        format!(
            "{name} {health}: {} records read, {} done, {} refused, {} outputs appended",
            self.read.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.outputs.appended.load(Ordering::Relaxed)
        )
    }
}

/// What a stage takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StageMsg<C> {
    Log(LogEvent),
    /// Retry appends, and what the log refused.
    Tick,
    /// For the process ([`Process::control`]).
    Control(C),
}

/// The stage actor around a [`Process`].
pub struct Stage<P> {
    process: P,
    config: StageConfig,
    stats: Arc<StageStats>,
    log: Option<PortRef<Log>>,
    /// Per assigned partition: outputs not yet durable, per input offset.
    partitions: Holdings<usize>,
    appender: KeyedAppender<u32, (TopicPartition, u64)>,
    subscribe_at: Option<Instant>,
    recommit_at: Option<Instant>,
    create_topics_at: Option<Instant>,
}

impl<P: Process> Stage<P> {
    pub fn new(process: P, config: StageConfig, stats: Arc<StageStats>) -> Self {
        Stage {
            process,
            config,
            appender: KeyedAppender::new(Arc::clone(&stats.outputs)),
            stats,
            log: None,
            partitions: Holdings::default(),
            subscribe_at: None,
            recommit_at: None,
            create_topics_at: None,
        }
    }

    fn request(
        &self,
        request: LogRequest,
        ctx: &mut Ctx<'_, StageMsg<P::Control>>,
    ) -> Result<(), ActorError> {
        match &self.log {
            Some(log) => Ok(ctx.port_request(log, request)?),
            None => Ok(()),
        }
    }

    fn create_topics(&self, ctx: &mut Ctx<'_, StageMsg<P::Control>>) -> Result<(), ActorError> {
        for topic in self.process.outputs() {
            let partitions = self.config.partitions;
            self.request(LogRequest::CreateTopic { topic: topic.into(), partitions }, ctx)?;
        }
        Ok(())
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, StageMsg<P::Control>>) -> Result<(), ActorError> {
        let c = &self.config;
        let subscription = Subscription {
            credit: c.in_flight,
            ..Subscription::in_group(&c.inputs, c.group.clone(), c.member.clone())
        };
        self.request(LogRequest::Subscribe(subscription), ctx)
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, StageMsg<P::Control>>,
    ) -> Result<(), ActorError> {
        let at = StageTime { now: ctx.now(), cluster_ms: ctx.cluster_ms() };
        let mut outputs = Vec::new();
        for input in records {
            self.stats.read.fetch_add(1, Ordering::Relaxed);
            outputs.clear();
            let result = self.process.process(&input, at, &mut outputs);
            let progress = self.partitions.entry(&input.partition);
            if let Err(why) = result {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("stage {}: {}@{}: {why}", self.config.group, input.partition, input.offset);
                outputs.clear();
            }
            if outputs.is_empty() {
                progress.skip(input.offset);
                self.input_done(&input.partition, ctx)?;
                continue;
            }
            progress.read(input.offset, outputs.len());
            for output in outputs.drain(..) {
                let tag = (input.partition.clone(), input.offset);
                self.appender.push(output.mote, output.record, tag, self.log.as_ref(), ctx);
            }
        }
        Ok(())
    }

    /// An output is durable: its input is done once all of its outputs are.
    fn on_durable(
        &mut self,
        partition: TopicPartition,
        offset: u64,
        ctx: &mut Ctx<'_, StageMsg<P::Control>>,
    ) -> Result<(), ActorError> {
        // A partition revoked meanwhile: its next owner processes the input again.
        let Some(progress) = self.partitions.get_mut(&partition) else { return Ok(()) };
        let Some(left) = progress.get_mut(offset) else { return Ok(()) };
        *left -= 1;
        if *left == 0 {
            progress.done(offset);
            self.input_done(&partition, ctx)?;
        }
        Ok(())
    }

    /// One more input is done: commit its partition as far as possible, one more credit.
    fn input_done(
        &mut self,
        partition: &TopicPartition,
        ctx: &mut Ctx<'_, StageMsg<P::Control>>,
    ) -> Result<(), ActorError> {
        self.stats.done.fetch_add(1, Ordering::Relaxed);
        let requests = self.partitions.done(partition);
        self.send_all(requests, ctx)
    }

    fn send_all(
        &self,
        requests: Vec<LogRequest>,
        ctx: &mut Ctx<'_, StageMsg<P::Control>>,
    ) -> Result<(), ActorError> {
        requests.into_iter().try_for_each(|request| self.request(request, ctx))
    }

    fn on_refused(&mut self, request: &str, now: Instant) {
        let retry = Some(now + RETRY_AFTER);
        if request == "subscribe" {
            self.subscribe_at = self.subscribe_at.or(retry);
        } else if request.starts_with("commit") {
            // Otherwise the position stays uncommitted and a restart would redo all since.
            self.recommit_at = self.recommit_at.or(retry);
        } else if request.starts_with("create") {
            self.create_topics_at = self.create_topics_at.or(retry);
        }
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, StageMsg<P::Control>>) -> Result<(), ActorError> {
        let now = ctx.now();
        if self.subscribe_at.is_some_and(|at| at <= now) {
            self.subscribe_at = None;
            self.subscribe(ctx)?;
        }
        if self.create_topics_at.is_some_and(|at| at <= now) {
            self.create_topics_at = None;
            self.create_topics(ctx)?;
        }
        if self.recommit_at.is_some_and(|at| at <= now) {
            self.recommit_at = None;
            let recommit = self.partitions.recommit();
            self.send_all(recommit, ctx)?;
        }
        self.appender.retry_due(self.log.as_ref(), ctx);
        Ok(())
    }
}

impl<P: Process> Actor for Stage<P> {
    type Msg = StageMsg<P::Control>;

    fn started(&mut self, ctx: &mut Ctx<'_, StageMsg<P::Control>>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(StageMsg::Log));
        self.create_topics(ctx)?;
        self.subscribe(ctx)?;
        ctx.schedule_every(RETRY_EVERY, StageMsg::Tick);
        Ok(())
    }

    /// Leaves the group, so the other replicas take over this one's partitions at once.
    fn stopped(&mut self, ctx: &mut Ctx<'_, StageMsg<P::Control>>) {
        let _ = self.request(LogRequest::Unsubscribe, ctx);
    }

    fn handle(
        &mut self,
        msg: StageMsg<P::Control>,
        ctx: &mut Ctx<'_, StageMsg<P::Control>>,
    ) -> Result<(), ActorError> {
        match msg {
            StageMsg::Log(LogEvent::Consumer(ConsumerEvent::Records(records))) => {
                self.on_records(records, ctx)?
            }
            StageMsg::Log(LogEvent::Consumer(ConsumerEvent::Revoked(partitions))) => {
                let credit = self.partitions.release(|p| partitions.contains(p));
                self.send_all(credit.into_iter().collect(), ctx)?;
            }
            StageMsg::Log(LogEvent::Consumer(ConsumerEvent::Assigned(partitions))) => {
                self.stats.assigned.store(partitions.len() as u64, Ordering::Relaxed);
                let credit = self.partitions.release(|p| !partitions.contains(p));
                self.send_all(credit.into_iter().collect(), ctx)?;
            }
            StageMsg::Log(LogEvent::Consumer(ConsumerEvent::Error(error))) => {
                tracing::warn!("stage {}: consumer: {error}", self.config.group);
            }
            StageMsg::Log(LogEvent::Outcome(outcome)) => {
                if let Some(durable) = self.appender.on_outcome(outcome, self.log.as_ref(), ctx) {
                    let (partition, offset) = durable.tag;
                    self.on_durable(partition, offset, ctx)?;
                }
            }
            StageMsg::Log(LogEvent::Refused { request, error }) => {
                tracing::warn!("stage {}: the log refused to {request}: {error}", self.config.member);
                self.on_refused(&request, ctx.now());
            }
            StageMsg::Log(LogEvent::TopicReady { .. }) => {}
            StageMsg::Tick => self.on_tick(ctx)?,
            StageMsg::Control(control) => {
                if let Err(why) = self.process.control(control) {
                    self.stats.controls_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("stage {}: a control message refused: {why}", self.config.member);
                }
            }
        }
        Ok(())
    }
}
