//! A consumer's progress in the partitions it holds: records read but not done yet, and the
//! offset it may commit (the first record not done). Records finish out of order; the commit never passes one
//! that is not done, so after a crash or a rebalance the next owner reads it again.

use std::collections::BTreeMap;

use crate::ports::eventlog::adapter::LogRequest;
use crate::ports::eventlog::TopicPartition;

/// A consumer's progress in every partition it holds, and the log requests that follow: the
/// commit as far as the records done allow, credit back for each record done, and credit back
/// for the pending records of partitions it loses (or the consumer would starve).
#[derive(Debug)]
pub struct Holdings<V> {
    partitions: BTreeMap<TopicPartition, Progress<V>>,
}

impl<V> Default for Holdings<V> {
    fn default() -> Self {
        Holdings { partitions: BTreeMap::new() }
    }
}

impl<V> Holdings<V> {
    /// The progress in `partition` (held from its first record on).
    pub fn entry(&mut self, partition: &TopicPartition) -> &mut Progress<V> {
        self.partitions.entry(partition.clone()).or_default()
    }

    pub fn get_mut(&mut self, partition: &TopicPartition) -> Option<&mut Progress<V>> {
        self.partitions.get_mut(partition)
    }

    /// Records read and not done, over every partition.
    pub fn pending(&self) -> usize {
        self.partitions.values().map(Progress::pending).sum()
    }

    /// One record of `partition` is done: its commit, if the position moved, and one credit.
    pub fn done(&mut self, partition: &TopicPartition) -> Vec<LogRequest> {
        let mut requests: Vec<LogRequest> = self.commit(partition, false).into_iter().collect();
        requests.push(LogRequest::Grant(1));
        requests
    }

    /// Every partition's commit again (an earlier commit was refused).
    pub fn recommit(&mut self) -> Vec<LogRequest> {
        let partitions: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        partitions.iter().filter_map(|p| self.commit(p, true)).collect()
    }

    fn commit(&mut self, partition: &TopicPartition, again: bool) -> Option<LogRequest> {
        let next_offset = self.partitions.get_mut(partition)?.to_commit(again)?;
        Some(LogRequest::Commit { partition: partition.clone(), next_offset })
    }

    /// Forgets the partitions that are `gone` (revoked, or not in a new assignment: their next
    /// owner reads again what was not done); the credit of their pending records, if any.
    pub fn release(&mut self, gone: impl Fn(&TopicPartition) -> bool) -> Option<LogRequest> {
        let mut credit = 0;
        self.partitions.retain(|partition, progress| {
            let keep = !gone(partition);
            if !keep {
                credit += progress.pending() as u32;
            }
            keep
        });
        (credit > 0).then_some(LogRequest::Grant(credit))
    }
}

/// Progress in one assigned partition; `V` is what the owner keeps per record not done.
#[derive(Debug)]
pub struct Progress<V> {
    pending: BTreeMap<u64, V>,
    read_to: u64,
    committed: u64,
}

impl<V> Default for Progress<V> {
    fn default() -> Self {
        Progress { pending: BTreeMap::new(), read_to: 0, committed: 0 }
    }
}

impl<V> Progress<V> {
    /// A record was read; `value` is kept until it is done.
    pub fn read(&mut self, offset: u64, value: V) {
        self.read_to = self.read_to.max(offset + 1);
        self.pending.insert(offset, value);
    }

    /// A record was read and is done at once (nothing to wait for).
    pub fn skip(&mut self, offset: u64) {
        self.read_to = self.read_to.max(offset + 1);
    }

    pub fn get_mut(&mut self, offset: u64) -> Option<&mut V> {
        self.pending.get_mut(&offset)
    }

    /// The record is done; its value, or `None` if it was not pending.
    pub fn done(&mut self, offset: u64) -> Option<V> {
        self.pending.remove(&offset)
    }

    /// Records read and not done.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The offset to commit now, if it moved past the last one given (or `again`, after a
    /// refused commit, whenever there is anything to commit); taken as committed.
    pub fn to_commit(&mut self, again: bool) -> Option<u64> {
        let next = self.pending.keys().next().copied().unwrap_or(self.read_to);
        if next > self.committed || (again && next > 0) {
            self.committed = next;
            return Some(next);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_stops_at_the_first_record_not_done() {
        let mut p = Progress::default();
        for offset in 0..4 {
            p.read(offset, offset * 10);
        }
        assert_eq!(p.to_commit(false), None, "nothing done yet");
        assert_eq!(p.done(2), Some(20));
        assert_eq!(p.to_commit(false), None, "offset 0 is not done");
        assert_eq!(p.done(0), Some(0));
        assert_eq!(p.to_commit(false), Some(1));
        assert_eq!(p.done(1), Some(10));
        assert_eq!(p.to_commit(false), Some(3), "past 2, done earlier");
        p.skip(4);
        assert_eq!(p.done(3), Some(30));
        assert_eq!(p.to_commit(false), Some(5));
        assert_eq!(p.to_commit(false), None, "unchanged");
        assert_eq!(p.to_commit(true), Some(5), "again after a refusal");
        assert_eq!(p.done(3), None, "done twice");
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn holdings_commit_grant_and_give_back_the_credit_of_lost_partitions() {
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        let mut h = Holdings::default();
        h.entry(&a).read(0, ());
        h.entry(&a).read(1, ());
        h.entry(&b).read(0, ());
        assert_eq!(h.pending(), 3);
        h.get_mut(&a).unwrap().done(0);
        assert_eq!(
            h.done(&a),
            [LogRequest::Commit { partition: a.clone(), next_offset: 1 }, LogRequest::Grant(1)]
        );
        assert_eq!(h.recommit(), [LogRequest::Commit { partition: a.clone(), next_offset: 1 }]);
        assert_eq!(h.release(|p| *p == b), Some(LogRequest::Grant(1)), "b's pending record");
        assert_eq!(h.release(|p| *p == b), None, "nothing left to give back");
        assert_eq!(h.pending(), 1);
    }
}
