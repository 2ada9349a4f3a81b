//! The float model to the mote's int8 model ([`aiot_firmware::model::Model`], its exact byte
//! format), and the quality report that measures what quantization lost.
//!
//! **Input.** A [`LogisticModel`] trained on standardised features, and the [`Standardizer`]
//! fitted on the same training data: the image carries its offsets and scales (as f32), so the
//! mote standardises raw features itself.
//!
//! **Choices** (the int8 scoring is in `aiot_firmware::model`'s module doc):
//! - Each feature's int8 codes span its range `r[i]` of standardised values: `[-r[i], r[i]]`
//!   maps onto `-127..=127`, beyond that it clips. A winsorised standardiser (the motes'
//!   stage-1 model, [`super::standardize::Winsorize::STAGE1`]) gives `r[i]` its bound, so the
//!   int8 model clips exactly where the float model was trained to (per-feature scale; the
//!   zero point is the standardisation offset). Otherwise every feature takes
//!   `config.input_range`, which [`QuantizeConfig::from_data`] takes as the
//!   [`INPUT_RANGE_QUANTILE`] quantile of `|z|` over every standardised training value,
//!   clamped into `[INPUT_RANGE_MIN, INPUT_RANGE_MAX]`.
//! - The image format has one `input_scale` and a standardisation scale per feature, so the
//!   range folds into the latter: with `base = max r[i]`, the image's `scale[i]` is the
//!   standardiser's times `r[i] / base`, `input_scale = base / 127`, and the weights quantized
//!   are `coef[i] * r[i] / base` (the logit per unit of the image's standardised value). With
//!   one range for all, that is the standardiser's scale and the model's coefficients as they
//!   are.
//! - `weight_scale = max |folded coef| / 127`: the largest weight uses the full int8 range
//!   (symmetric, so 0 stays exact); every weight is rounded to the nearest step. All-zero
//!   weights get `weight_scale = 1`.
//! - `bias`: the float intercept, kept in f32 (the format keeps it unquantised).
//! - `threshold`: the float model's decision threshold, unchanged. The int8 score approximates
//!   the float score, so the same threshold keeps decisions alike; re-tuning it for the int8
//!   model would hide the loss this module is meant to measure.
//!
//! **Quality** ([`quality`]; BLUEPRINT section 10, "Quantization quality"): on validation data,
//! the float model's ROC AUC and the int8 model's (scored by the firmware's own
//! `Model::score`, on the f32 features a mote computes), their difference, and decision
//! agreement at the two thresholds. [`QualityTargets::default`] holds the issue's targets: AUC
//! within 0.005, agreement at least 99%.

use aiot_firmware::features::{FeatureVector, FEATURE_COUNT};
use aiot_firmware::model::{Model, ModelError};
use ndarray::{Array1, ArrayView2};

use super::logistic::{sigmoid, LogisticModel};
use super::metrics::{self, MetricError};
use super::standardize::Standardizer;

/// [`QuantizeConfig::from_data`] maps this quantile of `|z|` to the int8 code 127.
pub const INPUT_RANGE_QUANTILE: f64 = 0.999;
/// The smallest input range chosen from data (standard deviations).
pub const INPUT_RANGE_MIN: f64 = 4.0;
/// The largest input range chosen from data (standard deviations).
pub const INPUT_RANGE_MAX: f64 = 16.0;

/// How to quantize.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantizeConfig {
    /// The model version written into the image (non-zero).
    pub version: u32,
    /// The decision threshold on the score, in `[0, 1]` (the float model's).
    pub threshold: f64,
    /// Standardised value that maps to int8 code 127 for a standardiser without bounds (see
    /// the module doc), > 0.
    pub input_range: f64,
}

impl QuantizeConfig {
    /// Chooses `input_range` from the standardised training features (module doc).
    pub fn from_data(version: u32, threshold: f64, standardized: ArrayView2<'_, f64>) -> QuantizeConfig {
        let mut magnitudes: Vec<f64> =
            standardized.iter().map(|z| z.abs()).filter(|z| z.is_finite()).collect();
        let range = if magnitudes.is_empty() {
            INPUT_RANGE_MIN
        } else {
            magnitudes.sort_by(f64::total_cmp);
            let at = ((magnitudes.len() - 1) as f64 * INPUT_RANGE_QUANTILE).round() as usize;
            magnitudes[at].clamp(INPUT_RANGE_MIN, INPUT_RANGE_MAX)
        };
        QuantizeConfig { version, threshold, input_range: range }
    }
}

