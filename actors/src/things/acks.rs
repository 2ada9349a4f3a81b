//! Acknowledgements gathered per mote and sent as ranges.
//!
//! A proxy acknowledges each frame once downstream stored it. Sending one ack per frame doubles
//! the broker's traffic, so the proxy gathers them: the first ack of a batch sets a timer
//! (`proxy::ACK_DELAY`, 100 ms); its flush sends one `Ack` per run of consecutive sequence
//! numbers. (Flushing as soon as the proxy's queue was drained kept ranges one frame long at
//! saturation, with 100 motes interleaved.) An ack range never covers a frame that was not
//! acknowledged.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Downlink;

/// Acks waiting for the next flush.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AckBatch {
    pending: BTreeSet<(u32, u32)>,
}

impl AckBatch {
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Adds an ack; true if it starts a batch (the caller then queues a flush).
    pub fn add(&mut self, boot_epoch: u32, seq: u32) -> bool {
        let first = self.pending.is_empty();
        self.pending.insert((boot_epoch, seq));
        first
    }

    /// Takes the batch as ranges of consecutive sequence numbers, per epoch, in order.
    pub fn drain(&mut self) -> Vec<Downlink> {
        let mut ranges: Vec<Downlink> = Vec::new();
        for (epoch, seq) in std::mem::take(&mut self.pending) {
            match ranges.last_mut() {
                Some(Downlink::Ack { boot_epoch, last_seq, .. })
                    if *boot_epoch == epoch && last_seq.checked_add(1) == Some(seq) =>
                {
                    *last_seq = seq;
                }
                _ => ranges.push(Downlink::Ack { boot_epoch: epoch, first_seq: seq, last_seq: seq }),
            }
        }
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(boot_epoch: u32, first_seq: u32, last_seq: u32) -> Downlink {
        Downlink::Ack { boot_epoch, first_seq, last_seq }
    }

    #[test]
    fn consecutive_acks_become_one_range_and_gaps_stay_gaps() {
        let mut batch = AckBatch::default();
        assert!(batch.add(2, 7), "the first ack starts a batch");
        for seq in [5, 6, 9, 8, 12] {
            assert!(!batch.add(2, seq));
        }
        batch.add(1, 40);
        batch.add(2, u32::MAX);
        assert_eq!(batch.drain(), [ack(1, 40, 40), ack(2, 5, 9), ack(2, 12, 12), ack(2, u32::MAX, u32::MAX)]);
        assert!(batch.drain().is_empty());
        assert!(batch.add(2, 13), "a new batch after a drain");
    }
}
