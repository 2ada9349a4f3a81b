//! The event-log contract as a test suite, run against every `EventLog`: the embedded durable
//! log (`actors/tests/embedded_log.rs`), Kafka through rdkafka on a Kafka-protocol broker, and
//! the simulated model. A `LogLab` supplies the log and lets time pass: wall time for a real
//! log, virtual time for the model. Each check panics with what the contract says and what
//! happened instead.
//!
//! Besides the port's doc, the suite relies on one reading of the contract: every consumer
//! reports `Assigned` before it delivers records of those partitions (a consumer without a group
//! reports all the partitions of its topics at once), and `Start::Latest` means the end as it
//! was when `Assigned` was reported.
//!
//! Group checks wait only through the lab's patience: a Kafka broker may take tens of seconds to
//! settle a group, so a lab for one must be patient enough for that.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{
    partition_for, AppendId, AppendOutcome, AppendSink, ConsumerEvent, ConsumerSink, EventLog, LogConsumer,
    LogError, Record, Start, StoredRecord, Subscription, TopicInfo, TopicPartition,
};

/// The outcomes a log's `AppendSink` received, in arrival order.
pub type Outcomes = Arc<Mutex<Vec<AppendOutcome>>>;

/// An `AppendSink` that records outcomes, for a lab to open its log with.
pub fn outcome_recorder() -> (Outcomes, AppendSink) {
    let outcomes: Outcomes = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&outcomes);
    (outcomes, Arc::new(move |outcome| recorded.lock().push(outcome)))
}

/// The log under test and what its `AppendSink` received.
#[derive(Clone)]
pub struct LabLog {
    pub log: Arc<dyn EventLog>,
    pub outcomes: Outcomes,
}

/// What an implementation under test provides.
pub trait LogLab {
    /// The log under test: opened on the first call, the same one after (until `restart`).
    fn log(&mut self) -> LabLog;
    /// Closes the log and opens it again from what it stored, so that `log` returns the reopened
    /// one; says whether this implementation can (false: checks that need it skip that part).
    /// Every consumer of the old log has been dropped when this is called.
    fn restart(&mut self) -> bool;
    /// Lets time pass until `done()` holds or the lab's patience runs out; says whether it held.
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> bool;
    /// Lets a quiet period pass, to observe that something does not happen.
    fn settle(&mut self);
}

/// Runs every check; `prefix` keeps this run's topics and groups apart from any other's.
pub fn run_all(lab: &mut dyn LogLab, prefix: &str) {
    topics_are_created_once(lab, prefix);
    unknown_topics_are_refused(lab, prefix);
    appends_take_consecutive_offsets_in_key_order(lab, prefix);
    records_read_back_byte_for_byte(lab, prefix);
    start_positions(lab, prefix);
    credit_bounds_delivery(lab, prefix);
    group_members_share_partitions(lab, prefix);
    commits_survive_consumers_and_restarts(lab, prefix);
}

/// A consumer whose events are recorded.
pub struct LabConsumer {
    pub consumer: Box<dyn LogConsumer>,
    pub events: Arc<Mutex<Vec<ConsumerEvent>>>,
}

impl LabConsumer {
    /// Every record delivered, in delivery order.
    pub fn records(&self) -> Vec<StoredRecord> {
        let events = self.events.lock();
        events
            .iter()
            .filter_map(|e| if let ConsumerEvent::Records(r) = e { Some(r.clone()) } else { None })
            .flatten()
            .collect()
    }

    /// The partitions this consumer holds now: the latest `Assigned` less any later `Revoked`.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        let mut held = BTreeSet::new();
        for event in self.events.lock().iter() {
            match event {
                ConsumerEvent::Assigned(all) => held = all.iter().cloned().collect(),
                ConsumerEvent::Revoked(gone) => gone.iter().for_each(|p| {
                    held.remove(p);
                }),
                _ => {}
            }
        }
        held
    }

    fn was_assigned(&self) -> bool {
        self.events.lock().iter().any(|e| matches!(e, ConsumerEvent::Assigned(_)))
    }

    fn errors(&self) -> Vec<LogError> {
        let events = self.events.lock();
        events
            .iter()
            .filter_map(|e| if let ConsumerEvent::Error(e) = e { Some(e.clone()) } else { None })
            .collect()
    }
}

/// Starts a consumer whose events are recorded.
pub fn subscribe(log: &LabLog, subscription: Subscription) -> Result<LabConsumer, LogError> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&events);
    let sink: ConsumerSink = Arc::new(move |e| recorded.lock().push(e));
    let consumer = log.log.subscribe(subscription, sink)?;
    Ok(LabConsumer { consumer, events })
}

