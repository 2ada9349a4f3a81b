//! Sampling: four channels quantised like a 16-bit ADC into fixed rings, cut into windows.
//!
//! A sample is `[f32; 4]` in physical units, in [`Channel`] order: current (A), vibration (g),
//! sound pressure (Pa), temperature (°C). Each channel has a fixed full scale ([`FULL_SCALE`]);
//! a value is stored as `q = round(x / scale)` with `scale = FULL_SCALE / 32767` (units per
//! count), rounding half away from zero, clamped to `-32767..=32767` (the code -32768 is never
//! produced, so the range is symmetric). A value beyond full scale, or NaN (stored as 0), counts
//! as clipped. Full scales:
//!
//! | channel | full scale | one count |
//! |---|---|---|
//! | current | ±128 A | 3.9 mA |
//! | vibration | ±16 g | 0.49 mg |
//! | sound | ±64 Pa (≈130 dB SPL peak) | 1.95 mPa |
//! | temperature | ±327.67 °C | 0.01 °C |
//!
//! A [`Window`] is [`WINDOW`] samples per channel at `sample_rate_hz` (default
//! [`DEFAULT_SAMPLE_RATE_HZ`]), with the per-channel scale, so `x = q * scale` recovers the value.

use crate::ring::Ring;

/// Samples per channel in a window.
pub const WINDOW: usize = 2048;
/// Number of channels.
pub const CHANNELS: usize = 4;
/// Default sample rate, Hz (a window then spans 250 ms).
pub const DEFAULT_SAMPLE_RATE_HZ: u32 = 8192;
/// Largest magnitude a quantised sample takes.
pub const Q_MAX: i16 = 32767;
/// Full scale per channel, physical units, in [`Channel`] order.
pub const FULL_SCALE: [f32; CHANNELS] = [128.0, 16.0, 64.0, 327.67];
/// Physical units per count per channel (`FULL_SCALE / 32767`).
pub const SCALE: [f32; CHANNELS] = [
    FULL_SCALE[0] / Q_MAX as f32,
    FULL_SCALE[1] / Q_MAX as f32,
    FULL_SCALE[2] / Q_MAX as f32,
    FULL_SCALE[3] / Q_MAX as f32,
];

/// A sensor channel; its discriminant is its index in samples and windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// Motor phase current, amperes.
    Current = 0,
    /// Vibration acceleration, g.
    Vibration = 1,
    /// Sound pressure, pascals.
    Sound = 2,
    /// Temperature, degrees Celsius.
    Temperature = 3,
}

impl Channel {
    /// Every channel, in index order.
    pub const ALL: [Channel; CHANNELS] =
        [Channel::Current, Channel::Vibration, Channel::Sound, Channel::Temperature];

    /// The channel's index in a sample and in a window.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Quantises `x` at `scale` units per count; returns the code and whether it clipped.
pub fn quantize(x: f32, scale: f32) -> (i16, bool) {
    let v = x / scale;
    if v.is_nan() {
        (0, true)
    } else if v > Q_MAX as f32 {
        (Q_MAX, true)
    } else if v < -(Q_MAX as f32) {
        (-Q_MAX, true)
    } else {
        // |v| <= 32767, so the rounded value fits an i16.
        (libm::roundf(v) as i16, false)
    }
}

/// One window: `WINDOW` quantised samples per channel, their scales and the sample rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// Physical units per count, per channel.
    pub scale: [f32; CHANNELS],
    /// Samples that clipped (beyond full scale or NaN), per channel, within this window.
    pub clipped: [u16; CHANNELS],
    /// The samples, per channel, oldest first.
    pub samples: [[i16; WINDOW]; CHANNELS],
}

/// `Window::from_physical` was given a slice whose length is not [`WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrongSampleCount {
    /// The length given.
    pub got: usize,
}

impl core::fmt::Display for WrongSampleCount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "a window takes {WINDOW} samples, got {}", self.got)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WrongSampleCount {}

impl Window {
    /// A window of zeros at the default scales.
    pub fn new(sample_rate_hz: u32) -> Self {
        Self { sample_rate_hz, scale: SCALE, clipped: [0; CHANNELS], samples: [[0; WINDOW]; CHANNELS] }
    }

    /// Quantises `WINDOW` samples produced by `sample(i)` for `i` in `0..WINDOW` (physical
    /// units, [`Channel`] order) exactly as a [`Sampler`] would.
    pub fn from_fn(sample_rate_hz: u32, mut sample: impl FnMut(usize) -> [f32; CHANNELS]) -> Self {
        let mut w = Self::new(sample_rate_hz);
        for i in 0..WINDOW {
            w.set(i, sample(i));
        }
        w
    }

    /// Quantises a whole window of physical samples (exactly `WINDOW` of them).
    pub fn from_physical(sample_rate_hz: u32, samples: &[[f32; CHANNELS]]) -> Result<Self, WrongSampleCount> {
        if samples.len() != WINDOW {
            return Err(WrongSampleCount { got: samples.len() });
        }
        Ok(Self::from_fn(sample_rate_hz, |i| samples[i]))
    }

