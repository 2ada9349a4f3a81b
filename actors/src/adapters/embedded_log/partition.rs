//! One partition: its segment files (`seg@{topic}@{partition}@{base offset}`), the in-memory index
//! of their frames, recovery from what is on disk, where reads start, and retention.
//!
//! Recovery scans every segment. A torn tail of the last segment (a write cut short) is cut; a
//! corrupt frame is reported (`LogError::Corrupt` naming file and byte) and skipped by its
//! length, so the records before and after it stay readable; a length no frame can have makes
//! the rest of that segment unreadable (reported), and new appends then go to a new segment
//! (if that was the last one; the offset after the damage start is never reused in it).
//! Frames at or past the next segment's base offset were superseded (written before a failed
//! write was rolled back) and are ignored. Offsets missing between segments (possible only when
//! files were not synced, under `FsyncPolicy::Never` or `Interval`, and the OS wrote a later file
//! but not an earlier one's tail before a power loss) are reported; they are never reused.

use std::io;

use crate::ports::eventlog::{LogError, Start, TopicPartition};

use super::frame::{self, Ending, FrameInfo};
use super::storage::Storage;

const SEGMENT_PREFIX: &str = "seg@";

/// A segment file and its frames.
#[derive(Debug)]
pub struct Segment {
    pub file: String,
    pub base: u64,
    pub bytes: u64,
    pub frames: Vec<FrameInfo>,
}

impl Segment {
    fn new(place: &TopicPartition, base: u64) -> Self {
        Segment { file: segment_name(place, base), base, bytes: 0, frames: Vec::new() }
    }

    fn newest_ms(&self) -> Option<u64> {
        self.frames.iter().map(|f| f.timestamp_ms).max()
    }
}

/// A contiguous run of frames to read from one file.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub file: String,
    pub frames: Vec<FrameInfo>,
}

impl ReadPlan {
    /// The byte range covering every frame.
    pub fn range(&self) -> (u64, usize) {
        let (first, last) = (self.frames[0], self.frames[self.frames.len() - 1]);
        (first.pos, (last.pos + u64::from(last.len) - first.pos) as usize)
    }
}

/// Retention limits per partition; whole oldest segments go, never the active one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most about this many bytes (the oldest segments go first).
    pub max_bytes: Option<u64>,
    /// Remove a segment once its newest record is older than this.
    pub max_age_ms: Option<u64>,
}

/// The file name of `place`'s segment starting at `base`.
pub fn segment_name(place: &TopicPartition, base: u64) -> String {
    format!("{SEGMENT_PREFIX}{}@{}@{base:020}", place.topic, place.partition)
}

/// (topic, partition, base) of a segment file name.
pub fn parse_segment_name(name: &str) -> Option<(String, u32, u64)> {
    let mut parts = name.strip_prefix(SEGMENT_PREFIX)?.split('@');
    let (topic, partition, base) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    parts.next().is_none().then(|| (topic.to_string(), partition, base))
}

/// A partition's index.
#[derive(Debug)]
pub struct Partition {
    pub place: TopicPartition,
    pub segments: Vec<Segment>,
    /// The next offset to assign.
    pub next: u64,
    /// Offsets below this are acknowledged and may be read.
    pub visible: u64,
    /// The next append starts a new segment (recovery found the last one's tail unreadable).
    pub roll: bool,
    /// The last segment holds bytes past its acknowledged length (a failed write whose cut
    /// failed too): the writer cuts them before writing more.
    pub unclean_tail: bool,
}

impl Partition {
    pub fn new(place: TopicPartition) -> Self {
        Partition { place, segments: Vec::new(), next: 0, visible: 0, roll: false, unclean_tail: false }
    }

