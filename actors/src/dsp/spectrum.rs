//! Spectra of one channel: the Hann window, the amplitude spectrum through the FFT plan, and
//! the windowed DTFT at any frequency (for peaks between bins).

use std::f64::consts::TAU;

use rustfft::num_complex::Complex64;
use rustfft::Fft;

/// Samples between exact re-anchorings of a [`Phasor`] (its rounding drift stays below 1e-14).
const ANCHOR: usize = 64;

/// The periodic Hann window of `n` points, `0.5 - 0.5 cos(2 pi i / n)` (scipy's
/// `get_window("hann", n)`).
pub(crate) fn hann(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos()).collect()
}

/// `e^(2 pi i f n)` for `n = 0, 1, 2, ...` (`f` in cycles per sample): a complex rotation per
/// sample, re-anchored from the exact phase every [`ANCHOR`] samples.
pub(crate) struct Phasor {
    f: f64,
    step: Complex64,
    z: Complex64,
    n: usize,
}

impl Phasor {
    pub(crate) fn new(f: f64) -> Self {
        Phasor { f, step: Complex64::from_polar(1.0, TAU * f), z: Complex64::new(1.0, 0.0), n: 0 }
    }
}

impl Iterator for Phasor {
    type Item = Complex64;

    fn next(&mut self) -> Option<Complex64> {
        if self.n.is_multiple_of(ANCHOR) {
            let cycles = self.f * self.n as f64;
            self.z = Complex64::from_polar(1.0, TAU * (cycles - cycles.floor()));
        }
        let out = self.z;
        self.z *= self.step;
        self.n += 1;
        Some(out)
    }
}

/// `sum_n window[n] x[n] e^(-2 pi i f n)`, `f` in cycles per sample.
pub(crate) fn windowed_dtft(x: &[f64], window: &[f64], f: f64) -> Complex64 {
    let mut acc = Complex64::new(0.0, 0.0);
    for ((&v, &w), z) in x.iter().zip(window).zip(Phasor::new(-f)) {
        acc += z * (v * w);
    }
    acc
}

/// Leaves `fft(window * x)` in `buf` (`x.len()` values); `scratch` holds what `fft` asks for.
pub(crate) fn windowed_fft(
    fft: &dyn Fft<f64>,
    x: &[f64],
    window: &[f64],
    buf: &mut [Complex64],
    scratch: &mut [Complex64],
) {
    for ((b, &v), &w) in buf.iter_mut().zip(x).zip(window) {
        *b = Complex64::new(v * w, 0.0);
    }
    fft.process_with_scratch(buf, scratch);
}

/// Writes the one-sided amplitude spectrum of `x` under `window` into `out` (`x.len() / 2 + 1`
/// bins): `c |X[k]| / sum(window)` with `X = fft(window * x)`, `c = 2` except at DC and Nyquist
/// (`c = 1`), so a sinusoid of amplitude `A` on bin `k` reads `A`.
pub(crate) fn amplitude_spectrum(
    fft: &dyn Fft<f64>,
    x: &[f64],
    window: &[f64],
    buf: &mut [Complex64],
    scratch: &mut [Complex64],
    out: &mut [f64],
) {
    windowed_fft(fft, x, window, buf, scratch);
    let sum: f64 = window.iter().sum();
    let n = x.len();
    for (k, (o, z)) in out.iter_mut().zip(buf.iter()).enumerate() {
        let c = if k == 0 || 2 * k == n { 1.0 } else { 2.0 };
        *o = if sum > 0.0 { c * z.norm() / sum } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustfft::FftPlanner;

    #[test]
    fn a_sinusoid_reads_its_amplitude_on_its_bin_and_between_bins() {
        let n = 256;
        let x: Vec<f64> = (0..n).map(|i| 0.7 * (TAU * 10.0 * i as f64 / n as f64).cos()).collect();
        let w = hann(n);
        let fft = FftPlanner::new().plan_fft_forward(n);
        let mut buf = vec![Complex64::default(); n];
        let mut scratch = vec![Complex64::default(); fft.get_inplace_scratch_len()];
        let mut out = vec![0.0; n / 2 + 1];
        amplitude_spectrum(fft.as_ref(), &x, &w, &mut buf, &mut scratch, &mut out);
        assert!((out[10] - 0.7).abs() < 1e-12, "{}", out[10]);
        let sum: f64 = w.iter().sum();
        let dtft = 2.0 * windowed_dtft(&x, &w, 10.0 / n as f64).norm() / sum;
        assert!((dtft - 0.7).abs() < 1e-12);
        // The phasor stays on the unit circle and in phase over long runs.
        let last = Phasor::new(0.1234567).nth(100_000).unwrap();
        let exact = Complex64::from_polar(1.0, TAU * (0.1234567f64 * 100_000.0).fract());
        assert!((last - exact).norm() < 1e-9);
    }
}
