//! The windows a candidate motes' model is compared on with the model in service, and the
//! comparison (BLUEPRINT section 10, "Canary quality": the new model's ROC AUC on validation
//! windows labelled after the drift must be higher than the current model's).
//!
//! **Unseen windows.** The held-out motors of one training need not be those of the one
//! before (the split follows which motors have failed), so the model in service may have
//! been trained on some of the candidate's held-out windows, and would be judged on its own
//! training data. The comparison therefore takes only the windows whose label first became
//! known after the data of the model in service was taken ([`Dataset::known`]): it cannot have
//! learnt from them. With fewer than [`MIN_UNSEEN`] positives or negatives among them, every
//! held-out window is compared, and the set says so (`unseen_after_ms` is `None`).
//!
//! **After a drift.** When the model in service was trained before a drift, the comparison
//! takes every held-out positive and the held-out negatives captured at or after the drift.
//! Windows of the new regime are what the current model has not seen; a post-drift set of
//! negatives alone has no AUC, and a drift is followed within hours by inspections (negative
//! labels at once) but not by failures (positive labels come up to `label_horizon` later), so
//! the positives are the held-out positives of any time. The AUC then asks whether the new
//! regime's healthy windows rank below the known failing ones, which is where a stale model
//! goes wrong. With fewer than [`MIN_POST_DRIFT_NEGATIVES`] such negatives, or no drift since
//! the current model's data, every held-out window is compared.
//!
//! **A tie.** Both models may rank the set perfectly (AUC 1.0 each): AUC cannot tell them
//! apart, and "higher" would never hold. AUCs closer than a resolution (the canary rule's
//! `auc_tie`) are a tie, broken by log loss on the same windows (lower is better): a proper
//! scoring rule, and calibration on the new regime is what a retrained model adds when both
//! rank alike. Without a resolution, one pair of windows in a hundred thousand ordered the
//! other way (an AUC 0.00001 lower) outweighed any difference in calibration.

use aiot_firmware::features::FeatureVector;
use aiot_firmware::model::Model;
use serde::{Deserialize, Serialize};

use super::dataset::Dataset;
use super::metrics::{log_loss, roc_auc};

/// Post-drift negatives needed for a post-drift comparison.
pub const MIN_POST_DRIFT_NEGATIVES: usize = 10;
/// Positives and negatives each needed to compare on unseen windows only.
pub const MIN_UNSEEN: usize = 10;

/// The comparison windows as the motes compute them (f32 features) with their labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSet {
    /// The drift the negatives are taken after (`None`: no drift unseen by the model in
    /// service, or too few windows after it).
    pub since_ms: Option<u64>,
    /// Only windows labelled after this (the data time of the model in service) are compared
    /// (`None`: every held-out window, there were too few).
    pub unseen_after_ms: Option<u64>,
    pub vectors: Vec<FeatureVector>,
    pub labels: Vec<bool>,
}

/// One model's figures on a comparison set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub auc: f64,
    pub log_loss: f64,
}

impl Figures {
    /// Whether these figures beat `current`'s: an AUC higher by more than `tie`, or an AUC
    /// within `tie` of it and a lower log loss.
    pub fn beat(&self, current: &Figures, tie: f64) -> bool {
        let difference = self.auc - current.auc;
        difference > tie || (difference.abs() <= tie && self.log_loss < current.log_loss)
    }
}

