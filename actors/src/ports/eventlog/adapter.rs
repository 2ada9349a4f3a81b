//! The event-log port's actor: requests to a log, outcomes and records back to the asking actor.
//!
//! The host builds a `LogLink`, opens a log (embedded, Kafka or simulated) with `link.sink()`
//! as its append sink, `attach`es it, and installs `link.adapter()` at `/port-log`. Each append
//! is renamed with a link-wide id on its way to the log, so outcomes find their actor again
//! whatever ids actors chose; a consumer's events go straight to the actor that subscribed (one
//! consumer per actor: subscribing again replaces it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aiot_runtime::{Actor, ActorError, ActorPath, ActorSpec, Ctx, Port, PortCall, PortClient};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{
    AppendId, AppendOutcome, AppendSink, ConsumerEvent, EventLog, LogConsumer, LogError, Record,
    Subscription, TopicPartition,
};

/// The event-log port, at `/port-log`.
pub struct Log;

impl Port for Log {
    const NAME: &'static str = "log";
    type Request = LogRequest;
    type Event = LogEvent;
}

/// What an actor asks of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LogRequest {
    /// Answered with `TopicReady` or `Refused`.
    CreateTopic {
        topic: String,
        partitions: u32,
    },
    /// Answered with `Outcome` (a refusal too: `AppendFailed` with the reason).
    Append {
        id: AppendId,
        record: Record,
    },
    /// Starts this actor's consumer (replacing an earlier one); events come as `Consumer`.
    Subscribe(Subscription),
    Commit {
        partition: TopicPartition,
        next_offset: u64,
    },
    /// More credit for this actor's consumer.
    Grant(u32),
    /// Stops this actor's consumer (leaving its group).
    Unsubscribe,
}

/// What the log tells an actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LogEvent {
    TopicReady {
        topic: String,
        partitions: u32,
    },
    /// The outcome of an append, under the id the actor gave it.
    Outcome(AppendOutcome),
    Consumer(ConsumerEvent),
    /// A request other than an append failed; `request` names it.
    Refused {
        request: String,
        error: LogError,
    },
}

/// Counters of one link.
#[derive(Debug, Default)]
pub struct LogLinkStats {
    pub appends: AtomicU64,
    pub outcomes: AtomicU64,
    /// Events an actor could not take (mailbox full, or actor gone): the actor times out and
    /// retries (appends), or reads the records again (consumers re-deliver after a restart).
    pub undeliverable: AtomicU64,
    /// Outcomes for appends the link no longer knows (not expected).
    pub unmatched: AtomicU64,
}

/// One log shared by the port's actor and the log's append sink.
pub struct LogLink {
    log: OnceLock<Arc<dyn EventLog>>,
    /// Appends in flight: link id -> (the actor, its id).
    appends: Mutex<BTreeMap<AppendId, (PortClient<Log>, AppendId)>>,
    next_id: AtomicU64,
    consumers: Mutex<BTreeMap<ActorPath, Box<dyn LogConsumer>>>,
    stats: LogLinkStats,
}

impl LogLink {
    pub fn new() -> Arc<Self> {
        Arc::new(LogLink {
            log: OnceLock::new(),
            appends: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            consumers: Mutex::new(BTreeMap::new()),
            stats: LogLinkStats::default(),
        })
    }

    /// The append sink to open the log with. It holds the link weakly: the log is the link's,
    /// and a cycle would keep both (and the link's consumers, still members of their groups)
    /// alive after the node's actor system is gone.
    pub fn sink(self: &Arc<Self>) -> AppendSink {
        let link = Arc::downgrade(self);
        Arc::new(move |outcome| {
            if let Some(link) = link.upgrade() {
                link.outcome(outcome);
            }
        })
    }

    /// Attaches the log opened with `sink()`; only the first call counts.
    pub fn attach(&self, log: Arc<dyn EventLog>) {
        let _ = self.log.set(log);
    }

    /// The port's actor, to install at `/port-log`.
    pub fn adapter(self: &Arc<Self>) -> ActorSpec<LogAdapter> {
        let link = Arc::clone(self);
        ActorSpec::new(move |_| LogAdapter { link: Arc::clone(&link) })
    }