fn subscribed(log: &LabLog, subscription: Subscription) -> LabConsumer {
    let what = format!("{subscription:?}");
    subscribe(log, subscription).unwrap_or_else(|e| panic!("subscribing with {what} failed: {e}"))
}

/// Append ids, unique across every check of a run (outcomes of several checks share a sink).
fn fresh_id() -> AppendId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Appends `records` in order (waiting while the log says `Full`), waits for every outcome and
/// returns where each record went. Panics on a refusal or an `AppendFailed`.
pub fn append_all(lab: &mut dyn LogLab, records: &[Record]) -> Vec<(TopicPartition, u64)> {
    let log = lab.log();
    let mut ids = Vec::with_capacity(records.len());
    for record in records {
        let id = fresh_id();
        loop {
            match log.log.append(id, record.clone()) {
                Ok(()) => break,
                Err(LogError::Full) => {
                    let mut waited = false;
                    lab.wait_until(&mut || std::mem::replace(&mut waited, true));
                }
                Err(e) => panic!("append of {record:?} was refused: {e}"),
            }
        }
        ids.push(id);
    }
    let wanted: BTreeSet<AppendId> = ids.iter().copied().collect();
    let answered =
        |outcomes: &[AppendOutcome]| outcomes.iter().filter(|o| wanted.contains(&outcome_id(o))).count();
    let complete = lab.wait_until(&mut || answered(&log.outcomes.lock()) >= wanted.len());
    let outcomes = log.outcomes.lock().clone();
    assert!(
        complete,
        "{} of {} appends were never answered (the contract: each append gets an outcome)",
        wanted.len() - answered(&outcomes),
        wanted.len()
    );
    let mut places = BTreeMap::new();
    for outcome in outcomes.into_iter().filter(|o| wanted.contains(&outcome_id(o))) {
        match outcome {
            AppendOutcome::Appended { id, partition, offset } => {
                let again = places.insert(id, (partition, offset));
                assert!(again.is_none(), "append {id} was acknowledged twice");
            }
            AppendOutcome::AppendFailed { id, error } => {
                panic!("append {id} failed where it should have succeeded: {error}")
            }
        }
    }
    ids.iter().map(|id| places[id].clone()).collect()
}

fn outcome_id(outcome: &AppendOutcome) -> AppendId {
    match outcome {
        AppendOutcome::Appended { id, .. } | AppendOutcome::AppendFailed { id, .. } => *id,
    }
}

fn create(lab: &mut dyn LogLab, topic: &str, partitions: u32) {
    let log = lab.log();
    log.log.create_topic(topic, partitions).unwrap_or_else(|e| panic!("creating {topic} failed: {e}"));
}

/// `count` records of `key` with distinct payloads and timestamps from `t0` every 10 ms.
fn numbered(topic: &str, key: &str, count: u64, t0: u64) -> Vec<Record> {
    (0..count).map(|i| Record::new(topic, key, format!("{key}#{i}").into_bytes(), t0 + 10 * i)).collect()
}

/// Keys that together reach every partition of a topic with `partitions` partitions.
fn keys_covering(partitions: u32) -> Vec<String> {
    let mut keys = BTreeMap::new();
    for i in 0.. {
        let key = format!("mote-{i}");
        keys.entry(partition_for(key.as_bytes(), partitions)).or_insert(key);
        if keys.len() == partitions as usize {
            break;
        }
    }
    keys.into_values().collect()
}

/// Waits until `consumer` has delivered at least `count` records.
fn wait_for_records(lab: &mut dyn LogLab, consumer: &LabConsumer, count: usize, what: &str) {
    let arrived = lab.wait_until(&mut || consumer.records().len() >= count);
    assert!(
        arrived,
        "{what}: {} of {count} records were delivered (errors: {:?})",
        consumer.records().len(),
        consumer.errors()
    );
}

fn wait_for_assignment(lab: &mut dyn LogLab, consumer: &LabConsumer, what: &str) {
    assert!(
        lab.wait_until(&mut || consumer.was_assigned()),
        "{what}: the consumer never reported Assigned (errors: {:?})",
        consumer.errors()
    );
}

/// The offsets delivered for `partition`, in delivery order.
fn offsets_of(records: &[StoredRecord], partition: &TopicPartition) -> Vec<u64> {
    records.iter().filter(|r| &r.partition == partition).map(|r| r.offset).collect()
}

