//! A consumer's progress in one partition: records read but not done yet, and the offset it may
//! commit (the first record not done). Records finish out of order; the commit never passes one
//! that is not done, so after a crash or a rebalance the next owner reads it again.

use std::collections::BTreeMap;

use crate::ports::eventlog::TopicPartition;

/// Forgets the partitions that are `gone` (revoked, or not in a new assignment: their next
/// owner reads again what was not done) and returns how many of their records were pending:
/// credit to give back to the consumer, since those records will never be done here.
pub fn release<V>(
    partitions: &mut BTreeMap<TopicPartition, Progress<V>>,
    gone: impl Fn(&TopicPartition) -> bool,
) -> u32 {
    let mut credit = 0;
    partitions.retain(|partition, progress| {
        let keep = !gone(partition);
        if !keep {
            credit += progress.pending() as u32;
        }
        keep
    });
    credit
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
}
