//! A float scorer (standardiser + logistic model) and the fit that makes one: split labelled
//! windows by motor, standardise on the training motors, fit by Newton, and validate on the
//! held-out motors. Stage 1's training run (`super::train`) quantizes the result for the motes;
//! stage 2 scores DSP vectors with it as it is.

use ndarray::ArrayView1;
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::logistic::{self, sigmoid, LogisticConfig, LogisticModel};
use super::metrics::{log_loss, quantile, roc_auc};
use super::standardize::{Standardizer, Winsorize};

/// `p(positive | x) = sigmoid(coef . (x - offset) / scale + intercept)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    pub standardizer: Standardizer,
    pub model: LogisticModel,
}

impl Scorer {
    /// Features the scorer takes.
    pub fn width(&self) -> usize {
        self.model.coef.len()
    }

    /// The probability of `values` (as wide as [`Scorer::width`]).
    pub fn score(&self, values: &[f64]) -> f64 {
        sigmoid(self.logit(values))
    }

    /// The log-odds of `values`.
    pub fn logit(&self, values: &[f64]) -> f64 {
        self.logit_of_row(ArrayView1::from(values))
    }

    fn logit_of_row(&self, row: ArrayView1<'_, f64>) -> f64 {
        let z = self.standardizer.transform_row(row);
        self.model.logit(z.view())
    }

    /// Each feature's share of the logit (`coef_i z_i`), in feature order: the evidence.
    pub fn contributions(&self, values: &[f64]) -> Vec<f64> {
        let z = self.standardizer.transform_row(ArrayView1::from(values));
        z.iter().zip(self.model.coef.iter()).map(|(z, c)| z * c).collect()
    }
}

/// A fitted scorer with the data it was fitted and validated on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fitted {
    pub scorer: Scorer,
    pub train: Dataset,
    pub validation: Dataset,
    pub iterations: usize,
    pub objective: f64,
    /// The held-out motors' ROC AUC and log loss.
    pub validation_auc: f64,
    pub validation_log_loss: f64,
}

impl Fitted {
    /// The `q` quantile of the scores of the training negatives: an alert threshold that
    /// about `1 - q` of healthy windows reach (`None` without negatives).
    pub fn negative_score_quantile(&self, q: f64) -> Option<f64> {
        let rows = self.train.x.rows().into_iter().zip(self.train.y.iter());
        let scores = rows.filter(|(_, y)| **y == 0.0).map(|(row, _)| sigmoid(self.scorer.logit_of_row(row)));
        quantile(scores.collect(), q)
    }

    /// The validation rows' labels and scores.
    pub fn validation_scores(&self) -> (Vec<bool>, Vec<f64>) {
        let labels = self.validation.y.iter().map(|v| *v == 1.0).collect();
        let rows = self.validation.x.rows().into_iter();
        let scores = rows.map(|row| sigmoid(self.scorer.logit_of_row(row))).collect();
        (labels, scores)
    }
}

/// The requirements a fit checks before it vouches for a scorer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitConfig {
    pub logistic: LogisticConfig,
    /// Share of motors held out for validation, and the seed choosing them.
    pub validation_share: f64,
    pub split_seed: u64,
    /// Labelled windows needed at least, and positives among them.
    pub min_windows: usize,
    pub min_positives: usize,
    /// Clip standardised values at per-feature bounds picked from the training motors (the
    /// motes' int8 model: [`Winsorize::STAGE1`]); none: unclipped (stage 2).
    pub winsorize: Option<Winsorize>,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            logistic: LogisticConfig::default(),
            validation_share: 0.25,
            split_seed: 0x5eed,
            min_windows: 200,
            min_positives: 10,
            winsorize: None,
        }
    }
}

/// Fits a scorer on `data`, or says why not: too few labelled windows, a side of the split
/// with one class only, or a fit that did not converge.
pub fn fit(data: &Dataset, config: &FitConfig) -> Result<Fitted, String> {
    let counts = data.counts;
    if data.len() < config.min_windows || counts.positive < config.min_positives {
        return Err(format!(
            "too little labelled data: {} windows ({} positive), need {} ({} positive); {} unlabelled, {} flagged",
            data.len(),
            counts.positive,
            config.min_windows,
            config.min_positives,
            counts.unlabelled,
            counts.flagged
        ));
    }
    let (train, validation) = data.split_by_motor(config.validation_share, config.split_seed);
    for (side, part) in [("training", &train), ("validation", &validation)] {
        if part.counts.positive == 0 || part.counts.negative == 0 {
            return Err(format!("the {side} motors have one class only ({} rows)", part.len()));
        }
    }
    let mut standardizer = Standardizer::fit(train.x.view());
    if let Some(how) = &config.winsorize {
        standardizer = standardizer.winsorized(train.x.view(), how);
    }
    let z = standardizer.transform(train.x.view());
    let (model, report) =
        logistic::fit(z.view(), train.y.view(), &config.logistic).map_err(|e| format!("{e:?}"))?;
    if !report.converged {
        return Err(format!("the fit did not converge in {} iterations", report.iterations));
    }
    let scorer = Scorer { standardizer, model };
    let mut fitted = Fitted {
        scorer,
        train,
        validation,
        iterations: report.iterations,
        objective: report.objective,
        validation_auc: 0.0,
        validation_log_loss: 0.0,
    };
    let (labels, scores) = fitted.validation_scores();
    fitted.validation_auc = roc_auc(&scores, &labels).map_err(|e| format!("{e:?}"))?;
    fitted.validation_log_loss = log_loss(&scores, &labels).map_err(|e| format!("{e:?}"))?;
    Ok(fitted)
}