/// Why a model could not be quantized or measured.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantizeError {
    /// The float model or standardizer has a different number of features than the firmware.
    FeatureCount {
        /// [`FEATURE_COUNT`].
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// `input_range` is not finite and > 0.
    BadInputRange(f64),
    /// A coefficient, offset, scale or the intercept is NaN or infinite (or too large for f32).
    NotFinite,
    /// The image would be invalid (`Model::validate`).
    Model(ModelError),
    /// The validation data could not be scored.
    Metric(MetricError),
}

impl std::fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FeatureCount { expected, got } => {
                write!(f, "the model has {got} features, the firmware computes {expected}")
            }
            Self::BadInputRange(r) => write!(f, "input range {r} is not finite and > 0"),
            Self::NotFinite => f.write_str("the float model holds a NaN, infinite or f32-overflowing number"),
            Self::Model(e) => write!(f, "invalid int8 model: {e}"),
            Self::Metric(e) => write!(f, "validation data: {e}"),
        }
    }
}

impl std::error::Error for QuantizeError {}

impl From<MetricError> for QuantizeError {
    fn from(e: MetricError) -> Self {
        QuantizeError::Metric(e)
    }
}

fn to_f32(v: f64) -> Result<f32, QuantizeError> {
    let narrow = v as f32;
    if narrow.is_finite() {
        Ok(narrow)
    } else {
        Err(QuantizeError::NotFinite)
    }
}

fn check_width(got: usize) -> Result<(), QuantizeError> {
    if got == FEATURE_COUNT {
        Ok(())
    } else {
        Err(QuantizeError::FeatureCount { expected: FEATURE_COUNT, got })
    }
}

/// The int8 model of `model` (trained on `standardizer`'s output); validated, ready to encode.
pub fn quantize(
    model: &LogisticModel,
    standardizer: &Standardizer,
    config: &QuantizeConfig,
) -> Result<Model, QuantizeError> {
    check_width(model.coef.len())?;
    check_width(standardizer.offset.len())?;
    check_width(standardizer.scale.len())?;
    if !(config.input_range > 0.0 && config.input_range.is_finite()) {
        return Err(QuantizeError::BadInputRange(config.input_range));
    }
    let ranges = match &standardizer.bound {
        Some(bound) => {
            check_width(bound.len())?;
            if let Some(bad) = bound.iter().find(|r| !(**r > 0.0 && r.is_finite())) {
                return Err(QuantizeError::BadInputRange(*bad));
            }
            bound.clone()
        }
        None => Array1::from_elem(FEATURE_COUNT, config.input_range),
    };
    let base = ranges.fold(0.0f64, |m, r| m.max(*r));
    let folded = &model.coef * &ranges / base;
    let largest = folded.fold(0.0f64, |m, w| m.max(w.abs()));
    if !largest.is_finite() {
        return Err(QuantizeError::NotFinite);
    }
    let weight_scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
    let mut int8 = Model {
        version: config.version,
        offset: [0.0; FEATURE_COUNT],
        scale: [0.0; FEATURE_COUNT],
        input_scale: to_f32(base / 127.0)?,
        weights: [0; FEATURE_COUNT],
        weight_scale: to_f32(weight_scale)?,
        bias: to_f32(model.intercept)?,
        threshold: config.threshold as f32,
    };
    for i in 0..FEATURE_COUNT {
        int8.offset[i] = to_f32(standardizer.offset[i])?;
        int8.scale[i] = to_f32(standardizer.scale[i] * ranges[i] / base)?;
        int8.weights[i] = (folded[i] / weight_scale).round().clamp(-127.0, 127.0) as i8;
    }
    int8.validate().map_err(QuantizeError::Model)?;
    Ok(int8)
}

/// The issue's bounds on quantization loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityTargets {
    /// Largest allowed `|AUC(int8) - AUC(float)|`.
    pub auc_difference_max: f64,
    /// Smallest allowed decision agreement.
    pub agreement_min: f64,
}

impl Default for QualityTargets {
    /// AUC within 0.005, agreement at least 0.99 (issue 7).
    fn default() -> Self {
        QualityTargets { auc_difference_max: 0.005, agreement_min: 0.99 }
    }
}

/// The int8 model against the float model on validation data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantizationQuality {
    /// Validation rows.
    pub rows: usize,
    /// Of which labelled positive.
    pub positives: usize,
    /// ROC AUC of the float model.
    pub auc_float: f64,
    /// ROC AUC of the int8 model (the firmware's scores).
    pub auc_int8: f64,
    /// `auc_int8 - auc_float`.
    pub auc_difference: f64,
    /// Fraction of rows decided alike (each model at its threshold).
    pub agreement: f64,
    /// Largest `|score_int8 - score_float|`.
    pub score_difference_max: f64,
    /// Mean `|score_int8 - score_float|`.
    pub score_difference_mean: f64,
    /// Fraction of int8 input codes at -127 or 127 (clipped, or at the range's edge).
    pub clipped_inputs: f64,
}

