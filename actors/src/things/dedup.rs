//! De-duplication of a mote's frames by (boot epoch, sequence).
//!
//! Per epoch: every sequence below `below` was seen, plus the set seen at or above it. A mote
//! resends unacknowledged frames, also after a reboot (with their old epoch), and QoS 1 may
//! duplicate, so frames of the last `EPOCHS_KEPT` epochs are tracked; a frame of an older epoch
//! is `Stale` (refused, yet acknowledged so the mote forgets it). A gap that stays open while
//! `GAP_WINDOW` newer frames arrive is closed as lost (the mote's ring dropped it).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Epochs whose frames are still told apart.
pub const EPOCHS_KEPT: usize = 8;
/// How far past a gap the window may reach before the gap is given up.
pub const GAP_WINDOW: u32 = 4096;

/// The verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    /// From an epoch older than every one tracked.
    Stale,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct EpochWindow {
    below: u32,
    above: BTreeSet<u32>,
}

/// A mote's de-duplication state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameDedup {
    epochs: BTreeMap<u32, EpochWindow>,
    /// Sequence numbers given up as lost.
    lost: u64,
}

impl FrameDedup {
    /// The verdict `observe` would give, without recording anything (a proxy records a frame
    /// only once it has passed it on).
    pub fn check(&self, boot_epoch: u32, seq: u32) -> Seen {
        match self.epochs.get(&boot_epoch) {
            Some(w) if seq < w.below || w.above.contains(&seq) => Seen::Duplicate,
            Some(_) => Seen::New,
            None if self.epochs.len() >= EPOCHS_KEPT
                && self.epochs.keys().next().is_some_and(|oldest| boot_epoch < *oldest) =>
            {
                Seen::Stale
            }
            None => Seen::New,
        }
    }

    /// Records a frame; says whether it was new, a duplicate, or too old to tell.
    pub fn observe(&mut self, boot_epoch: u32, seq: u32) -> Seen {
        if !self.epochs.contains_key(&boot_epoch) {
            if self.epochs.len() >= EPOCHS_KEPT
                && self.epochs.keys().next().is_some_and(|oldest| boot_epoch < *oldest)
            {
                return Seen::Stale;
            }
            self.epochs.insert(boot_epoch, EpochWindow::default());
            while self.epochs.len() > EPOCHS_KEPT {
                self.epochs.pop_first();
            }
        }
        let window = self.epochs.get_mut(&boot_epoch).expect("inserted above");
        if seq < window.below || !window.above.insert(seq) {
            return Seen::Duplicate;
        }
        while window.above.remove(&window.below) {
            window.below += 1;
        }
        // A gap held open too long: count it lost and move past it.
        while window.above.last().is_some_and(|top| top - window.below >= GAP_WINDOW) {
            let next = *window.above.first().expect("not empty");
            self.lost += u64::from(next - window.below);
            window.below = next;
            while window.above.remove(&window.below) {
                window.below += 1;
            }
        }
        Seen::New
    }

    /// Sequence numbers missing below the highest seen, over the tracked epochs.
    pub fn open_gaps(&self) -> u64 {
        self.epochs
            .values()
            .map(|w| w.above.last().map_or(0, |top| u64::from(top + 1 - w.below) - w.above.len() as u64))
            .sum()
    }

    /// Sequence numbers given up as lost.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_is_new_once_whatever_the_order() {
        let mut d = FrameDedup::default();
        let verdicts: Vec<Seen> = [0, 2, 1, 2, 0, 5, 1]
            .into_iter()
            .map(|seq| {
                let peek = d.check(1, seq);
                let seen = d.observe(1, seq);
                assert_eq!(peek, seen, "check agrees with observe");
                seen
            })
            .collect();
        use Seen::*;
        assert_eq!(verdicts, [New, New, New, Duplicate, Duplicate, New, Duplicate]);
        assert_eq!(d.open_gaps(), 2, "3 and 4 are missing");
        assert_eq!(d.observe(1, 3), Seen::New);
        assert_eq!(d.open_gaps(), 1);
    }

    #[test]
    fn epochs_are_kept_apart_and_old_ones_go_stale() {
        let mut d = FrameDedup::default();
        assert_eq!(d.observe(1, 0), Seen::New);
        assert_eq!(d.observe(2, 0), Seen::New, "same sequence, new boot");
        assert_eq!(d.observe(1, 1), Seen::New, "a resend from the previous boot");
        assert_eq!(d.observe(1, 0), Seen::Duplicate);
        for epoch in 3..=10 {
            d.observe(epoch, 0);
        }
        assert_eq!(d.check(1, 7), Seen::Stale);
        assert_eq!(d.observe(1, 7), Seen::Stale, "epoch 1 is no longer tracked");
        assert_eq!(d.observe(10, 0), Seen::Duplicate);
    }

    #[test]
    fn a_gap_left_open_too_long_is_counted_lost() {
        let mut d = FrameDedup::default();
        d.observe(1, 0);
        for seq in 2..=GAP_WINDOW + 1 {
            assert_eq!(d.observe(1, seq), Seen::New);
        }
        assert_eq!(d.lost(), 1);
        assert_eq!(d.open_gaps(), 0);
        assert_eq!(d.observe(1, 1), Seen::Duplicate, "given up: a copy arriving this late is refused");
    }
}
