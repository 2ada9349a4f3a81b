//! The feature windows a training actor keeps: the latest ones, once per frame (the streams are
//! at least once), in arrival order, up to a limit (the oldest go first).

use std::collections::{BTreeSet, VecDeque};

use crate::inference::features::FeatureRecord;
use crate::ml::dataset::Window;

/// A frame's name: (mote, boot epoch, sequence).
type Frame = (u32, u32, u32);

/// The kept windows.
#[derive(Debug, Clone)]
pub struct WindowStore {
    windows: VecDeque<(Frame, Window)>,
    seen: BTreeSet<Frame>,
    limit: usize,
}

impl WindowStore {
    pub fn new(limit: usize) -> Self {
        WindowStore { windows: VecDeque::new(), seen: BTreeSet::new(), limit }
    }

    /// Keeps `features` as a window at its receive time, unless its frame is kept already;
    /// returns the window if it is new.
    pub fn keep(&mut self, features: FeatureRecord) -> Option<&Window> {
        let frame = features.frame_id();
        if !self.seen.insert(frame) {
            return None;
        }
        let window = Window {
            mote: features.mote,
            time_ms: features.received_ms,
            flagged: features.faults.any(),
            values: features.values,
        };
        self.windows.push_back((frame, window));
        while self.windows.len() > self.limit {
            if let Some((old, _)) = self.windows.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.windows.back().map(|(_, w)| w)
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The kept windows, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Window> {
        self.windows.iter().map(|(_, w)| w)
    }

    /// A copy of every kept window, oldest first (what `Dataset::assemble` takes).
    pub fn to_vec(&self) -> Vec<Window> {
        self.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::features::FeatureSource;
    use crate::things::sensor_faults::SensorFaults;

    fn record(mote: u32, seq: u32) -> FeatureRecord {
        FeatureRecord {
            mote,
            boot_epoch: 1,
            seq,
            capture_ms: 0,
            received_ms: u64::from(seq),
            source: FeatureSource::Dsp,
            faults: SensorFaults::default(),
            values: vec![f64::from(seq)],
        }
    }

    #[test]
    fn keeps_each_frame_once_and_only_the_latest() {
        let mut store = WindowStore::new(3);
        assert!(store.keep(record(1, 1)).is_some());
        assert!(store.keep(record(1, 1)).is_none(), "a copy");
        for seq in 2..=4 {
            store.keep(record(1, seq));
        }
        let kept: Vec<u64> = store.iter().map(|w| w.time_ms).collect();
        assert_eq!(kept, [2, 3, 4]);
        // The dropped frame is forgotten with its window: were it to come again, it is kept.
        assert!(store.keep(record(1, 1)).is_some());
        assert_eq!(store.len(), 3);
    }
}