impl QuantizationQuality {
    /// `Ok` when within `targets`; otherwise every miss, in words.
    pub fn check(&self, targets: &QualityTargets) -> Result<(), String> {
        let mut misses = Vec::new();
        if self.auc_difference.abs() > targets.auc_difference_max {
            misses.push(format!(
                "ROC AUC moved by {:+.5} (float {:.5}, int8 {:.5}; allowed {})",
                self.auc_difference, self.auc_float, self.auc_int8, targets.auc_difference_max
            ));
        }
        if self.agreement < targets.agreement_min {
            misses.push(format!(
                "decision agreement {:.4} (allowed >= {})",
                self.agreement, targets.agreement_min
            ));
        }
        if misses.is_empty() {
            Ok(())
        } else {
            Err(misses.join("; "))
        }
    }
}

/// Scores `features` with the float model (f64, after `standardizer`) and with `int8` (the
/// firmware's `Model::score`), and compares them against `labels`.
pub fn quality(
    float: &LogisticModel,
    standardizer: &Standardizer,
    float_threshold: f64,
    int8: &Model,
    features: &[FeatureVector],
    labels: &[bool],
) -> Result<QuantizationQuality, QuantizeError> {
    check_width(float.coef.len())?;
    let mut float_scores = Vec::with_capacity(features.len());
    let mut int8_scores = Vec::with_capacity(features.len());
    let mut clipped = 0usize;
    for f in features {
        let raw = Array1::from_iter(f.iter().map(|&v| f64::from(v)));
        let z = standardizer.transform_row(raw.view());
        float_scores.push(sigmoid(float.logit(z.view())));
        int8_scores.push(f64::from(int8.score(f)));
        clipped += int8.quantize_input(f).iter().filter(|q| q.unsigned_abs() == 127).count();
    }
    let auc_float = metrics::roc_auc(&float_scores, labels)?;
    let auc_int8 = metrics::roc_auc(&int8_scores, labels)?;
    let agreement =
        metrics::agreement(&float_scores, float_threshold, &int8_scores, f64::from(int8.threshold))?;
    let differences = float_scores.iter().zip(&int8_scores).map(|(a, b)| (a - b).abs());
    let (max, sum) = differences.fold((0.0f64, 0.0), |(m, s), d| (m.max(d), s + d));
    Ok(QuantizationQuality {
        rows: features.len(),
        positives: labels.iter().filter(|&&l| l).count(),
        auc_float,
        auc_int8,
        auc_difference: auc_int8 - auc_float,
        agreement,
        score_difference_max: max,
        score_difference_mean: sum / features.len() as f64,
        clipped_inputs: clipped as f64 / (features.len() * FEATURE_COUNT) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::logistic::{fit, LogisticConfig};
    use crate::ml::testdata::{motor_windows, to_matrix};
    use aiot_firmware::model::MODEL_LEN;

    struct Trained {
        float: LogisticModel,
        standardizer: Standardizer,
        config: QuantizeConfig,
    }

    fn train(seed: u64) -> Trained {
        let (features, labels) = motor_windows(seed, 20_000);
        let x = to_matrix(&features);
        let y = Array1::from_iter(labels.iter().map(|&l| f64::from(u8::from(l))));
        let standardizer = Standardizer::fit(x.view());
        let z = standardizer.transform(x.view());
        let (float, report) = fit(z.view(), y.view(), &LogisticConfig::default()).unwrap();
        assert!(report.converged, "{report:?}");
        let config = QuantizeConfig::from_data(3, 0.5, z.view());
        Trained { float, standardizer, config }
    }

    #[test]
    fn the_int8_model_is_within_the_issue_targets_on_held_out_windows() {
        let t = train(11);
        let int8 = quantize(&t.float, &t.standardizer, &t.config).unwrap();
        // The exact firmware format: encodes to MODEL_LEN bytes and decodes to itself.
        let mut image = [0u8; MODEL_LEN];
        assert_eq!(int8.encode(&mut image), Ok(MODEL_LEN));
        assert_eq!(Model::decode(&image), Ok(int8));
        assert_eq!(int8.weights.iter().map(|w| w.unsigned_abs()).max(), Some(127));

        let (features, labels) = motor_windows(12, 20_000);
        let q = quality(&t.float, &t.standardizer, 0.5, &int8, &features, &labels).unwrap();
        println!(
            "input range {:.3} sd; quality on {} held-out windows ({} positive): {q:?}",
            t.config.input_range, q.rows, q.positives
        );
        assert!(q.auc_float > 0.85 && q.auc_float < 0.995, "not a trivial data set: {q:?}");
        q.check(&QualityTargets::default()).unwrap();
    }

    #[test]
    fn a_coarse_quantization_misses_the_targets() {
        let t = train(11);
        // One int8 step per standard deviation: most of what separates the classes rounds away.
        let coarse = QuantizeConfig { input_range: 127.0, ..t.config };
        let int8 = quantize(&t.float, &t.standardizer, &coarse).unwrap();
        let (features, labels) = motor_windows(12, 20_000);
        let q = quality(&t.float, &t.standardizer, 0.5, &int8, &features, &labels).unwrap();
        assert!(q.check(&QualityTargets::default()).is_err(), "{q:?}");
    }

    #[test]
    fn weights_round_to_the_nearest_step_of_the_largest() {
        let mut coef = Array1::zeros(FEATURE_COUNT);
        coef[0] = -2.54;
        coef[1] = 1.0;
        coef[2] = 0.009;
        let model = LogisticModel { intercept: -1.25, coef };
        let config = QuantizeConfig { version: 1, threshold: 0.3, input_range: 6.35 };
        let int8 = quantize(&model, &Standardizer::identity(FEATURE_COUNT), &config).unwrap();
        assert_eq!(&int8.weights[..4], &[-127, 50, 0, 0]);
        assert!((int8.weight_scale - 0.02).abs() < 1e-7);
        assert!((int8.input_scale - 0.05).abs() < 1e-7);
        assert_eq!((int8.bias, int8.threshold), (-1.25, 0.3));
        let wrong = LogisticModel { intercept: 0.0, coef: Array1::zeros(3) };
        assert_eq!(
            quantize(&wrong, &Standardizer::identity(3), &config),
            Err(QuantizeError::FeatureCount { expected: FEATURE_COUNT, got: 3 })
        );
        let bad_range = QuantizeConfig { input_range: 0.0, ..config };
        assert_eq!(
            quantize(&model, &Standardizer::identity(FEATURE_COUNT), &bad_range),
            Err(QuantizeError::BadInputRange(0.0))
        );
        let zero = LogisticModel { intercept: 0.0, coef: Array1::zeros(FEATURE_COUNT) };
        let zero8 = quantize(&zero, &Standardizer::identity(FEATURE_COUNT), &config).unwrap();
        assert_eq!((zero8.weights, zero8.weight_scale), ([0; FEATURE_COUNT], 1.0));
    }

    /// A winsorised standardiser's bounds become each feature's int8 range: the mote clips
    /// where the float model does, and scores alike inside and outside the bounds.
    #[test]
    fn per_feature_bounds_fold_into_the_image() {
        let mut coef = Array1::zeros(FEATURE_COUNT);
        coef[0] = 2.0;
        coef[1] = -1.0;
        let model = LogisticModel { intercept: -0.5, coef };
        let mut bound = Array1::from_elem(FEATURE_COUNT, 2.0);
        bound[0] = 8.0;
        let standardizer = Standardizer { bound: Some(bound), ..Standardizer::identity(FEATURE_COUNT) };
        let config = QuantizeConfig { version: 1, threshold: 0.5, input_range: 99.0 };
        let int8 = quantize(&model, &standardizer, &config).unwrap();
        assert!((int8.input_scale - 8.0 / 127.0).abs() < 1e-7, "the widest bound, not input_range");
        assert_eq!((int8.scale[0], int8.scale[1]), (1.0, 0.25));
        // Folded: 2 * 8/8 and -1 * 2/8; the larger takes 127.
        assert_eq!(&int8.weights[..2], &[127, -16]);
        for (f0, f1) in [(0.5f32, 0.3f32), (20.0, -9.0), (-3.0, 1.9)] {
            let mut f = [0.0f32; FEATURE_COUNT];
            (f[0], f[1]) = (f0, f1);
            let z = standardizer.transform_row(Array1::from_iter(f.iter().map(|v| f64::from(*v))).view());
            let float = sigmoid(model.logit(z.view()));
            assert!((float - f64::from(int8.score(&f))).abs() < 0.02, "{f0}, {f1}: {float}");
        }
        let bad = Standardizer { bound: Some(Array1::zeros(FEATURE_COUNT)), ..standardizer };
        assert_eq!(quantize(&model, &bad, &config), Err(QuantizeError::BadInputRange(0.0)));
    }

    #[test]
    fn the_input_range_comes_from_the_tail_of_the_training_data() {
        let wide =
            ndarray::Array2::from_shape_fn((1000, 2), |(i, j)| (i as f64 - 500.0) / 50.0 * (j + 1) as f64);
        let config = QuantizeConfig::from_data(1, 0.5, wide.view());
        assert_eq!(config.input_range, INPUT_RANGE_MAX);
        let narrow = ndarray::Array2::from_elem((10, 2), 0.1);
        assert_eq!(QuantizeConfig::from_data(1, 0.5, narrow.view()).input_range, INPUT_RANGE_MIN);
    }
}
