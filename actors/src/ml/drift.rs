//! Drift statistics: PSI and two-sample Kolmogorov-Smirnov on a feature's distribution, and
//! Page-Hinkley on an error-rate stream (BLUEPRINT section 5, the DriftMonitor's evidence).
//!
//! **PSI** (population stability index), [`PsiReference`]: bin edges are the reference's
//! quantiles `k / bins` (`k = 1..bins`; equal edges merge, so a point mass is one bin); a value
//! `v` falls in the first bin whose upper edge is `>= v`. With `r_i` and `c_i` the reference and
//! current fractions per bin, each at least [`PsiConfig::epsilon`] (default `1e-4`: an empty
//! bin counts as one in ten thousand rather than giving `ln 0`), `PSI = sum (c_i - r_i) ln(c_i /
//! r_i)`. Defaults: 10 bins; drift when PSI > 0.2 (the usual reading: < 0.1 stable, 0.1 to 0.2
//! moderate, > 0.2 significant).
//!
//! **Kolmogorov-Smirnov**, [`ks_two_sample`]: `D = sup |F_a - F_b|` over the pooled values (ties
//! stepped together, as `scipy.stats.ks_2samp`), and the asymptotic p-value
//! `Q_KS(sqrt(n m / (n + m)) D)`, `Q_KS` the Kolmogorov distribution's survival function
//! (`scipy.stats.kstwobign.sf`). Drift when `p < alpha`, default [`KS_ALPHA`] = `1e-4`: with a
//! check per hour that is one false alarm in about 10 000 hours (14 months) on stationary data,
//! while a sample of a thousand still detects a shift of a quarter of a standard deviation.
//! (KS needs no binning but notices negligible shifts in large samples; PSI measures size.)
//!
//! **Page-Hinkley** ([`PageHinkley`], chosen over ADWIN): one observation per outcome (1 =
//! the model was wrong, 0 = right), detecting an *increase* of the error rate. It keeps four
//! numbers (O(1) time and memory, trivially snapshotted with the actor's state), its two
//! parameters read directly (`delta`: the rise in error rate tolerated, `lambda`: how much
//! accumulated evidence raises an alarm), and it is deterministic. ADWIN adapts its window
//! but keeps O(log n) buckets and its guarantee is about any change; a rising error rate is the
//! one change that calls for retraining. With `x_t` the observations and `x̄_t` their running
//! mean, `m_t = sum_{i<=t} (x_i - x̄_i - delta)`, `M_t = min m`; an alarm when `m_t - M_t >
//! lambda` after at least `min_samples` observations, and the detector starts over. Defaults
//! (River's): `delta = 0.005`, `lambda = 50`, `min_samples = 30`.

use serde::{Deserialize, Serialize};

/// Default significance level of the KS test.
pub const KS_ALPHA: f64 = 1e-4;

/// Why a statistic could not be computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DriftError {
    /// A sample is empty.
    Empty(&'static str),
    /// A sample holds a NaN.
    NotANumber {
        /// Which sample.
        what: &'static str,
        /// Its index.
        index: usize,
    },
    /// A setting is out of range.
    BadConfig(&'static str),
}

impl std::fmt::Display for DriftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty(what) => write!(f, "the {what} sample is empty"),
            Self::NotANumber { what, index } => write!(f, "the {what} sample holds NaN at {index}"),
            Self::BadConfig(why) => write!(f, "bad setting: {why}"),
        }
    }
}

impl std::error::Error for DriftError {}

fn sorted(values: &[f64], what: &'static str) -> Result<Vec<f64>, DriftError> {
    if values.is_empty() {
        return Err(DriftError::Empty(what));
    }
    if let Some(index) = values.iter().position(|v| v.is_nan()) {
        return Err(DriftError::NotANumber { what, index });
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// PSI settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiConfig {
    /// Quantile bins of the reference (at least 2).
    pub bins: usize,
    /// Floor of every bin fraction (empty bins), > 0.
    pub epsilon: f64,
    /// Drift when PSI exceeds this.
    pub threshold: f64,
}

impl Default for PsiConfig {
    /// 10 bins, epsilon `1e-4`, threshold 0.2.
    fn default() -> Self {
        PsiConfig { bins: 10, epsilon: 1e-4, threshold: 0.2 }
    }
}

/// A reference distribution, binned once; compare current samples against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiReference {
    config: PsiConfig,
    /// Upper edges of every bin but the last (strictly increasing).
    edges: Vec<f64>,
    /// The reference's fraction in each bin (`edges.len() + 1` of them), floored.
    expected: Vec<f64>,
}

