//! The drift monitor's rule on feature windows (BLUEPRINT section 5; statistics in
//! [`crate::ml::drift`]).
//!
//! The reference is the training windows, kept per hour of day (cluster time), so a daily
//! load cycle is not drift. Each new window's features become their quantiles in the reference
//! of the window's hour (`u = F_hour(v)`, ties at their mid-rank): with no drift every `u` is
//! uniform on (0, 1) whatever the hour, so a batch of windows from any hours can be checked at
//! once. Every `stride` windows, each feature's `u` values over the last `batch` windows are
//! compared with the uniform distribution by PSI (10 equal bins) and KS; a feature drifts when
//! both say so, and the monitor reports drift when at least `min_features` features drift in
//! one check, with the evidence (each drifting feature's PSI and KS p-value). The checks slide
//! (a stride shorter than the batch), so a change is found once most of the last batch is
//! past it, wherever the change falls within a batch. After a report the monitor starts over.
//!
//! Defaults: the last 100 windows (an hour of a 100-motor fleet at one window per motor per
//! hour) every 25, PSI over 0.2, KS p under 1e-4, 3 features; hours with fewer than 20
//! reference windows take the reference of the whole day.

use std::collections::VecDeque;

use crate::ml::drift::{ks_two_sample, PsiConfig, PsiReference, KS_ALPHA};

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
/// Points of the uniform grid the batches are compared with.
const GRID: usize = 1000;

/// The monitor's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftConfig {
    pub psi: PsiConfig,
    pub ks_alpha: f64,
    /// Windows each check looks at (the latest ones).
    pub batch: usize,
    /// Windows between checks.
    pub stride: usize,
    /// Features that must drift in one batch.
    pub min_features: usize,
    /// An hour of day with fewer reference windows uses the whole day's.
    pub min_per_hour: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            psi: PsiConfig::default(),
            ks_alpha: KS_ALPHA,
            batch: 100,
            stride: 25,
            min_features: 3,
            min_per_hour: 20,
        }
    }
}

/// One drifting feature's evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureDrift {
    pub feature: usize,
    pub psi: f64,
    pub ks_p: f64,
}

/// A drift the monitor found.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftEvidence {
    /// The time of the batch's last window, ms.
    pub time_ms: u64,
    pub windows: usize,
    pub features: Vec<FeatureDrift>,
}

/// Checks windows against the reference, batch by batch.
#[derive(Debug, Clone)]
pub struct DriftMonitor {
    config: DriftConfig,
    /// `[hour][feature]`: sorted reference values; index 24 is the whole day.
    reference: Vec<Vec<Vec<f64>>>,
    uniform: PsiReference,
    grid: Vec<f64>,
    /// `[feature]`: the latest windows' quantiles (at most `batch`).
    batch: Vec<VecDeque<f64>>,
    /// Windows since the last check.
    since_check: usize,
    /// One feature's quantiles, contiguous, for a check.
    scratch: Vec<f64>,
    batches: u64,
    /// The largest feature PSI of the last check (0 before the first).
    last_max_psi: f64,
}

impl DriftMonitor {
    /// A monitor with `reference` windows as (time ms, feature values), all of one width.
    pub fn new(reference: &[(u64, &[f64])], config: DriftConfig) -> Result<DriftMonitor, String> {
        let width = reference.first().map(|(_, v)| v.len()).ok_or("no reference windows")?;
        if reference.iter().any(|(_, v)| v.len() != width || v.iter().any(|x| x.is_nan())) {
            return Err("reference windows differ in width or hold NaN".into());
        }
        if config.batch == 0 || config.stride == 0 || config.min_features == 0 {
            return Err("the batch, the stride and the feature count must be positive".into());
        }
        let mut reference_by_hour = vec![vec![Vec::new(); width]; 25];
        for (time_ms, values) in reference {
            let hour = ((time_ms % DAY_MS) / HOUR_MS) as usize;
            for (j, v) in values.iter().enumerate() {
                reference_by_hour[hour][j].push(*v);
                reference_by_hour[24][j].push(*v);
            }
        }
        for columns in &mut reference_by_hour {
            for column in columns.iter_mut() {
                column.sort_by(f64::total_cmp);
            }
        }
        let grid: Vec<f64> = (0..GRID).map(|i| (i as f64 + 0.5) / GRID as f64).collect();
        let uniform = PsiReference::new(&grid, config.psi).map_err(|e| format!("{e:?}"))?;
        Ok(DriftMonitor {
            config,
            reference: reference_by_hour,
            uniform,
            grid,
            batch: vec![VecDeque::with_capacity(config.batch); width],
            since_check: 0,
            scratch: Vec::with_capacity(config.batch),
            batches: 0,
            last_max_psi: 0.0,
        })
    }

    /// Checks made so far.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// The largest PSI any feature had at the last check (0 before the first): how far the
    /// latest batch is from the reference, for a chart.
    pub fn last_max_psi(&self) -> f64 {
        self.last_max_psi
    }