    /// Rebuilds the index from the segment files starting at `bases` (sorted), cutting a torn
    /// tail; damage found is pushed to `reports`. Returns the bytes cut.
    pub fn recover(
        &mut self,
        storage: &dyn Storage,
        bases: &[u64],
        reports: &mut Vec<LogError>,
    ) -> io::Result<u64> {
        let mut cut = 0;
        // The offset after the last frame of the earlier segments.
        let mut frames_end: Option<u64> = None;
        for (i, &base) in bases.iter().enumerate() {
            let mut segment = Segment::new(&self.place, base);
            let len = storage.len(&segment.file)?;
            let bytes = storage.read(&segment.file, 0, len as usize)?;
            let scan = frame::scan(&bytes);
            let superseded = bases.get(i + 1).copied().unwrap_or(u64::MAX);
            let mut last = base.checked_sub(1);
            for info in scan.frames {
                if info.offset < superseded && last.is_none_or(|l| info.offset > l) {
                    last = Some(info.offset);
                    segment.frames.push(info);
                }
            }
            if let (Some(end), Some(first)) = (frames_end, segment.frames.first()) {
                if first.offset > end {
                    reports.push(LogError::Corrupt(format!(
                        "offsets {end}..{} of {} are missing before {} (written but never synced before a \
                         power loss?)",
                        first.offset, self.place, segment.file
                    )));
                }
            }
            frames_end = segment.frames.last().map(|f| f.offset + 1).or(frames_end);
            for (pos, why) in scan.corrupt {
                reports.push(LogError::Corrupt(format!(
                    "{} at byte {pos}: {why}; record skipped",
                    segment.file
                )));
            }
            let is_last = i + 1 == bases.len();
            segment.bytes = len;
            match scan.ending {
                Some(Ending::Torn { at }) if is_last => {
                    storage.truncate(&segment.file, at)?;
                    cut += len - at;
                    segment.bytes = at;
                }
                Some(Ending::Torn { at }) | Some(Ending::Unreadable { at }) => {
                    reports.push(LogError::Corrupt(format!(
                        "{} from byte {at} to its end ({len} bytes): no frame can be read there",
                        segment.file
                    )));
                    if is_last {
                        // New appends go to a new segment, whose base must be new too.
                        self.roll = true;
                        self.next = self.next.max(base + 1);
                    }
                }
                Some(Ending::Clean) | None => {}
            }
            self.next = self.next.max(base).max(last.map_or(base, |l| l + 1));
            self.segments.push(segment);
        }
        self.visible = self.next;
        Ok(cut)
    }

    /// The earliest retained offset.
    pub fn earliest(&self) -> u64 {
        self.segments.first().map_or(self.next, |s| s.base)
    }

    /// Where a reader starting at `start` begins (`committed` is the group's offset, if any).
    pub fn position(&self, start: Start, committed: Option<u64>) -> u64 {
        let clamp = |offset: u64| offset.clamp(self.earliest(), self.visible);
        match (start, committed) {
            (_, Some(offset)) | (Start::Offset(offset), None) => clamp(offset),
            (Start::Earliest | Start::Committed, None) => self.earliest(),
            (Start::Latest, None) => self.visible,
            (Start::Time(t), None) => self
                .segments
                .iter()
                .flat_map(|s| &s.frames)
                .find(|f| f.timestamp_ms >= t && f.offset < self.visible)
                .map_or(self.visible, |f| f.offset),
        }
    }

    /// Up to `max` visible frames from offset `from` on, within one segment.
    pub fn plan(&self, from: u64, max: usize) -> Option<ReadPlan> {
        let segment = self.segments.iter().rev().find(|s| s.base <= from).or(self.segments.first())?;
        let start = segment.frames.partition_point(|f| f.offset < from);
        let frames: Vec<FrameInfo> = segment.frames[start..]
            .iter()
            .take_while(|f| f.offset < self.visible)
            .take(max)
            .copied()
            .collect();
        if frames.is_empty() {
            // Past this segment's last frame (or a gap at its end): the next segment holds more.
            let later = self.segments.iter().find(|s| s.base > from && !s.frames.is_empty())?;
            return (later.base < self.visible).then(|| self.plan(later.base, max)).flatten();
        }
        Some(ReadPlan { file: segment.file.clone(), frames })
    }

    /// The segment new appends go to (a new one when the last is full or must not grow).
    pub fn active(&mut self, segment_bytes: u64) -> &mut Segment {
        let full = self.segments.last().is_none_or(|s| s.bytes >= segment_bytes && !s.frames.is_empty());
        if self.roll || full {
            self.roll = false;
            self.segments.push(Segment::new(&self.place, self.next));
        }
        self.segments.last_mut().expect("a segment was just ensured")
    }

    /// Removes whole oldest segments beyond `retention` (never the last). Returns how many went.
    pub fn retain(&mut self, retention: Retention, now_ms: u64, storage: &dyn Storage) -> io::Result<usize> {
        let mut removed = 0;
        while self.segments.len() > 1 {
            let total: u64 = self.segments.iter().map(|s| s.bytes).sum();
            let oldest = &self.segments[0];
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            let too_old = retention.max_age_ms.is_some_and(|age| {
                oldest.newest_ms().is_none_or(|newest| newest.saturating_add(age) < now_ms)
            });
            if !(too_big || too_old) {
                break;
            }
            storage.remove(&oldest.file)?;
            self.segments.remove(0);
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort_by_base() {
        let place = TopicPartition::new("plant.telemetry-1", 3);
        assert_eq!(parse_segment_name(&segment_name(&place, 42)), Some(("plant.telemetry-1".into(), 3, 42)));
        assert!(segment_name(&place, 9) < segment_name(&place, 10));
        assert_eq!(parse_segment_name("log.meta"), None);
    }
}
