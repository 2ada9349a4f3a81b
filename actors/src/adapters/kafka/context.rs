//! A consumer's librdkafka callbacks: a group's rebalances become `Revoked` / `Assigned` events
//! (each assignment starting at the subscription's start position), failed commits and client
//! errors become `Error` events (one per distinct error until records flow again).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

use super::errors::log_error;
use super::start::{partitions_of, positions};
use crate::ports::eventlog::{ConsumerEvent, ConsumerSink, LogError, Start, StoredRecord, TopicPartition};

/// What the callbacks need.
pub struct Context {
    sink: ConsumerSink,
    start: Start,
    timeout: Duration,
    /// Bumped on every change of assignment (the polling loop re-pauses and drops what it held).
    generation: AtomicU64,
    /// The last error reported, so a broker that stays down is reported once, not per retry.
    last_error: Mutex<Option<LogError>>,
    /// With `Start::Time(t)`: partitions still to be read up to their first record at or after
    /// `t` (a broker's time lookup may start earlier: tansu's starts at the earliest offset).
    before_time: Mutex<BTreeSet<TopicPartition>>,
}

impl Context {
    pub fn new(sink: ConsumerSink, start: Start, timeout: Duration) -> Self {
        Context {
            sink,
            start,
            timeout,
            generation: AtomicU64::new(0),
            last_error: Mutex::new(None),
            before_time: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Reports an assignment and starts a new generation.
    pub fn assignment_changed(&self, event: ConsumerEvent) {
        if let (ConsumerEvent::Assigned(partitions), Start::Time(_)) = (&event, self.start) {
            *self.before_time.lock() = partitions.iter().cloned().collect();
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        (self.sink)(event);
    }

    /// Whether `record` comes before the start time in a partition not yet past it.
    pub fn before_start(&self, record: &StoredRecord) -> bool {
        let Start::Time(t) = self.start else { return false };
        let mut waiting = self.before_time.lock();
        if !waiting.contains(&record.partition) {
            return false;
        }
        if record.record.timestamp_ms >= t {
            waiting.remove(&record.partition);
            return false;
        }
        true
    }

    /// Reports `error` unless it is the one reported last.
    pub fn report(&self, error: LogError) {
        let mut last = self.last_error.lock();
        if last.as_ref() != Some(&error) {
            *last = Some(error.clone());
            drop(last);
            (self.sink)(ConsumerEvent::Error(error));
        }
    }

    /// Delivers records; records flowing again make the next error news.
    pub fn deliver(&self, records: Vec<StoredRecord>) {
        *self.last_error.lock() = None;
        (self.sink)(ConsumerEvent::Records(records));
    }
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        let topicless = log_error(&error, "");
        self.report(match topicless {
            LogError::Unavailable(_) => LogError::Unavailable(format!("kafka: {error}: {reason}")),
            other => other,
        });
    }
}

impl ConsumerContext for Context {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let partitions = partitions_of(tpl);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let list =
                    positions(consumer, &partitions, self.start, true, self.timeout).unwrap_or_else(|e| {
                        self.report(LogError::Unavailable(format!(
                            "could not find the start positions ({e}); starting from the committed offsets"
                        )));
                        tpl.clone()
                    });
                if let Err(e) = consumer.assign(&list) {
                    self.report(log_error(&e, ""));
                }
                self.assignment_changed(ConsumerEvent::Assigned(partitions));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.unassign(consumer);
                self.assignment_changed(ConsumerEvent::Revoked(partitions));
            }
            other => {
                self.unassign(consumer);
                let code: RDKafkaErrorCode = other.into();
                self.report(LogError::Unavailable(format!("kafka rebalance failed: {code}")));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            let topic = offsets.elements().first().map(|e| e.topic().to_string()).unwrap_or_default();
            self.report(log_error(&e, &topic));
        }
    }
}

impl Context {
    fn unassign(&self, consumer: &BaseConsumer<Self>) {
        if let Err(e) = consumer.unassign() {
            self.report(log_error(&e, ""));
        }
    }
}
