//! The Kafka backend (rdkafka) against a real Kafka-protocol broker (tansu): the event-log
//! conformance suite, librdkafka's partitioner agreeing with `partition_for` over many keys,
//! offsets past the end, commits refused without a group, and a broker that stops answering.
#![cfg(feature = "log-kafka")]

mod kafka_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::adapters::tansu::Tansu;
use aiot_actors::ports::eventlog::conformance::{self, append_all, subscribe, LogLab};
use aiot_actors::ports::eventlog::{
    partition_for, AppendOutcome, LogError, Record, Start, Subscription, TopicPartition,
};
use kafka_support::{fresh, shared_broker, KafkaLab};

#[test]
fn kafka_on_tansu_passes_the_conformance_suite() {
    conformance::run_all(&mut KafkaLab::new(shared_broker()), &fresh("conf"));
}

#[test]
fn librdkafka_puts_each_key_where_partition_for_says() {
    let mut lab = KafkaLab::new(shared_broker());
    let topic = fresh("partitioner");
    lab.log().log.create_topic(&topic, 7).unwrap();
    let sent: Vec<Record> =
        (0..200).map(|i| Record::new(&topic, format!("mote-{i}"), [i as u8], 1)).collect();
    let places = append_all(&mut lab, &sent);
    for (record, (partition, _)) in sent.iter().zip(&places) {
        assert_eq!(partition.partition, partition_for(&record.key, 7), "{record:?}");
    }
}

#[test]
fn an_offset_past_the_end_starts_at_the_end() {
    let mut lab = KafkaLab::new(shared_broker());
    let topic = fresh("beyond");
    let log = lab.log();
    log.log.create_topic(&topic, 1).unwrap();
    append_all(&mut lab, &[Record::new(&topic, "k", "0", 1), Record::new(&topic, "k", "1", 2)]);
    let reader = subscribe(&log, Subscription::all(&[&topic], "beyond", Start::Offset(1000))).unwrap();
    assert!(lab.wait_until(&mut || !reader.assignment().is_empty()), "never assigned");
    append_all(&mut lab, &[Record::new(&topic, "k", "2", 3)]);
    assert!(lab.wait_until(&mut || !reader.records().is_empty()), "nothing read");
    lab.settle();
    let offsets: Vec<u64> = reader.records().iter().map(|s| s.offset).collect();
    assert_eq!(offsets, [2], "offset 1000 of a 2-record partition should start at its end, 2");
}

#[test]
fn commits_need_a_group() {
    let mut lab = KafkaLab::new(shared_broker());
    let topic = fresh("nogroup");
    let log = lab.log();
    log.log.create_topic(&topic, 1).unwrap();
    let reader = subscribe(&log, Subscription::all(&[&topic], "loner", Start::Earliest)).unwrap();
    match reader.consumer.commit(&TopicPartition::new(&topic, 0), 0) {
        Err(LogError::Invalid(why)) => assert!(why.contains("no group"), "{why}"),
        other => panic!("a commit without a group: {other:?}"),
    }
}

/// Appends `records` and waits for their outcomes (ids from `first_id`), failed ones included.
fn outcomes_of(lab: &mut KafkaLab, first_id: u64, records: &[Record]) -> Vec<AppendOutcome> {
    let log = lab.log();
    for (i, record) in records.iter().enumerate() {
        log.log.append(first_id + i as u64, record.clone()).expect("queued");
    }
    let ids = first_id..first_id + records.len() as u64;
    let mine = |o: &AppendOutcome| match o {
        AppendOutcome::Appended { id, .. } | AppendOutcome::AppendFailed { id, .. } => ids.contains(id),
    };
    assert!(lab.wait_until(&mut || log.outcomes.lock().iter().filter(|o| mine(o)).count() == records.len()));
    let mut got: Vec<AppendOutcome> = log.outcomes.lock().iter().filter(|o| mine(o)).cloned().collect();
    got.sort_by_key(|o| match o {
        AppendOutcome::Appended { id, .. } | AppendOutcome::AppendFailed { id, .. } => *id,
    });
    got
}

#[test]
fn a_paused_broker_fails_appends_clearly_and_loses_nothing_acknowledged() {
    // Its own broker: pausing the shared one would stall the other tests.
    let mut lab = KafkaLab::new(Arc::new(Tansu::start().expect("tansu")));
    lab.settings.append_timeout = Duration::from_secs(3);
    lab.settings.request_timeout = Duration::from_secs(2);
    let topic = fresh("outage");
    lab.log().log.create_topic(&topic, 2).unwrap();
    let batch = |n: usize, tag: &str| -> Vec<Record> {
        (0..n)
            .map(|i| Record::new(&topic, format!("mote-{}", i % 4), format!("{tag}#{i}"), 1 + i as u64))
            .collect()
    };
    let before = batch(20, "before");
    let mut acknowledged: BTreeMap<(TopicPartition, u64), Record> =
        append_all(&mut lab, &before).into_iter().zip(before).collect();

    lab.broker.pause().unwrap();
    for outcome in outcomes_of(&mut lab, 1_000, &batch(8, "during")) {
        match outcome {
            AppendOutcome::AppendFailed { error: LogError::Unavailable(why), .. } => {
                assert!(why.contains("kafka"), "{why}")
            }
            other => panic!("an append to a paused broker: {other:?}"),
        }
    }
    let status = lab.kafka().status();
    assert!(matches!(status, Err(LogError::Unavailable(_))), "status while paused: {status:?}");

    // After the outage appends go through again; callers retry what failed (at least once):
    // on tansu the first ones may fail while the producer recovers (see `producer`).
    lab.broker.resume().unwrap();
    let mut pending = batch(12, "after");
    for attempt in 0..5 {
        let outcomes = outcomes_of(&mut lab, 2_000 + 100 * attempt, &pending);
        let mut failed = Vec::new();
        for (record, outcome) in pending.into_iter().zip(outcomes) {
            match outcome {
                AppendOutcome::Appended { partition, offset, .. } => {
                    acknowledged.insert((partition, offset), record);
                }
                AppendOutcome::AppendFailed { .. } => failed.push(record),
            }
        }
        pending = failed;
        if pending.is_empty() {
            break;
        }
    }
    assert!(pending.is_empty(), "{} appends still fail after the broker came back", pending.len());
    assert_eq!(lab.kafka().status(), Ok(()));

    let log = lab.log();
    let reader = subscribe(&log, Subscription::all(&[&topic], "audit", Start::Earliest)).unwrap();
    let missing = || {
        let read: BTreeMap<(TopicPartition, u64), Record> =
            reader.records().into_iter().map(|s| ((s.partition, s.offset), s.record)).collect();
        acknowledged.iter().filter(|(at, record)| read.get(*at) != Some(*record)).count()
    };
    assert!(lab.wait_until(&mut || missing() == 0), "{} acknowledged records lost in the outage", missing());
}
