//! Where a consumer starts in each partition it is given: the port's `Start` as librdkafka
//! offsets. The end is read from the partition's watermarks when the assignment is made (not
//! when librdkafka first fetches), so `Latest` is the end as it was at `Assigned`; `Offset(n)`
//! is clamped to the watermarks; `Time(t)` asks the broker for the first offset at or after
//! `t` (the end if there is none).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::errors::log_error;
use crate::ports::eventlog::{LogError, Start, TopicPartition};

/// The partitions with the offsets to start from. `grouped`: `Committed` means the group's
/// committed offset (earliest where there is none); without a group it means the earliest.
pub fn positions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[TopicPartition],
    start: Start,
    grouped: bool,
    timeout: Duration,
) -> Result<TopicPartitionList, LogError> {
    let fixed = |offset| Ok(list(partitions, |_| offset));
    match start {
        Start::Earliest => fixed(Offset::Beginning),
        Start::Committed if grouped => fixed(Offset::Stored),
        Start::Committed => fixed(Offset::Beginning),
        Start::Latest => {
            let ends = watermarks(consumer, partitions, timeout)?;
            Ok(list(partitions, |i| Offset::Offset(ends[i].1)))
        }
        Start::Offset(wanted) => {
            let wanted = i64::try_from(wanted).unwrap_or(i64::MAX);
            let marks = watermarks(consumer, partitions, timeout)?;
            Ok(list(partitions, |i| Offset::Offset(wanted.clamp(marks[i].0, marks[i].1))))
        }
        Start::Time(ms) => {
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            let found = consumer
                .offsets_for_times(list(partitions, |_| Offset::Offset(ms)), timeout)
                .map_err(|e| log_error(&e, partitions.first().map_or("", |p| p.topic.as_str())))?;
            let ends = watermarks(consumer, partitions, timeout)?;
            Ok(list(partitions, |i| {
                let p = &partitions[i];
                match found.find_partition(&p.topic, p.partition as i32).map(|e| e.offset()) {
                    Some(Offset::Offset(n)) => Offset::Offset(n),
                    // No record at or after the time: only later appends.
                    _ => Offset::Offset(ends[i].1),
                }
            }))
        }
    }
}

/// (low, high) of each partition: the first retained offset and the next one to be written.
fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<Vec<(i64, i64)>, LogError> {
    partitions
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(&p.topic, p.partition as i32, timeout)
                .map_err(|e| log_error(&e, &p.topic))
        })
        .collect()
}

fn list(partitions: &[TopicPartition], offset: impl Fn(usize) -> Offset) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for (i, p) in partitions.iter().enumerate() {
        // Only a negative offset is refused, and none is made here.
        let _ = tpl.add_partition_offset(&p.topic, p.partition as i32, offset(i));
    }
    tpl
}

/// The partitions of a librdkafka list, in order.
pub fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    let mut partitions: Vec<TopicPartition> =
        tpl.elements().iter().map(|e| TopicPartition::new(e.topic(), e.partition() as u32)).collect();
    partitions.sort();
    partitions
}
