//! The event-log port: how actors reach the event streams (BLUEPRINT sections 6 and 10).
//!
//! - `EventLog` is what a log offers: topics with partitions, appends that are acknowledged once
//!   durable, and consumers (`LogConsumer`) that read from a start position, alone or in a
//!   consumer group, and commit offsets. Three implementations: the embedded durable log
//!   (`adapters::embedded_log`, the default), Kafka through rdkafka (`adapters::kafka`) and the
//!   simulated model (`aiot-simulations`).
//! - `conformance` states the contract as a suite all of them are tested against.
//!
//! The contract (Kafka's, as this system relies on it):
//! - A topic has a fixed number of partitions; a record goes to `partition_for(key, n)`, so one
//!   key (a mote id) stays in one partition and keeps its order.
//! - `append` never blocks: it queues the record (or refuses with `LogError::Full`, which is
//!   backpressure) and the outcome arrives later on the log's `AppendSink`: `Appended` with the
//!   record's partition and offset once it is durable (the backend's durability policy says what
//!   durable means; the embedded log's default is fsync before the acknowledgement), or
//!   `AppendFailed`, in which case the record may or may not be stored (at least once: callers
//!   retry and consumers de-duplicate). Appends of one key are acknowledged in append order and
//!   stored in that order.
//! - Offsets in a partition start at 0 and grow by one per record; an acknowledged record stays
//!   at its offset (until retention removes whole old segments) and is read back byte for byte.
//! - A consumer reads each assigned partition in offset order from its start position: the
//!   earliest retained offset, the end, a given offset, the earliest offset whose timestamp is at
//!   or after a given time, or the group's committed offset (earliest if none). It may see a
//!   record again after a rebalance or a restart (at least once), never skips one.
//! - Consumer groups: the partitions of the subscribed topics are divided among the group's live
//!   members, each partition to exactly one member at a time; members joining or leaving cause a
//!   rebalance (`Revoked` then `Assigned`). A commit stores "the next offset to read" for the
//!   group and survives restarts of the consumer and of the log.
//! - Flow control: a consumer delivers at most the credit it was given (`Subscription::credit`,
//!   then `LogConsumer::grant`) in records, so a slow actor is never flooded.

pub mod adapter;
pub mod conformance;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One record to append. `timestamp_ms` is the producer's time for it (for telemetry, the
/// gateway's receive time); replay by time uses it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub topic: String,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    pub timestamp_ms: u64,
}

impl Record {
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<Vec<u8>>,
        payload: impl Into<Vec<u8>>,
        timestamp_ms: u64,
    ) -> Self {
        Record { topic: topic.into(), key: key.into(), payload: payload.into(), timestamp_ms }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Record({} key {:?} {} bytes @{})",
            self.topic,
            String::from_utf8_lossy(&self.key),
            self.payload.len(),
            self.timestamp_ms
        )
    }
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A record as stored: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub partition: TopicPartition,
    pub offset: u64,
    pub record: Record,
}

/// A topic and its partition count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: u32,
}

/// Names the caller gives an append, echoed in its outcome.
pub type AppendId = u64;

/// The outcome of an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// Durable at this place.
    Appended { id: AppendId, partition: TopicPartition, offset: u64 },
    /// Not acknowledged: it may or may not have been stored; retry if it matters.
    AppendFailed { id: AppendId, error: LogError },
}

/// Where consumption starts in each assigned partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Start {
    Earliest,
    /// Only records appended after the assignment.
    Latest,
    /// This offset (clamped to the retained range).
    Offset(u64),
    /// The earliest offset whose timestamp is at or after this time (ms).
    Time(u64),
    /// The group's committed offset; `Earliest` where there is none (or no group).
    Committed,
}

/// What a consumer reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub topics: Vec<String>,
    /// `Some(group)`: share the partitions with the group's other members and commit offsets.
    /// `None`: read every partition of the topics, commit nothing.
    pub group: Option<String>,
    /// This member's name (unique within the group), for logs and assignment order.
    pub member: String,
    pub start: Start,
    /// Records the consumer may deliver before `grant` gives more.
    pub credit: u32,
}

