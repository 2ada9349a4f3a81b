//! The port's records as Kafka messages and back: key, payload and timestamp as they are.
//! librdkafka stores a timestamp of 0 as "now", so a record stamped 0 carries the header
//! `aiot.timestamp-zero` and is read back as stamped 0.

use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use crate::ports::eventlog::{AppendId, LogError, Record, StoredRecord, TopicPartition};

/// The header that marks a record stamped 0.
const TIMESTAMP_ZERO: &str = "aiot.timestamp-zero";

/// A message to send: key and payload borrowed from the record; the delivery report names the
/// append.
pub type Outgoing<'a> = BaseRecord<'a, [u8], [u8], Box<AppendId>>;

/// `record` to send, its delivery report naming `id`.
pub fn outgoing(id: AppendId, record: &Record) -> Result<Outgoing<'_>, LogError> {
    if record.topic.is_empty() {
        return Err(LogError::Invalid("an append needs a topic name".into()));
    }
    let timestamp = i64::try_from(record.timestamp_ms)
        .map_err(|_| LogError::Invalid(format!("timestamp {} ms is out of range", record.timestamp_ms)))?;
    let message = BaseRecord::with_opaque_to(&record.topic, Box::new(id))
        .key(&record.key[..])
        .payload(&record.payload[..])
        .timestamp(timestamp);
    Ok(if timestamp == 0 {
        message.headers(OwnedHeaders::new().insert(Header { key: TIMESTAMP_ZERO, value: None::<&[u8]> }))
    } else {
        message
    })
}

/// A consumed message as the port's record.
pub fn stored(message: &BorrowedMessage<'_>) -> StoredRecord {
    let topic = message.topic().to_string();
    let zero = message.headers().is_some_and(|h| h.iter().any(|h| h.key == TIMESTAMP_ZERO));
    let timestamp_ms =
        if zero { 0 } else { message.timestamp().to_millis().map_or(0, |ms| ms.max(0) as u64) };
    StoredRecord {
        partition: TopicPartition::new(topic.clone(), message.partition() as u32),
        offset: message.offset() as u64,
        record: Record {
            topic,
            key: message.key().unwrap_or_default().to_vec(),
            payload: message.payload().unwrap_or_default().to_vec(),
            timestamp_ms,
        },
    }
}
