//! Efficacy of alerts against the failures that followed (BLUEPRINT section 10, "Efficacy").
//!
//! - An alert is **true** if its motor fails within [`TRUE_WITHIN`] (14 days) after it, and a
//!   **false alarm** otherwise.
//! - A failure's **lead time** is the failure time minus its first true alert (an alert raised
//!   before the motor's previous failure belongs to that one).
//! - Only alerts raised in the scoring window `[from, to]` count, and a run goes on for at
//!   least 14 days past `to`, so every scored alert can be judged. Failures count from
//!   `from + 24 h` (earlier ones could not be alerted 24 h ahead within the window) to `to`.
//! - False alarms are a rate per motor-month (30.44 days) of the scoring window.
//!
//! This is scoring code: it reads when motors failed, which the pipeline only learns from the
//! maintenance log.

use std::time::Duration;

/// An alert is true if its motor fails within this long after it.
pub const TRUE_WITHIN: Duration = Duration::from_secs(14 * 24 * 3600);
/// The lead the targets ask for.
pub const LEAD_TARGET: Duration = Duration::from_secs(24 * 3600);
/// A month, for rates per motor-month.
pub const MONTH: Duration = Duration::from_secs(2_630_016); // 30.44 days

/// A failure, from the maintenance log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Failure {
    pub motor: u32,
    pub at: Duration,
    /// A bearing defect (outer or inner race) failed it.
    pub bearing: bool,
}

/// A raised alert (escalations and clearings are not new alerts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Alert {
    pub motor: u32,
    pub at: Duration,
}

/// The figures for one alert source over one scoring window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Efficacy {
    /// Failures in the window, of any kind and of bearings.
    pub failures: usize,
    pub bearing_failures: usize,
    /// Of those, alerted at least 24 h ahead.
    pub alerted_ahead: usize,
    pub bearing_alerted_ahead: usize,
    /// Bearing failures' lead times (those with a true alert), hours, ascending.
    pub bearing_lead_hours: Vec<f64>,
    pub alerts: usize,
    pub false_alarms: usize,
    pub motor_months: f64,
}

impl Efficacy {
    /// Scores `alerts` against `failures` (both of any time; the window selects) for a fleet of
    /// `motors` over `[from, to]`.
    pub fn score(
        alerts: &[Alert],
        failures: &[Failure],
        motors: usize,
        from: Duration,
        to: Duration,
    ) -> Efficacy {
        let mut alerts: Vec<Alert> = alerts.iter().copied().filter(|a| a.at >= from && a.at <= to).collect();
        alerts.sort();
        let failed_within = |a: &Alert| {
            failures.iter().any(|f| f.motor == a.motor && f.at > a.at && f.at <= a.at + TRUE_WITHIN)
        };
        let false_alarms = alerts.iter().filter(|a| !failed_within(a)).count();
        let mut e = Efficacy {
            alerts: alerts.len(),
            false_alarms,
            motor_months: motors as f64 * to.saturating_sub(from).as_secs_f64() / MONTH.as_secs_f64(),
            ..Efficacy::default()
        };
        for f in failures.iter().filter(|f| f.at >= from + LEAD_TARGET && f.at <= to) {
            let previous = failures.iter().filter(|p| p.motor == f.motor && p.at < f.at).map(|p| p.at).max();
            let first = alerts.iter().find(|a| {
                a.motor == f.motor
                    && a.at < f.at
                    && a.at + TRUE_WITHIN >= f.at
                    && previous.is_none_or(|p| a.at > p)
            });
            let lead = first.map(|a| f.at - a.at);
            let ahead = lead.is_some_and(|l| l >= LEAD_TARGET);
            e.failures += 1;
            e.alerted_ahead += usize::from(ahead);
            if f.bearing {
                e.bearing_failures += 1;
                e.bearing_alerted_ahead += usize::from(ahead);
                e.bearing_lead_hours.extend(lead.map(|l| l.as_secs_f64() / 3600.0));
            }
        }
        e.bearing_lead_hours.sort_by(f64::total_cmp);
        e
    }

    /// Share of bearing failures alerted at least 24 h ahead (0 with none).
    pub fn bearing_recall(&self) -> f64 {
        ratio(self.bearing_alerted_ahead, self.bearing_failures)
    }

    pub fn false_alarms_per_motor_month(&self) -> f64 {
        if self.motor_months > 0.0 {
            self.false_alarms as f64 / self.motor_months
        } else {
            0.0
        }
    }

    /// The `q` quantile (0..=1) of the bearing lead times, hours (nearest rank).
    pub fn lead_quantile(&self, q: f64) -> Option<f64> {
        let n = self.bearing_lead_hours.len();
        (n > 0).then(|| self.bearing_lead_hours[((q * (n - 1) as f64).round() as usize).min(n - 1)])
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3600;
    const D: u64 = 24 * H;

    fn at(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn alerts_are_judged_by_the_definitions() {
        let failures = [
            Failure { motor: 1, at: at(10 * D), bearing: true },
            Failure { motor: 1, at: at(20 * D), bearing: true },
            Failure { motor: 2, at: at(12 * D), bearing: false },
            Failure { motor: 3, at: at(5 * D), bearing: true },
            // Outside the window (before from + 24 h): not counted.
            Failure { motor: 4, at: at(2 * D + H), bearing: true },
        ];
        let alerts = [
            // Motor 1: 3 days ahead of its first failure, then one 12 h ahead of its second
            // (the earlier alert belongs to the first failure).
            Alert { motor: 1, at: at(7 * D) },
            Alert { motor: 1, at: at(19 * D + 12 * H) },
            // Motor 2: 2 days ahead.
            Alert { motor: 2, at: at(10 * D) },
            // Motor 5 never fails: a false alarm; so is motor 2's alert after its failure.
            Alert { motor: 5, at: at(4 * D) },
            Alert { motor: 2, at: at(13 * D) },
            // Before the window: not scored.
            Alert { motor: 3, at: at(D) },
        ];
        let e = Efficacy::score(&alerts, &failures, 10, at(2 * D), at(20 * D));
        assert_eq!((e.failures, e.bearing_failures), (4, 3));
        assert_eq!((e.alerted_ahead, e.bearing_alerted_ahead), (2, 1), "motor 1's second is 12 h ahead only");
        assert_eq!(e.bearing_lead_hours, vec![12.0, 72.0]);
        assert_eq!((e.alerts, e.false_alarms), (5, 2));
        assert!((e.motor_months - 10.0 * 18.0 / 30.44).abs() < 1e-9);
        assert!((e.bearing_recall() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.lead_quantile(0.5), Some(72.0));
    }
}
