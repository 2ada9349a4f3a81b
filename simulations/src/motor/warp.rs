//! Time warp for demos: motor time runs `factor` times faster than the host's.

use std::time::Duration;

/// Maps host-elapsed time (time since the host started the demo, read by the caller: this type
/// reads no clock) to motor time: `motor = motor_origin + (host - host_origin) * factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWarp {
    pub factor: f64,
    pub host_origin: Duration,
    pub motor_origin: Duration,
}

impl TimeWarp {
    /// Motor time `host_elapsed * factor`.
    pub fn new(factor: f64) -> Self {
        assert!(factor > 0.0 && factor.is_finite(), "time warp factor must be positive");
        TimeWarp { factor, host_origin: Duration::ZERO, motor_origin: Duration::ZERO }
    }

    /// Motor time at host-elapsed time `host_elapsed` (host times before the origin map to the
    /// motor origin).
    pub fn motor_time(&self, host_elapsed: Duration) -> Duration {
        self.motor_origin + host_elapsed.saturating_sub(self.host_origin).mul_f64(self.factor)
    }

    /// Host-elapsed time at which motor time reaches `motor` (for sleeping until a window is due).
    pub fn host_elapsed(&self, motor: Duration) -> Duration {
        self.host_origin + motor.saturating_sub(self.motor_origin).div_f64(self.factor)
    }

    /// The same motor time line continued from `host_elapsed` at a new factor (no jump).
    pub fn rewarp(&self, host_elapsed: Duration, factor: f64) -> TimeWarp {
        assert!(factor > 0.0 && factor.is_finite(), "time warp factor must be positive");
        TimeWarp { factor, host_origin: host_elapsed, motor_origin: self.motor_time(host_elapsed) }
    }
}