/// A PSI comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PsiResult {
    /// The index.
    pub psi: f64,
    /// `psi > threshold`.
    pub drift: bool,
}

impl PsiReference {
    /// Bins `reference` (module doc).
    pub fn new(reference: &[f64], config: PsiConfig) -> Result<PsiReference, DriftError> {
        if config.bins < 2 {
            return Err(DriftError::BadConfig("PSI needs at least 2 bins"));
        }
        if !(config.epsilon > 0.0 && config.epsilon < 1.0) {
            return Err(DriftError::BadConfig("PSI epsilon must be in (0, 1)"));
        }
        let values = sorted(reference, "reference")?;
        let n = values.len();
        let mut edges: Vec<f64> =
            (1..config.bins).map(|k| values[(k * n).div_ceil(config.bins).max(1) - 1]).collect();
        edges.dedup();
        if edges.last() == values.last() {
            edges.pop(); // nothing would fall above it
        }
        let mut reference = PsiReference { config, edges, expected: Vec::new() };
        reference.expected = reference.fractions(&values);
        Ok(reference)
    }

    /// The bin edges (upper edge of each bin but the last).
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// The reference's (floored) fraction per bin.
    pub fn expected(&self) -> &[f64] {
        &self.expected
    }

    fn fractions(&self, values: &[f64]) -> Vec<f64> {
        let mut counts = vec![0usize; self.edges.len() + 1];
        for &v in values {
            counts[self.edges.partition_point(|&e| e < v)] += 1;
        }
        let n = values.len() as f64;
        counts.iter().map(|&c| (c as f64 / n).max(self.config.epsilon)).collect()
    }

    /// PSI of `current` against the reference.
    pub fn compare(&self, current: &[f64]) -> Result<PsiResult, DriftError> {
        if current.is_empty() {
            return Err(DriftError::Empty("current"));
        }
        if let Some(index) = current.iter().position(|v| v.is_nan()) {
            return Err(DriftError::NotANumber { what: "current", index });
        }
        let psi: f64 =
            self.fractions(current).iter().zip(&self.expected).map(|(&c, &r)| (c - r) * (c / r).ln()).sum();
        Ok(PsiResult { psi, drift: psi > self.config.threshold })
    }
}

/// A two-sample KS test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KsResult {
    /// `D = sup |F_a - F_b|`.
    pub statistic: f64,
    /// The asymptotic two-sided p-value.
    pub p_value: f64,
}

impl KsResult {
    /// Drift at significance `alpha` (`p_value < alpha`).
    pub fn drift(&self, alpha: f64) -> bool {
        self.p_value < alpha
    }
}

/// The two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (module doc).
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Result<KsResult, DriftError> {
    let a = sorted(a, "first")?;
    let b = sorted(b, "second")?;
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let v = a[i].min(b[j]);
        while i < a.len() && a[i] == v {
            i += 1;
        }
        while j < b.len() && b[j] == v {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    let effective = (n * m / (n + m)).sqrt();
    Ok(KsResult { statistic: d, p_value: kolmogorov_sf(effective * d) })
}

/// `P(K > x)` for the Kolmogorov distribution (`scipy.stats.kstwobign.sf`).
pub fn kolmogorov_sf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    if x < 1.18 {
        // 1 - sqrt(2 pi) / x * sum_k exp(-(2k - 1)^2 pi^2 / (8 x^2)): converges fast for small x.
        let a = -std::f64::consts::PI.powi(2) / (8.0 * x * x);
        let cdf: f64 = (1..=8).map(|k| ((2 * k - 1) as f64).powi(2) * a).map(f64::exp).sum::<f64>()
            * (std::f64::consts::TAU).sqrt()
            / x;
        (1.0 - cdf).clamp(0.0, 1.0)
    } else {
        // 2 sum_k (-1)^(k-1) exp(-2 k^2 x^2): converges fast for large x.
        let terms = (1..=20).map(|k: i32| {
            let sign = if k % 2 == 1 { 1.0 } else { -1.0 };
            sign * (-2.0 * f64::from(k * k) * x * x).exp()
        });
        (2.0 * terms.sum::<f64>()).clamp(0.0, 1.0)
    }
}

