//! The simulated event log: the Kafka contract (`aiot_actors::ports::eventlog`) as a
//! deterministic model in virtual time.
//!
//! It implements the same `EventLog` trait as the embedded log and the Kafka adapter and passes
//! the same conformance suite, taking the freedoms the contract allows on purpose, by seeded
//! choice: an append whose acknowledgement is lost reports `AppendFailed` although the record
//! was stored (a retry then stores it twice: at least once); a consumer that takes over a
//! partition after a rebalance starts from the group's committed offset, so it may see records
//! again. Also modelled: latency with jitter (acknowledgements of one key stay in append order),
//! consumer groups with eager rebalances, committed offsets, start positions, credit, and
//! outages (`crash`: appends in flight fail, stored or not, new ones are refused, consumers
//! pause; acknowledged records and committed offsets survive, as a replicated log's do).
//!
//! Nothing happens until `advance(to)` is called with a later virtual time; outcomes and
//! consumer events go to their sinks at their virtual time, in (time, sequence) order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::ports::eventlog::{
    partition_for, AppendId, AppendOutcome, AppendSink, ConsumerEvent, ConsumerSink, EventLog, LogConsumer,
    LogError, Record, Start, StoredRecord, Subscription, TopicInfo, TopicPartition,
};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How unkind the log is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogFaults {
    /// One-way latency between a client and the log, plus up to `jitter`.
    pub latency: Duration,
    pub jitter: Duration,
    /// Probability that a stored append's acknowledgement is lost (reported as failed).
    pub ack_loss: f64,
}

impl LogFaults {
    /// A perfect log (latency only).
    pub fn none() -> Self {
        LogFaults { latency: Duration::from_millis(2), jitter: Duration::ZERO, ack_loss: 0.0 }
    }

    /// A flaky log: jittery latency, some acknowledgements lost.
    pub fn flaky() -> Self {
        LogFaults { latency: Duration::from_millis(3), jitter: Duration::from_millis(30), ack_loss: 0.05 }
    }
}

/// What the log did, for summaries and invariants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appended: u64,
    /// Stored, but reported as failed (a lost acknowledgement).
    pub acks_lost: u64,
    /// Refused or lost in an outage, not stored.
    pub appends_failed: u64,
    pub delivered: u64,
    pub rebalances: u64,
    pub crashes: u64,
}

/// Records a consumer may be handed in one delivery.
const MAX_BATCH: u32 = 256;
/// Appends in flight at most (beyond: `LogError::Full`).
const MAX_IN_FLIGHT: usize = 65_536;

/// A simulated log; clones share it.
#[derive(Clone)]
pub struct SimLog {
    state: Arc<Mutex<LogState>>,
    sink: AppendSink,
}

type ConsumerId = u64;

struct Consumer {
    subscription: Subscription,
    sink: ConsumerSink,
    credit: u32,
    /// Next offset to deliver, per assigned partition.
    positions: BTreeMap<TopicPartition, u64>,
    /// Bumped by every (re)assignment: deliveries of an older generation are dropped.
    generation: u64,
    /// A delivery is on its way.
    fetching: bool,
    /// Latest time an event is due to reach it: its events keep their order.
    last_delivery: Duration,
}

enum Pending {
    /// An append reaches the log; its outcome goes to `sink`.
    Arrive { id: AppendId, record: Record, sink: AppendSink },
    /// An outcome reaches its producer.
    Outcome(AppendOutcome, AppendSink),
    /// A consumer event reaches its consumer (records only if its generation is current).
    Deliver { to: ConsumerId, generation: u64, event: ConsumerEvent },
}

struct LogState {
    now: Duration,
    rng: ChaCha8Rng,
    faults: LogFaults,
    up: bool,
    topics: BTreeMap<String, Vec<Vec<Record>>>,
    /// Committed offsets per (group, partition).
    committed: BTreeMap<(String, TopicPartition), u64>,
    consumers: BTreeMap<ConsumerId, Consumer>,
    next_consumer: ConsumerId,
    queue: BTreeMap<(Duration, u64), Pending>,
    next_seq: u64,
    /// Latest outcome time per key: outcomes of one key keep append order.
    last_outcome: BTreeMap<Vec<u8>, Duration>,
    stats: LogStats,
}

