//! The Kafka backend of the event-log port (BLUEPRINT section 6): rdkafka with its bundled
//! librdkafka, for deployments that outgrow one machine. Tested against tansu, a
//! Kafka-protocol broker (`adapters::tansu`).
//!
//! - `settings`: the backend's settings and each client's librdkafka configuration.
//! - `producer`: appends through an idempotent producer (acks from all replicas, the CRC-32
//!   partitioner that `partition_for` mirrors, a new producer after a fatal error); delivery
//!   reports are the append outcomes.
//! - `records`: the port's records as Kafka messages and back.
//! - `admin`: creating and listing topics.
//! - `consumer`, `context`, `start`, `credit`: consumers (a group's, or independent readers of
//!   every partition), their rebalance callbacks, start positions and flow control.
//! - `errors`: librdkafka's errors as `LogError`s.
//!
//! While brokers are unreachable, appends wait in librdkafka's bounded queue (`Full` when it
//! is full) and are retried until `KafkaSettings::append_timeout`, then fail with
//! `Unavailable`; `KafkaLog::status` says `Unavailable` until an append goes through again.

mod admin;
mod consumer;
mod context;
mod credit;
mod errors;
mod producer;
mod records;
mod settings;
mod start;

use std::time::Duration;

pub use consumer::KafkaConsumer;
pub use settings::KafkaSettings;

use crate::ports::eventlog::{
    AppendId, AppendSink, ConsumerSink, EventLog, LogConsumer, LogError, Record, Subscription, TopicInfo,
};

/// The event log on Kafka.
pub struct KafkaLog {
    settings: KafkaSettings,
    appender: producer::Appender,
    admin: admin::Admin,
}

impl KafkaLog {
    /// A log on `settings.brokers`; append outcomes go to `sink`. Connections are made on
    /// demand, so this succeeds while the brokers are down.
    pub fn new(settings: KafkaSettings, sink: AppendSink) -> Result<Self, LogError> {
        // The node's configuration checks the list's form (`host:port`, comma-separated);
        // librdkafka reports brokers it cannot reach as errors later.
        if settings.brokers.trim().is_empty() {
            return Err(LogError::Invalid("kafka needs at least one broker (host:port)".into()));
        }
        Ok(KafkaLog {
            appender: producer::Appender::new(&settings, sink)?,
            admin: admin::Admin::new(&settings)?,
            settings,
        })
    }

    /// `Unavailable` with the reason while the brokers cannot be reached (since the last
    /// acknowledged append).
    pub fn status(&self) -> Result<(), LogError> {
        self.appender.status()
    }

    /// Appends queued and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.appender.in_flight()
    }

    /// Waits up to `timeout` until every queued append has its outcome (before a shutdown:
    /// dropping the log fails what is still queued).
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        self.appender.flush(timeout)
    }

    pub fn settings(&self) -> &KafkaSettings {
        &self.settings
    }
}

impl EventLog for KafkaLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        self.admin.create_topic(topic, partitions)
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        self.admin.topics()
    }

    fn append(&self, id: AppendId, record: Record) -> Result<(), LogError> {
        self.appender.append(id, &record)
    }

    fn subscribe(
        &self,
        subscription: Subscription,
        sink: ConsumerSink,
    ) -> Result<Box<dyn LogConsumer>, LogError> {
        Ok(Box::new(KafkaConsumer::start(&self.settings, subscription, sink)?))
    }
}