/// Page-Hinkley settings (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageHinkleyConfig {
    /// Rise of the mean tolerated per observation, >= 0.
    pub delta: f64,
    /// Alarm threshold on `m_t - M_t`, > 0.
    pub lambda: f64,
    /// No alarm before this many observations (since the start or the last alarm).
    pub min_samples: u64,
}

impl Default for PageHinkleyConfig {
    /// `delta = 0.005`, `lambda = 50`, `min_samples = 30`.
    fn default() -> Self {
        PageHinkleyConfig { delta: 0.005, lambda: 50.0, min_samples: 30 }
    }
}

/// The Page-Hinkley test for an increase in the mean of a stream (module doc).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageHinkley {
    config: PageHinkleyConfig,
    samples: u64,
    mean: f64,
    cumulative: f64,
    minimum: f64,
}

impl PageHinkley {
    /// A fresh detector.
    pub fn new(config: PageHinkleyConfig) -> Result<PageHinkley, DriftError> {
        if !(config.delta >= 0.0 && config.delta.is_finite()) {
            return Err(DriftError::BadConfig("Page-Hinkley delta must be finite and >= 0"));
        }
        if !(config.lambda > 0.0 && config.lambda.is_finite()) {
            return Err(DriftError::BadConfig("Page-Hinkley lambda must be finite and > 0"));
        }
        Ok(PageHinkley { config, samples: 0, mean: 0.0, cumulative: 0.0, minimum: 0.0 })
    }

    /// Takes one observation (NaN is ignored); `true` when it raises an alarm, after which
    /// the detector has started over.
    pub fn observe(&mut self, x: f64) -> bool {
        if x.is_nan() {
            return false;
        }
        self.samples += 1;
        self.mean += (x - self.mean) / self.samples as f64;
        self.cumulative += x - self.mean - self.config.delta;
        self.minimum = self.minimum.min(self.cumulative);
        let alarm = self.samples >= self.config.min_samples && self.statistic() > self.config.lambda;
        if alarm {
            self.reset();
        }
        alarm
    }

    /// `m_t - M_t`, the evidence of an increase.
    pub fn statistic(&self) -> f64 {
        self.cumulative - self.minimum
    }