/// `create_topic` succeeds again with the same count, refuses another count, and `topics` lists
/// every topic by name with its count.
pub fn topics_are_created_once(lab: &mut dyn LogLab, prefix: &str) {
    let (b, a) = (format!("{prefix}.topics-b"), format!("{prefix}.topics-a"));
    create(lab, &b, 3);
    create(lab, &b, 3);
    create(lab, &a, 1);
    let log = lab.log();
    match log.log.create_topic(&b, 4) {
        Err(LogError::PartitionMismatch { topic, existing: 3, requested: 4 }) if topic == b => {}
        other => panic!(
            "creating {b} with 4 partitions when it has 3 should be PartitionMismatch {{ existing: 3, \
             requested: 4 }}, was {other:?}"
        ),
    }
    let topics = log.log.topics().unwrap_or_else(|e| panic!("listing topics failed: {e}"));
    let ours: Vec<TopicInfo> = topics.iter().filter(|t| t.name.starts_with(prefix)).cloned().collect();
    for expected in [TopicInfo { name: a.clone(), partitions: 1 }, TopicInfo { name: b, partitions: 3 }] {
        assert!(ours.contains(&expected), "topics() lacks {expected:?}: {ours:?}");
    }
    let mut sorted = topics.clone();
    sorted.sort();
    assert_eq!(topics, sorted, "topics() should list topics by name");
}

/// Appending to, or subscribing to, a topic that does not exist is refused as `UnknownTopic`
/// (at the call, or as the outcome / a consumer error, for a backend that learns it later).
pub fn unknown_topics_are_refused(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.no-such-topic");
    let log = lab.log();
    let id = fresh_id();
    let unknown = |e: &LogError| matches!(e, LogError::UnknownTopic(t) if t == &topic);
    match log.log.append(id, Record::new(&topic, "k", "v", 1)) {
        Err(e) => assert!(unknown(&e), "append to {topic} should be UnknownTopic, was {e:?}"),
        Ok(()) => {
            let outcome = || log.outcomes.lock().iter().find(|o| outcome_id(o) == id).cloned();
            assert!(lab.wait_until(&mut || outcome().is_some()), "append to {topic} was never answered");
            match outcome() {
                Some(AppendOutcome::AppendFailed { error, .. }) if unknown(&error) => {}
                other => panic!("append to {topic} should fail with UnknownTopic, was {other:?}"),
            }
        }
    }
    match subscribe(&log, Subscription::all(&[&topic], "unknown", Start::Earliest)) {
        Err(e) => assert!(unknown(&e), "subscribing to {topic} should be UnknownTopic, was {e:?}"),
        Ok(consumer) => {
            let reported = lab.wait_until(&mut || consumer.errors().iter().any(unknown));
            assert!(
                reported,
                "subscribing to {topic} should report UnknownTopic: {:?}",
                consumer.events.lock()
            );
        }
    }
}

/// Each append is acknowledged with `partition_for(key, n)` and the next offset of that
/// partition (0, 1, 2, ... in a new topic); one key's records take increasing offsets in append
/// order.
pub fn appends_take_consecutive_offsets_in_key_order(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.offsets");
    create(lab, &topic, 4);
    let keys = ["mote-a", "mote-b", "mote-c", "mote-d", "mote-e"];
    let records: Vec<Record> = (0..20u64)
        .flat_map(|i| keys.iter().map(move |k| (i, *k)))
        .map(|(i, key)| Record::new(&topic, key, format!("{key}#{i}"), 1_000 + i))
        .collect();
    let places = append_all(lab, &records);
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut by_key: BTreeMap<&[u8], Vec<u64>> = BTreeMap::new();
    for (record, (partition, offset)) in records.iter().zip(&places) {
        let expected = partition_for(&record.key, 4);
        assert_eq!(
            (partition.topic.as_str(), partition.partition),
            (topic.as_str(), expected),
            "{record:?} should go to partition_for(key, 4) = {expected}"
        );
        by_partition.entry(partition.partition).or_default().push(*offset);
        by_key.entry(&record.key).or_default().push(*offset);
    }
    for (partition, mut offsets) in by_partition {
        offsets.sort_unstable();
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, expected,
            "partition {partition} of a new topic should hold offsets 0, 1, 2, ..."
        );
    }
    for (key, offsets) in by_key {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "records of key {:?} took offsets {offsets:?}, not increasing in append order",
            String::from_utf8_lossy(key)
        );
    }
}