    fn set(&mut self, i: usize, sample: [f32; CHANNELS]) {
        for (c, &x) in sample.iter().enumerate() {
            let (q, clipped) = quantize(x, self.scale[c]);
            self.samples[c][i] = q;
            self.clipped[c] = self.clipped[c].saturating_add(u16::from(clipped));
        }
    }

    /// One channel's samples.
    pub fn channel(&self, ch: Channel) -> &[i16; WINDOW] {
        &self.samples[ch.index()]
    }

    /// Sample `i` of `ch` in physical units.
    pub fn value(&self, ch: Channel, i: usize) -> f32 {
        f32::from(self.samples[ch.index()][i]) * self.scale[ch.index()]
    }
}

/// Feeds samples one at a time into four channel rings and yields a window every `WINDOW`
/// samples (consecutive windows do not overlap).
#[derive(Clone, Debug)]
pub struct Sampler {
    rings: [Ring<i16, WINDOW>; CHANNELS],
    sample_rate_hz: u32,
    fresh: usize,
    clipped_fresh: [u16; CHANNELS],
    clipped_total: [u64; CHANNELS],
}

impl Sampler {
    /// A sampler at `sample_rate_hz` with empty rings.
    pub fn new(sample_rate_hz: u32) -> Self {
        Self {
            rings: [Ring::new(), Ring::new(), Ring::new(), Ring::new()],
            sample_rate_hz,
            fresh: 0,
            clipped_fresh: [0; CHANNELS],
            clipped_total: [0; CHANNELS],
        }
    }

    /// Quantises and stores one sample (physical units, [`Channel`] order). When it completes a
    /// window, writes that window into `out` and returns true.
    pub fn push(&mut self, sample: [f32; CHANNELS], out: &mut Window) -> bool {
        for (c, &x) in sample.iter().enumerate() {
            let (q, clipped) = quantize(x, SCALE[c]);
            self.rings[c].push(q);
            if clipped {
                self.clipped_fresh[c] = self.clipped_fresh[c].saturating_add(1);
                self.clipped_total[c] += 1;
            }
        }
        self.fresh += 1;
        if self.fresh < WINDOW {
            return false;
        }
        out.sample_rate_hz = self.sample_rate_hz;
        out.scale = SCALE;
        out.clipped = self.clipped_fresh;
        for (dst, ring) in out.samples.iter_mut().zip(&self.rings) {
            for (d, q) in dst.iter_mut().zip(ring.iter()) {
                *d = q;
            }
        }
        self.fresh = 0;
        self.clipped_fresh = [0; CHANNELS];
        true
    }

    /// Samples clipped per channel since the sampler was created.
    pub fn clipped_total(&self) -> [u64; CHANNELS] {
        self.clipped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_rounds_half_away_and_clamps() {
        assert_eq!(quantize(0.5, 1.0), (1, false));
        assert_eq!(quantize(-0.5, 1.0), (-1, false));
        assert_eq!(quantize(1e9, 1.0), (Q_MAX, true));
        assert_eq!(quantize(-1e9, 1.0), (-Q_MAX, true));
        assert_eq!(quantize(f32::NAN, 1.0), (0, true));
        assert_eq!(quantize(f32::INFINITY, 1.0), (Q_MAX, true));
        assert_eq!(quantize(25.0, SCALE[3]), (2500, false));
    }

    #[test]
    fn sampler_yields_the_same_window_as_from_fn() {
        let f = |i: usize| {
            let t = i as f32 / 8192.0;
            [10.0 * libm::sinf(314.0 * t), 0.3 * libm::cosf(2000.0 * t), 200.0 * t, 40.0]
        };
        let mut s = Sampler::new(DEFAULT_SAMPLE_RATE_HZ);
        let mut out = Window::new(0);
        for i in 0..WINDOW - 1 {
            assert!(!s.push(f(i), &mut out));
        }
        assert!(s.push(f(WINDOW - 1), &mut out));
        assert_eq!(out, Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, f));
        // Sound ramps to 200 Pa/s * 0.25 s = 50 Pa: within the 64 Pa full scale.
        assert_eq!(out.clipped, [0; 4]);
        // The next window starts afresh and counts its own clipping.
        for i in 0..WINDOW {
            let ready = s.push([1e6, 0.0, 0.0, 0.0], &mut out);
            assert_eq!(ready, i == WINDOW - 1);
        }
        assert_eq!(out.clipped, [WINDOW as u16, 0, 0, 0]);
        assert_eq!(out.samples[0][0], Q_MAX);
        assert_eq!(s.clipped_total(), [WINDOW as u64, 0, 0, 0]);
    }

    #[test]
    fn from_physical_checks_the_length() {
        let v = vec![[0.0f32; 4]; WINDOW - 1];
        assert_eq!(Window::from_physical(8192, &v), Err(WrongSampleCount { got: WINDOW - 1 }));
        let v = vec![[1.0f32, 0.5, 0.25, 20.0]; WINDOW];
        let w = Window::from_physical(8192, &v).unwrap();
        assert!((w.value(Channel::Temperature, 7) - 20.0).abs() < 0.005);
        assert_eq!(w.channel(Channel::Temperature)[0], 2000);
    }
}