    /// Takes one window (its features as wide as the reference's); returns the evidence when
    /// it completes a stride and the last batch drifted.
    pub fn observe(&mut self, time_ms: u64, values: &[f64]) -> Option<DriftEvidence> {
        if values.len() != self.batch.len() || values.iter().any(|v| v.is_nan()) {
            return None;
        }
        let hour = ((time_ms % DAY_MS) / HOUR_MS) as usize;
        let slot = if self.reference[hour][0].len() >= self.config.min_per_hour { hour } else { 24 };
        for (j, v) in values.iter().enumerate() {
            let column = &self.reference[slot][j];
            let below = column.partition_point(|x| x < v);
            let at_or_below = column.partition_point(|x| x <= v);
            let u = (below + at_or_below) as f64 / (2 * column.len()) as f64;
            let latest = &mut self.batch[j];
            if latest.len() == self.config.batch {
                latest.pop_front();
            }
            latest.push_back(u);
        }
        self.since_check += 1;
        if self.batch[0].len() < self.config.batch || self.since_check < self.config.stride {
            return None;
        }
        self.since_check = 0;
        self.batches += 1;
        let mut features = Vec::new();
        self.last_max_psi = 0.0;
        for (feature, latest) in self.batch.iter().enumerate() {
            self.scratch.clear();
            self.scratch.extend(latest.iter());
            let psi = self.uniform.compare(&self.scratch).map(|r| r.psi).unwrap_or(0.0);
            self.last_max_psi = self.last_max_psi.max(psi);
            let ks_p = ks_two_sample(&self.scratch, &self.grid).map(|r| r.p_value).unwrap_or(1.0);
            if psi > self.config.psi.threshold && ks_p < self.config.ks_alpha {
                features.push(FeatureDrift { feature, psi, ks_p });
            }
        }
        if features.len() >= self.config.min_features {
            // Start over: the next report needs a batch of windows after this one.
            self.batch.iter_mut().for_each(VecDeque::clear);
        }
        let windows = self.config.batch;
        (features.len() >= self.config.min_features).then_some(DriftEvidence { time_ms, windows, features })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two features following a daily cycle, plus noise from a simple generator; `shift` moves
    /// both by that many standard deviations.
    fn window(i: u64, motor: u64, shift: f64) -> (u64, Vec<f64>) {
        let time_ms = i * HOUR_MS;
        let hour = ((time_ms % DAY_MS) / HOUR_MS) as f64;
        let noise = |k: u64| {
            // SplitMix64 of the window's index: uniform, scaled to unit variance.
            let mut z = (i * 1000 + motor * 10 + k).wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 12f64.sqrt()
        };
        let cycle = 3.0 * (hour / 24.0 * std::f64::consts::TAU).cos();
        (time_ms, vec![cycle + noise(1) + shift, cycle + noise(2) + shift, noise(3), noise(4)])
    }

    fn monitor(min_features: usize) -> DriftMonitor {
        let reference: Vec<(u64, Vec<f64>)> =
            (0..240).flat_map(|i| (0..50).map(move |m| window(i, m, 0.0))).collect();
        let refs: Vec<(u64, &[f64])> = reference.iter().map(|(t, v)| (*t, v.as_slice())).collect();
        let config = DriftConfig { batch: 50, stride: 10, min_features, ..DriftConfig::default() };
        DriftMonitor::new(&refs, config).unwrap()
    }

    #[test]
    fn a_daily_cycle_is_not_drift_and_a_shift_is_found_within_a_batch() {
        let mut m = monitor(2);
        // Ten more days of the same process, hour by hour: the cycle is 3 sd wide, yet no drift.
        for i in 240..480 {
            for motor in 0..50 {
                let (t, v) = window(i, motor, 0.0);
                assert_eq!(m.observe(t, &v), None, "hour {i}");
            }
        }
        assert_eq!(m.batches(), 240 * 5 - 4, "a check every 10 windows once 50 are in");
        // A shift of two standard deviations on two features, 15 windows into a stride: found
        // once most of the last 50 windows are shifted, before all of them are.
        let mut found = None;
        for motor in 0..15 {
            let (t, v) = window(480, motor, 0.0);
            assert_eq!(m.observe(t, &v), None);
        }
        let mut shifted = 0;
        for motor in 15..50 {
            let (t, v) = window(480, motor, 2.0);
            shifted += 1;
            found = found.or(m.observe(t, &v));
            if found.is_some() {
                break;
            }
        }
        assert!(shifted < 50, "found after {shifted} shifted windows");
        let evidence = found.expect("drift found before a whole batch is shifted");
        let drifting: Vec<usize> = evidence.features.iter().map(|f| f.feature).collect();
        assert_eq!(drifting, vec![0, 1], "{evidence:?}");
        assert!(evidence.features.iter().all(|f| f.psi > 0.2 && f.ks_p < 1e-4));
    }

    #[test]
    fn fewer_drifting_features_than_required_is_not_drift() {
        let mut m = monitor(3);
        let mut found = None;
        for motor in 0..50 {
            let (t, v) = window(480, motor, 1.0);
            found = found.or(m.observe(t, &v));
        }
        assert_eq!(found, None, "two features drifted, three are required");
        assert!(DriftMonitor::new(&[], DriftConfig::default()).is_err());
    }
}
