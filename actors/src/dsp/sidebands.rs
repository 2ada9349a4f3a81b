//! The supply current: its frequency and amplitude and the broken-rotor-bar sidebands at
//! `(1 - 2s) f` and `(1 + 2s) f`, by a Hann-weighted least-squares fit of tones at those
//! frequencies, the supply frequency `f` being the one that leaves the least residual
//! (variable projection: the tones' amplitudes and phases are linear, `f` is searched).
//!
//! Why a fit and not spectrum bins: `2 s f` is 1 to 2 Hz, under the 4 Hz bins of a 0.25 s
//! window, so the sidebands sit inside the supply line's main lobe. Over a short window a
//! sideband pair also looks partly like a small error in `f`; searching `f` jointly with the
//! sidebands (instead of taking the spectrum's peak, which the sidebands pull) keeps them apart.

use super::search::maximise;
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

/// Fits `d` (weights `w`) with `cos` and `sin` at each of `freqs` (Hz); `None` when the normal
/// equations are not positive definite.
fn fit(d: &[f64], w: &[f64], fs: f64, freqs: &[f64]) -> Option<Fit> {
    let m = 2 * freqs.len();
    let phasors =
        || core::array::from_fn::<_, TONES, _>(|i| Phasor::new(freqs.get(i).map_or(0.0, |f| f / fs)));
    let basis = |ph: &mut [Phasor; TONES], out: &mut [f64; COLS]| {
        for (i, p) in ph.iter_mut().enumerate().take(freqs.len()) {
            let z = p.next().unwrap_or_default();
            (out[2 * i], out[2 * i + 1]) = (z.re, z.im);
        }
    };
    let (mut g, mut b, mut row) = ([[0.0f64; COLS]; COLS], [0.0f64; COLS], [0.0f64; COLS]);
    let mut ph = phasors();
    for (&v, &wn) in d.iter().zip(w) {
        basis(&mut ph, &mut row);
        for a in 0..m {
            let wa = wn * row[a];
            b[a] += wa * v;
            for c in 0..=a {
                g[a][c] += wa * row[c];
            }
        }
    }
    let coef = solve_spd(&mut g, b, m)?;
    let mut residual = 0.0;
    let mut ph = phasors();
    for (&v, &wn) in d.iter().zip(w) {
        basis(&mut ph, &mut row);
        let model: f64 = coef[..m].iter().zip(&row[..m]).map(|(c, r)| c * r).sum();
        residual += wn * (v - model) * (v - model);
    }
    Some(Fit { coef, residual })
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

/// Fits the supply of the mean-removed current `d` under the window `w`, given the measured
/// shaft frequency (0: unknown, then only the supply tone is fitted).
///
/// Two searches: the supply alone gives `f0` and the slip `s = 1 - p shaft_hz / f0`; then, if
/// `2 |s| f0` is at least the minimum separation, the supply and the sidebands at
/// `(1 -+ 2s) f` with that `s` held fixed give `f`. Holding `s` keeps the sidebands from
/// sliding onto the supply line while `f` is searched (where a fit of three nearly equal tones
/// would explain noise with huge opposite amplitudes).
pub(crate) fn supply(d: &[f64], w: &[f64], shaft_hz: f64, s: &Search) -> Supply {
    if d.iter().all(|&v| v == 0.0) {
        return Supply::default();
    }
    let residual = |freqs: &[f64]| fit(d, w, s.fs, freqs).map_or(f64::NEG_INFINITY, |r| -r.residual);
    let alone = maximise(s.lo_hz, s.hi_hz, s.step_hz, |f| residual(&[f]));
    let slip = 1.0 - f64::from(s.pole_pairs) * shaft_hz / alone;
    let sidebands = shaft_hz > 0.0 && 2.0 * slip.abs() * alone >= s.min_separation_hz;
    let tones = |f: f64| [f, (1.0 - 2.0 * slip) * f, (1.0 + 2.0 * slip) * f];
    let hz = if sidebands { maximise(s.lo_hz, s.hi_hz, s.step_hz, |f| residual(&tones(f))) } else { alone };
    let count = if sidebands { TONES } else { 1 };
    let Some(best) = fit(d, w, s.fs, &tones(hz)[..count]) else { return Supply::default() };
    let amp = |i: usize| best.coef[2 * i].hypot(best.coef[2 * i + 1]);
    let amplitude = amp(0);
    let ratio = |i: usize| if sidebands && amplitude > 0.0 { amp(i) / amplitude } else { 0.0 };
    Supply { hz, amplitude, lower: ratio(1), upper: ratio(2) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::spectrum::hann;
    use std::f64::consts::TAU;

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
        let got = supply(&d, &hann(n), shaft, &s);
        // The slip comes from the supply fitted alone, which the sidebands pull a little.
        assert!((got.hz - f).abs() < 1e-3, "{got:?}");
        assert!((got.amplitude - 30.0).abs() < 0.05, "{got:?}");
        assert!((got.lower - 0.03).abs() < 0.001 && (got.upper - 0.02).abs() < 0.001, "{got:?}");
        // Too little slip to separate: the supply alone.
        let idle = supply(&d, &hann(n), 25.0, &s);
        assert_eq!((idle.lower, idle.upper), (0.0, 0.0));
        assert_eq!(supply(&vec![0.0; n], &hann(n), shaft, &s), Supply::default());
    }
}