impl Subscription {
    /// Every partition of `topics` from `start`, no group.
    pub fn all(topics: &[&str], member: impl Into<String>, start: Start) -> Self {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            group: None,
            member: member.into(),
            start,
            credit: 1024,
        }
    }

    /// As a member of `group`, starting from the committed offsets.
    pub fn in_group(topics: &[&str], group: impl Into<String>, member: impl Into<String>) -> Self {
        Subscription {
            group: Some(group.into()),
            start: Start::Committed,
            ..Subscription::all(topics, member, Start::Committed)
        }
    }
}

/// What a consumer reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerEvent {
    /// These partitions are now this consumer's (all of its partitions, after a rebalance).
    Assigned(Vec<TopicPartition>),
    /// These partitions are no longer this consumer's: commit what was handled, stop using them.
    Revoked(Vec<TopicPartition>),
    /// Records in offset order per partition.
    Records(Vec<StoredRecord>),
    /// Something went wrong; the consumer keeps trying.
    Error(LogError),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogError {
    /// Too many appends in flight: retry later (backpressure).
    Full,
    /// The log (or the broker) cannot be reached now.
    Unavailable(String),
    /// No such topic.
    UnknownTopic(String),
    /// The topic exists with another partition count.
    PartitionMismatch { topic: String, existing: u32, requested: u32 },
    /// A record or a name the log does not accept (too large, empty topic name).
    Invalid(String),
    /// Stored data failed its check (CRC or authentication); says where.
    Corrupt(String),
    /// An I/O error (disk full, permissions).
    Io(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Full => write!(f, "too many appends in flight"),
            LogError::Unavailable(why) => write!(f, "the event log is unavailable: {why}"),
            LogError::UnknownTopic(t) => write!(f, "no topic {t:?}"),
            LogError::PartitionMismatch { topic, existing, requested } => {
                write!(f, "topic {topic:?} has {existing} partitions, not {requested}")
            }
            LogError::Invalid(why) => write!(f, "invalid request: {why}"),
            LogError::Corrupt(where_) => write!(f, "corrupt data in the event log: {where_}"),
            LogError::Io(why) => write!(f, "event log I/O error: {why}"),
        }
    }
}

impl std::error::Error for LogError {}

/// Where a log delivers append outcomes (from its IO thread, or at virtual time in the model).
pub type AppendSink = Arc<dyn Fn(AppendOutcome) + Send + Sync>;

/// Where a consumer delivers its events.
pub type ConsumerSink = Arc<dyn Fn(ConsumerEvent) + Send + Sync>;

/// An event log, real or simulated. Calls never block on IO.
pub trait EventLog: Send + Sync {
    /// Creates a topic; succeeds if it already exists with the same partition count.
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError>;
    /// The topics and their partition counts, by name.
    fn topics(&self) -> Result<Vec<TopicInfo>, LogError>;
    /// Queues an append; its outcome goes to the log's `AppendSink`.
    fn append(&self, id: AppendId, record: Record) -> Result<(), LogError>;
    /// Starts a consumer; its events go to `sink`.
    fn subscribe(
        &self,
        subscription: Subscription,
        sink: ConsumerSink,
    ) -> Result<Box<dyn LogConsumer>, LogError>;
}

/// A running consumer. Dropping it leaves the group (a rebalance for the others).
pub trait LogConsumer: Send {
    /// Stores `next_offset` (the next offset to read) as the group's position in `partition`.
    fn commit(&self, partition: &TopicPartition, next_offset: u64) -> Result<(), LogError>;
    /// Allows `records` more records to be delivered.
    fn grant(&self, records: u32);
}

/// The partition a key goes to among `partitions` (stable across processes and backends:
/// CRC-32 of the key, as librdkafka's `consistent` partitioner).
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    crc32(key) % partitions
}

fn crc32(bytes: &[u8]) -> u32 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    CRC.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_is_stable_and_spreads_keys() {
        // CRC-32 ("123456789") is the standard check value 0xCBF43926.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(partition_for(b"mote-7", 8), partition_for(b"mote-7", 8));
        let used: std::collections::BTreeSet<u32> =
            (0..100).map(|i| partition_for(format!("mote-{i}").as_bytes(), 8)).collect();
        assert_eq!(used.len(), 8, "100 motes should reach all 8 partitions");
    }
}