    /// The running mean since the start or the last alarm.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Observations since the start or the last alarm.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Starts over (as after an alarm).
    pub fn reset(&mut self) {
        *self = PageHinkley { config: self.config, samples: 0, mean: 0.0, cumulative: 0.0, minimum: 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::testdata::normal;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A feature like vibration kurtosis: mean 3, standard deviation 0.3.
    fn feature(rng: &mut ChaCha8Rng, n: usize, shift_sd: f64, sd_factor: f64) -> Vec<f64> {
        (0..n).map(|_| 3.0 + 0.3 * (shift_sd + sd_factor * normal(rng))).collect()
    }

    /// Each hourly check compares 1 000 fresh windows with a 10 000-window reference.
    const REFERENCE: usize = 10_000;
    const WINDOW: usize = 1_000;
    /// 30 simulated days of hourly checks.
    const CHECKS: usize = 30 * 24;

    #[test]
    fn psi_fires_on_a_mean_shift_and_a_variance_shift() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let reference =
            PsiReference::new(&feature(&mut rng, REFERENCE, 0.0, 1.0), PsiConfig::default()).unwrap();
        assert_eq!(reference.edges().len(), 9);
        let same = reference.compare(&feature(&mut rng, WINDOW, 0.0, 1.0)).unwrap();
        let mean = reference.compare(&feature(&mut rng, WINDOW, 1.0, 1.0)).unwrap();
        let spread = reference.compare(&feature(&mut rng, WINDOW, 0.0, 2.0)).unwrap();
        assert!(!same.drift && same.psi < 0.05, "{same:?}");
        assert!(mean.drift && mean.psi > 0.5, "{mean:?}");
        assert!(spread.drift, "{spread:?}");
    }

    #[test]
    fn psi_bins_by_reference_quantiles_with_ties_and_empty_bins() {
        // Reference 1..=10: deciles are the values themselves.
        let reference: Vec<f64> = (1..=10).map(f64::from).collect();
        let psi = PsiReference::new(&reference, PsiConfig::default()).unwrap();
        assert_eq!(psi.edges(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert!(psi.expected().iter().all(|&f| (f - 0.1).abs() < 1e-15));
        assert_eq!(psi.compare(&reference).unwrap().psi, 0.0);
        // Everything in the top bin: 9 bins at epsilon, one at 1.
        let top = psi.compare(&[100.0; 5]).unwrap();
        let eps: f64 = 1e-4;
        let expected = 9.0 * (eps - 0.1) * (eps / 0.1).ln() + 0.9 * 10f64.ln();
        assert!((top.psi - expected).abs() < 1e-12, "{top:?}");
        // A point mass merges its edges into one bin.
        let mass = PsiReference::new(&[0.0, 0.0, 0.0, 0.0, 1.0], PsiConfig::default()).unwrap();
        assert_eq!(mass.edges(), &[0.0]);
        assert!(PsiReference::new(&[], PsiConfig::default()).is_err());
        assert_eq!(psi.compare(&[1.0, f64::NAN]), Err(DriftError::NotANumber { what: "current", index: 1 }));
    }

    #[test]
    fn ks_matches_scipy() {
        // scipy.stats.ks_2samp(a, b).statistic == 0.38333333333333336, and
        // kstwobign.sf(sqrt(10 * 12 / 22) * D) == 0.39928928008499287.
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 7.0, 7.0];
        let b = [2.0, 3.0, 3.0, 3.0, 4.0, 6.0, 6.0, 7.0, 8.0, 9.0, 9.0, 10.0];
        let r = ks_two_sample(&a, &b).unwrap();
        assert!((r.statistic - 0.38333333333333336).abs() < 1e-15, "{r:?}");
        assert!((r.p_value - 0.39928928008499287).abs() < 1e-12, "{r:?}");
        // scipy.stats.kstwobign.sf at 0.2, 0.5, 1.0, 1.5, 2.5.
        for (x, sf) in [
            (0.2, 0.999999999999495),
            (0.5, 0.9639452436648751),
            (1.0, 0.26999967167735456),
            (1.5, 0.022217962616525127),
            (2.5, 7.453306344157342e-06),
        ] {
            assert!((kolmogorov_sf(x) - sf).abs() < 1e-12 * sf.max(1e-3), "{x}: {}", kolmogorov_sf(x));
        }
        assert_eq!(kolmogorov_sf(0.0), 1.0);
    }

    #[test]
    fn ks_fires_on_a_mean_shift_and_a_variance_shift() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let reference = feature(&mut rng, REFERENCE, 0.0, 1.0);
        let same = ks_two_sample(&reference, &feature(&mut rng, WINDOW, 0.0, 1.0)).unwrap();
        assert!(!same.drift(KS_ALPHA), "{same:?}");
        for (shift, factor) in [(1.0, 1.0), (0.0, 2.0), (0.25, 1.0), (0.0, 1.5)] {
            let r = ks_two_sample(&reference, &feature(&mut rng, WINDOW, shift, factor)).unwrap();
            assert!(r.drift(KS_ALPHA), "shift {shift} sd, sd x{factor}: {r:?}");
        }
    }

    /// An error stream: a classifier thresholds a sensor reading `u + noise` at 1.5 to predict
    /// `u > 1.5`; drift moves the sensor (`offset`) or makes it noisier (`noise`).
    fn errors(rng: &mut ChaCha8Rng, n: usize, offset: f64, noise: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u = normal(rng);
                let reading = u + offset + noise * normal(rng);
                f64::from(u8::from((reading > 1.5) != (u > 1.5)))
            })
            .collect()
    }

    /// Outcomes per simulated hour on the error stream.
    const OUTCOMES_PER_HOUR: usize = 60;

    fn hours_to_alarm(ph: &mut PageHinkley, stream: &[f64]) -> Option<usize> {
        stream.iter().position(|&e| ph.observe(e)).map(|i| i / OUTCOMES_PER_HOUR)
    }

    #[test]
    fn page_hinkley_fires_when_the_error_rate_rises_from_a_mean_or_variance_shift() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (offset, noise, what) in [(0.8, 0.3, "sensor offset +0.8"), (0.0, 1.0, "sensor noise 0.3 -> 1.0")]
        {
            let mut ph = PageHinkley::new(PageHinkleyConfig::default()).unwrap();
            // A week of normal operation, then the drift.
            let before = errors(&mut rng, 7 * 24 * OUTCOMES_PER_HOUR, 0.0, 0.3);
            assert_eq!(hours_to_alarm(&mut ph, &before), None, "{what}: false alarm");
            let after = errors(&mut rng, 7 * 24 * OUTCOMES_PER_HOUR, offset, noise);
            let rate = after.iter().sum::<f64>() / after.len() as f64;
            let hours = hours_to_alarm(&mut ph, &after);
            println!("page-hinkley, {what}: error rate {rate:.3}, alarm after {hours:?} h");
            assert!(hours.is_some_and(|h| h <= 24), "{what}: alarm after {hours:?} hours");
        }
    }

    #[test]
    fn a_month_of_stationary_data_raises_at_most_one_false_alarm() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let reference = feature(&mut rng, REFERENCE, 0.0, 1.0);
        let psi = PsiReference::new(&reference, PsiConfig::default()).unwrap();
        let mut ph = PageHinkley::new(PageHinkleyConfig::default()).unwrap();
        let (mut psi_alarms, mut ks_alarms, mut ph_alarms) = (0, 0, 0);
        let (mut psi_max, mut ks_p_min) = (0.0f64, 1.0f64);
        for _ in 0..CHECKS {
            let window = feature(&mut rng, WINDOW, 0.0, 1.0);
            let p = psi.compare(&window).unwrap();
            let k = ks_two_sample(&reference, &window).unwrap();
            psi_alarms += usize::from(p.drift);
            ks_alarms += usize::from(k.drift(KS_ALPHA));
            psi_max = psi_max.max(p.psi);
            ks_p_min = ks_p_min.min(k.p_value);
            for e in errors(&mut rng, OUTCOMES_PER_HOUR, 0.0, 0.3) {
                ph_alarms += usize::from(ph.observe(e));
            }
        }
        println!(
            "{CHECKS} hourly checks: PSI alarms {psi_alarms} (max PSI {psi_max:.4}), KS alarms \
             {ks_alarms} (min p {ks_p_min:.2e}), Page-Hinkley alarms {ph_alarms} over {} outcomes",
            CHECKS * OUTCOMES_PER_HOUR
        );
        assert!(psi_alarms + ks_alarms + ph_alarms <= 1);
    }

    #[test]
    fn page_hinkley_resets_after_an_alarm_and_refuses_bad_settings() {
        let mut ph =
            PageHinkley::new(PageHinkleyConfig { delta: 0.0, lambda: 5.0, min_samples: 10 }).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut fired = false;
        for t in 0..200 {
            let x = if t < 100 { 0.0 } else { f64::from(u8::from(rng.random::<f64>() < 0.9)) };
            fired |= ph.observe(x);
        }
        assert!(fired);
        assert!(ph.samples() < 100, "started over after the alarm");
        assert!(PageHinkley::new(PageHinkleyConfig { lambda: 0.0, ..PageHinkleyConfig::default() }).is_err());
    }
}