impl SimLog {
    /// Another client of the same log, whose append outcomes go to `sink` (a producer per node).
    pub fn client(&self, sink: AppendSink) -> SimLog {
        SimLog { state: Arc::clone(&self.state), sink }
    }

    /// A log whose append outcomes (of appends through this handle) go to `sink`.
    pub fn new(seed: u64, faults: LogFaults, sink: AppendSink) -> Self {
        let state = LogState {
            now: Duration::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults,
            up: true,
            topics: BTreeMap::new(),
            committed: BTreeMap::new(),
            consumers: BTreeMap::new(),
            next_consumer: 0,
            queue: BTreeMap::new(),
            next_seq: 0,
            last_outcome: BTreeMap::new(),
            stats: LogStats::default(),
        };
        SimLog { state: Arc::new(Mutex::new(state)), sink }
    }

    pub fn now(&self) -> Duration {
        self.state.lock().now
    }

    pub fn stats(&self) -> LogStats {
        self.state.lock().stats
    }

    pub fn is_up(&self) -> bool {
        self.state.lock().up
    }

    /// Every record of a partition, in offset order (for checks).
    pub fn records(&self, partition: &TopicPartition) -> Vec<Record> {
        let state = self.state.lock();
        state
            .topics
            .get(&partition.topic)
            .and_then(|p| p.get(partition.partition as usize))
            .cloned()
            .unwrap_or_default()
    }

    /// An outage: appends in flight fail (stored or not, by seeded choice), new appends are
    /// refused, consumers get an error and pause. Stored records and commits survive.
    pub fn crash(&self) {
        let mut state = self.state.lock();
        if !state.up {
            return;
        }
        state.up = false;
        state.stats.crashes += 1;
        let in_flight: Vec<((Duration, u64), Pending)> =
            std::mem::take(&mut state.queue).into_iter().collect();
        for (key, pending) in in_flight {
            match pending {
                Pending::Arrive { id, record, sink } => {
                    if state.rng.random_bool(0.5) {
                        state.store(record);
                        state.stats.acks_lost += 1;
                    } else {
                        state.stats.appends_failed += 1;
                    }
                    let error = LogError::Unavailable("the log went down with the append in flight".into());
                    state
                        .queue
                        .insert(key, Pending::Outcome(AppendOutcome::AppendFailed { id, error }, sink));
                }
                Pending::Outcome(AppendOutcome::Appended { id, .. }, sink) => {
                    state.stats.acks_lost += 1;
                    let error = LogError::Unavailable("the log went down before acknowledging".into());
                    state
                        .queue
                        .insert(key, Pending::Outcome(AppendOutcome::AppendFailed { id, error }, sink));
                }
                other @ Pending::Outcome(..) => {
                    state.queue.insert(key, other);
                }
                // Deliveries in flight are lost; the consumers read those records again.
                Pending::Deliver { to, event: ConsumerEvent::Records(records), .. } => {
                    if let Some(consumer) = state.consumers.get_mut(&to) {
                        consumer.fetching = false;
                        // Never delivered, so never granted back: the credit returns.
                        consumer.credit += records.len() as u32;
                        for r in records {
                            if let Some(position) = consumer.positions.get_mut(&r.partition) {
                                *position = (*position).min(r.offset);
                            }
                        }
                    }
                }
                other @ Pending::Deliver { .. } => {
                    state.queue.insert(key, other);
                }
            }
        }
        let ids: Vec<ConsumerId> = state.consumers.keys().copied().collect();
        for to in ids {
            let event = ConsumerEvent::Error(LogError::Unavailable("the log is down".into()));
            state.deliver(to, event);
        }
    }

    /// Ends an outage: consumers go on from where they were.
    pub fn restart(&self) {
        self.state.lock().up = true;
    }

