//! The IO thread: takes queued appends in batches (group commit), gives each its offset, writes
//! each partition's frames with one append, syncs as the fsync policy says, then makes the
//! records visible to readers and acknowledges them. A failed write or sync fails that
//! partition's records in the batch (`AppendFailed` with `LogError::Io`) and cuts the file back
//! to its acknowledged length (if that cut fails too, it is tried again before the partition's
//! next write, whose records fail while it cannot be made); records acknowledged before stay.
//! It also applies retention about once a second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ports::eventlog::{AppendId, AppendOutcome, AppendSink, LogError, Record, TopicPartition};

use super::crypto::NonceId;
use super::frame::{self, FrameInfo};
use super::partition::Retention;
use super::state::{Counters, Shared};

const RETENTION_EVERY: Duration = Duration::from_secs(1);

/// When appended bytes are synced to the disk, and so what an acknowledgement promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Group commit: the queued appends of a batch are written, synced with one fsync per file,
    /// then acknowledged. An acknowledged record survives a process crash and a power loss.
    Always,
    /// Acknowledged once written (to the OS); files are synced every this many ms. An
    /// acknowledged record survives a process crash; a power loss may lose the last interval.
    Interval(u64),
    /// Acknowledged once written; synced only on a clean close. Survives a process crash, not a
    /// power loss.
    Never,
}

/// A queued append.
pub struct Pending {
    pub id: AppendId,
    pub place: TopicPartition,
    pub record: Record,
}

/// The writer's settings.
pub struct WriterConfig {
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    pub retention: Retention,
    pub max_batch: usize,
    pub generation: u32,
}

/// One partition's share of a batch.
struct Run {
    file: String,
    /// The file's length before this batch.
    start: u64,
    first: u64,
    /// The file must first be cut back to `start` (an earlier failed write left bytes there).
    cut_first: bool,
    items: Vec<(AppendId, Record)>,
    frames: Vec<FrameInfo>,
    bytes: Vec<u8>,
    failure: Option<String>,
}

pub struct Writer {
    shared: Arc<Shared>,
    sink: AppendSink,
    config: WriterConfig,
    sequence: u64,
    /// Files written since their last sync (under `Interval` and `Never`).
    dirty: BTreeSet<String>,
    last_sync: Instant,
    last_retention: Instant,
}

