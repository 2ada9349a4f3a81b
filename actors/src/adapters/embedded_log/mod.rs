//! The embedded durable event log (BLUEPRINT sections 6 and 10): the default `EventLog`, for
//! one machine. One directory holds it:
//!
//! - `log.meta` (`meta`): salt, open generation, key check;
//! - `topic@{name}`: a topic's partition count;
//! - `seg@{topic}@{partition}@{base}` (`partition`, `frame`): segment files of records framed
//!   with length and CRC-32C and encrypted with XChaCha20-Poly1305 (`crypto`);
//! - `group@{hex name}` (`groups`): a group's committed offsets.
//!
//! Appends never block: they are queued (bounded: `LogError::Full`) for the IO thread
//! (`writer`), which batches them, writes, syncs per the `FsyncPolicy`, and acknowledges. The
//! reader thread (`reader`) feeds consumers within their credit. Files are reached through
//! `storage::Storage` (the real directory, or a simulated disk in tests).
//!
//! Durability: under `FsyncPolicy::Always` (the default) an acknowledged record survives a
//! process crash and a power loss; under `Interval` and `Never` it survives a process crash (it
//! is in the OS's page cache) but a power loss may lose what was not synced yet. Recovery on open
//! keeps every complete record, cuts a torn tail, and reports damage (`recovery_report`).
//! Group membership lives in this process only (members of one open log). One process opens a
//! directory at a time.

#[cfg(test)]
mod crash_tests;
mod crypto;
mod frame;
mod groups;
mod meta;
mod partition;
mod reader;
#[cfg(test)]
mod sim_disk;
mod state;
pub mod storage;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

pub use self::crypto::LogKey;
pub use self::frame::MAX_RECORD;
pub use self::partition::Retention;
use self::partition::{parse_segment_name, Partition};
use self::state::{Counters, Shared, State};
use self::storage::{FsStorage, Storage};
pub use self::writer::FsyncPolicy;
use self::writer::{Pending, Writer, WriterConfig};
use crate::ports::eventlog::{
    partition_for, AppendId, AppendSink, ConsumerSink, EventLog, LogConsumer, LogError, Record, Subscription,
    TopicInfo, TopicPartition,
};

const TOPIC_PREFIX: &str = "topic@";

/// Each topic's partitions, by name.
type Topics = BTreeMap<String, Vec<Partition>>;

/// How a log is opened.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The key records are encrypted with (from configuration, never from the repository).
    pub key: LogKey,
    pub fsync: FsyncPolicy,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes: u64,
    pub retention: Retention,
    /// Appends that may wait for the IO thread before `append` says `Full`.
    pub queue: usize,
    /// Appends written and synced together at most (the group commit's batch).
    pub max_batch: usize,
}

impl LogConfig {
    /// Defaults: fsync always, 64 MiB segments, no retention limit, 65 536 queued appends,
    /// batches of up to 1024.
    pub fn new(key: LogKey) -> Self {
        LogConfig {
            key,
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            retention: Retention::default(),
            queue: 65_536,
            max_batch: 1024,
        }
    }
}

/// Counters since the log was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appended: u64,
    pub append_failed: u64,
    pub io_errors: u64,
    /// Damaged records or ranges found (recovery and reads).
    pub corrupt: u64,
    /// Bytes of torn tails cut by recovery.
    pub torn_bytes_cut: u64,
    pub segments_removed: u64,
    /// Group-commit syncs (under `FsyncPolicy::Always`).
    pub syncs: u64,
}

/// The embedded log. Dropping it (or `close`) writes what is queued, syncs, and stops its threads.
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    queue: Mutex<Option<SyncSender<Pending>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    reports: Vec<LogError>,
}

fn io_error(what: &str) -> impl Fn(std::io::Error) -> LogError + '_ {
    move |e| LogError::Io(format!("{what}: {e}"))
}

