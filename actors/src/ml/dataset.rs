//! Training data from the streams: feature windows labelled by outcomes ([`super::labels`]),
//! with the data-quality rule applied and a validation split by motor.
//!
//! - A window the proxy flagged with sensor faults never enters training data (BLUEPRINT
//!   section 10, "Data quality"); nor does an unlabelled one (too recent to say).
//! - Validation splits by motor, never by window: a motor's windows are strongly correlated,
//!   so a split by window would validate on the training motors. Which motors validate is a
//!   function of the mote id and a seed (stable as the fleet grows).
//! - The dataset's SHA-256 (every value's bits and every label, in order) is the lineage the
//!   registry records.

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::labels::{LabelRule, Outcomes};

/// One feature window as the trainer keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub mote: u32,
    /// When the cluster received it, ms (the label rule's clock).
    pub time_ms: u64,
    pub values: Vec<f64>,
    /// The proxy flagged a sensor fault in it.
    pub flagged: bool,
}

/// What assembling left out, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub positive: usize,
    pub negative: usize,
    pub unlabelled: usize,
    pub flagged: usize,
    /// Windows whose vector is not as wide as the first one's.
    pub misshapen: usize,
}

/// Labelled windows as a matrix, one row per window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub x: Array2<f64>,
    /// 1.0 positive, 0.0 negative.
    pub y: Array1<f64>,
    /// Each row's mote.
    pub motes: Vec<u32>,
    pub counts: Counts,
}

impl Dataset {
    /// Labels `windows` by `outcomes` as known at `now_ms`; leaves out flagged, unlabelled and
    /// misshapen windows (counted).
    pub fn assemble(windows: &[Window], outcomes: &Outcomes, rule: &LabelRule, now_ms: u64) -> Dataset {
        let width = windows.first().map_or(0, |w| w.values.len());
        let mut counts = Counts::default();
        let (mut values, mut labels, mut motes) = (Vec::new(), Vec::new(), Vec::new());
        for window in windows {
            if window.flagged {
                counts.flagged += 1;
                continue;
            }
            if window.values.len() != width {
                counts.misshapen += 1;
                continue;
            }
            let Some(label) = outcomes.label(rule, window.mote, window.time_ms, now_ms) else {
                counts.unlabelled += 1;
                continue;
            };
            if label.is_positive() {
                counts.positive += 1;
            } else {
                counts.negative += 1;
            }
            values.extend_from_slice(&window.values);
            labels.push(if label.is_positive() { 1.0 } else { 0.0 });
            motes.push(window.mote);
        }
        let x = Array2::from_shape_vec((labels.len(), width), values).expect("rows of one width");
        Dataset { x, y: Array1::from(labels), motes, counts }
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// SHA-256 over the rows' values (bits, little-endian) and labels, in order.
    pub fn sha256(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update((self.x.ncols() as u64).to_le_bytes());
        for (row, label) in self.x.rows().into_iter().zip(self.y.iter()) {
            for v in row {
                hasher.update(v.to_bits().to_le_bytes());
            }
            hasher.update(label.to_bits().to_le_bytes());
        }
        hasher.finalize().into()
    }

    /// Splits by motor: a mote's rows all go to validation (returned second) when its id,
    /// hashed with `seed`, falls in the first `share` of the range.
    pub fn split_by_motor(&self, share: f64, seed: u64) -> (Dataset, Dataset) {
        let validates = |mote: u32| (splitmix64(u64::from(mote) ^ seed) as f64 / u64::MAX as f64) < share;
        let pick = |keep: &dyn Fn(u32) -> bool| {
            let rows: Vec<usize> = (0..self.len()).filter(|&i| keep(self.motes[i])).collect();
            let x = self.x.select(ndarray::Axis(0), &rows);
            let y = Array1::from(rows.iter().map(|&i| self.y[i]).collect::<Vec<_>>());
            let motes = rows.iter().map(|&i| self.motes[i]).collect();
            let positive = y.iter().filter(|v| **v == 1.0).count();
            let counts = Counts { positive, negative: rows.len() - positive, ..Counts::default() };
            Dataset { x, y, motes, counts }
        };
        (pick(&|m| !validates(m)), pick(&validates))
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of a small integer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::{Defect, MaintenanceEvent, MaintenanceRecord};

    const DAY: u64 = 24 * 3_600_000;

    fn window(mote: u32, day: u64, flagged: bool) -> Window {
        Window { mote, time_ms: day * DAY, values: vec![mote as f64, day as f64], flagged }
    }

    #[test]
    fn labelled_unflagged_windows_only_and_split_by_motor() {
        let mut outcomes = Outcomes::default();
        for mote in [1, 2] {
            let event = MaintenanceEvent::Failure { defect: Defect::OuterRace };
            outcomes.record(&MaintenanceRecord { mote, time_ms: 20 * DAY, event });
        }
        let mut windows = Vec::new();
        for mote in 1..=40 {
            for day in 0..25 {
                windows.push(window(mote, day, day == 3));
            }
        }
        windows.push(Window { mote: 1, time_ms: 0, values: vec![1.0], flagged: false });
        let now = 30 * DAY;
        let data = Dataset::assemble(&windows, &outcomes, &LabelRule::default(), now);
        // Motes 1 and 2: days 13..=19 are within 7 days of the failure at day 20.
        assert_eq!(data.counts.positive, 2 * 7);
        // Day 24's windows are not 7 days old at day 30: unlabelled; day 3's are flagged.
        assert_eq!(data.counts.unlabelled, 40);
        assert_eq!(data.counts.flagged, 40);
        assert_eq!(data.counts.misshapen, 1);
        assert_eq!(data.counts.negative, 40 * 25 - 40 - 40 - 14);
        assert_eq!((data.len(), data.x.ncols()), (data.counts.positive + data.counts.negative, 2));
        assert!(data.x.rows().into_iter().all(|r| r[1] != 3.0), "no flagged window");

        let (train, validation) = data.split_by_motor(0.25, 7);
        assert_eq!(train.len() + validation.len(), data.len());
        let validating: std::collections::BTreeSet<u32> = validation.motes.iter().copied().collect();
        assert!(train.motes.iter().all(|m| !validating.contains(m)), "no motor on both sides");
        assert!((4..=18).contains(&validating.len()), "about a quarter of 40 motors: {validating:?}");
        let many = (0..4000u64).filter(|&m| splitmix64(m ^ 7) as f64 / (u64::MAX as f64) < 0.25).count();
        assert!((900..1100).contains(&many), "a quarter of 4000 motors: {many}");
        assert_eq!(data.split_by_motor(0.25, 7), (train, validation), "deterministic");

        assert_eq!(data.sha256(), data.clone().sha256());
        let mut changed = data.clone();
        changed.y[0] = 1.0 - changed.y[0];
        assert_ne!(changed.sha256(), data.sha256(), "the hash covers the labels");
    }
}
