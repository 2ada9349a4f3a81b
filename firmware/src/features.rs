//! The stage-1 feature vector: exactly what the int8 model takes, computed from one window.
//!
//! Definitions (the Python reference `tests/reference/gen_features.py` implements the same):
//! for a channel, `x[n] = q[n] * s` for `n` in `0..N` (`q` the i16 codes, `s` the channel's
//! scale widened from f32 to f64, `N` = [`WINDOW`]); `mu = mean(x)`; `d[n] = x[n] - mu`;
//! `m2 = mean(d^2)`; `m4 = mean(d^4)`. Moments are accumulated in f64 and the result cast to f32.
//!
//! | # | name | definition |
//! |---|---|---|
//! | 0 | `vib_rms` | `sqrt(m2)` of vibration (g): RMS with the mean (gravity, offset) removed |
//! | 1 | `vib_peak` | `max(abs(d[n]))` of vibration (g) |
//! | 2 | `vib_crest` | `vib_peak / vib_rms` (0 when `vib_rms` = 0) |
//! | 3 | `vib_kurtosis` | `m4 / m2^2` of vibration, Pearson's (3 for a Gaussian; `scipy.stats.kurtosis(x, fisher=False)`); 0 when `m2` = 0 |
//! | 4-7 | `vib_band_0..3` | `log10(P_b + 1e-10)`, `P_b` the vibration power (g²) in band `b` of [`BANDS_HZ`] |
//! | 8 | `cur_rms` | `sqrt(m2)` of current (A) |
//! | 9 | `sound_rms` | `sqrt(m2)` of sound pressure (Pa) |
//! | 10 | `temp_mean` | `mu` of temperature (°C) |
//!
//! Band power: `X = rfft(d)` (an `N`-point real DFT, unnormalised, `X[j] = sum d[n] e^(-2 pi i j n / N)`,
//! as `numpy.fft.rfft`), computed in f32 on `d` rounded to f32. The one-sided power of bin `j` is
//! `p[j] = 2 |X[j]|^2 / N^2` for `0 < j < N/2` and `|X[N/2]|^2 / N^2` at Nyquist, so that the
//! `p[j]` sum to `m2` (Parseval). Bin `j` (frequency `j * fs / N`) is in band `[lo, hi)` when
//! `lo * N <= j * fs < hi * N` in integers; the last band runs up to and including Nyquist. The
//! DC bin is in no band. With the default 8192 Hz and 2048 samples, bins are 4 Hz apart.

use crate::sampling::{Channel, Window, WINDOW};

/// Length of the feature vector.
pub const FEATURE_COUNT: usize = 11;

/// The feature vector the model takes.
pub type FeatureVector = [f32; FEATURE_COUNT];

/// Names of the features, in vector order.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "vib_rms",
    "vib_peak",
    "vib_crest",
    "vib_kurtosis",
    "vib_band_0",
    "vib_band_1",
    "vib_band_2",
    "vib_band_3",
    "cur_rms",
    "sound_rms",
    "temp_mean",
];

/// Vibration bands, Hz, `[lo, hi)`; `u32::MAX` means up to and including Nyquist. Low band:
/// shaft and line harmonics (imbalance, misalignment); middle: bearing defect frequencies and
/// their first harmonics; high: structural resonances that bearing impacts excite.
pub const BANDS_HZ: [(u32, u32); 4] = [(10, 200), (200, 1000), (1000, 2500), (2500, u32::MAX)];

/// Added to band power (g²) before the logarithm, so a silent band gives -10, not -inf.
pub const BAND_FLOOR: f64 = 1e-10;

/// Moments of one channel (see the module doc).
struct Moments {
    mean: f64,
    m2: f64,
    m4: f64,
    peak: f64,
}

fn moments(q: &[i16; WINDOW], scale: f32) -> Moments {
    let s = f64::from(scale);
    let n = WINDOW as f64;
    let sum: i64 = q.iter().map(|&v| i64::from(v)).sum();
    let mean_q = sum as f64 / n;
    let (mut m2, mut m4, mut peak) = (0.0f64, 0.0f64, 0.0f64);
    for &v in q {
        let d = (f64::from(v) - mean_q) * s;
        let d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
        peak = peak.max(libm::fabs(d));
    }
    Moments { mean: mean_q * s, m2: m2 / n, m4: m4 / n, peak }
}

