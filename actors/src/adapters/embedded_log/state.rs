//! What the log's threads and callers share: the topics' partitions, the consumers and groups
//! (under one lock), the storage, the sealer, the counters, and the reader's wake-up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::ports::eventlog::{ConsumerEvent, ConsumerSink, LogError, Subscription, TopicPartition};

use super::crypto::Sealer;
use super::groups::{self, Group};
use super::partition::Partition;
use super::storage::Storage;

/// The log's counters (see `LogStats`).
#[derive(Default)]
pub struct Counters {
    pub appended: AtomicU64,
    pub append_failed: AtomicU64,
    pub io_errors: AtomicU64,
    pub corrupt: AtomicU64,
    pub torn_bytes_cut: AtomicU64,
    pub segments_removed: AtomicU64,
    pub syncs: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// A consumer as the log keeps it.
pub struct ConsumerState {
    pub subscription: Subscription,
    pub sink: ConsumerSink,
    pub credit: u64,
    /// Assigned partitions and the next offset to deliver in each.
    pub positions: BTreeMap<TopicPartition, u64>,
    /// Events to deliver before any more records (rebalances, errors).
    pub pending: Vec<ConsumerEvent>,
    /// Bumped by every rebalance, so records read for an older assignment are not delivered.
    pub generation: u64,
}

/// Everything under the lock.
#[derive(Default)]
pub struct State {
    pub topics: BTreeMap<String, Vec<Partition>>,
    pub consumers: BTreeMap<u64, ConsumerState>,
    pub groups: BTreeMap<String, Group>,
    pub next_consumer: u64,
    pub closed: bool,
}

/// Shared by the log handle, its consumers and its threads.
pub struct Shared {
    pub state: Mutex<State>,
    /// Wakes the reader thread (new records, credit, consumers, rebalances, close).
    pub wake: Condvar,
    pub storage: Arc<dyn Storage>,
    pub sealer: Sealer,
    pub counters: Counters,
    /// Serialises commit writes, so that the newest commit is the one stored.
    pub commit_lock: Mutex<()>,
}

impl State {
    pub fn partition(&self, place: &TopicPartition) -> Option<&Partition> {
        self.topics.get(&place.topic)?.get(place.partition as usize)
    }

    fn partitions_of(&self, topics: &[String]) -> Vec<TopicPartition> {
        let mut all: Vec<TopicPartition> = topics
            .iter()
            .flat_map(|t| self.topics.get(t).into_iter().flatten().map(|p| p.place.clone()))
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Where a consumer starts in `place`: the group's commit if any, else its start.
    fn start_of(&self, subscription: &Subscription, place: &TopicPartition) -> u64 {
        let committed =
            subscription.group.as_ref().and_then(|g| self.groups.get(g)?.committed.get(place).copied());
        self.partition(place).map_or(0, |p| p.position(subscription.start, committed))
    }

    fn reassign(&mut self, id: u64, partitions: Vec<TopicPartition>) {
        let subscription = self.consumers[&id].subscription.clone();
        let positions = partitions.iter().map(|p| (p.clone(), self.start_of(&subscription, p))).collect();
        let consumer = self.consumers.get_mut(&id).expect("a live consumer");
        let old = std::mem::replace(&mut consumer.positions, positions);
        if !old.is_empty() {
            consumer.pending.push(ConsumerEvent::Revoked(old.into_keys().collect()));
        }
        consumer.pending.push(ConsumerEvent::Assigned(partitions));
        consumer.generation += 1;
    }

    /// Revokes every member's partitions and deals the group's partitions again.
    fn rebalance(&mut self, group: &str) {
        let members: BTreeMap<String, u64> =
            self.groups.get(group).map(|g| g.members.clone()).unwrap_or_default();
        let topics: BTreeMap<String, Vec<String>> = members
            .iter()
            .map(|(name, id)| (name.clone(), self.consumers[id].subscription.topics.clone()))
            .collect();
        let all: Vec<String> = topics.values().flatten().cloned().collect();
        let dealt = groups::assign(&topics, &self.partitions_of(&all));
        for (name, partitions) in dealt {
            self.reassign(members[&name], partitions);
        }
    }

    /// Adds a consumer: every partition of its topics, or its group's share after a rebalance.
    pub fn add_consumer(&mut self, subscription: Subscription, sink: ConsumerSink) -> Result<u64, LogError> {
        if let Some(unknown) = subscription.topics.iter().find(|t| !self.topics.contains_key(*t)) {
            return Err(LogError::UnknownTopic(unknown.clone()));
        }
        if subscription.topics.is_empty() {
            return Err(LogError::Invalid("a subscription names no topic".into()));
        }
        if let Some(group) = &subscription.group {
            if self.groups.get(group).is_some_and(|g| g.members.contains_key(&subscription.member)) {
                return Err(LogError::Invalid(format!(
                    "group {group:?} already has a member named {:?}",
                    subscription.member
                )));
            }
        }
        let id = self.next_consumer;
        self.next_consumer += 1;
        let consumer = ConsumerState {
            credit: u64::from(subscription.credit),
            subscription: subscription.clone(),
            sink,
            positions: BTreeMap::new(),
            pending: Vec::new(),
            generation: 0,
        };
        self.consumers.insert(id, consumer);
        match subscription.group {
            Some(group) => {
                self.groups.entry(group.clone()).or_default().members.insert(subscription.member, id);
                self.rebalance(&group);
            }
            None => {
                let all = self.partitions_of(&subscription.topics);
                self.reassign(id, all);
            }
        }
        Ok(id)
    }

    /// Removes a consumer; its group, if any, rebalances.
    pub fn remove_consumer(&mut self, id: u64) {
        let Some(consumer) = self.consumers.remove(&id) else { return };
        if let Some(group) = consumer.subscription.group {
            if let Some(g) = self.groups.get_mut(&group) {
                g.members.remove(&consumer.subscription.member);
            }
            self.rebalance(&group);
        }
    }
}
