//! Power loss and a full disk, on the simulated disk: what each fsync policy promises.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::sim_disk::SimDisk;
use super::{EmbeddedLog, FsyncPolicy, LogConfig, LogKey};
use crate::ports::eventlog::conformance::{outcome_recorder, Outcomes};
use crate::ports::eventlog::{
    AppendOutcome, ConsumerEvent, EventLog, LogError, Record, Start, StoredRecord, Subscription,
    TopicPartition,
};

const TOPIC: &str = "crash";

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig { fsync, max_batch: 16, segment_bytes: 4096, ..LogConfig::new(LogKey([9; 32])) }
}

fn open(disk: &SimDisk, fsync: FsyncPolicy) -> (EmbeddedLog, Outcomes) {
    let (outcomes, sink) = outcome_recorder();
    let log = EmbeddedLog::open_on(Arc::new(disk.clone()), config(fsync), sink).expect("opens");
    (log, outcomes)
}

/// Polls `done` every 2 ms for up to 20 s.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..10_000 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

fn record(i: u64) -> Record {
    Record::new(TOPIC, format!("mote-{}", i % 5), format!("reading {i}").repeat(1 + (i % 7) as usize), i)
}

/// Acknowledged (place, offset) -> record index.
fn acked(outcomes: &Outcomes) -> BTreeMap<(TopicPartition, u64), u64> {
    let outcomes = outcomes.lock();
    outcomes
        .iter()
        .filter_map(|o| match o {
            AppendOutcome::Appended { id, partition, offset } => Some(((partition.clone(), *offset), *id)),
            AppendOutcome::AppendFailed { .. } => None,
        })
        .collect()
}

/// Every record the log holds, once its reader has been quiet for a moment.
fn read_all(log: &EmbeddedLog) -> BTreeMap<(TopicPartition, u64), Record> {
    let records: Arc<Mutex<Vec<StoredRecord>>> = Arc::default();
    let seen = Arc::clone(&records);
    let consumer = log
        .subscribe(
            Subscription::all(&[TOPIC], "check", Start::Earliest),
            Arc::new(move |e| {
                if let ConsumerEvent::Records(batch) = e {
                    seen.lock().extend(batch);
                }
            }),
        )
        .expect("subscribes");
    consumer.grant(u32::MAX / 2);
    let mut last = usize::MAX;
    wait_for(|| {
        let now = records.lock().len();
        std::thread::sleep(Duration::from_millis(50));
        std::mem::replace(&mut last, now) == now
    });
    let all = records.lock().iter().map(|s| ((s.partition.clone(), s.offset), s.record.clone())).collect();
    all
}

