//! One-dimensional maximisation over a frequency band: a grid, then golden-section search.
//!
//! `maximise(lo, hi, step, f)` evaluates `f` at `x_k = min(lo + k step, hi)` for
//! `k = 0..=ceil((hi - lo) / step)`, takes the first best grid point `g`, and refines within
//! `[max(lo, g - step), min(hi, g + step)]` by golden-section search ([`GOLDEN_ITERATIONS`]
//! steps: the bracket shrinks to 0.618^48, about 1e-10 of its width). The grid makes the search
//! global at the grid's resolution; the refinement assumes one maximum within a step of the best
//! grid point, which holds when `step` is well below the width of the peak sought (a Hann
//! window's main lobe is four bins wide; callers use a sixteenth of a bin). Last, a parabola
//! through `f` at `x - h`, `x`, `x + h` (`h` = [`VERTEX_SPACING`] steps) moves `x` to its vertex
//! when that is a maximum within `h`: near the top `f` is flat, so comparing values stops
//! telling which way the maximum lies (f64 rounding) before the bracket is small, while the
//! vertex of differences over `h` places it about a thousand times more precisely. The supply
//! fit needs that: its sideband ratios move by about 0.5 per Hz of supply frequency. A
//! maximum at an end of the band (within `h` of it, and no lower there) is that end exactly.

/// Golden-section steps after the grid.
pub(crate) const GOLDEN_ITERATIONS: usize = 48;

/// The parabola's half-width, in grid steps.
pub(crate) const VERTEX_SPACING: f64 = 1e-4;

/// The `x` in `[lo, hi]` where `f` is largest (see the module doc). `lo <= hi`, `step > 0`.
pub(crate) fn maximise(lo: f64, hi: f64, step: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    let points = ((hi - lo) / step).ceil().max(0.0) as usize;
    let (mut best_x, mut best) = (lo, f(lo));
    for k in 1..=points {
        let x = (lo + k as f64 * step).min(hi);
        let v = f(x);
        if v > best {
            (best_x, best) = (x, v);
        }
    }
    let (mut a, mut b) = ((best_x - step).max(lo), (best_x + step).min(hi));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..GOLDEN_ITERATIONS {
        if fc >= fd {
            b = d;
            (d, fd) = (c, fc);
            c = b - ratio * (b - a);
            fc = f(c);
        } else {
            a = c;
            (c, fc) = (d, fd);
            d = a + ratio * (b - a);
            fd = f(d);
        }
    }
    polish(lo, hi, step, 0.5 * (a + b), f)
}

/// The last step of [`maximise`] from its golden-section result `x`: an end of the band if the
/// maximum is there, else the vertex of the parabola through `f` at `x - h`, `x`, `x + h`.
/// Callers whose `f` is cheap but slightly noisy search with it and polish with an exact one.
pub(crate) fn polish(lo: f64, hi: f64, step: f64, x: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    let h = step * VERTEX_SPACING;
    for edge in [lo, hi] {
        if (x - edge).abs() <= h && f(edge) >= f(x) {
            return edge;
        }
    }
    let (left, mid, right) = (f(x - h), f(x), f(x + h));
    let curvature = left - 2.0 * mid + right;
    if curvature < 0.0 {
        let shift = 0.5 * h * (left - right) / curvature;
        if shift.abs() <= h {
            return (x + shift).clamp(lo, hi);
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_peak_of_a_parabola_and_stays_in_the_band() {
        let x = maximise(0.0, 10.0, 0.5, |x| -(x - 3.3) * (x - 3.3));
        assert!((x - 3.3).abs() < 1e-9, "{x}");
        let edge = maximise(0.0, 2.0, 0.5, |x| x);
        assert!((edge - 2.0).abs() < 1e-9 && edge <= 2.0, "{edge}");
        // Two hills: the grid picks the higher one.
        let two =
            maximise(0.0, 10.0, 0.25, |x| (-(x - 2.0).powi(2)).exp() + 2.0 * (-(x - 7.0).powi(2)).exp());
        assert!((two - 7.0).abs() < 1e-6, "{two}");
    }
}
