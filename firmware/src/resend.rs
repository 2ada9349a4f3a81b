//! The resend ring: encoded frames kept until the cluster acknowledges them.
//!
//! At most `FRAMES` frames (default 256) in a byte arena of `ARENA` bytes (default 128 KiB),
//! oldest first. A push into a full ring drops the oldest frame (counted in `dropped_full`);
//! a push that does not fit the arena drops the oldest frames until it does (counted in
//! `dropped_arena`); a frame larger than the whole arena is not kept (counted in `too_large`).
//! Frames are stored as sent (encoded and MAC'd), so after a reboot those of older boot epochs
//! are resent unchanged, with their own epoch. An ack `(boot_epoch, first..=last)` removes the
//! frames it names. Frames are packed in order at the start of the arena; removal moves the
//! frames after the first removed one down (acks usually name the oldest, so little moves).
//!
//! The ring is part of the mote's persistent state: the host keeps it across reboots ("flash").

/// One kept frame's bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    boot_epoch: u32,
    seq: u32,
    offset: usize,
    len: usize,
    /// When it was last handed out; `None` means "due now" (after a reboot).
    sent_ms: Option<u64>,
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Kept, after dropping this many older frames.
    Kept {
        /// Older frames dropped to make room.
        dropped: usize,
    },
    /// Larger than the arena: not kept.
    TooLarge,
}

/// Drop counters (since the ring was created: they persist with it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RingStats {
    /// Frames dropped because the ring held `FRAMES` frames.
    pub dropped_full: u64,
    /// Frames dropped because the arena was full.
    pub dropped_arena: u64,
    /// Frames never kept because they were larger than the arena.
    pub too_large: u64,
}

impl RingStats {
    /// Every frame lost to the ring's bounds.
    pub fn total(&self) -> u64 {
        self.dropped_full + self.dropped_arena + self.too_large
    }
}

/// A kept frame, as iteration yields it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending<'a> {
    /// Boot epoch it was sent in.
    pub boot_epoch: u32,
    /// Its sequence number.
    pub seq: u32,
    /// The encoded frame.
    pub bytes: &'a [u8],
}

/// Unacknowledged frames in a fixed arena.
#[derive(Clone, Debug)]
pub struct ResendRing<const FRAMES: usize = 256, const ARENA: usize = 131_072> {
    entries: [Entry; FRAMES],
    len: usize,
    arena: [u8; ARENA],
    stats: RingStats,
}

impl<const FRAMES: usize, const ARENA: usize> Default for ResendRing<FRAMES, ARENA> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const FRAMES: usize, const ARENA: usize> ResendRing<FRAMES, ARENA> {
    /// An empty ring.
    pub fn new() -> Self {
        Self { entries: [Entry::default(); FRAMES], len: 0, arena: [0; ARENA], stats: RingStats::default() }
    }

    /// Frames kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Arena bytes in use.
    pub fn bytes_used(&self) -> usize {
        self.entries[..self.len].last().map_or(0, |e| e.offset + e.len)
    }

    /// Drop counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Removes the entries for which `drop(index, entry)` is true, compacting the arena.
    fn remove_where(&mut self, mut drop: impl FnMut(usize, &Entry) -> bool) -> usize {
        let (mut kept, mut write) = (0, 0);
        for i in 0..self.len {
            let e = self.entries[i];
            if drop(i, &e) {
                continue;
            }
            if e.offset != write {
                self.arena.copy_within(e.offset..e.offset + e.len, write);
            }
            self.entries[kept] = Entry { offset: write, ..e };
            write += e.len;
            kept += 1;
        }
        let removed = self.len - kept;
        self.len = kept;
        removed
    }

    /// Keeps `frame` (sent at `now_ms` in `boot_epoch` as `seq`), dropping the oldest frames as
    /// the bounds require.
    pub fn push(&mut self, boot_epoch: u32, seq: u32, frame: &[u8], now_ms: u64) -> Pushed {
        if frame.len() > ARENA || FRAMES == 0 {
            self.stats.too_large += 1;
            return Pushed::TooLarge;
        }
        let mut dropped = 0;
        if self.len == FRAMES {
            dropped += self.remove_where(|i, _| i == 0);
            self.stats.dropped_full += 1;
        }
        let used = self.bytes_used();
        if used + frame.len() > ARENA {
            // Drop the oldest until the frame fits.
            let mut freed = 0;
            let mut n = 0;
            while used - freed + frame.len() > ARENA {
                freed += self.entries[n].len;
                n += 1;
            }
            dropped += self.remove_where(|i, _| i < n);
            self.stats.dropped_arena += n as u64;
        }
        let offset = self.bytes_used();
        self.arena[offset..offset + frame.len()].copy_from_slice(frame);
        self.entries[self.len] = Entry { boot_epoch, seq, offset, len: frame.len(), sent_ms: Some(now_ms) };
        self.len += 1;
        Pushed::Kept { dropped }
    }

    /// Removes the frames of `boot_epoch` with `first_seq <= seq <= last_seq`; returns how many.
    pub fn ack(&mut self, boot_epoch: u32, first_seq: u32, last_seq: u32) -> usize {
        self.remove_where(|_, e| e.boot_epoch == boot_epoch && (first_seq..=last_seq).contains(&e.seq))
    }

    /// The kept frames, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Pending<'_>> + '_ {
        self.entries[..self.len].iter().map(|e| Pending {
            boot_epoch: e.boot_epoch,
            seq: e.seq,
            bytes: &self.arena[e.offset..e.offset + e.len],
        })
    }

    /// Hands out, oldest first, up to `max` frames last sent at least `min_age_ms` before
    /// `now_ms` (or never since boot), and marks them sent at `now_ms`; returns how many.
    pub fn resend_due(
        &mut self,
        now_ms: u64,
        min_age_ms: u64,
        max: usize,
        out: &mut impl FnMut(&[u8]),
    ) -> usize {
        let mut n = 0;
        for e in self.entries[..self.len].iter_mut() {
            if n == max {
                break;
            }
            let due = e.sent_ms.is_none_or(|t| now_ms >= t.saturating_add(min_age_ms));
            if due {
                out(&self.arena[e.offset..e.offset + e.len]);
                e.sent_ms = Some(now_ms);
                n += 1;
            }
        }
        n
    }

    /// When `resend_due` with `min_age_ms` next hands a frame out (ms; 0: now), or None
    /// when nothing is kept.
    pub fn next_due_ms(&self, min_age_ms: u64) -> Option<u64> {
        self.entries[..self.len].iter().map(|e| e.sent_ms.map_or(0, |t| t.saturating_add(min_age_ms))).min()
    }

    /// Every kept frame becomes due at once: after a reboot (the clock may have restarted) and
    /// on a new connection (what went out before it may never have arrived).
    pub fn make_all_due(&mut self) {
        for e in self.entries[..self.len].iter_mut() {
            e.sent_ms = None;
        }
    }
}
