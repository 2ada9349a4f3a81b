//! Fault points: named sites in the code where a simulation may make a rare thing happen (an
//! acknowledgement ignored, a heartbeat skipped), so that seeds reach paths that ordinary runs
//! seldom take. Inert in production: nothing is installed, and `point` is one thread-local read
//! that answers false.
//!
//! The simulator installs a set of enabled points, each with a probability, and a seeded
//! generator, on the thread that runs the world (`install`), and collects how often each fired
//! (`uninstall`). Everything stays on that thread, so runs stay deterministic.

use std::cell::RefCell;
use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Active {
    enabled: BTreeMap<&'static str, f64>,
    rng: ChaCha8Rng,
    hits: BTreeMap<&'static str, u64>,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Whether the rare path at site `name` is to be taken now.
pub fn point(name: &'static str) -> bool {
    ACTIVE.with(|active| {
        let mut active = active.borrow_mut();
        let Some(a) = active.as_mut() else { return false };
        let Some(&p) = a.enabled.get(name) else { return false };
        let fire = a.rng.random_bool(p);
        if fire {
            *a.hits.entry(name).or_insert(0) += 1;
        }
        fire
    })
}

/// Enables the points in `enabled` (name -> probability per visit) on this thread.
pub fn install(enabled: BTreeMap<&'static str, f64>, seed: u64) {
    ACTIVE.with(|active| {
        *active.borrow_mut() =
            Some(Active { enabled, rng: ChaCha8Rng::seed_from_u64(seed), hits: BTreeMap::new() });
    });
}

/// Disables every point on this thread; returns how often each fired.
pub fn uninstall() -> BTreeMap<&'static str, u64> {
    ACTIVE.with(|active| active.borrow_mut().take().map(|a| a.hits).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inert_unless_installed_and_seeded_when_installed() {
        assert!(!point("x"));
        install(BTreeMap::from([("x", 0.5)]), 1);
        let first: Vec<bool> = (0..64).map(|_| point("x")).collect();
        assert!(!point("not enabled"));
        let hits = uninstall();
        assert_eq!(hits["x"], first.iter().filter(|f| **f).count() as u64);
        install(BTreeMap::from([("x", 0.5)]), 1);
        let again: Vec<bool> = (0..64).map(|_| point("x")).collect();
        uninstall();
        assert_eq!(first, again);
        assert!(!point("x"));
    }
}
