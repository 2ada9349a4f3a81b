//! Appends: an idempotent librdkafka producer whose delivery reports become `AppendOutcome`s on
//! the log's `AppendSink`. `append` only queues (librdkafka's bounded queue; full is
//! `LogError::Full`); librdkafka's own thread sends, retries until the append timeout and
//! reports each record once.
//!
//! An idempotent producer can fail for good (librdkafka's "fatal error"; after appends timed
//! out, tansu answers every later produce with `ProducerFenced`): the next append then replaces
//! it with a new producer, and the old one's queued appends fail (`AppendFailed`) as it is
//! dropped.
//! Dropping the appender also fails what is still queued: `flush` first to wait for outcomes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};

use super::errors::log_error;
use super::records::outgoing;
use super::settings::KafkaSettings;
use crate::ports::eventlog::{AppendId, AppendOutcome, AppendSink, LogError, Record, TopicPartition};

/// What a producer's callbacks tell the appender.
#[derive(Default)]
struct Health {
    /// `Unavailable` with the last complaint, until an append is acknowledged again.
    trouble: Mutex<Option<LogError>>,
    /// The producer was fenced (or failed fatally): replace it.
    fenced: AtomicBool,
}

type Trouble = Arc<Health>;

/// A producer's callbacks: delivery reports go to the sink; client errors and appends failed
/// for want of a broker are kept as the status until an append is acknowledged again.
pub struct Deliveries {
    sink: AppendSink,
    trouble: Trouble,
}

impl ClientContext for Deliveries {
    fn error(&self, error: KafkaError, reason: &str) {
        *self.trouble.trouble.lock() = Some(LogError::Unavailable(format!("kafka: {error}: {reason}")));
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<AppendId>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<AppendId>) {
        let id = *id;
        let outcome = match result {
            Ok(message) => {
                *self.trouble.trouble.lock() = None;
                AppendOutcome::Appended {
                    id,
                    partition: TopicPartition::new(message.topic(), message.partition() as u32),
                    offset: message.offset() as u64,
                }
            }
            Err((error, message)) => {
                if matches!(
                    error.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::Fatal)
                ) {
                    self.trouble.fenced.store(true, Ordering::SeqCst);
                }
                let error = log_error(error, message.topic());
                if matches!(error, LogError::Unavailable(_)) {
                    *self.trouble.trouble.lock() = Some(error.clone());
                }
                AppendOutcome::AppendFailed { id, error }
            }
        };
        (self.sink)(outcome);
    }
}

type Producer = ThreadedProducer<Deliveries>;

/// The log's appends: the current producer, replaced after a fatal error.
pub struct Appender {
    settings: KafkaSettings,
    sink: AppendSink,
    trouble: Trouble,
    current: RwLock<Arc<Producer>>,
}

impl Appender {
    /// Creates the producer (no connection is made until the first request).
    pub fn new(settings: &KafkaSettings, sink: AppendSink) -> Result<Self, LogError> {
        let trouble = Trouble::default();
        let producer = build(settings, &sink, &trouble)?;
        Ok(Appender { settings: settings.clone(), sink, trouble, current: RwLock::new(Arc::new(producer)) })
    }

    /// Queues `record`, keyed and timestamped as given; never waits.
    pub fn append(&self, id: AppendId, record: &Record) -> Result<(), LogError> {
        let queued = outgoing(id, record)?;
        self.live()?.send(queued).map_err(|(error, _)| log_error(&error, &record.topic))
    }

    /// `Unavailable` with the reason while appends cannot reach a broker.
    pub fn status(&self) -> Result<(), LogError> {
        self.trouble.trouble.lock().clone().map_or(Ok(()), Err)
    }

    /// Appends queued and not yet reported.
    pub fn in_flight(&self) -> usize {
        self.current.read().in_flight_count().max(0) as usize
    }

    /// Waits up to `timeout` until every queued append has its outcome.
    pub fn flush(&self, timeout: Duration) -> Result<(), LogError> {
        let producer = Arc::clone(&self.current.read());
        producer.flush(timeout).map_err(|e| log_error(&e, ""))
    }

    /// The current producer, or a new one in place of a fatally failed one.
    fn live(&self) -> Result<Arc<Producer>, LogError> {
        let producer = Arc::clone(&self.current.read());
        let fatal = producer.client().fatal_error();
        if !self.trouble.fenced.swap(false, Ordering::SeqCst) && fatal.is_none() {
            return Ok(producer);
        }
        tracing::warn!("kafka producer fenced or failed for good ({fatal:?}); starting a new one");
        let fresh = Arc::new(build(&self.settings, &self.sink, &self.trouble)?);
        let old = {
            let mut current = self.current.write();
            if !Arc::ptr_eq(&current, &producer) {
                return Ok(Arc::clone(&current)); // another append replaced it first
            }
            std::mem::replace(&mut *current, Arc::clone(&fresh))
        };
        // Outside the lock: dropping the old producer reports its queued appends to the sink.
        drop((old, producer));
        Ok(fresh)
    }
}

fn build(settings: &KafkaSettings, sink: &AppendSink, trouble: &Trouble) -> Result<Producer, LogError> {
    settings
        .producer_config()
        .create_with_context(Deliveries { sink: Arc::clone(sink), trouble: Arc::clone(trouble) })
        .map_err(|e: KafkaError| LogError::Invalid(format!("kafka producer configuration: {e}")))
}