/// A consumer reads back every acknowledged record at its place, byte for byte (key, payload
/// and timestamp), in offset order.
pub fn records_read_back_byte_for_byte(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.bytes");
    create(lab, &topic, 2);
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let records = vec![
        Record::new(&topic, vec![0u8, 255, 7], all_bytes.clone(), 17),
        Record::new(&topic, "mote-1", Vec::new(), 0),
        Record::new(&topic, Vec::new(), "no key", u64::from(u32::MAX) * 1000),
        Record::new(&topic, "mote-1", all_bytes.repeat(40), 1_700_000_000_000),
        Record::new(&topic, "mote-2", "last", 42),
    ];
    let places = append_all(lab, &records);
    let log = lab.log();
    let consumer = subscribed(&log, Subscription::all(&[&topic], "bytes", Start::Earliest));
    wait_for_records(lab, &consumer, records.len(), "reading back");
    let delivered = consumer.records();
    for (record, (partition, offset)) in records.iter().zip(&places) {
        let found = delivered.iter().find(|s| &s.partition == partition && s.offset == *offset);
        match found {
            Some(stored) => {
                assert_eq!(&stored.record, record, "the record at {partition} offset {offset} changed")
            }
            None => panic!("{record:?} acknowledged at {partition} offset {offset} was not read back"),
        }
    }
    for partition in places.iter().map(|(p, _)| p).collect::<BTreeSet<_>>() {
        let offsets = offsets_of(&delivered, partition);
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(offsets, expected, "{partition} should be read in offset order from 0 without repeats");
    }
}

/// `Earliest`, `Offset`, `Time`, `Committed` without a group, and `Latest` each start where the
/// contract says.
pub fn start_positions(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.starts");
    create(lab, &topic, 1);
    let partition = TopicPartition::new(&topic, 0);
    // Offsets 0..10 with timestamps 1000, 1010, ... 1090.
    append_all(lab, &numbered(&topic, "mote-s", 10, 1_000));
    let log = lab.log();
    let cases = [
        (Start::Earliest, 0),
        (Start::Offset(4), 4),
        (Start::Time(1_045), 5),
        (Start::Time(1_050), 5),
        (Start::Committed, 0),
    ];
    for (start, first) in cases {
        let consumer = subscribed(&log, Subscription::all(&[&topic], format!("{start:?}"), start));
        wait_for_records(lab, &consumer, (10 - first) as usize, &format!("{start:?}"));
        lab.settle();
        let offsets = offsets_of(&consumer.records(), &partition);
        let expected: Vec<u64> = (first..10).collect();
        assert_eq!(offsets, expected, "a consumer starting at {start:?} should read offsets {first}..10");
    }
    let late = subscribed(&log, Subscription::all(&[&topic], "late", Start::Time(5_000)));
    let latest = subscribed(&log, Subscription::all(&[&topic], "latest", Start::Latest));
    wait_for_assignment(lab, &late, "Time after every record");
    wait_for_assignment(lab, &latest, "Latest");
    lab.settle();
    for (name, consumer) in [("Time after every record", &late), ("Latest", &latest)] {
        let early = consumer.records();
        assert!(early.is_empty(), "a consumer starting at {name} was given earlier records: {early:?}");
    }
    append_all(lab, &[Record::new(&topic, "mote-s", "after", 9_000)]);
    for (name, consumer) in [("Time after every record", &late), ("Latest", &latest)] {
        wait_for_records(lab, consumer, 1, name);
        assert_eq!(
            offsets_of(&consumer.records(), &partition),
            vec![10],
            "{name} should read only offset 10"
        );
    }
}

/// A consumer delivers no more records than its credit allows, and more once granted more.
pub fn credit_bounds_delivery(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.credit");
    create(lab, &topic, 2);
    let records: Vec<Record> =
        keys_covering(2).iter().flat_map(|key| numbered(&topic, key, 10, 1_000)).collect();
    append_all(lab, &records);
    let log = lab.log();
    let consumer = subscribed(
        &log,
        Subscription { credit: 5, ..Subscription::all(&[&topic], "credit", Start::Earliest) },
    );
    let mut granted = 5;
    for more in [7, 100] {
        wait_for_records(lab, &consumer, granted, &format!("with credit {granted}"));
        lab.settle();
        let delivered = consumer.records().len();
        assert_eq!(delivered, granted, "a consumer with credit for {granted} records delivered {delivered}");
        consumer.consumer.grant(more);
        granted = (granted + more as usize).min(records.len());
    }
    wait_for_records(lab, &consumer, records.len(), "after granting enough");
    lab.settle();
    assert_eq!(consumer.records().len(), records.len(), "records were delivered twice");
}

