//! Sensor-fault flags (BLUEPRINT section 10, "Data quality"): stuck values, spikes, dropouts and
//! impossible ranges, per channel. A flagged window raises a sensor-fault alert, never a
//! machine-fault alert, and never enters training data (the ML-loop issue relies on the flags).
//!
//! On a raw window, per channel:
//! - stuck: every sample has the same code (a live sensor always shows some noise);
//! - dropout: a run of at least `DROPOUT_RUN` consecutive exact-zero codes;
//! - out of range: a sample outside the channel's physical range, or clipped by the mote;
//! - spikes: isolated one-sample outliers. The residual `e[n] = x[n] - (x[n-1] + x[n+1]) / 2`
//!   is near zero for anything the motor can produce at these sample rates except a sample that
//!   jumps alone; a spike is `|e[n]| > SPIKE_SIGMAS` robust sigmas (MAD) of `e`, and the window
//!   is flagged when such samples are few (a bearing impact rings over many samples, a broken
//!   sensor line jumps at one).
//!
//! On a features report (no samples): clipping, a temperature outside its range, and an
//! all-zero vibration or current RMS (stuck or dropped out).

use aiot_firmware::protocol::{FeaturesReport, RawWindow};
use aiot_firmware::sampling::{Channel, CHANNELS, WINDOW};
use serde::{Deserialize, Serialize};

/// The kinds of sensor fault, as bits.
pub const STUCK: u8 = 1;
pub const SPIKES: u8 = 2;
pub const DROPOUT: u8 = 4;
pub const OUT_OF_RANGE: u8 = 8;

/// Shortest run of exact zeros taken as a dropout.
pub const DROPOUT_RUN: usize = 16;
/// How far, in robust sigmas of the residual, an isolated sample must jump to be a spike.
pub const SPIKE_SIGMAS: f32 = 12.0;
/// At most this share of samples may be outliers for the window to count as spiky.
pub const SPIKE_SHARE_MAX: f32 = 0.01;

/// Physical range of each channel: current A, vibration g, sound Pa, temperature °C.
pub const RANGES: [(f32, f32); CHANNELS] = [(-100.0, 100.0), (-16.0, 16.0), (-20.0, 20.0), (-40.0, 150.0)];

/// Faults found in one window, per channel (bits of the constants above).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorFaults(pub [u8; CHANNELS]);

impl SensorFaults {
    pub fn any(&self) -> bool {
        self.0.iter().any(|b| *b != 0)
    }

    pub fn has(&self, channel: Channel, kind: u8) -> bool {
        self.0[channel.index()] & kind != 0
    }

    fn flag(&mut self, channel: Channel, kind: u8) {
        self.0[channel.index()] |= kind;
    }
}

/// Checks every channel of a raw window. Allocation-free: one pass per channel for stuck,
/// dropout and range, one for the spike residual (this runs on every raw window at ingest).
pub fn check_raw(window: &RawWindow<'_>) -> SensorFaults {
    let mut faults = SensorFaults::default();
    let mut buffer = [0i16; WINDOW];
    for channel in Channel::ALL {
        let codes = window.read_channel(channel, &mut buffer);
        let Some(shape) = Shape::of(codes) else {
            faults.flag(channel, DROPOUT);
            continue;
        };
        if shape.min == shape.max {
            faults.flag(channel, STUCK);
        }
        if shape.longest_zero_run >= DROPOUT_RUN {
            faults.flag(channel, DROPOUT);
        }
        // `code * scale` is monotonic in the code, so the extremes decide the whole range.
        let scale = window.scale[channel.index()];
        let (lo, hi) = RANGES[channel.index()];
        let outside = [shape.min, shape.max].iter().any(|c| !(lo..=hi).contains(&(f32::from(*c) * scale)));
        if outside || window.clipped[channel.index()] > 0 {
            faults.flag(channel, OUT_OF_RANGE);
        }
        if has_isolated_spikes(codes) {
            faults.flag(channel, SPIKES);
        }
    }
    faults
}

/// What a channel's codes show at a glance.
struct Shape {
    min: i16,
    max: i16,
    longest_zero_run: usize,
}

