//! Classification metrics on scores (probabilities or logits) against 0/1 labels.
//!
//! - [`roc_auc`]: the Mann-Whitney statistic with average ranks, so tied scores count one half
//!   (equal to scikit-learn's `roc_auc_score`, which integrates the ROC curve through ties).
//! - [`log_loss`]: mean negative log likelihood of probabilities, clipped into
//!   `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` so a confident mistake costs a large finite amount.
//! - [`Confusion`]: counts at a threshold (`score >= threshold` is positive), with accuracy,
//!   precision and recall (`None` where undefined: no predicted or no actual positives).
//! - [`agreement`]: the fraction of rows on which two scorers, each at its own threshold, decide
//!   alike (the quantizer's and the canary's figure).
//! - [`quantile`]: a nearest-rank quantile (where an alert threshold goes among the training
//!   negatives' scores).

/// Probabilities are clipped into `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` for [`log_loss`]
/// (f64 machine epsilon, scikit-learn's choice for float64 input).
pub const LOG_LOSS_EPS: f64 = f64::EPSILON;

/// Why a metric is undefined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricError {
    /// Scores and labels (or two score vectors) differ in length.
    Length {
        /// Length of the first.
        left: usize,
        /// Length of the second.
        right: usize,
    },
    /// No rows.
    Empty,
    /// ROC AUC needs positives and negatives.
    SingleClass,
    /// A score is NaN.
    NanScore {
        /// Its index.
        index: usize,
    },
}

impl std::fmt::Display for MetricError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Length { left, right } => write!(f, "lengths differ: {left} and {right}"),
            Self::Empty => f.write_str("no rows"),
            Self::SingleClass => f.write_str("ROC AUC needs both classes"),
            Self::NanScore { index } => write!(f, "score {index} is NaN"),
        }
    }
}

impl std::error::Error for MetricError {}

fn check(scores: &[f64], labels: usize) -> Result<(), MetricError> {
    if scores.len() != labels {
        return Err(MetricError::Length { left: scores.len(), right: labels });
    }
    if scores.is_empty() {
        return Err(MetricError::Empty);
    }
    match scores.iter().position(|s| s.is_nan()) {
        Some(index) => Err(MetricError::NanScore { index }),
        None => Ok(()),
    }
}

/// Area under the ROC curve: `(R+ - n+ (n+ + 1) / 2) / (n+ n-)`, `R+` the sum of the positives'
/// ranks among all scores, tied scores sharing their average rank.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    check(scores, labels.len())?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start + 1 ..= end share their mean.
        let rank = (start + 1 + end) as f64 / 2.0;
        let positives = order[start..end].iter().filter(|&&i| labels[i]).count();
        positive_rank_sum += rank * positives as f64;
        start = end;
    }
    let n_pos = labels.iter().filter(|&&l| l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return Err(MetricError::SingleClass);
    }
    Ok((positive_rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Mean log loss of probabilities `p(y = 1)`.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> Result<f64, MetricError> {
    check(probabilities, labels.len())?;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            -if y { p.ln() } else { (1.0 - p).ln() }
        })
        .sum();
    Ok(total / probabilities.len() as f64)
}

/// Counts of decisions at a threshold against labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Predicted positive, labelled positive.
    pub true_positive: usize,
    /// Predicted positive, labelled negative.
    pub false_positive: usize,
    /// Predicted negative, labelled negative.
    pub true_negative: usize,
    /// Predicted negative, labelled positive.
    pub false_negative: usize,
}

impl Confusion {
    /// Counts the decisions `score >= threshold`.
    pub fn at(scores: &[f64], labels: &[bool], threshold: f64) -> Result<Confusion, MetricError> {
        check(scores, labels.len())?;
        let mut c = Confusion::default();
        for (&s, &y) in scores.iter().zip(labels) {
            match (s >= threshold, y) {
                (true, true) => c.true_positive += 1,
                (true, false) => c.false_positive += 1,
                (false, false) => c.true_negative += 1,
                (false, true) => c.false_negative += 1,
            }
        }
        Ok(c)
    }

