//! The vibration's envelope: band-pass around the structural resonance and Hilbert transform in
//! one FFT / inverse-FFT pair, the envelope's power spectrum, and the share of that power in a
//! band around a defect frequency.

use rustfft::num_complex::Complex64;
use rustfft::Fft;

use super::spectrum::windowed_fft;

/// The FFT bins `first..=last` the band-pass keeps: bins `k` with `1 <= k < n / 2` and
/// `lo <= k fs / n <= hi` (compared as `lo n <= k fs <= hi n`). `None` when no bin qualifies.
pub(crate) fn pass_bins(lo_hz: f64, hi_hz: f64, fs: f64, n: usize) -> Option<(usize, usize)> {
    let keep = |k: usize| lo_hz * n as f64 <= k as f64 * fs && k as f64 * fs <= hi_hz * n as f64;
    let first = (1..n.div_ceil(2)).find(|&k| keep(k))?;
    let last = (first..n.div_ceil(2)).take_while(|&k| keep(k)).last()?;
    Some((first, last))
}

/// Writes the envelope of `x` into `env`: `|z[n]|` with `z` the analytic signal of `x`
/// band-passed to the bins `pass` (`Z[k] = 2 X[k]` on those bins, 0 elsewhere, `z = ifft(Z)`);
/// all zeros when `pass` is `None`. `buf` holds `x.len()` values, `scratch` what both plans ask.
pub(crate) fn envelope(
    fft: &dyn Fft<f64>,
    ifft: &dyn Fft<f64>,
    x: &[f64],
    pass: Option<(usize, usize)>,
    buf: &mut [Complex64],
    scratch: &mut [Complex64],
    env: &mut [f64],
) {
    let Some((first, last)) = pass else {
        env.iter_mut().for_each(|e| *e = 0.0);
        return;
    };
    for (b, &v) in buf.iter_mut().zip(x) {
        *b = Complex64::new(v, 0.0);
    }
    fft.process_with_scratch(buf, scratch);
    for (k, b) in buf.iter_mut().enumerate() {
        *b = if (first..=last).contains(&k) { *b * 2.0 } else { Complex64::new(0.0, 0.0) };
    }
    ifft.process_with_scratch(buf, scratch);
    let n = x.len() as f64;
    for (e, z) in env.iter_mut().zip(buf.iter()) {
        *e = z.norm() / n;
    }
}

/// Writes `|X[k]|^2` for `k = 0..=n/2` into `power`, `X = fft(window * e)` (unnormalised: only
/// ratios of it are used).
pub(crate) fn power_spectrum(
    fft: &dyn Fft<f64>,
    e: &[f64],
    window: &[f64],
    buf: &mut [Complex64],
    scratch: &mut [Complex64],
    power: &mut [f64],
) {
    windowed_fft(fft, e, window, buf, scratch);
    for (p, z) in power.iter_mut().zip(buf.iter()) {
        *p = z.norm_sqr();
    }
}

/// The share of `total` in the bins `k0 - half..=k0 + half` of `power` (clamped to
/// `1..power.len()`), `k0 = floor(f / bin + 0.5)` the bin nearest `f` Hz. 0 when `f <= 0`,
/// `total` is 0, or no bin is left.
pub(crate) fn band_fraction(power: &[f64], total: f64, f_hz: f64, bin_hz: f64, half: usize) -> f64 {
    if f_hz <= 0.0 || total <= 0.0 {
        return 0.0;
    }
    let k0 = (f_hz / bin_hz + 0.5).floor() as usize;
    let first = k0.saturating_sub(half).max(1);
    let last = (k0 + half).min(power.len() - 1);
    if first > last {
        return 0.0;
    }
    power[first..=last].iter().sum::<f64>() / total
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustfft::FftPlanner;
    use std::f64::consts::TAU;

    #[test]
    fn the_envelope_of_a_modulated_carrier_is_its_modulation() {
        let (n, fs) = (1024, 1024.0);
        // 1 + 0.5 cos(2 pi 8 t) on a 200 Hz carrier (whole cycles: no leakage).
        let x: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                (1.0 + 0.5 * (TAU * 8.0 * t).cos()) * (TAU * 200.0 * t).cos()
            })
            .collect();
        let mut planner = FftPlanner::new();
        let (fft, ifft) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
        let mut buf = vec![Complex64::default(); n];
        let len = fft.get_inplace_scratch_len().max(ifft.get_inplace_scratch_len());
        let mut scratch = vec![Complex64::default(); len];
        let mut env = vec![0.0; n];
        let pass = pass_bins(150.0, 250.0, fs, n);
        assert_eq!(pass, Some((150, 250)));
        envelope(fft.as_ref(), ifft.as_ref(), &x, pass, &mut buf, &mut scratch, &mut env);
        for (i, e) in env.iter().enumerate() {
            let want = 1.0 + 0.5 * (TAU * 8.0 * i as f64 / fs).cos();
            assert!((e - want).abs() < 1e-9, "{i}: {e} vs {want}");
        }
        assert_eq!(pass_bins(600.0, 700.0, fs, n), None, "above Nyquist");
        let power = [9.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(band_fraction(&power, 10.0, 2.4, 1.0, 1), 0.6);
        assert_eq!(band_fraction(&power, 10.0, 0.2, 1.0, 1), 0.1, "DC is never in a band");
        assert_eq!(band_fraction(&power, 10.0, 9.0, 1.0, 1), 0.0);
    }
}