    pub fn stats(&self) -> &LogLinkStats {
        &self.stats
    }

    fn log(&self) -> Result<&Arc<dyn EventLog>, LogError> {
        self.log.get().ok_or_else(|| LogError::Unavailable("no event log attached to this node".into()))
    }

    fn emit(&self, client: &PortClient<Log>, event: LogEvent) {
        if client.emit(event).is_err() {
            self.stats.undeliverable.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn outcome(&self, outcome: AppendOutcome) {
        let link_id = match &outcome {
            AppendOutcome::Appended { id, .. } | AppendOutcome::AppendFailed { id, .. } => *id,
        };
        let Some((client, id)) = self.appends.lock().remove(&link_id) else {
            self.stats.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.stats.outcomes.fetch_add(1, Ordering::Relaxed);
        let renamed = match outcome {
            AppendOutcome::Appended { partition, offset, .. } => {
                AppendOutcome::Appended { id, partition, offset }
            }
            AppendOutcome::AppendFailed { error, .. } => AppendOutcome::AppendFailed { id, error },
        };
        self.emit(&client, LogEvent::Outcome(renamed));
    }

    fn append(&self, client: PortClient<Log>, id: AppendId, record: Record) {
        self.stats.appends.fetch_add(1, Ordering::Relaxed);
        let log = match self.log() {
            Ok(log) => log,
            Err(error) => {
                return self.emit(&client, LogEvent::Outcome(AppendOutcome::AppendFailed { id, error }))
            }
        };
        let link_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.appends.lock().insert(link_id, (client.clone(), id));
        if let Err(error) = log.append(link_id, record) {
            self.appends.lock().remove(&link_id);
            self.emit(&client, LogEvent::Outcome(AppendOutcome::AppendFailed { id, error }));
        }
    }

    fn subscribe(
        self: &Arc<Self>,
        client: &PortClient<Log>,
        subscription: Subscription,
    ) -> Result<(), LogError> {
        let log = self.log()?;
        // The old consumer leaves first, so a member does not compete with itself.
        self.consumers.lock().remove(client.path());
        let (to, link) = (client.clone(), Arc::downgrade(self));
        let consumer = log.subscribe(
            subscription,
            Arc::new(move |event| {
                if let Some(link) = link.upgrade() {
                    link.emit(&to, LogEvent::Consumer(event));
                }
            }),
        )?;
        self.consumers.lock().insert(client.path().clone(), consumer);
        Ok(())
    }
}

/// The actor at `/port-log`.
pub struct LogAdapter {
    link: Arc<LogLink>,
}

impl Actor for LogAdapter {
    type Msg = PortCall<Log>;

    fn handle(&mut self, call: PortCall<Log>, _ctx: &mut Ctx<'_, Self::Msg>) -> Result<(), ActorError> {
        let PortCall { client, request } = call;
        let link = &self.link;
        let refused = |request: &str, error: LogError| LogEvent::Refused { request: request.into(), error };
        match request {
            LogRequest::Append { id, record } => link.append(client, id, record),
            LogRequest::CreateTopic { topic, partitions } => {
                let event = match link.log().and_then(|log| log.create_topic(&topic, partitions)) {
                    Ok(()) => LogEvent::TopicReady { topic, partitions },
                    Err(error) => refused(&format!("create topic {topic}"), error),
                };
                link.emit(&client, event);
            }
            LogRequest::Subscribe(subscription) => {
                if let Err(error) = link.subscribe(&client, subscription) {
                    link.emit(&client, refused("subscribe", error));
                }
            }
            LogRequest::Commit { partition, next_offset } => {
                let committed = match link.consumers.lock().get(client.path()) {
                    Some(consumer) => consumer.commit(&partition, next_offset),
                    None => Err(LogError::Invalid("commit without a consumer".into())),
                };
                if let Err(error) = committed {
                    link.emit(&client, refused(&format!("commit {partition}"), error));
                }
            }
            LogRequest::Grant(records) => {
                if let Some(consumer) = link.consumers.lock().get(client.path()) {
                    consumer.grant(records);
                }
            }
            LogRequest::Unsubscribe => {
                link.consumers.lock().remove(client.path());
            }
        }
        Ok(())
    }
}
