//! One training run of the mote's stage-1 model, from windows and outcomes to a validated int8
//! image: assemble the labelled data ([`super::dataset`]), split by motor, standardise on the
//! training motors, fit by Newton ([`super::logistic`]), validate on the held-out motors, and
//! quantize for the motes ([`super::quantize`]) with the int8 model's quality measured there.
//! The standardised features are winsorised ([`Winsorize::STAGE1`]): the float model is fitted
//! on values clipped where the int8 model clips, so the two differ by rounding only. The
//! validation motors only measure.
//!
//! The run refuses (with the reason) rather than produce a model it cannot vouch for: too few
//! labelled windows, a side with one class only, a fit that did not converge, or an int8 model
//! outside the quantization targets.

use aiot_firmware::model::{Model, MODEL_LEN};
use serde::{Deserialize, Serialize};

use super::dataset::{Counts, Dataset, Window};
use super::labels::{LabelRule, Outcomes};
use super::metrics::roc_auc;
use super::quantize::{self, QualityTargets, QuantizationQuality, QuantizeConfig};
use super::scorer::{self, FitConfig, Fitted, Scorer};
use super::standardize::Winsorize;

/// A training run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub rule: LabelRule,
    pub fit: FitConfig,
    /// The stage-1 decision threshold on the score.
    pub threshold: f64,
    pub targets: QualityTargets,
}

impl Default for TrainConfig {
    /// The label rule's and the fit's defaults with winsorised features, the decision
    /// threshold at 0.5.
    fn default() -> Self {
        TrainConfig {
            rule: LabelRule::default(),
            fit: FitConfig { winsorize: Some(Winsorize::STAGE1), ..FitConfig::default() },
            threshold: 0.5,
            targets: QualityTargets::default(),
        }
    }
}

/// What a run produced and how good it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingReport {
    pub version: u32,
    pub dataset_sha256: [u8; 32],
    /// Labelled windows used (training + validation), and what was left out.
    pub positives: usize,
    pub negatives: usize,
    pub unlabelled: usize,
    pub flagged: usize,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub iterations: usize,
    pub objective: f64,
    /// Held-out motors: the float model's ROC AUC and log loss, the int8 model's AUC and its
    /// decision agreement with the float model.
    pub validation_auc: f64,
    pub validation_log_loss: f64,
    pub int8_auc: f64,
    pub int8_agreement: f64,
    /// The model the motes run now (when given), its ROC AUC on the same held-out windows: what
    /// the canary rule compares the new model with.
    pub current_int8_auc: Option<f64>,
    /// The int8 image (`aiot_firmware::model`), ready to sign.
    #[serde(with = "serde_bytes")]
    pub image: Vec<u8>,
}

/// Trains model `version` from `windows` (stage-1 vectors) labelled by `outcomes` at `now_ms`;
/// `current`, the model the motes run now, is scored on the same held-out windows.
pub fn train(
    windows: &[Window],
    outcomes: &Outcomes,
    config: &TrainConfig,
    now_ms: u64,
    version: u32,
    current: Option<&Model>,
) -> Result<TrainingReport, String> {
    let data = Dataset::assemble(windows, outcomes, &config.rule, now_ms);
    let fitted = scorer::fit(&data, &config.fit)?;
    let (int8, quality) = quantize_fitted(&fitted, config, version)?;
    let current_int8_auc = current.map(|model| held_out_auc(&fitted, model)).transpose()?;
    report(&data, &fitted, &int8, &quality, current_int8_auc)
}

/// The int8 model (version `version`) of a fitted stage-1 scorer, and its quality against the
/// float model on the held-out motors; refused outside the quantization targets. A winsorised
/// scorer's bounds are the int8 ranges; without bounds, the range is the data's choice
/// ([`QuantizeConfig::from_data`]).
pub fn quantize_fitted(
    fitted: &Fitted,
    config: &TrainConfig,
    version: u32,
) -> Result<(Model, QuantizationQuality), String> {
    let Scorer { standardizer, model } = &fitted.scorer;
    let z = standardizer.transform(fitted.train.x.view());
    let quantize_config = QuantizeConfig::from_data(version, config.threshold, z.view());
    let int8 = quantize::quantize(model, standardizer, &quantize_config).map_err(|e| format!("{e:?}"))?;
    let labels = fitted.validation_scores().0;
    let quality = quantize::quality(
        model,
        standardizer,
        config.threshold,
        &int8,
        &fitted.validation.vectors(),
        &labels,
    )
    .map_err(|e| format!("{e:?}"))?;
    quality.check(&config.targets).map_err(|why| format!("the int8 model misses its targets: {why}"))?;
    Ok((int8, quality))
}