    /// Rows counted.
    pub fn total(&self) -> usize {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    /// Fraction of decisions that match the label.
    pub fn accuracy(&self) -> f64 {
        (self.true_positive + self.true_negative) as f64 / self.total() as f64
    }

    /// Of the predicted positives, the fraction labelled positive; `None` without any.
    pub fn precision(&self) -> Option<f64> {
        let predicted = self.true_positive + self.false_positive;
        (predicted > 0).then(|| self.true_positive as f64 / predicted as f64)
    }

    /// Of the labelled positives, the fraction predicted positive; `None` without any.
    pub fn recall(&self) -> Option<f64> {
        let actual = self.true_positive + self.false_negative;
        (actual > 0).then(|| self.true_positive as f64 / actual as f64)
    }
}

/// Accuracy of the decisions `score >= threshold`.
pub fn accuracy(scores: &[f64], labels: &[bool], threshold: f64) -> Result<f64, MetricError> {
    Ok(Confusion::at(scores, labels, threshold)?.accuracy())
}

/// Fraction of rows where `a >= a_threshold` equals `b >= b_threshold`.
pub fn agreement(a: &[f64], a_threshold: f64, b: &[f64], b_threshold: f64) -> Result<f64, MetricError> {
    check(a, b.len())?;
    check(b, a.len())?;
    let same = a.iter().zip(b).filter(|(&a, &b)| (a >= a_threshold) == (b >= b_threshold)).count();
    Ok(same as f64 / a.len() as f64)
}

/// The `q` quantile of `values` by nearest rank (`round(q (n - 1))` in sorted order); `None`
/// for no values.
pub fn quantile(mut values: Vec<f64>, q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = (q.clamp(0.0, 1.0) * n.saturating_sub(1) as f64).round() as usize;
    values.get(rank.min(n.saturating_sub(1))).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_as_one_half() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]), Ok(0.75));
        // Every score tied: 0.5.
        assert_eq!(roc_auc(&[0.3; 6], &[true, false, true, false, false, true]), Ok(0.5));
        // roc_auc_score([0, 1, 0, 1, 1], [0.2, 0.2, 0.5, 0.5, 0.9]) == 0.6666...
        let auc = roc_auc(&[0.2, 0.2, 0.5, 0.5, 0.9], &[false, true, false, true, true]).unwrap();
        assert!((auc - 2.0 / 3.0).abs() < 1e-15);
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), Err(MetricError::SingleClass));
        assert_eq!(roc_auc(&[1.0, f64::NAN], &[true, false]), Err(MetricError::NanScore { index: 1 }));
        assert_eq!(roc_auc(&[], &[]), Err(MetricError::Empty));
    }

    #[test]
    fn log_loss_matches_its_definition_and_clips() {
        let ll = log_loss(&[0.9, 0.2], &[true, false]).unwrap();
        assert!((ll - -(0.9f64.ln() + 0.8f64.ln()) / 2.0).abs() < 1e-15);
        let worst = log_loss(&[0.0], &[true]).unwrap();
        assert!(worst.is_finite() && worst > 30.0);
        assert_eq!(log_loss(&[0.5], &[true, false]), Err(MetricError::Length { left: 1, right: 2 }));
    }

    #[test]
    fn confusion_precision_recall_accuracy() {
        let scores = [0.9, 0.8, 0.3, 0.6, 0.1, 0.5];
        let labels = [true, false, true, true, false, false];
        let c = Confusion::at(&scores, &labels, 0.5).unwrap();
        assert_eq!(c, Confusion { true_positive: 2, false_positive: 2, true_negative: 1, false_negative: 1 });
        assert_eq!(c.precision(), Some(0.5));
        assert_eq!(c.recall(), Some(2.0 / 3.0));
        assert_eq!(accuracy(&scores, &labels, 0.5), Ok(0.5));
        let none = Confusion::at(&scores, &labels, 2.0).unwrap();
        assert_eq!(none.precision(), None);
        assert_eq!(none.recall(), Some(0.0));
    }

    #[test]
    fn agreement_uses_each_threshold() {
        let a = [0.1, 0.6, 0.7, 0.4];
        let b = [1.0, 3.0, -1.0, 2.5];
        // a >= 0.5: F T T F; b >= 2.0: F T F T.
        assert_eq!(agreement(&a, 0.5, &b, 2.0), Ok(0.5));
        assert_eq!(agreement(&a, 0.5, &a, 0.5), Ok(1.0));
    }
}