    /// Runs the log up to virtual time `to`, handing each due event to its sink.
    pub fn advance(&self, to: Duration) {
        loop {
            let mut state = self.state.lock();
            state.schedule_fetches();
            let Some(entry) = state.queue.first_entry() else { break };
            if entry.key().0 > to {
                break;
            }
            let ((at, _), pending) = entry.remove_entry();
            state.now = at;
            match pending {
                Pending::Arrive { id, record, sink } => state.arrive(id, record, sink),
                Pending::Outcome(outcome, sink) => {
                    drop(state);
                    sink(outcome);
                }
                Pending::Deliver { to, generation, event } => {
                    let Some(sink) = state.take_delivery(to, generation, &event) else { continue };
                    drop(state);
                    sink(event);
                }
            }
        }
        let mut state = self.state.lock();
        state.now = state.now.max(to);
    }

    /// The time of the next scheduled event, if any.
    pub fn next_event_at(&self) -> Option<Duration> {
        let mut state = self.state.lock();
        state.schedule_fetches();
        state.queue.keys().next().map(|(at, _)| *at)
    }
}

impl LogState {
    fn latency(&mut self) -> Duration {
        let jitter = self.faults.jitter.as_micros() as u64;
        self.faults.latency
            + Duration::from_micros(if jitter == 0 { 0 } else { self.rng.random_range(0..=jitter) })
    }