/// `model`'s ROC AUC on `fitted`'s held-out windows (the current model beside a new one).
pub fn held_out_auc(fitted: &Fitted, model: &Model) -> Result<f64, String> {
    let labels = fitted.validation_scores().0;
    let scores: Vec<f64> = fitted.validation.vectors().iter().map(|v| f64::from(model.score(v))).collect();
    roc_auc(&scores, &labels).map_err(|e| format!("the current model's AUC: {e:?}"))
}

/// The report of a run: the data, the fit, the int8 model and its quality.
pub fn report(
    data: &Dataset,
    fitted: &Fitted,
    int8: &Model,
    quality: &QuantizationQuality,
    current_int8_auc: Option<f64>,
) -> Result<TrainingReport, String> {
    let Counts { positive, negative, unlabelled, flagged, .. } = data.counts;
    let mut image = vec![0; MODEL_LEN];
    int8.encode(&mut image).map_err(|e| format!("{e:?}"))?;
    Ok(TrainingReport {
        version: int8.version,
        dataset_sha256: data.sha256(),
        positives: positive,
        negatives: negative,
        unlabelled,
        flagged,
        train_rows: fitted.train.len(),
        validation_rows: fitted.validation.len(),
        iterations: fitted.iterations,
        objective: fitted.objective,
        validation_auc: fitted.validation_auc,
        validation_log_loss: fitted.validation_log_loss,
        int8_auc: quality.auc_int8,
        int8_agreement: quality.agreement,
        current_int8_auc,
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::testdata::{fleet, DAY};

    #[test]
    fn a_run_trains_validates_on_held_out_motors_and_quantizes_within_targets() {
        let (windows, outcomes) = fleet();
        let report = train(&windows, &outcomes, &TrainConfig::default(), 40 * DAY, 7, None).unwrap();
        assert_eq!(report.flagged, 60 * 3, "flagged windows never train");
        assert!(report.positives >= 15 * 27, "{report:?}");
        assert!(report.validation_rows > 0 && report.train_rows > report.validation_rows);
        // The synthetic windows overlap (3% of labels flipped, mild defects): about 0.88-0.90.
        assert!(report.validation_auc > 0.85, "held-out AUC {}", report.validation_auc);
        assert!((report.int8_auc - report.validation_auc).abs() <= 0.005);
        assert!(report.int8_agreement >= 0.99);
        let model = aiot_firmware::model::Model::decode(&report.image).unwrap();
        assert_eq!(model.version, 7);
        let again = train(&windows, &outcomes, &TrainConfig::default(), 40 * DAY, 7, None).unwrap();
        assert_eq!(again, report, "a run is a function of its inputs");
        assert_eq!(report.current_int8_auc, None);
        // Given itself as the current model, it scores as well as itself on the same windows.
        let beside = train(&windows, &outcomes, &TrainConfig::default(), 40 * DAY, 8, Some(&model)).unwrap();
        let current = beside.current_int8_auc.expect("the current model was scored");
        assert!((current - report.int8_auc).abs() < 1e-9, "{current} vs {}", report.int8_auc);
    }

    #[test]
    fn a_run_refuses_what_it_cannot_vouch_for() {
        let (windows, outcomes) = fleet();
        let config = TrainConfig::default();
        let demanding = TrainConfig {
            fit: FitConfig { min_windows: 100_000, ..FitConfig::default() },
            ..TrainConfig::default()
        };
        let few = train(&windows, &outcomes, &demanding, 40 * DAY, 1, None).unwrap_err();
        assert!(few.contains("too little labelled data"), "{few}");
        let no_failures = train(&windows, &Outcomes::default(), &config, 40 * DAY, 1, None).unwrap_err();
        assert!(no_failures.contains("too little labelled data"), "{no_failures}");
        let all_validate = TrainConfig {
            fit: FitConfig { validation_share: 1.0, ..FitConfig::default() },
            ..TrainConfig::default()
        };
        let why = train(&windows, &outcomes, &all_validate, 40 * DAY, 1, None).unwrap_err();
        assert!(why.contains("training motors have one class only"), "{why}");
    }
}