// Host code: the IO thread measures its sync interval and the age of records on the wall
// clock; it is never run by the simulator.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)]
fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Writer {
    pub fn new(shared: Arc<Shared>, sink: AppendSink, config: WriterConfig) -> Self {
        Writer {
            shared,
            sink,
            config,
            sequence: 0,
            dirty: BTreeSet::new(),
            last_sync: now(),
            last_retention: now(),
        }
    }

    /// Runs until every sender is gone, then syncs what is unsynced.
    pub fn run(mut self, queue: Receiver<Pending>) {
        loop {
            let wait = match self.config.fsync {
                FsyncPolicy::Interval(ms) => {
                    Duration::from_millis(ms).saturating_sub(self.last_sync.elapsed()).min(RETENTION_EVERY)
                }
                FsyncPolicy::Always | FsyncPolicy::Never => RETENTION_EVERY,
            };
            match queue.recv_timeout(wait) {
                Ok(first) => {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(self.config.max_batch - 1));
                    self.write_batch(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if matches!(self.config.fsync, FsyncPolicy::Interval(ms) if self.last_sync.elapsed() >= Duration::from_millis(ms))
            {
                self.sync_dirty();
            }
            if self.last_retention.elapsed() >= RETENTION_EVERY {
                self.apply_retention();
            }
        }
        self.sync_dirty();
    }

    fn sync_dirty(&mut self) {
        for file in std::mem::take(&mut self.dirty) {
            if let Err(e) = self.shared.storage.sync(&file) {
                Counters::add(&self.shared.counters.io_errors, 1);
                tracing::error!("event log: syncing {file} failed: {e}");
            }
        }
        self.last_sync = now();
    }

    fn apply_retention(&mut self) {
        self.last_retention = now();
        let (retention, now_ms) = (self.config.retention, wall_ms());
        if retention == Retention::default() {
            return;
        }
        let mut state = self.shared.state.lock();
        for partition in state.topics.values_mut().flatten() {
            match partition.retain(retention, now_ms, &*self.shared.storage) {
                Ok(n) => Counters::add(&self.shared.counters.segments_removed, n as u64),
                Err(e) => {
                    Counters::add(&self.shared.counters.io_errors, 1);
                    tracing::error!("event log: retention in {} failed: {e}", partition.place);
                }
            }
        }
    }

    /// Gives each append its offset (under the lock), per partition in append order.
    fn place(&self, batch: Vec<Pending>) -> BTreeMap<TopicPartition, Run> {
        let mut runs: BTreeMap<TopicPartition, Run> = BTreeMap::new();
        let mut state = self.shared.state.lock();
        for pending in batch {
            let partition = state
                .topics
                .get_mut(&pending.place.topic)
                .and_then(|t| t.get_mut(pending.place.partition as usize))
                .expect("appends are checked against the topics, which are never removed");
            let run = runs.entry(pending.place).or_insert_with(|| {
                let segment = partition.active(self.config.segment_bytes);
                let (file, start) = (segment.file.clone(), segment.bytes);
                Run {
                    file,
                    start,
                    first: partition.next,
                    cut_first: partition.unclean_tail,
                    items: Vec::new(),
                    frames: Vec::new(),
                    bytes: Vec::new(),
                    failure: None,
                }
            });
            run.items.push((pending.id, pending.record));
            partition.next += 1;
        }
        runs
    }

    fn write_batch(&mut self, batch: Vec<Pending>) {
        let mut runs = self.place(batch);
        let storage = Arc::clone(&self.shared.storage);
        for (place, run) in runs.iter_mut() {
            for (i, (_, record)) in run.items.iter().enumerate() {
                let pos = run.bytes.len();
                let id = NonceId { generation: self.config.generation, sequence: self.sequence };
                self.sequence += 1;
                frame::encode(&self.shared.sealer, place, run.first + i as u64, record, id, &mut run.bytes);
                let len = (run.bytes.len() - pos) as u32;
                let info = FrameInfo {
                    offset: run.first + i as u64,
                    timestamp_ms: record.timestamp_ms,
                    pos: run.start + pos as u64,
                    len,
                };
                run.frames.push(info);
            }
            if run.cut_first {
                if let Err(e) = storage.truncate(&run.file, run.start) {
                    run.failure = Some(format!("cutting {} back to {} bytes: {e}", run.file, run.start));
                    continue;
                }
            }
            if let Err(e) = storage.append(&run.file, &run.bytes) {
                run.failure = Some(format!("writing {}: {e}", run.file));
            }
        }
        for run in runs.values_mut().filter(|r| r.failure.is_none()) {
            if self.config.fsync == FsyncPolicy::Always {
                Counters::add(&self.shared.counters.syncs, 1);
                if let Err(e) = storage.sync(&run.file) {
                    run.failure = Some(format!("syncing {}: {e}", run.file));
                }
            } else {
                self.dirty.insert(run.file.clone());
            }
        }
        for run in runs.values_mut().filter(|r| r.failure.is_some()) {
            run.cut_first = storage.truncate(&run.file, run.start).is_err();
        }
        let outcomes = self.publish(runs);
        for outcome in outcomes {
            (self.sink)(outcome);
        }
    }

    /// Makes written runs readable (or rolls failed ones back) and says what to acknowledge.
    fn publish(&self, runs: BTreeMap<TopicPartition, Run>) -> Vec<AppendOutcome> {
        let counters = &self.shared.counters;
        let mut outcomes = Vec::new();
        let mut state = self.shared.state.lock();
        for (place, run) in runs {
            let partition = state
                .topics
                .get_mut(&place.topic)
                .and_then(|t| t.get_mut(place.partition as usize))
                .expect("partitions are never removed");
            let count = run.items.len() as u64;
            match run.failure {
                None => {
                    let segment = partition.segments.last_mut().expect("the run's segment");
                    segment.frames.extend(run.frames);
                    segment.bytes += run.bytes.len() as u64;
                    partition.visible = run.first + count;
                    partition.unclean_tail = false;
                    Counters::add(&counters.appended, count);
                    outcomes.extend(run.items.into_iter().enumerate().map(|(i, (id, _))| {
                        AppendOutcome::Appended { id, partition: place.clone(), offset: run.first + i as u64 }
                    }));
                }
                Some(why) => {
                    partition.next = run.first;
                    partition.unclean_tail = run.cut_first;
                    Counters::add(&counters.append_failed, count);
                    Counters::add(&counters.io_errors, 1);
                    tracing::error!("event log: {why}");
                    let error = LogError::Io(why);
                    outcomes.extend(
                        run.items
                            .into_iter()
                            .map(|(id, _)| AppendOutcome::AppendFailed { id, error: error.clone() }),
                    );
                }
            }
        }
        self.shared.wake.notify_all();
        outcomes
    }
}
