//! The supply current: its frequency and amplitude and the broken-rotor-bar sidebands at
//! `(1 - 2s) f` and `(1 + 2s) f`, by a Hann-weighted least-squares fit of tones at those
//! frequencies, the supply frequency `f` being the one that leaves the least residual
//! (variable projection: the tones' amplitudes and phases are linear, `f` is searched).
//!
//! Why a fit and not spectrum bins: `2 s f` is 1 to 2 Hz, under the 4 Hz bins of a 0.25 s
//! window, so the sidebands sit inside the supply line's main lobe. Over a short window a
//! sideband pair also looks partly like a small error in `f`; searching `f` jointly with the
//! sidebands (instead of taking the spectrum's peak, which the sidebands pull) keeps them apart.

use std::f64::consts::TAU;

use rustfft::num_complex::Complex64;

use super::search::{maximise, polish};
use super::spectrum::Phasor;

/// At most this many tones are fitted (supply and two sidebands).
const TONES: usize = 3;
const COLS: usize = 2 * TONES;

/// What the fit found. All zero for a silent channel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Supply {
    /// Supply frequency, Hz.
    pub hz: f64,
    /// Supply amplitude (peak), in the channel's unit.
    pub amplitude: f64,
    /// Amplitude at `(1 - 2s) f` over the supply amplitude.
    pub lower: f64,
    /// Amplitude at `(1 + 2s) f` over the supply amplitude.
    pub upper: f64,
}

/// Where and how finely to look.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Search {
    pub fs: f64,
    pub lo_hz: f64,
    pub hi_hz: f64,
    pub step_hz: f64,
    pub pole_pairs: u32,
    /// Sidebands are fitted only when `2 |s| f` is at least this.
    pub min_separation_hz: f64,
}

/// A weighted least-squares fit: coefficients (`cos`, `sin` per tone) and the weighted sum of
/// squared residuals.
struct Fit {
    coef: [f64; COLS],
    residual: f64,
}

/// The data under the window, as each fit needs it: `w d` per sample and `sum w d^2`.
struct Weighted<'a> {
    wd: &'a [f64],
    energy: f64,
}