/// Appends `count` records (waiting while the queue is full), ids = record index.
fn append(log: &EmbeddedLog, range: std::ops::Range<u64>) {
    for i in range {
        while let Err(e) = log.append(i, record(i)) {
            assert_eq!(e, LogError::Full, "append {i} refused");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Each partition's records from offset 0, in order.
fn by_partition(records: &BTreeMap<(TopicPartition, u64), Record>) -> BTreeMap<u32, Vec<Record>> {
    let mut parts: BTreeMap<u32, Vec<Record>> = BTreeMap::new();
    for ((place, offset), record) in records {
        let list = parts.entry(place.partition).or_default();
        assert_eq!(*offset, list.len() as u64, "{place} has a gap before offset {offset}");
        list.push(record.clone());
    }
    parts
}

#[test]
fn under_fsync_always_a_power_loss_keeps_every_acknowledged_record() {
    for seed in [None, Some(1), Some(2), Some(3)] {
        let disk = SimDisk::default();
        let (log, outcomes) = open(&disk, FsyncPolicy::Always);
        log.create_topic(TOPIC, 3).unwrap();
        append(&log, 0..400);
        assert!(wait_for(|| acked(&outcomes).len() >= 150), "appends were not acknowledged");
        // Acknowledgements read before the power loss: each was synced before it was sent.
        let before = acked(&outcomes);
        let after_loss = disk.crashed(seed);
        let (reopened, reopened_outcomes) = open(&after_loss, FsyncPolicy::Always);
        let kept = read_all(&reopened);
        for ((place, offset), i) in &before {
            assert_eq!(
                kept.get(&(place.clone(), *offset)),
                Some(&record(*i)),
                "acked {place}@{offset} lost ({seed:?})"
            );
        }
        let parts = by_partition(&kept);
        // New appends continue after what was kept.
        let key_partition = |i: u64| crate::ports::eventlog::partition_for(record(i).key.as_slice(), 3);
        append(&reopened, 1000..1001);
        assert!(wait_for(|| !acked(&reopened_outcomes).is_empty()));
        let (_, offset) = acked(&reopened_outcomes).into_keys().next().unwrap();
        let expected = parts.get(&key_partition(1000)).map_or(0, Vec::len) as u64;
        assert_eq!(offset, expected, "the first append after recovery took the wrong offset ({seed:?})");
        drop(log);
    }
}

#[test]
fn under_fsync_never_a_power_loss_keeps_only_acknowledged_records_at_their_offsets() {
    // What `Never` promises after a power loss: nothing more than a process crash would keep.
    // Each segment file keeps some prefix of what was written (the OS flushes files in any
    // order, so a later segment may keep records past a hole in an earlier one: the hole is
    // reported); whatever is kept is the acknowledged record at its offset, byte for byte.
    for seed in [None, Some(4), Some(5), Some(6)] {
        let disk = SimDisk::default();
        let (log, outcomes) = open(&disk, FsyncPolicy::Never);
        log.create_topic(TOPIC, 3).unwrap();
        append(&log, 0..300);
        assert!(wait_for(|| acked(&outcomes).len() == 300), "appends were not acknowledged");
        let acknowledged = acked(&outcomes);
        let after_loss = disk.crashed(seed);
        let (reopened, _) = open(&after_loss, FsyncPolicy::Never);
        let kept = read_all(&reopened);
        if seed.is_none() {
            // Nothing was ever synced: a power loss takes every record (the topic stays).
            assert!(kept.is_empty(), "records survived that were never synced: {kept:?}");
            assert_eq!(reopened.topics().unwrap().len(), 1, "the topic (stored durably) was lost");
        }
        for (place, stored) in &kept {
            let i = acknowledged.get(place).unwrap_or_else(|| panic!("{place:?} was never acknowledged"));
            assert_eq!(stored, &record(*i), "{place:?} holds another record ({seed:?})");
        }
        drop(log);
    }
}

#[test]
fn under_fsync_interval_acknowledged_records_become_durable_by_the_next_interval() {
    let disk = SimDisk::default();
    let (log, outcomes) = open(&disk, FsyncPolicy::Interval(20));
    log.create_topic(TOPIC, 2).unwrap();
    append(&log, 0..100);
    assert!(wait_for(|| acked(&outcomes).len() == 100), "appends were not acknowledged");
    let acknowledged = acked(&outcomes);
    let mut kept = BTreeMap::new();
    let synced = wait_for(|| {
        let (after_loss, _) = open(&disk.crashed(None), FsyncPolicy::Never);
        kept = read_all(&after_loss);
        kept.len() == acknowledged.len()
    });
    assert!(synced, "{} of {} acknowledged records were ever synced", kept.len(), acknowledged.len());
    for (place, i) in acknowledged {
        assert_eq!(kept.get(&place), Some(&record(i)), "{place:?} differs after the interval's sync");
    }
}

#[test]
fn a_full_disk_fails_appends_with_io_and_keeps_what_was_acknowledged() {
    let disk = SimDisk::default();
    let (log, outcomes) = open(&disk, FsyncPolicy::Always);
    log.create_topic(TOPIC, 1).unwrap();
    append(&log, 0..50);
    assert!(wait_for(|| acked(&outcomes).len() == 50));
    disk.set_capacity(Some(disk.used() + 2_000));
    append(&log, 50..200);
    assert!(wait_for(|| outcomes.lock().len() == 200), "every append should be answered");
    let failed: Vec<LogError> = outcomes
        .lock()
        .iter()
        .filter_map(|o| {
            if let AppendOutcome::AppendFailed { error, .. } = o {
                Some(error.clone())
            } else {
                None
            }
        })
        .collect();
    assert!(!failed.is_empty(), "a full disk failed no append");
    assert!(failed.iter().all(|e| matches!(e, LogError::Io(_))), "failures should be Io: {failed:?}");
    assert_eq!(log.stats().append_failed, failed.len() as u64, "failed appends are counted");
    let before = acked(&outcomes);
    disk.set_capacity(None);
    append(&log, 200..210);
    assert!(wait_for(|| outcomes.lock().len() == 210), "the log stopped after a full disk");
    let offsets: Vec<u64> = acked(&outcomes).into_keys().map(|(_, offset)| offset).collect();
    let expected: Vec<u64> = (0..offsets.len() as u64).collect();
    assert_eq!(offsets, expected, "offsets should stay consecutive across failed appends");
    let (reopened, _) = open(&disk.crashed(None), FsyncPolicy::Always);
    let kept = read_all(&reopened);
    for (place, i) in before {
        assert_eq!(kept.get(&place), Some(&record(i)), "acked {place:?} lost after a full disk");
    }
}
