//! Time as actors see it: an `Instant` on the executor's clock (virtual under the deterministic
//! executor, tokio's clock under the tokio executor), counted from the system's start; and the
//! cluster time ([`ClusterClock`]), the plant's calendar that records are stamped with.

use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A point on the system's clock: nanoseconds since the system started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Instant(u64);

impl Instant {
    pub const ZERO: Instant = Instant(0);

    pub fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time since the system started.
    pub fn since_start(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_since(earlier)
    }
}

impl std::fmt::Display for Instant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0 / 1_000_000;
        write!(f, "{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// The cluster time: Unix milliseconds on the plant's calendar, which records carry
/// (`received_ms`, alert times) and the maintenance crew's log shares. The host gives each
/// system the origin (the Unix time at its start: the wall clock in production, the simulated
/// world's clock plus the node's skew in the simulator) and the rate: under a time warp the
/// plant, its motors and the pipeline's periods all run `warp` times faster than the executor's
/// clock. Reading it never touches the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClusterClock {
    /// Cluster time at the system's start, Unix ms.
    pub origin_ms: u64,
    /// Cluster seconds per executor second (1 without a time warp).
    pub warp: f64,
}

impl Default for ClusterClock {
    fn default() -> Self {
        ClusterClock { origin_ms: 0, warp: 1.0 }
    }
}

impl ClusterClock {
    /// The cluster time at `instant`, Unix ms.
    pub fn at(&self, instant: Instant) -> u64 {
        self.after(Duration::from_nanos(instant.0)).origin_ms
    }

    /// This clock with its origin moved `elapsed` of executor time on: the same timeline, for
    /// a part that starts that much later (its own executor time counts from its start).
    pub fn after(&self, elapsed: Duration) -> ClusterClock {
        let elapsed_ms = elapsed.as_nanos() as f64 / 1e6 * self.warp;
        ClusterClock { origin_ms: self.origin_ms.saturating_add(elapsed_ms as u64), ..*self }
    }

    /// How long the executor takes for `cluster` of cluster time (a period the pipeline states
    /// in cluster time, such as a canary period, scheduled as a timer).
    pub fn executor_duration(&self, cluster: Duration) -> Duration {
        cluster.div_f64(self.warp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_time_runs_from_its_origin_at_the_warp_rate() {
        let clock = ClusterClock { origin_ms: 1_700_000_000_000, warp: 60.0 };
        assert_eq!(clock.at(Instant::ZERO), 1_700_000_000_000);
        // One executor second is a minute of cluster time.
        assert_eq!(clock.at(Instant::ZERO + Duration::from_secs(1)), 1_700_000_060_000);
        assert_eq!(clock.executor_duration(Duration::from_secs(30 * 60)), Duration::from_secs(30));
        let later = clock.after(Duration::from_secs(2));
        assert_eq!(later.origin_ms, 1_700_000_120_000);
        assert_eq!(
            later.at(Instant::ZERO + Duration::from_secs(1)),
            clock.at(Instant::ZERO + Duration::from_secs(3))
        );
        let plain = ClusterClock::default();
        assert_eq!(plain.at(Instant::ZERO + Duration::from_millis(1500)), 1500);
    }
}
