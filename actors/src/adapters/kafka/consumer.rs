//! A consumer: a librdkafka consumer and the host thread that polls it. In a group it
//! `subscribe`s (librdkafka's group protocol assigns partitions; `context` reports rebalances);
//! without one it `assign`s every partition of the topics itself. The thread delivers records
//! in batches within the credit; out of credit it pauses its partitions (so nothing more is
//! fetched) and keeps serving the group's callbacks until `grant` gives more.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::admin::partition_count;
use super::context::Context;
use super::credit::Credit;
use super::errors::log_error;
use super::records::stored;
use super::settings::KafkaSettings;
use super::start::positions;
use crate::ports::eventlog::{
    ConsumerEvent, ConsumerSink, LogConsumer, LogError, StoredRecord, Subscription, TopicPartition,
};

/// The most records in one `Records` event.
const MAX_BATCH: u64 = 1024;
/// How long the thread waits for records or credit before checking whether it should stop.
const TICK: Duration = Duration::from_millis(100);

/// A running consumer; dropping it stops its thread and closes the consumer (leaving the
/// group, which rebalances the others).
pub struct KafkaConsumer {
    consumer: Arc<BaseConsumer<Context>>,
    credit: Arc<Credit>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    grouped: bool,
    member: String,
}

impl KafkaConsumer {
    pub fn start(
        settings: &KafkaSettings,
        subscription: Subscription,
        sink: ConsumerSink,
    ) -> Result<Self, LogError> {
        if subscription.topics.is_empty() || subscription.topics.iter().any(String::is_empty) {
            return Err(LogError::Invalid(format!("subscription {:?} names no topic", subscription.topics)));
        }
        let context = Context::new(sink, subscription.start, settings.request_timeout);
        let consumer: BaseConsumer<Context> = settings
            .consumer_config(subscription.group.as_deref(), &subscription.member)
            .create_with_context(context)
            .map_err(|e| LogError::Invalid(format!("kafka consumer configuration: {e}")))?;
        if subscription.group.is_some() {
            let topics: Vec<&str> = subscription.topics.iter().map(String::as_str).collect();
            consumer.subscribe(&topics).map_err(|e| log_error(&e, topics[0]))?;
        }
        let consumer = Arc::new(consumer);
        let credit = Arc::new(Credit::new(subscription.credit));
        let stop = Arc::new(AtomicBool::new(false));
        let grouped = subscription.group.is_some();
        let member = subscription.member.clone();
        let poller = Poller {
            consumer: Arc::clone(&consumer),
            credit: Arc::clone(&credit),
            stop: Arc::clone(&stop),
            subscription,
            settings: settings.clone(),
        };
        // Host code: librdkafka's consumer is driven by polling, so it gets a thread of its own
        // (this adapter is never used from actor code).
        #[allow(clippy::disallowed_methods)]
        let thread = std::thread::Builder::new()
            .name(format!("kafka-consumer-{member}"))
            .spawn(move || poller.run())
            .map_err(|e| LogError::Io(format!("cannot start a consumer thread: {e}")))?;
        Ok(KafkaConsumer { consumer, credit, stop, thread: Some(thread), grouped, member })
    }
}

impl LogConsumer for KafkaConsumer {
    fn commit(&self, partition: &TopicPartition, next_offset: u64) -> Result<(), LogError> {
        if !self.grouped {
            return Err(LogError::Invalid(format!(
                "consumer {:?} has no group: it commits nothing",
                self.member
            )));
        }
        let offset = i64::try_from(next_offset)
            .map_err(|_| LogError::Invalid(format!("offset {next_offset} is out of range")))?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&partition.topic, partition.partition as i32, Offset::Offset(offset))
            .map_err(|e| log_error(&e, &partition.topic))?;
        // Asynchronous: a failure arrives as an `Error` event (`Context::commit_callback`).
        self.consumer.commit(&list, CommitMode::Async).map_err(|e| log_error(&e, &partition.topic))
    }

    fn grant(&self, records: u32) {
        self.credit.grant(records);
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The polling thread's state.
struct Poller {
    consumer: Arc<BaseConsumer<Context>>,
    credit: Arc<Credit>,
    stop: Arc<AtomicBool>,
    subscription: Subscription,
    settings: KafkaSettings,
}

impl Poller {
    fn run(self) {
        if self.subscription.group.is_none() && !self.assign_all() {
            return;
        }
        // Records polled while out of credit (at most what was fetched before the pause).
        let mut held: VecDeque<StoredRecord> = VecDeque::new();
        let mut generation = self.context().generation();
        let mut paused = false;
        while !self.stopping() {
            let credit = self.credit.available(TICK);
            if self.context().generation() != generation {
                // A rebalance restarted every partition from its start position.
                generation = self.context().generation();
                held.clear();
                paused = false;
            }
            if credit == 0 {
                if !paused {
                    paused = self.pause(true);
                }
                held.extend(self.next(Duration::ZERO));
                continue;
            }
            if paused {
                paused = !self.pause(false);
            }
            let want = credit.min(MAX_BATCH) as usize;
            let mut batch: Vec<StoredRecord> = held.drain(..want.min(held.len())).collect();
            let mut wait = if batch.is_empty() { TICK } else { Duration::ZERO };
            while batch.len() < want {
                let Some(record) = self.next(wait) else { break };
                batch.push(record);
                wait = Duration::ZERO;
            }
            if !batch.is_empty() {
                self.credit.take(batch.len() as u64);
                self.context().deliver(batch);
            }
        }
    }

    /// Without a group: every partition of the subscribed topics, from the start position.
    /// Retries (reporting each new error) until it succeeds or the consumer is dropped.
    fn assign_all(&self) -> bool {
        while !self.stopping() {
            match self.assignment() {
                Ok(partitions) => {
                    self.context().assignment_changed(ConsumerEvent::Assigned(partitions));
                    return true;
                }
                Err(e) => {
                    self.context().report(e);
                    std::thread::sleep(TICK * 10);
                }
            }
        }
        false
    }

    fn assignment(&self) -> Result<Vec<TopicPartition>, LogError> {
        let mut partitions = Vec::new();
        for topic in &self.subscription.topics {
            let count = partition_count(self.consumer.client(), topic, &self.settings)?;
            partitions.extend((0..count).map(|p| TopicPartition::new(topic, p)));
        }
        let list = positions(
            &self.consumer,
            &partitions,
            self.subscription.start,
            false,
            self.settings.request_timeout,
        )?;
        self.consumer.assign(&list).map_err(|e| log_error(&e, &partitions[0].topic))?;
        Ok(partitions)
    }

    /// Pauses (or resumes) every assigned partition; says whether it did.
    fn pause(&self, pause: bool) -> bool {
        let done = self.consumer.assignment().and_then(|assigned| {
            if pause {
                self.consumer.pause(&assigned)
            } else {
                self.consumer.resume(&assigned)
            }
        });
        done.map_err(|e| self.context().report(log_error(&e, ""))).is_ok()
    }

    /// The next record, waiting up to `wait`; errors are reported and skipped, and so are
    /// records before a `Time` start (`Context::before_start`).
    fn next(&self, wait: Duration) -> Option<StoredRecord> {
        loop {
            match self.consumer.poll(wait)? {
                Ok(message) => {
                    let record = stored(&message);
                    if !self.context().before_start(&record) {
                        return Some(record);
                    }
                }
                Err(e) => {
                    self.context().report(log_error(&e, ""));
                    return None;
                }
            }
        }
    }

    fn context(&self) -> &Context {
        self.consumer.context()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}