    fn schedule_at(&mut self, at: Duration, pending: Pending) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.insert((at, seq), pending);
    }

    /// Sends a consumer an event; a consumer's events arrive in the order sent.
    fn deliver(&mut self, to: ConsumerId, event: ConsumerEvent) {
        let candidate = self.now + self.latency();
        let Some(consumer) = self.consumers.get_mut(&to) else { return };
        let at = candidate.max(consumer.last_delivery);
        consumer.last_delivery = at;
        let generation = consumer.generation;
        self.schedule_at(at, Pending::Deliver { to, generation, event });
    }

    /// The sink a due delivery goes to (`None`: its consumer left, or the records belong to
    /// an assignment it no longer has).
    fn take_delivery(
        &mut self,
        to: ConsumerId,
        generation: u64,
        event: &ConsumerEvent,
    ) -> Option<ConsumerSink> {
        let consumer = self.consumers.get_mut(&to)?;
        if let ConsumerEvent::Records(records) = event {
            consumer.fetching = false;
            if generation != consumer.generation {
                // Records of an assignment it no longer has: dropped, their credit returns.
                consumer.credit += records.len() as u32;
                return None;
            }
            self.stats.delivered += records.len() as u64;
        }
        Some(Arc::clone(&consumer.sink))
    }

    fn store(&mut self, record: Record) -> (TopicPartition, u64) {
        let partitions = self.topics.get_mut(&record.topic).expect("appends are checked for their topic");
        let p = partition_for(&record.key, partitions.len() as u32);
        let partition = &mut partitions[p as usize];
        partition.push(record.clone());
        (TopicPartition::new(record.topic, p), partition.len() as u64 - 1)
    }

    /// An append reaches the log: stored, then its outcome goes back (in key order).
    fn arrive(&mut self, id: AppendId, record: Record, sink: AppendSink) {
        let key = record.key.clone();
        let outcome = if !self.up {
            self.stats.appends_failed += 1;
            AppendOutcome::AppendFailed { id, error: LogError::Unavailable("the log is down".into()) }
        } else {
            let (partition, offset) = self.store(record);
            self.stats.appended += 1;
            if self.rng.random_bool(self.faults.ack_loss) {
                self.stats.acks_lost += 1;
                AppendOutcome::AppendFailed {
                    id,
                    error: LogError::Unavailable("the acknowledgement was lost".into()),
                }
            } else {
                AppendOutcome::Appended { id, partition, offset }
            }
        };
        let candidate = self.now + self.latency();
        let last = self.last_outcome.entry(key).or_insert(Duration::ZERO);
        let at = candidate.max(*last);
        *last = at;
        self.schedule_at(at, Pending::Outcome(outcome, sink));
    }

    /// Hands each consumer with credit, and records to read, its next batch (one in flight).
    fn schedule_fetches(&mut self) {
        if !self.up {
            return;
        }
        let ids: Vec<ConsumerId> = self.consumers.keys().copied().collect();
        for id in ids {
            let consumer = &self.consumers[&id];
            if consumer.fetching || consumer.credit == 0 {
                continue;
            }
            let mut budget = consumer.credit.min(MAX_BATCH);
            let mut batch = Vec::new();
            let mut positions = consumer.positions.clone();
            for (tp, position) in positions.iter_mut() {
                let records = &self.topics[&tp.topic][tp.partition as usize];
                while budget > 0 && (*position as usize) < records.len() {
                    let record = records[*position as usize].clone();
                    batch.push(StoredRecord { partition: tp.clone(), offset: *position, record });
                    *position += 1;
                    budget -= 1;
                }
            }
            if batch.is_empty() {
                continue;
            }
            let consumer = self.consumers.get_mut(&id).expect("listed");
            consumer.positions = positions;
            consumer.credit -= batch.len() as u32;
            consumer.fetching = true;
            self.deliver(id, ConsumerEvent::Records(batch));
        }
    }

    /// Where a consumer starts in a partition it was just given.
    fn start(&self, subscription: &Subscription, tp: &TopicPartition) -> u64 {
        let records = &self.topics[&tp.topic][tp.partition as usize];
        let committed =
            subscription.group.as_ref().and_then(|g| self.committed.get(&(g.clone(), tp.clone())).copied());
        match subscription.start {
            Start::Earliest => 0,
            Start::Latest => records.len() as u64,
            Start::Offset(offset) => offset.min(records.len() as u64),
            Start::Time(ms) => {
                records.iter().position(|r| r.timestamp_ms >= ms).unwrap_or(records.len()) as u64
            }
            Start::Committed => committed.unwrap_or(0),
        }
    }

    /// Partitions of `topics`, in order.
    fn partitions(&self, topics: &[String]) -> Vec<TopicPartition> {
        let topics: BTreeSet<&String> = topics.iter().collect();
        topics
            .into_iter()
            .flat_map(|t| {
                let n = self.topics.get(t).map_or(0, |p| p.len() as u32);
                (0..n).map(move |p| TopicPartition::new(t.clone(), p))
            })
            .collect()
    }

    /// Gives `id` these partitions (replacing what it had) and tells it.
    fn assign(&mut self, id: ConsumerId, partitions: Vec<TopicPartition>) {
        let subscription = self.consumers[&id].subscription.clone();
        let positions = partitions.iter().map(|tp| (tp.clone(), self.start(&subscription, tp))).collect();
        let consumer = self.consumers.get_mut(&id).expect("a live consumer");
        let revoked: Vec<TopicPartition> = consumer.positions.keys().cloned().collect();
        consumer.positions = positions;
        consumer.generation += 1;
        if !revoked.is_empty() {
            self.deliver(id, ConsumerEvent::Revoked(revoked));
        }
        self.deliver(id, ConsumerEvent::Assigned(partitions));
    }

    /// An eager rebalance of `group`: every member's partitions revoked, then the group's
    /// partitions dealt round-robin over its members in name order.
    fn rebalance(&mut self, group: &str) {
        self.stats.rebalances += 1;
        let mut members: Vec<(String, ConsumerId)> = self
            .consumers
            .iter()
            .filter(|(_, c)| c.subscription.group.as_deref() == Some(group))
            .map(|(id, c)| (c.subscription.member.clone(), *id))
            .collect();
        members.sort();
        let Some((_, first)) = members.first() else { return };
        let topics = self.consumers[first].subscription.topics.clone();
        let mut shares: Vec<Vec<TopicPartition>> = vec![Vec::new(); members.len()];
        for (i, tp) in self.partitions(&topics).into_iter().enumerate() {
            shares[i % members.len()].push(tp);
        }
        for ((_, id), share) in members.into_iter().zip(shares) {
            self.assign(id, share);
        }
    }

    fn leave(&mut self, id: ConsumerId) {
        if let Some(consumer) = self.consumers.remove(&id) {
            if let Some(group) = consumer.subscription.group {
                self.rebalance(&group);
            }
        }
    }
}

