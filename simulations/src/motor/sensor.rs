//! Sensor faults: stuck values, spikes, dropouts and out-of-range readings, drawn per channel
//! from the seed and the window's time, each flagged in the window's ground truth.

use std::time::Duration;

use super::params::{FaultRate, SensorFaultParams, SensorRange};
use super::rng::{self, WyRand};

/// The sensor faults present in one channel of one window (ground truth).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SensorFaults {
    pub stuck: bool,
    pub spikes: bool,
    pub dropout: bool,
    pub out_of_range: bool,
}

impl SensorFaults {
    /// Whether any fault is present.
    pub fn any(&self) -> bool {
        self.stuck || self.spikes || self.dropout || self.out_of_range
    }
}

/// A channel's typical scale: (stuck value centre, stuck value spread, spike magnitude).
pub(crate) struct ChannelScale {
    pub centre: f32,
    pub spread: f32,
    pub spike: f32,
}

/// Whether fault `kind` (0..4) affects channel `ch` at `t`; if so, a hash for its details
/// (the same for every window of one episode).
fn active(seed: u64, ch: usize, kind: u64, rate: &FaultRate, t: Duration) -> Option<u64> {
    if rate.fraction <= 0.0 {
        return None;
    }
    let nanos = t.as_nanos() as u64;
    let slot = if rate.episode.is_zero() {
        nanos
    } else {
        let ep = rate.episode.as_nanos().max(1) as u64;
        let offset = rng::hash(&[seed, rng::SENSOR, ch as u64, kind, u64::MAX]) % ep;
        (nanos + offset) / ep
    };
    let h = rng::hash(&[seed, rng::SENSOR, ch as u64, kind, slot]);
    (rng::unit(h) < rate.fraction).then_some(h)
}

/// Applies the faults due at `t` to `out`, returning what was applied per channel.
pub(crate) fn apply(
    seed: u64,
    params: &SensorFaultParams,
    ranges: &[SensorRange; 4],
    scales: &[ChannelScale; 4],
    t: Duration,
    out: &mut [[f32; 4]],
) -> [SensorFaults; 4] {
    let mut flags = [SensorFaults::default(); 4];
    let n = out.len();
    if n == 0 {
        return flags;
    }
    let nanos = t.as_nanos() as u64;
    for ch in 0..4 {
        let range = ranges[ch];
        let scale = &scales[ch];
        let width = range.max - range.min;
        // Details differ per window even within an episode (where not stated otherwise).
        let window_rng = |h: u64| WyRand::new(rng::hash(&[h, nanos]));
        if let Some(h) = active(seed, ch, 0, &params.stuck, t) {
            let value = if params.stuck.episode.is_zero() {
                out[0][ch]
            } else {
                scale.centre + scale.spread * (2.0 * rng::unit(rng::mix(h)) as f32 - 1.0)
            };
            out.iter_mut().for_each(|s| s[ch] = value);
            flags[ch].stuck = true;
        }
        if let Some(h) = active(seed, ch, 1, &params.out_of_range, t) {
            let mut r = window_rng(h);
            let (start, len) =
                if params.out_of_range.episode.is_zero() { run(&mut r, n, 0.1) } else { (0, n) };
            let high = rng::unit(rng::mix(h ^ 1)) < 0.5;
            let beyond = width * (0.1 + 0.4 * rng::unit(rng::mix(h ^ 2)) as f32);
            let level = if high { range.max + beyond } else { range.min - beyond };
            for s in &mut out[start..start + len] {
                s[ch] = level + 0.01 * width * r.normal() as f32;
            }
            flags[ch].out_of_range = true;
        }
        if let Some(h) = active(seed, ch, 2, &params.spikes, t) {
            let mut r = window_rng(h);
            let count = 1 + (r.uniform() * 8.0) as usize;
            for _ in 0..count {
                let i = ((r.uniform() * n as f64) as usize).min(n - 1);
                let sign = if r.uniform() < 0.5 { -1.0 } else { 1.0 };
                let v = out[i][ch] + sign * scale.spike * (5.0 + 15.0 * r.uniform() as f32);
                out[i][ch] = v.clamp(range.min, range.max);
            }
            flags[ch].spikes = true;
        }
        if let Some(h) = active(seed, ch, 3, &params.dropout, t) {
            let mut r = window_rng(h);
            let (start, len) = if params.dropout.episode.is_zero() { run(&mut r, n, 0.05) } else { (0, n) };
            out[start..start + len].iter_mut().for_each(|s| s[ch] = 0.0);
            flags[ch].dropout = true;
        }
    }
    flags
}

/// A random run of at least `min_fraction` of `n` samples: (start, length).
fn run(r: &mut WyRand, n: usize, min_fraction: f64) -> (usize, usize) {
    let len = ((min_fraction + (1.0 - min_fraction) * r.uniform()) * n as f64).ceil() as usize;
    let len = len.clamp(1, n);
    let start = ((r.uniform() * (n - len + 1) as f64) as usize).min(n - len);
    (start, len)
}
