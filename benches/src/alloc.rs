//! One counting global allocator for every runtime in the process.
//!
//! It wraps `System` and, while counting is switched on, keeps the live byte count and the number
//! of allocations. Counting is off by default so that throughput runs pay no atomic per
//! allocation (that would tax the runtimes that allocate per message more than the others);
//! memory and allocation-profile runs switch it on around the window they measure.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};

/// The allocator (installed as `#[global_allocator]` in `main.rs`).
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && ON.load(Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && ON.load(Relaxed) {
            LIVE.fetch_add(layout.size() as i64, Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        if ON.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as i64, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && ON.load(Relaxed) {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
            ALLOCS.fetch_add(1, Relaxed);
        }
        p
    }
}

/// What the allocator has counted so far (while on).
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// Bytes allocated minus bytes freed while counting was on.
    pub live: i64,
    /// Allocations (and reallocations) while counting was on.
    pub allocs: u64,
}

impl Snapshot {
    pub fn now() -> Snapshot {
        Snapshot { live: LIVE.load(Relaxed), allocs: ALLOCS.load(Relaxed) }
    }
}

/// Counting is on while this guard lives. Deltas are only meaningful between two snapshots taken
/// under the same guard (frees of older blocks inside the window count, as they should).
pub struct CountingOn;

impl CountingOn {
    pub fn on() -> CountingOn {
        ON.store(true, Relaxed);
        CountingOn
    }
}

impl Drop for CountingOn {
    fn drop(&mut self) {
        ON.store(false, Relaxed);
    }
}