/// Two members of a group split the partitions, each partition held by exactly one; when one
/// leaves, the other gets them all; every record reaches the group.
pub fn group_members_share_partitions(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.group");
    let group = format!("{prefix}.readers");
    create(lab, &topic, 4);
    let all: BTreeSet<TopicPartition> = (0..4).map(|p| TopicPartition::new(&topic, p)).collect();
    let records: Vec<Record> =
        keys_covering(4).iter().flat_map(|key| numbered(&topic, key, 5, 1_000)).collect();
    append_all(lab, &records);
    let log = lab.log();
    let first = subscribed(&log, Subscription::in_group(&[&topic], &group, "member-a"));
    let alone = lab.wait_until(&mut || first.assignment() == all);
    assert!(alone, "a lone member should hold every partition, holds {:?}", first.assignment());
    let second = subscribed(&log, Subscription::in_group(&[&topic], &group, "member-b"));
    let split = |a: &LabConsumer, b: &LabConsumer| {
        let (x, y) = (a.assignment(), b.assignment());
        !x.is_empty()
            && !y.is_empty()
            && x.is_disjoint(&y)
            && x.union(&y).cloned().collect::<BTreeSet<_>>() == all
    };
    let shared = lab.wait_until(&mut || split(&first, &second));
    assert!(
        shared,
        "two members should split the 4 partitions, each to exactly one: a holds {:?}, b holds {:?}",
        first.assignment(),
        second.assignment()
    );
    let everything = |a: &LabConsumer, b: &LabConsumer| {
        a.records()
            .iter()
            .chain(&b.records())
            .map(|r| (r.partition.clone(), r.offset))
            .collect::<BTreeSet<_>>()
    };
    let delivered = lab.wait_until(&mut || everything(&first, &second).len() == records.len());
    assert!(
        delivered,
        "the group should read all {} records, read {}",
        records.len(),
        everything(&first, &second).len()
    );
    drop(second);
    let took_over = lab.wait_until(&mut || first.assignment() == all);
    assert!(took_over, "after b left, a should hold every partition, holds {:?}", first.assignment());
}

/// Committed offsets are where a new member of the group starts, and survive a restart of the
/// log where the lab can restart it; a partition with no commit starts at the earliest offset.
pub fn commits_survive_consumers_and_restarts(lab: &mut dyn LogLab, prefix: &str) {
    let topic = format!("{prefix}.commits");
    let group = format!("{prefix}.committers");
    create(lab, &topic, 2);
    let keys = keys_covering(2);
    let records: Vec<Record> = keys.iter().flat_map(|key| numbered(&topic, key, 8, 1_000)).collect();
    let places = append_all(lab, &records);
    let committed = &places[0].0;
    let uncommitted =
        places.iter().map(|(p, _)| p).find(|p| *p != committed).expect("two partitions").clone();
    let log = lab.log();
    let reader = subscribed(&log, Subscription::in_group(&[&topic], &group, "reader-1"));
    wait_for_records(lab, &reader, records.len(), "the first member");
    reader.consumer.commit(committed, 5).unwrap_or_else(|e| panic!("commit of {committed} at 5 failed: {e}"));
    drop(reader);
    let starts = |consumer: &LabConsumer| {
        let records = consumer.records();
        (
            offsets_of(&records, committed).first().copied(),
            offsets_of(&records, &uncommitted).first().copied(),
        )
    };
    let check = |lab: &mut dyn LogLab, member: &str, when: &str| {
        let log = lab.log();
        let consumer = subscribed(&log, Subscription::in_group(&[&topic], &group, member));
        let both = lab.wait_until(&mut || matches!(starts(&consumer), (Some(_), Some(_))));
        assert!(both, "{when}: a new member read nothing from one partition: {:?}", consumer.records());
        assert_eq!(
            starts(&consumer),
            (Some(5), Some(0)),
            "{when}: a new member should start {committed} at the committed 5 and {uncommitted} (no commit) \
             at 0"
        );
    };
    check(lab, "reader-2", "after a new consumer");
    if lab.restart() {
        check(lab, "reader-3", "after a restart of the log");
        let log = lab.log();
        let again = subscribed(&log, Subscription::all(&[&topic], "after-restart", Start::Earliest));
        wait_for_records(lab, &again, records.len(), "after a restart of the log");
        for (record, (partition, offset)) in records.iter().zip(&places) {
            let kept = again
                .records()
                .iter()
                .any(|s| &s.partition == partition && s.offset == *offset && &s.record == record);
            assert!(kept, "{record:?} acknowledged at {partition} offset {offset} was lost by a restart");
        }
    }
}