/// Vibration power per band of [`BANDS_HZ`] (g²), from the mean-removed samples.
fn band_powers(q: &[i16; WINDOW], scale: f32, mean: f64, sample_rate_hz: u32) -> [f64; BANDS_HZ.len()] {
    let mut buf = [0.0f32; WINDOW];
    for (b, &v) in buf.iter_mut().zip(q) {
        *b = (f64::from(v) * f64::from(scale) - mean) as f32;
    }
    let spectrum = microfft::real::rfft_2048(&mut buf);
    let n2 = (WINDOW * WINDOW) as f64;
    let half = WINDOW / 2;
    let mut power = [0.0f64; BANDS_HZ.len()];
    for j in 1..=half {
        let p = if j == half {
            // microfft packs the real Nyquist coefficient into the imaginary part of bin 0.
            let x = f64::from(spectrum[0].im);
            x * x / n2
        } else {
            let c = spectrum[j];
            2.0 * (f64::from(c.re) * f64::from(c.re) + f64::from(c.im) * f64::from(c.im)) / n2
        };
        let f = j as u64 * u64::from(sample_rate_hz);
        for (acc, &(lo, hi)) in power.iter_mut().zip(&BANDS_HZ) {
            if u64::from(lo) * WINDOW as u64 <= f && f < u64::from(hi) * WINDOW as u64 {
                *acc += p;
            }
        }
    }
    power
}

/// Computes the feature vector of `window` (definitions in the module doc).
pub fn extract(window: &Window) -> FeatureVector {
    let vib_q = window.channel(Channel::Vibration);
    let vib_scale = window.scale[Channel::Vibration.index()];
    let vib = moments(vib_q, vib_scale);
    let vib_rms = libm::sqrt(vib.m2);
    let crest = if vib_rms > 0.0 { vib.peak / vib_rms } else { 0.0 };
    let kurtosis = if vib.m2 > 0.0 { vib.m4 / (vib.m2 * vib.m2) } else { 0.0 };
    let bands = band_powers(vib_q, vib_scale, vib.mean, window.sample_rate_hz);
    let rms = |ch: Channel| libm::sqrt(moments(window.channel(ch), window.scale[ch.index()]).m2);
    let temp = moments(window.channel(Channel::Temperature), window.scale[Channel::Temperature.index()]);
    let band = |b: usize| libm::log10(bands[b] + BAND_FLOOR);
    [
        vib_rms,
        vib.peak,
        crest,
        kurtosis,
        band(0),
        band(1),
        band(2),
        band(3),
        rms(Channel::Current),
        rms(Channel::Sound),
        temp.mean,
    ]
    .map(|v| v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::DEFAULT_SAMPLE_RATE_HZ;

    #[test]
    fn a_sine_lands_in_its_band_with_parseval_power() {
        // 0.5 g at 500 Hz (bin 125 exactly): power 0.125 g² in band 1, nothing elsewhere.
        let w = Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |i| {
            let t = i as f64 / f64::from(DEFAULT_SAMPLE_RATE_HZ);
            [0.0, (0.5 * libm::sin(2.0 * core::f64::consts::PI * 500.0 * t)) as f32, 0.0, 25.0]
        });
        let f = extract(&w);
        assert!((f[0] - 0.5 / 2f32.sqrt()).abs() < 1e-3, "rms {}", f[0]);
        assert!((f[3] - 1.5).abs() < 1e-2, "kurtosis of a sine is 1.5, got {}", f[3]);
        assert!((f[5] - 0.125f32.log10()).abs() < 1e-3, "band 1 {}", f[5]);
        assert!(f[4] < -6.0 && f[6] < -6.0 && f[7] < -6.0, "{f:?}");
        assert!((f[10] - 25.0).abs() < 1e-3);
        assert_eq!(f[8], 0.0);
    }

    #[test]
    fn a_silent_window_is_finite() {
        let f = extract(&Window::new(DEFAULT_SAMPLE_RATE_HZ));
        assert!(f.iter().all(|v| v.is_finite()));
        assert_eq!(f[2], 0.0);
        assert_eq!(f[3], 0.0);
        assert_eq!(f[4], -10.0);
    }
}