impl Shape {
    /// `None` for no samples. Simple loops the compiler vectorises; the zero run is walked only
    /// when there are enough zeros for one.
    fn of(codes: &[i16]) -> Option<Shape> {
        if codes.is_empty() {
            return None;
        }
        // Folds over values (not `Iterator::min` over references), which vectorise.
        let min = codes.iter().copied().fold(i16::MAX, i16::min);
        let max = codes.iter().copied().fold(i16::MIN, i16::max);
        let zeros = codes.iter().map(|c| u32::from(*c == 0)).sum::<u32>() as usize;
        let longest_zero_run = if zeros >= DROPOUT_RUN { longest_zero_run(codes) } else { 0 };
        Some(Shape { min, max, longest_zero_run })
    }
}

fn longest_zero_run(codes: &[i16]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in codes {
        run = if *c == 0 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Checks what a features report can show.
pub fn check_features(report: &FeaturesReport) -> SensorFaults {
    let mut faults = SensorFaults::default();
    for channel in Channel::ALL {
        if report.clipped[channel.index()] > 0 {
            faults.flag(channel, OUT_OF_RANGE);
        }
    }
    let f = &report.features;
    let (lo, hi) = RANGES[Channel::Temperature.index()];
    if !(lo..=hi).contains(&f[feature("temp_mean")]) {
        faults.flag(Channel::Temperature, OUT_OF_RANGE);
    }
    if f[feature("vib_rms")] == 0.0 {
        faults.flag(Channel::Vibration, STUCK);
    }
    if f[feature("cur_rms")] == 0.0 {
        faults.flag(Channel::Current, STUCK);
    }
    faults
}

fn feature(name: &str) -> usize {
    aiot_firmware::features::FEATURE_NAMES.iter().position(|n| *n == name).expect("a stage-1 feature")
}

/// Spikes by the residual `e[n] = x[n] - (x[n-1] + x[n+1]) / 2`, computed exactly in integers
/// as `r = 2e` (so sigma and the threshold are doubled too).
fn has_isolated_spikes(codes: &[i16]) -> bool {
    if codes.len() < 3 {
        return false;
    }
    let mut residual = [0u32; WINDOW];
    let residual = &mut residual[..codes.len() - 2];
    let (before, middle, after) = (&codes[..codes.len() - 2], &codes[1..codes.len() - 1], &codes[2..]);
    for (((r, a), b), c) in residual.iter_mut().zip(before).zip(middle).zip(after) {
        *r = (2 * i32::from(*b) - i32::from(*a) - i32::from(*c)).unsigned_abs();
    }
    let largest = residual.iter().copied().fold(0, u32::max);
    // Sigma is at least 1 (2 doubled): nothing above that floor's threshold, no spike.
    if largest as f32 <= SPIKE_SIGMAS * 2.0 {
        return false;
    }
    // Most windows: if at least half the residuals reach `floor`, the median does, and then the
    // threshold (12 robust sigmas) is above the largest residual. One counting pass instead of
    // a selection; `floor` is 1% above what is needed, so float rounding cannot flip the answer.
    let floor = (largest as f32 / (SPIKE_SIGMAS * 1.4826) * 1.01).ceil() as u32;
    let mid = residual.len() / 2;
    if residual.iter().filter(|r| **r < floor).count() <= mid {
        return false;
    }
    let median = *residual.select_nth_unstable(mid).1;
    let sigma = (1.4826 * median as f32).max(2.0);
    let outliers = residual.iter().filter(|r| **r as f32 > SPIKE_SIGMAS * sigma).count();
    outliers > 0 && (outliers as f32) <= SPIKE_SHARE_MAX * codes.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiot_firmware::sampling::{Window, DEFAULT_SAMPLE_RATE_HZ};

    /// A plausible motor: 50 Hz current, vibration with a resonance and noise, sound, 40 °C.
    fn healthy(i: usize) -> [f32; CHANNELS] {
        let t = i as f32 / DEFAULT_SAMPLE_RATE_HZ as f32;
        let noise = ((i as f32 * 12.9898).sin() * 43_758.547).fract() - 0.5;
        let tau = std::f32::consts::TAU;
        [
            20.0 * (tau * 50.0 * t).sin(),
            0.3 * (tau * 24.6 * t).sin() + 0.05 * noise,
            0.5 * (tau * 100.0 * t).sin() + 0.05 * noise,
            40.0 + 0.05 * noise,
        ]
    }

    fn window(mut f: impl FnMut(usize) -> [f32; CHANNELS]) -> Window {
        Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, &mut f)
    }

    #[test]
    fn a_healthy_window_has_no_flags() {
        assert_eq!(check_raw(&RawWindow::of(&window(healthy))), SensorFaults::default());
    }

    #[test]
    fn each_fault_is_flagged_on_its_channel_only() {
        let stuck = window(|i| {
            let mut s = healthy(i);
            s[0] = 12.5;
            s
        });
        let faults = check_raw(&RawWindow::of(&stuck));
        assert!(faults.has(Channel::Current, STUCK) && !faults.has(Channel::Vibration, STUCK), "{faults:?}");

        let dropout = window(|i| {
            let mut s = healthy(i);
            if (100..140).contains(&i) {
                s[1] = 0.0;
            }
            s
        });
        assert_eq!(check_raw(&RawWindow::of(&dropout)).0, [0, DROPOUT, 0, 0]);

        let spikes = window(|i| {
            let mut s = healthy(i);
            if i == 500 || i == 1500 {
                s[2] += 8.0;
            }
            s
        });
        assert_eq!(check_raw(&RawWindow::of(&spikes)).0, [0, 0, SPIKES, 0]);

        let hot = window(|i| {
            let mut s = healthy(i);
            s[3] = 180.0 + s[3] - 40.0;
            s
        });
        assert_eq!(check_raw(&RawWindow::of(&hot)).0, [0, 0, 0, OUT_OF_RANGE]);
    }

    #[test]
    fn an_impact_ringing_over_many_samples_is_not_a_spike() {
        // Impacts every 100 samples ringing at 3 kHz for 40 samples: a bearing, not a sensor.
        let ringing = window(|i| {
            let mut s = healthy(i);
            let k = (i % 100) as f32;
            s[1] += 4.0
                * (-k / 8.0).exp()
                * (std::f32::consts::TAU * 3000.0 * k / DEFAULT_SAMPLE_RATE_HZ as f32).sin();
            s
        });
        assert!(!check_raw(&RawWindow::of(&ringing)).has(Channel::Vibration, SPIKES));
    }

    /// The spike rule as the module doc states it, in floats, with a sort: what the integer
    /// residual and the counting shortcut must agree with.
    fn spikes_by_definition(codes: &[i16]) -> bool {
        let e: Vec<f32> =
            codes.windows(3).map(|w| f32::from(w[1]) - (f32::from(w[0]) + f32::from(w[2])) / 2.0).collect();
        let mut abs: Vec<f32> = e.iter().map(|v| v.abs()).collect();
        abs.sort_by(f32::total_cmp);
        let sigma = (1.4826 * abs[abs.len() / 2]).max(1.0);
        let outliers = e.iter().filter(|v| v.abs() > SPIKE_SIGMAS * sigma).count();
        outliers > 0 && (outliers as f32) <= SPIKE_SHARE_MAX * codes.len() as f32
    }

    #[test]
    fn the_spike_check_agrees_with_its_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut flagged, mut clean) = (0, 0);
        for case in 0..400 {
            let noise = [0, 1, 3, 20, 400][case % 5];
            let spikes = rng.random_range(0..30usize);
            let mut codes: Vec<i16> = (0..WINDOW)
                .map(|i| (2000.0 * (i as f32 * 0.05).sin()) as i16 + rng.random_range(-noise..=noise))
                .collect();
            for _ in 0..spikes {
                let at = rng.random_range(0..WINDOW);
                codes[at] = codes[at].saturating_add(rng.random_range(-9000..9000));
            }
            let expected = spikes_by_definition(&codes);
            assert_eq!(has_isolated_spikes(&codes), expected, "case {case}: noise {noise}, {spikes} spikes");
            if expected {
                flagged += 1;
            } else {
                clean += 1;
            }
        }
        assert!(flagged > 50 && clean > 50, "both answers exercised: {flagged} flagged, {clean} clean");
    }
}