/// A topic name the log accepts: it becomes part of file names.
fn check_topic_name(topic: &str) -> Result<(), LogError> {
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if topic.is_empty() || topic.len() > 200 || topic == "." || topic == ".." || !topic.chars().all(legal) {
        return Err(LogError::Invalid(format!(
            "topic name {topic:?}: use 1 to 200 of the characters a-z A-Z 0-9 . _ - (as Kafka)"
        )));
    }
    Ok(())
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`; append outcomes go to `sink`.
    pub fn open(dir: &Path, config: LogConfig, sink: AppendSink) -> Result<EmbeddedLog, LogError> {
        let storage = FsStorage::open(dir).map_err(|e| LogError::Io(format!("{}: {e}", dir.display())))?;
        Self::open_on(Arc::new(storage), config, sink)
    }

    /// Opens (or creates) the log on `storage`.
    pub fn open_on(
        storage: Arc<dyn Storage>,
        config: LogConfig,
        sink: AppendSink,
    ) -> Result<EmbeddedLog, LogError> {
        if config.queue == 0 || config.max_batch == 0 {
            return Err(LogError::Invalid(
                "the queue and the batch must each hold at least one append".into(),
            ));
        }
        let (sealer, generation) = meta::open(&*storage, &config.key)?;
        let counters = Counters::default();
        let names = storage.list().map_err(io_error("listing the log's files"))?;
        let (topics, reports) = recover_topics(&*storage, &names, &counters)?;
        let groups = groups::load(&*storage, &names)?;
        let state = State { topics, groups, ..State::default() };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Condvar::new(),
            storage,
            sealer,
            counters,
            commit_lock: Mutex::new(()),
        });
        let (queue, receiver) = mpsc::sync_channel(config.queue);
        let writer = Writer::new(
            Arc::clone(&shared),
            sink,
            WriterConfig {
                fsync: config.fsync,
                segment_bytes: config.segment_bytes,
                retention: config.retention,
                max_batch: config.max_batch,
                generation,
            },
        );
        let reader_shared = Arc::clone(&shared);
        let threads = vec![
            spawn("eventlog-io", move || writer.run(receiver))?,
            spawn("eventlog-read", move || reader::run(reader_shared))?,
        ];
        Ok(EmbeddedLog { shared, queue: Mutex::new(Some(queue)), threads: Mutex::new(threads), reports })
    }

    /// The damage recovery found on open (each a `LogError::Corrupt` naming file and byte).
    pub fn recovery_report(&self) -> &[LogError] {
        &self.reports
    }

    pub fn stats(&self) -> LogStats {
        let c = &self.shared.counters;
        LogStats {
            appended: c.appended.load(Relaxed),
            append_failed: c.append_failed.load(Relaxed),
            io_errors: c.io_errors.load(Relaxed),
            corrupt: c.corrupt.load(Relaxed),
            torn_bytes_cut: c.torn_bytes_cut.load(Relaxed),
            segments_removed: c.segments_removed.load(Relaxed),
            syncs: c.syncs.load(Relaxed),
        }
    }

    /// Writes and acknowledges what is queued, syncs, and stops the threads. Appends after this
    /// are refused as `Unavailable`.
    pub fn close(&self) {
        drop(self.queue.lock().take());
        let mut threads = std::mem::take(&mut *self.threads.lock());
        if let Some(writer) = (!threads.is_empty()).then(|| threads.remove(0)) {
            let _ = writer.join();
        }
        self.shared.state.lock().closed = true;
        self.shared.wake.notify_all();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        self.close();
    }
}

// Host code: the log's IO and reader threads are the adapter's own; the simulator never runs
// this adapter (it has its own model of the log).
#[allow(clippy::disallowed_methods)]
fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, LogError> {
    std::thread::Builder::new().name(name.into()).spawn(body).map_err(io_error("starting a thread"))
}

/// Every topic's partitions, rebuilt from the files; and the damage found.
fn recover_topics(
    storage: &dyn Storage,
    names: &[String],
    counters: &Counters,
) -> Result<(Topics, Vec<LogError>), LogError> {
    let mut topics = BTreeMap::new();
    for name in names.iter().filter(|n| !n.ends_with(".tmp")) {
        let Some(topic) = name.strip_prefix(TOPIC_PREFIX) else { continue };
        let bytes = storage.read(name, 0, 16).map_err(io_error(name))?;
        let count: u32 = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| LogError::Corrupt(format!("{name}: not a partition count")))?;
        let partitions = (0..count).map(|p| Partition::new(TopicPartition::new(topic, p))).collect();
        topics.insert(topic.to_string(), partitions);
    }
    let mut segments: BTreeMap<(String, u32), Vec<u64>> = BTreeMap::new();
    for (topic, partition, base) in names.iter().filter_map(|n| parse_segment_name(n)) {
        segments.entry((topic, partition)).or_default().push(base);
    }
    let mut reports = Vec::new();
    for ((topic, index), mut bases) in segments {
        let Some(partition) =
            topics.get_mut(&topic).and_then(|t: &mut Vec<Partition>| t.get_mut(index as usize))
        else {
            reports.push(LogError::Corrupt(format!(
                "segments of {topic}/{index}, which no topic file declares"
            )));
            continue;
        };
        bases.sort_unstable();
        let cut = partition
            .recover(storage, &bases, &mut reports)
            .map_err(io_error(&format!("recovering {topic}/{index}")))?;
        Counters::add(&counters.torn_bytes_cut, cut);
    }
    Counters::add(&counters.corrupt, reports.len() as u64);
    for report in &reports {
        tracing::error!("event log recovery: {report}");
    }
    Ok((topics, reports))
}

impl EventLog for EmbeddedLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        check_topic_name(topic)?;
        if partitions == 0 {
            return Err(LogError::Invalid(format!("topic {topic:?} needs at least one partition")));
        }
        let mut state = self.shared.state.lock();
        if let Some(existing) = state.topics.get(topic) {
            return match existing.len() as u32 {
                n if n == partitions => Ok(()),
                existing => {
                    Err(LogError::PartitionMismatch { topic: topic.into(), existing, requested: partitions })
                }
            };
        }
        let file = format!("{TOPIC_PREFIX}{topic}");
        self.shared.storage.replace(&file, partitions.to_string().as_bytes()).map_err(io_error(&file))?;
        let all = (0..partitions).map(|p| Partition::new(TopicPartition::new(topic, p))).collect();
        state.topics.insert(topic.to_string(), all);
        Ok(())
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let state = self.shared.state.lock();
        Ok(state
            .topics
            .iter()
            .map(|(name, p)| TopicInfo { name: name.clone(), partitions: p.len() as u32 })
            .collect())
    }

    fn append(&self, id: AppendId, record: Record) -> Result<(), LogError> {
        if record.key.len() + record.payload.len() > MAX_RECORD {
            return Err(LogError::Invalid(format!(
                "a record of {} bytes (key and payload) exceeds the limit of {MAX_RECORD}",
                record.key.len() + record.payload.len()
            )));
        }
        let partitions = match self.shared.state.lock().topics.get(&record.topic) {
            Some(partitions) => partitions.len() as u32,
            None => return Err(LogError::UnknownTopic(record.topic)),
        };
        let place = TopicPartition::new(&record.topic, partition_for(&record.key, partitions));
        let queue = self.queue.lock();
        let queue = queue.as_ref().ok_or_else(|| LogError::Unavailable("the event log is closed".into()))?;
        queue.try_send(Pending { id, place, record }).map_err(|e| match e {
            TrySendError::Full(_) => LogError::Full,
            TrySendError::Disconnected(_) => {
                LogError::Unavailable("the event log's IO thread stopped".into())
            }
        })
    }

    fn subscribe(
        &self,
        subscription: Subscription,
        sink: ConsumerSink,
    ) -> Result<Box<dyn LogConsumer>, LogError> {
        let id = self.shared.state.lock().add_consumer(subscription, sink)?;
        self.shared.wake.notify_all();
        Ok(Box::new(Consumer { shared: Arc::clone(&self.shared), id }))
    }
}

/// A consumer's handle.
struct Consumer {
    shared: Arc<Shared>,
    id: u64,
}

impl LogConsumer for Consumer {
    fn commit(&self, partition: &TopicPartition, next_offset: u64) -> Result<(), LogError> {
        let _one_at_a_time = self.shared.commit_lock.lock();
        let (group, committed) = {
            let mut state = self.shared.state.lock();
            let consumer = state.consumers.get(&self.id).expect("a consumer lives until its handle drops");
            let member = consumer.subscription.member.clone();
            let group = consumer.subscription.group.clone().ok_or_else(|| {
                LogError::Invalid(format!("consumer {member:?} is in no group: there is nowhere to commit"))
            })?;
            if !consumer.positions.contains_key(partition) {
                return Err(LogError::Invalid(format!(
                    "{partition} is not assigned to {member:?} in group {group:?}"
                )));
            }
            let entry = state.groups.entry(group.clone()).or_default();
            entry.committed.insert(partition.clone(), next_offset);
            (group, entry.committed.clone())
        };
        groups::store(&*self.shared.storage, &group, &committed)
    }

    fn grant(&self, records: u32) {
        let mut state = self.shared.state.lock();
        if let Some(consumer) = state.consumers.get_mut(&self.id) {
            consumer.credit += u64::from(records);
        }
        self.shared.wake.notify_all();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shared.state.lock().remove_consumer(self.id);
        self.shared.wake.notify_all();
    }
}