impl<'a> Weighted<'a> {
    /// Fills `scratch` (as long as `d`) with `w d`.
    fn new(d: &[f64], hann: &[f64], scratch: &'a mut [f64]) -> Weighted<'a> {
        for ((out, v), w) in scratch.iter_mut().zip(d).zip(hann) {
            *out = v * w;
        }
        let energy = scratch.iter().zip(d).map(|(wv, v)| wv * v).sum();
        Weighted { wd: scratch, energy }
    }
}

/// `sum_n w_n e^(i x n)` over the periodic Hann window `w_n = 1/2 - cos(2 pi n / N) / 2` of
/// `n` samples, in closed form: `w` is `1/2 - e^(i t n) / 4 - e^(-i t n) / 4` with
/// `t = 2 pi / N`, and `sum_n e^(i y n) = e^(i y (N-1)/2) sin(N y / 2) / sin(y / 2)`.
fn hann_dtft(x: f64, n: usize) -> Complex64 {
    let len = n as f64;
    let geometric = |y: f64| {
        let half = 0.5 * y;
        let magnitude = if half.sin() == 0.0 { len } else { (len * half).sin() / half.sin() };
        Complex64::from_polar(magnitude, half * (len - 1.0))
    };
    let t = TAU / len;
    geometric(x) * 0.5 - (geometric(x + t) + geometric(x - t)) * 0.25
}

/// Fits the data (`d` under the periodic Hann window, as [`Weighted`]) with `cos` and `sin` at
/// each of `freqs` (Hz); `None` when the normal equations are not positive definite.
///
/// One pass over the samples: the right-hand side is the windowed data's DTFT at each tone;
/// the normal matrix depends only on the tones and the window, so it comes in closed form
/// ([`hann_dtft`] at the tones' sums and differences); the residual is
/// `sum w d^2 - coef . b`.
fn fit(data: &Weighted, fs: f64, freqs: &[f64]) -> Option<Fit> {
    let (m, n) = (2 * freqs.len(), data.wd.len());
    let mut phasors: [Phasor; TONES] =
        core::array::from_fn(|i| Phasor::new(freqs.get(i).map_or(0.0, |f| f / fs)));
    let mut sums = [Complex64::default(); TONES];
    for &wv in data.wd {
        for (sum, p) in sums.iter_mut().zip(phasors.iter_mut()).take(freqs.len()) {
            *sum += p.next().unwrap_or_default() * wv;
        }
    }
    let mut b = [0.0f64; COLS];
    for (i, sum) in sums.iter().enumerate().take(freqs.len()) {
        (b[2 * i], b[2 * i + 1]) = (sum.re, sum.im);
    }
    // cos a cos b = (C(a-b) + C(a+b)) / 2, sin a sin b = (C(a-b) - C(a+b)) / 2,
    // cos a sin b = (S(a+b) - S(a-b)) / 2, sin a cos b = (S(a+b) + S(a-b)) / 2, with C + iS
    // the windowed DTFT.
    let omega = |i: usize| TAU * freqs[i] / fs;
    let mut g = [[0.0f64; COLS]; COLS];
    for a in 0..freqs.len() {
        for c in 0..=a {
            let (diff, sum) = (hann_dtft(omega(a) - omega(c), n), hann_dtft(omega(a) + omega(c), n));
            g[2 * a][2 * c] = 0.5 * (diff.re + sum.re);
            g[2 * a + 1][2 * c + 1] = 0.5 * (diff.re - sum.re);
            g[2 * a][2 * c + 1] = 0.5 * (sum.im - diff.im);
            g[2 * a + 1][2 * c] = 0.5 * (sum.im + diff.im);
        }
    }
    let coef = solve_spd(&mut g, b, m)?;
    let explained: f64 = coef[..m].iter().zip(&b[..m]).map(|(c, b)| c * b).sum();
    Some(Fit { coef, residual: data.energy - explained })
}

/// The weighted residual of `coef` at `freqs`, summed sample by sample: exact where
/// `sum w d^2 - coef . b` loses digits to cancellation (the supply explains nearly all the
/// energy), which the last step of a search needs.
fn exact_residual(d: &[f64], hann: &[f64], fs: f64, freqs: &[f64], coef: &[f64; COLS]) -> f64 {
    let mut phasors: [Phasor; TONES] =
        core::array::from_fn(|i| Phasor::new(freqs.get(i).map_or(0.0, |f| f / fs)));
    let mut residual = 0.0;
    for (&v, &w) in d.iter().zip(hann) {
        let mut model = 0.0;
        for (i, p) in phasors.iter_mut().enumerate().take(freqs.len()) {
            let z = p.next().unwrap_or_default();
            model += coef[2 * i] * z.re + coef[2 * i + 1] * z.im;
        }
        residual += w * (v - model) * (v - model);
    }
    residual
}

/// Solves `G x = b` for the symmetric positive definite `G` given by its lower triangle
/// (`m` by `m`), by Cholesky factorisation in place.
fn solve_spd(g: &mut [[f64; COLS]; COLS], mut b: [f64; COLS], m: usize) -> Option<[f64; COLS]> {
    let scale = (0..m).map(|i| g[i][i]).fold(0.0, f64::max);
    for j in 0..m {
        let pivot = g[j][j] - (0..j).map(|k| g[j][k] * g[j][k]).sum::<f64>();
        if pivot <= 1e-12 * scale || pivot.is_nan() {
            return None;
        }
        let l = pivot.sqrt();
        g[j][j] = l;
        for i in j + 1..m {
            let s = g[i][j] - (0..j).map(|k| g[i][k] * g[j][k]).sum::<f64>();
            g[i][j] = s / l;
        }
    }
    for i in 0..m {
        b[i] = (b[i] - (0..i).map(|k| g[i][k] * b[k]).sum::<f64>()) / g[i][i];
    }
    for i in (0..m).rev() {
        b[i] = (b[i] - (i + 1..m).map(|k| g[k][i] * b[k]).sum::<f64>()) / g[i][i];
    }
    Some(b)
}

/// Fits the supply of the mean-removed current `d` under `hann` (the periodic Hann window of
/// `d`'s length: the fit's normal matrix is computed in closed form for it), given the measured
/// shaft frequency (0: unknown, then only the supply tone is fitted).
///
/// Two searches: the supply alone gives `f0` and the slip `s = 1 - p shaft_hz / f0`; then, if
/// `2 |s| f0` is at least the minimum separation, the supply and the sidebands at
/// `(1 -+ 2s) f` with that `s` held fixed give `f`. Holding `s` keeps the sidebands from
/// sliding onto the supply line while `f` is searched (where a fit of three nearly equal tones
/// would explain noise with huge opposite amplitudes).
pub(crate) fn supply(d: &[f64], hann: &[f64], scratch: &mut [f64], shaft_hz: f64, s: &Search) -> Supply {
    if d.iter().all(|&v| v == 0.0) {
        return Supply::default();
    }
    let data = Weighted::new(d, hann, scratch);
    let fast = |freqs: &[f64]| fit(&data, s.fs, freqs).map_or(f64::NEG_INFINITY, |r| -r.residual);
    let exact = |freqs: &[f64]| {
        fit(&data, s.fs, freqs).map_or(f64::NEG_INFINITY, |r| -exact_residual(d, hann, s.fs, freqs, &r.coef))
    };
    // Search with the fast residual, then polish the optimum with the exact one.
    let best = |tones: &dyn Fn(f64) -> [f64; TONES], count: usize| {
        let found = maximise(s.lo_hz, s.hi_hz, s.step_hz, |f| fast(&tones(f)[..count]));
        polish(s.lo_hz, s.hi_hz, s.step_hz, found, |f| exact(&tones(f)[..count]))
    };
    let alone = best(&|f| [f, 0.0, 0.0], 1);
    let slip = 1.0 - f64::from(s.pole_pairs) * shaft_hz / alone;
    let sidebands = shaft_hz > 0.0 && 2.0 * slip.abs() * alone >= s.min_separation_hz;
    let tones = |f: f64| [f, (1.0 - 2.0 * slip) * f, (1.0 + 2.0 * slip) * f];
    let hz = if sidebands { best(&tones, TONES) } else { alone };
    let count = if sidebands { TONES } else { 1 };
    let Some(best) = fit(&data, s.fs, &tones(hz)[..count]) else { return Supply::default() };
    let amp = |i: usize| best.coef[2 * i].hypot(best.coef[2 * i + 1]);
    let amplitude = amp(0);
    let ratio = |i: usize| if sidebands && amplitude > 0.0 { amp(i) / amplitude } else { 0.0 };
    Supply { hz, amplitude, lower: ratio(1), upper: ratio(2) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::spectrum::hann;

    #[test]
    fn recovers_a_supply_and_its_sidebands_inside_one_bin() {
        let (fs, n) = (8192.0, 2048);
        let (f, slip, shaft) = (50.02, 0.02, 50.02 / 2.0 * 0.98);
        let d: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 / fs;
                30.0 * (TAU * f * t + 0.3).cos()
                    + 0.9 * (TAU * (1.0 - 2.0 * slip) * f * t + 1.0).cos()
                    + 0.6 * (TAU * (1.0 + 2.0 * slip) * f * t - 2.0).cos()
            })
            .collect();
        let s = Search { fs, lo_hz: 49.5, hi_hz: 50.5, step_hz: 0.25, pole_pairs: 2, min_separation_hz: 1.0 };
        let mut scratch = vec![0.0; n];
        let got = supply(&d, &hann(n), &mut scratch, shaft, &s);
        // The slip comes from the supply fitted alone, which the sidebands pull a little.
        assert!((got.hz - f).abs() < 1e-3, "{got:?}");
        assert!((got.amplitude - 30.0).abs() < 0.05, "{got:?}");
        assert!((got.lower - 0.03).abs() < 0.001 && (got.upper - 0.02).abs() < 0.001, "{got:?}");
        // Too little slip to separate: the supply alone.
        let idle = supply(&d, &hann(n), &mut scratch, 25.0, &s);
        assert_eq!((idle.lower, idle.upper), (0.0, 0.0));
        assert_eq!(supply(&vec![0.0; n], &hann(n), &mut scratch, shaft, &s), Supply::default());
    }
}
