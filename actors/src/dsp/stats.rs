//! Time-domain statistics of one channel: mean removal, RMS, peak, crest factor, kurtosis.
//!
//! All in f64 on the dequantised samples; the definitions are in the module doc of
//! [`crate::dsp`] (population moments, Pearson's kurtosis).

/// The statistics of one mean-removed channel.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Stats {
    /// `sqrt(mean(d^2))`.
    pub rms: f64,
    /// `max |d|`.
    pub peak: f64,
    /// `peak / rms`, 0 when `rms` is 0.
    pub crest: f64,
    /// `mean(d^4) / mean(d^2)^2` (Pearson: 3 for a Gaussian), 0 when the variance is 0.
    pub kurtosis: f64,
}

/// Subtracts the mean from `x` in place and returns it.
pub(crate) fn remove_mean(x: &mut [f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    x.iter_mut().for_each(|v| *v -= mean);
    mean
}

/// The statistics of `d`, a channel whose mean is already removed.
pub(crate) fn stats(d: &[f64]) -> Stats {
    if d.is_empty() {
        return Stats::default();
    }
    let (mut s2, mut s4, mut peak) = (0.0f64, 0.0f64, 0.0f64);
    for &v in d {
        let sq = v * v;
        s2 += sq;
        s4 += sq * sq;
        peak = peak.max(v.abs());
    }
    let n = d.len() as f64;
    let (m2, m4) = (s2 / n, s4 / n);
    let rms = m2.sqrt();
    Stats {
        rms,
        peak,
        crest: if rms > 0.0 { peak / rms } else { 0.0 },
        kurtosis: if m2 > 0.0 { m4 / (m2 * m2) } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_wave_has_unit_crest_and_kurtosis() {
        let mut x: Vec<f64> = (0..64).map(|i| if i % 2 == 0 { 3.0 } else { 1.0 }).collect();
        assert_eq!(remove_mean(&mut x), 2.0);
        let s = stats(&x);
        assert_eq!((s.rms, s.peak, s.crest, s.kurtosis), (1.0, 1.0, 1.0, 1.0));
        let flat = stats(&[0.0; 8]);
        assert_eq!(flat, Stats::default());
    }
}