impl EventLog for SimLog {
    fn create_topic(&self, topic: &str, partitions: u32) -> Result<(), LogError> {
        if topic.is_empty() || partitions == 0 {
            return Err(LogError::Invalid("a topic needs a name and at least one partition".into()));
        }
        let mut state = self.state.lock();
        match state.topics.get(topic) {
            Some(existing) if existing.len() as u32 != partitions => Err(LogError::PartitionMismatch {
                topic: topic.into(),
                existing: existing.len() as u32,
                requested: partitions,
            }),
            Some(_) => Ok(()),
            None => {
                state.topics.insert(topic.into(), vec![Vec::new(); partitions as usize]);
                Ok(())
            }
        }
    }

    fn topics(&self) -> Result<Vec<TopicInfo>, LogError> {
        let state = self.state.lock();
        Ok(state
            .topics
            .iter()
            .map(|(name, p)| TopicInfo { name: name.clone(), partitions: p.len() as u32 })
            .collect())
    }

    fn append(&self, id: AppendId, record: Record) -> Result<(), LogError> {
        let mut state = self.state.lock();
        if !state.up {
            state.stats.appends_failed += 1;
            return Err(LogError::Unavailable("the log is down".into()));
        }
        if !state.topics.contains_key(&record.topic) {
            return Err(LogError::UnknownTopic(record.topic));
        }
        if state.queue.len() >= MAX_IN_FLIGHT {
            return Err(LogError::Full);
        }
        // One connection without jitter on the way in: appends arrive in the order made.
        let at = state.now + state.faults.latency;
        state.schedule_at(at, Pending::Arrive { id, record, sink: Arc::clone(&self.sink) });
        Ok(())
    }

    fn subscribe(
        &self,
        subscription: Subscription,
        sink: ConsumerSink,
    ) -> Result<Box<dyn LogConsumer>, LogError> {
        let mut state = self.state.lock();
        if let Some(unknown) = subscription.topics.iter().find(|t| !state.topics.contains_key(*t)) {
            return Err(LogError::UnknownTopic(unknown.clone()));
        }
        let id = state.next_consumer;
        state.next_consumer += 1;
        let group = subscription.group.clone();
        let credit = subscription.credit;
        let consumer = Consumer {
            subscription,
            sink,
            credit,
            positions: BTreeMap::new(),
            generation: 0,
            fetching: false,
            last_delivery: Duration::ZERO,
        };
        state.consumers.insert(id, consumer);
        match group {
            Some(group) => state.rebalance(&group),
            None => {
                let topics = state.consumers[&id].subscription.topics.clone();
                let partitions = state.partitions(&topics);
                state.assign(id, partitions);
            }
        }
        Ok(Box::new(SimConsumer { log: Arc::clone(&self.state), id }))
    }
}

/// A consumer of the simulated log; dropping it leaves its group.
pub struct SimConsumer {
    log: Arc<Mutex<LogState>>,
    id: ConsumerId,
}

impl LogConsumer for SimConsumer {
    fn commit(&self, partition: &TopicPartition, next_offset: u64) -> Result<(), LogError> {
        let mut state = self.log.lock();
        if !state.up {
            return Err(LogError::Unavailable("the log is down".into()));
        }
        let consumer = state.consumers.get(&self.id).expect("a live consumer");
        let Some(group) = consumer.subscription.group.clone() else {
            return Err(LogError::Invalid("a consumer without a group commits nothing".into()));
        };
        if !consumer.positions.contains_key(partition) {
            return Err(LogError::Invalid(format!("{partition} is not assigned to this consumer")));
        }
        state.committed.insert((group, partition.clone()), next_offset);
        Ok(())
    }

    fn grant(&self, records: u32) {
        let mut state = self.log.lock();
        if let Some(consumer) = state.consumers.get_mut(&self.id) {
            consumer.credit = consumer.credit.saturating_add(records);
        }
    }
}

impl Drop for SimConsumer {
    fn drop(&mut self) {
        self.log.lock().leave(self.id);
    }
}