impl ComparisonSet {
    /// The comparison windows of `held_out` (f64 features as stored) for a model in service
    /// whose data was taken at `data_ms` (`None`: unknown), with the monitor's last drift at
    /// `drift_ms`.
    pub fn select(held_out: &Dataset, data_ms: Option<u64>, drift_ms: Option<u64>) -> ComparisonSet {
        let positive = |i: usize| held_out.y[i] == 1.0;
        let count = |rows: &[usize], label: bool| rows.iter().filter(|&&i| positive(i) == label).count();
        let all: Vec<usize> = (0..held_out.len()).collect();
        let unseen_after_ms = data_ms.filter(|&data| {
            let unseen: Vec<usize> = all.iter().copied().filter(|&i| held_out.known[i] > data).collect();
            count(&unseen, true) >= MIN_UNSEEN && count(&unseen, false) >= MIN_UNSEEN
        });
        let base: Vec<usize> = all
            .into_iter()
            .filter(|&i| unseen_after_ms.is_none_or(|data| held_out.known[i] > data))
            .collect();
        let after = |i: usize, since: u64| positive(i) || held_out.times[i] >= since;
        let since_ms = drift_ms.filter(|&drift| data_ms.is_none_or(|data| drift > data)).filter(|&since| {
            let post_drift: Vec<usize> = base.iter().copied().filter(|&i| after(i, since)).collect();
            count(&post_drift, false) >= MIN_POST_DRIFT_NEGATIVES
        });
        let rows: Vec<usize> =
            base.into_iter().filter(|&i| since_ms.is_none_or(|since| after(i, since))).collect();
        let vectors = rows.iter().map(|&i| held_out.vector(i)).collect();
        ComparisonSet {
            since_ms,
            unseen_after_ms,
            vectors,
            labels: rows.iter().map(|&i| positive(i)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `model`'s ROC AUC and log loss on the set.
    pub fn measure(&self, model: &Model) -> Result<Figures, String> {
        let scores: Vec<f64> = self.vectors.iter().map(|v| f64::from(model.score(v))).collect();
        let auc =
            roc_auc(&scores, &self.labels).map_err(|e| format!("AUC of model {}: {e:?}", model.version))?;
        let log_loss = log_loss(&scores, &self.labels)
            .map_err(|e| format!("log loss of model {}: {e:?}", model.version))?;
        Ok(Figures { auc, log_loss })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::dataset::Counts;
    use aiot_firmware::features::FEATURE_COUNT;
    use ndarray::{Array1, Array2};

    /// Rows `(time, label, feature value)`: one motor, the value in every feature, each
    /// label known an hour after its window.
    fn held_out(rows: &[(u64, bool, f64)]) -> Dataset {
        let x = Array2::from_shape_fn((rows.len(), FEATURE_COUNT), |(i, _)| rows[i].2);
        let y = Array1::from_iter(rows.iter().map(|r| if r.1 { 1.0 } else { 0.0 }));
        let times: Vec<u64> = rows.iter().map(|r| r.0).collect();
        let known = times.iter().map(|t| t + 3_600_000).collect();
        Dataset { x, y, motes: vec![1; rows.len()], times, known, counts: Counts::default() }
    }

    /// Logit `sum(features) * 1 + bias`, threshold 0.5.
    fn model(version: u32, bias: f32) -> Model {
        Model {
            version,
            offset: [0.0; FEATURE_COUNT],
            scale: [1.0; FEATURE_COUNT],
            input_scale: 0.1,
            weights: [1; FEATURE_COUNT],
            weight_scale: 0.1,
            bias,
            threshold: 0.5,
        }
    }

    #[test]
    fn after_a_drift_the_positives_and_the_new_regimes_negatives_are_compared() {
        // Old regime: negatives at -1; new regime (from t = 100): negatives at 0.2, positives at 1.
        let mut rows = vec![(50, true, 1.0), (60, true, 0.9)];
        rows.extend((0..20).map(|t| (t, false, -1.0)));
        rows.extend((100..112).map(|t| (t, false, 0.2)));
        let data = held_out(&rows);
        let set = ComparisonSet::select(&data, None, Some(100));
        assert_eq!(set.since_ms, Some(100));
        assert_eq!(set.len(), 2 + 12, "both positives and the 12 post-drift negatives");
        assert_eq!(set.labels.iter().filter(|l| **l).count(), 2);
        // Too few post-drift negatives: every window.
        let early = ComparisonSet::select(&data, None, Some(105));
        assert_eq!((early.since_ms, early.len()), (None, data.len()));
        assert_eq!(ComparisonSet::select(&data, None, None).len(), data.len());
        // A drift older than the data of the model in service is no news to it.
        let seen = ComparisonSet::select(&data, Some(100), Some(100));
        assert_eq!(seen.since_ms, None);
    }

    #[test]
    fn only_windows_labelled_after_the_data_of_the_model_in_service_are_compared() {
        // 12 positives and 12 negatives labelled before day 1, as many after.
        const DAY: u64 = 86_400_000;
        let mut rows: Vec<(u64, bool, f64)> = Vec::new();
        for (from, value) in [(0, 1.0), (2 * DAY, 0.5)] {
            rows.extend((0..12).map(|i| (from + i, true, value)));
            rows.extend((0..12).map(|i| (from + 100 + i, false, -value)));
        }
        let data = held_out(&rows);
        let set = ComparisonSet::select(&data, Some(DAY), None);
        assert_eq!(set.unseen_after_ms, Some(DAY));
        assert_eq!(set.len(), 24, "the windows labelled after day 1 only");
        assert!(set.vectors.iter().all(|v| v[0].abs() == 0.5));
        // Too few unseen negatives: every window, and the set says so.
        let mut few = data.clone();
        few.known[36..].iter_mut().for_each(|k| *k = 0);
        let set = ComparisonSet::select(&few, Some(DAY), None);
        assert_eq!((set.unseen_after_ms, set.len()), (None, data.len()));
        // A drift on top: the unseen positives and the negatives since the drift.
        let set = ComparisonSet::select(&data, Some(DAY), Some(2 * DAY + 106));
        assert_eq!(
            (set.since_ms, set.unseen_after_ms),
            (None, Some(DAY)),
            "6 post-drift negatives are too few"
        );
        let set = ComparisonSet::select(&data, Some(DAY), Some(2 * DAY + 100));
        assert_eq!((set.since_ms, set.len()), (Some(2 * DAY + 100), 24));
    }

    #[test]
    fn a_tie_at_a_perfect_auc_goes_to_the_better_calibrated_model() {
        let mut rows = vec![(50, true, 1.0), (60, true, 0.9)];
        rows.extend((100..112).map(|t| (t, false, 0.2)));
        let set = ComparisonSet::select(&held_out(&rows), None, Some(100));
        // Both rank every positive above every negative; the stale model scores the new
        // regime's healthy windows near 0.5, the retrained one near 0.
        let (stale, retrained) = (model(1, 0.0), model(2, -4.0));
        let (old, new) = (set.measure(&stale).unwrap(), set.measure(&retrained).unwrap());
        assert_eq!((old.auc, new.auc), (1.0, 1.0));
        assert!(new.log_loss < old.log_loss, "{new:?} {old:?}");
        assert!(new.beat(&old, 0.0) && !old.beat(&new, 0.0));
        assert!(!new.beat(&new, 0.0), "not better than itself");
        let worse = Figures { auc: 0.99, log_loss: 0.01 };
        assert!(!worse.beat(&old, 0.005), "a lower AUC loses whatever its log loss");
        // Within the resolution, log loss decides either way.
        let close = Figures { auc: 0.998, log_loss: 0.01 };
        assert!(close.beat(&old, 0.005) && !close.beat(&old, 0.001));
        let sharper = Figures { auc: 1.0, log_loss: 1.0 };
        assert!(!sharper.beat(&close, 0.005) && sharper.beat(&close, 0.001));
    }
}
