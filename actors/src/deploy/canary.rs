//! The canary rule (BLUEPRINT section 10, "Canary quality"): promotion does not wait for
//! failures. The canary motes run the candidate; every window they report is also scored in
//! shadow by the model the fleet runs now, on the same features. At the end of the canary
//! period the candidate is promoted when, over the canary's windows:
//!
//! - **decision agreement** (`candidate score >= its threshold` equals `current score >= its
//!   threshold`) is at least [`CanaryRule::min_agreement`] (default 0.95);
//! - **score stability**: PSI of the candidate's scores against the current model's shadow
//!   scores is at most [`CanaryRule::max_psi`] (default 0.25). The bins are fixed on the
//!   probability scale (ten, edges 0.1 .. 0.9: two calibrations that differ inside a bin make
//!   the same decisions, which quantile bins would call a shift), and each bin's fraction is
//!   smoothed, `(count + 0.5) / (n + 5)`: a canary has tens of windows, and with the drift
//!   monitor's floor of `1e-4` for an empty bin one window crossing an edge would read as a
//!   shift (0.35 for 18 windows) where the smoothed index reads 0.05;
//! - **validation**: the candidate's int8 ROC AUC on its held-out windows is above the current
//!   model's on the same windows (the card's `stage1_int8_auc` and `stage1_int8_auc_current`,
//!   computed by the trainer); a card without the current model's figure (the trainer did not
//!   know it) needs `stage1_int8_auc >= min_auc` (default 0.75).
//!
//! Otherwise it is rolled back. With fewer than `min_windows` (default 20) canary windows at the
//! end of the period, the period is extended; still too few after three periods is a rollback.
//! Without a current model to shadow (a fleet's first model) only validation decides.
//!
//! A stopped (tripped) motor's windows are no evidence and do not count. The trip itself is:
//! a canary mote whose motor the candidate tripped on a window the current model scores under
//! its threshold is a **disputed trip**, and rolls the candidate back at once, period or not
//! (the canary has stopped a motor the fleet's model would have left running).

use std::time::Duration;

use aiot_firmware::features::FeatureVector;
use aiot_firmware::model::Model;
use serde::{Deserialize, Serialize};

use crate::registry::artifact::ModelCard;

/// The canary rule's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CanaryRule {
    /// How long the canary runs, in cluster time (default 30 minutes).
    pub period: Duration,
    pub min_windows: usize,
    pub min_agreement: f64,
    pub max_psi: f64,
    pub min_auc: f64,
    /// A disputed trip rolls the candidate back at once (default true).
    pub disputed_trip_rolls_back: bool,
}

impl Default for CanaryRule {
    fn default() -> Self {
        CanaryRule {
            period: Duration::from_secs(30 * 60),
            min_windows: 20,
            min_agreement: 0.95,
            max_psi: 0.25,
            min_auc: 0.75,
            disputed_trip_rolls_back: true,
        }
    }
}

/// The card metric of the candidate's int8 AUC on its held-out windows.
pub const AUC: &str = "stage1_int8_auc";
/// The card metric of the current model's int8 AUC on the same windows.
pub const AUC_CURRENT: &str = "stage1_int8_auc_current";

/// Fixed PSI bin edges on the probability scale.
const SCORE_EDGES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Each bin's smoothed fraction of `scores`.
fn fractions(scores: &[f64]) -> Vec<f64> {
    let mut counts = [0usize; SCORE_EDGES.len() + 1];
    for &s in scores {
        counts[SCORE_EDGES.partition_point(|&e| e < s)] += 1;
    }
    let total = scores.len() as f64 + 0.5 * counts.len() as f64;
    counts.iter().map(|&c| (c as f64 + 0.5) / total).collect()
}

/// What the canary's windows showed so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CanaryEvidence {
    /// The candidate's scores (as the motes reported them) and the current model's on the same
    /// windows.
    pub scores: Vec<f64>,
    pub shadow: Vec<f64>,
    /// Windows where both decided alike.
    pub agreed: usize,
    /// Motes whose motor the candidate tripped where the current model would not have.
    pub disputed_trips: Vec<u32>,
}

impl CanaryEvidence {
    /// One canary window: the candidate's reported score, and the shadow score of `current`.
    pub fn observe(
        &mut self,
        features: &FeatureVector,
        score: f32,
        candidate: &Model,
        current: Option<&Model>,
    ) {
        self.scores.push(f64::from(score));
        if let Some(current) = current {
            let shadow = current.score(features);
            self.shadow.push(f64::from(shadow));
            self.agreed += usize::from((score >= candidate.threshold) == (shadow >= current.threshold));
        }
    }

    /// A canary mote's motor tripped on this window under the candidate: disputed when the
    /// current model scores it under its threshold.
    pub fn observe_trip(&mut self, mote: u32, features: &FeatureVector, current: Option<&Model>) {
        if current.is_some_and(|m| m.score(features) < m.threshold) {
            self.disputed_trips.push(mote);
        }
    }

    pub fn windows(&self) -> usize {
        self.scores.len()
    }

    /// Decision agreement with the shadow model (`None` without one).
    pub fn agreement(&self) -> Option<f64> {
        (!self.shadow.is_empty()).then(|| self.agreed as f64 / self.shadow.len() as f64)
    }

    /// PSI of the candidate's scores against the shadow scores (`None` without a shadow).
    pub fn psi(&self) -> Option<f64> {
        if self.shadow.is_empty() {
            return None;
        }
        let (current, reference) = (fractions(&self.scores), fractions(&self.shadow));
        Some(current.iter().zip(&reference).map(|(c, r)| (c - r) * (c / r).ln()).sum())
    }
}

/// The rule's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Keep watching (the period has not ended, or too few windows yet).
    Wait,
    Promote(String),
    RollBack(String),
}

impl CanaryRule {
    /// The verdict `elapsed` into the canary period on `evidence`, for the candidate's `card`.
    pub fn judge(&self, evidence: &CanaryEvidence, card: &ModelCard, elapsed: Duration) -> Verdict {
        if let Some(mote) = evidence.disputed_trips.first().filter(|_| self.disputed_trip_rolls_back) {
            return Verdict::RollBack(format!(
                "it tripped mote-{mote}'s motor on a window the current model scores under its threshold"
            ));
        }
        if elapsed < self.period {
            return Verdict::Wait;
        }
        let n = evidence.windows();
        if n < self.min_windows {
            return if elapsed >= self.period * 3 {
                Verdict::RollBack(format!(
                    "{n} canary windows in three periods (fewer than {})",
                    self.min_windows
                ))
            } else {
                Verdict::Wait
            };
        }
        let mut findings = vec![format!("{n} windows")];
        let mut failed = Vec::new();
        if let Some(agreement) = evidence.agreement() {
            findings.push(format!("agreement {agreement:.3}"));
            if agreement < self.min_agreement {
                failed.push(format!("agreement {agreement:.3} < {}", self.min_agreement));
            }
        }
        if let Some(psi) = evidence.psi() {
            findings.push(format!("score PSI {psi:.3}"));
            if psi > self.max_psi {
                failed.push(format!("score PSI {psi:.3} > {}", self.max_psi));
            }
        }
        match (card.metrics.get(AUC), card.metrics.get(AUC_CURRENT)) {
            (Some(&auc), Some(&current)) => {
                findings.push(format!("held-out AUC {auc:.4} vs current {current:.4}"));
                if auc <= current {
                    failed.push(format!("held-out AUC {auc:.4} not above the current model's {current:.4}"));
                }
            }
            (Some(&auc), None) => {
                findings.push(format!("held-out AUC {auc:.4}"));
                if auc < self.min_auc {
                    failed.push(format!("held-out AUC {auc:.4} < {}", self.min_auc));
                }
            }
            (None, _) => failed.push("the card has no held-out AUC".into()),
        }
        if failed.is_empty() {
            Verdict::Promote(findings.join(", "))
        } else {
            Verdict::RollBack(failed.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing::{card, model};
    use aiot_firmware::features::FEATURE_COUNT;

    /// 40 healthy windows (features near 0) scored by `candidate` and shadowed by `current`.
    fn evidence(candidate: &Model, current: Option<&Model>) -> CanaryEvidence {
        let mut e = CanaryEvidence::default();
        for i in 0..40 {
            let features = [-0.02 * (i % 5) as f32; FEATURE_COUNT];
            e.observe(&features, candidate.score(&features), candidate, current);
        }
        e
    }

    #[test]
    fn a_candidate_that_decides_like_the_current_model_and_validates_better_is_promoted() {
        let rule = CanaryRule::default();
        let (current, candidate) = (model(-6.0), model(-6.5));
        let e = evidence(&candidate, Some(&current));
        assert_eq!(e.agreement(), Some(1.0));
        assert!(e.psi().unwrap() < 1e-9, "both score near 0: one bin");
        // One window of 18 crossing an edge: bin 1 gains (1.5 vs 0.5 of 23), bin 0 loses.
        let mut crossing = CanaryEvidence {
            scores: vec![0.05; 18],
            shadow: vec![0.05; 18],
            agreed: 18,
            disputed_trips: vec![],
        };
        crossing.scores[0] = 0.15;
        let expected = (3f64.ln() + (18.5f64 / 17.5).ln()) / 23.0;
        assert!((crossing.psi().unwrap() - expected).abs() < 1e-12, "{:?}", crossing.psi());
        assert_eq!(rule.judge(&e, &card(0.9, Some(0.8)), rule.period / 2), Verdict::Wait);
        assert!(matches!(rule.judge(&e, &card(0.9, Some(0.8)), rule.period), Verdict::Promote(_)));
        // Validation decides too: not better than the current model.
        let worse = rule.judge(&e, &card(0.8, Some(0.85)), rule.period);
        assert!(matches!(worse, Verdict::RollBack(why) if why.contains("not above")));
        // No current figure: the floor.
        assert!(matches!(rule.judge(&e, &card(0.9, None), rule.period), Verdict::Promote(_)));
        assert!(matches!(rule.judge(&e, &card(0.6, None), rule.period), Verdict::RollBack(_)));
    }

    #[test]
    fn a_candidate_that_alarms_on_healthy_motors_is_rolled_back() {
        let rule = CanaryRule::default();
        let (current, broken) = (model(-6.0), model(3.0));
        let e = evidence(&broken, Some(&current));
        assert_eq!(e.agreement(), Some(0.0));
        assert!(e.psi().unwrap() > 1.0);
        let verdict = rule.judge(&e, &card(0.95, Some(0.8)), rule.period);
        assert!(
            matches!(&verdict, Verdict::RollBack(why) if why.contains("agreement") && why.contains("PSI")),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_trip_the_current_model_would_not_have_made_rolls_back_at_once() {
        let rule = CanaryRule::default();
        let (current, candidate) = (model(-6.0), model(-6.5));
        let mut e = evidence(&candidate, Some(&current));
        let worn = [1.0; FEATURE_COUNT];
        e.observe_trip(4, &worn, Some(&current));
        assert!(e.disputed_trips.is_empty(), "the current model trips it too");
        e.observe_trip(5, &[-0.1; FEATURE_COUNT], Some(&current));
        let verdict = rule.judge(&e, &card(0.9, Some(0.8)), Duration::from_secs(1));
        assert!(matches!(&verdict, Verdict::RollBack(why) if why.contains("mote-5")), "{verdict:?}");
    }

    #[test]
    fn too_few_windows_extend_the_period_then_roll_back() {
        let rule = CanaryRule::default();
        let mut e = CanaryEvidence::default();
        let candidate = model(-6.0);
        e.observe(&[0.0; FEATURE_COUNT], 0.01, &candidate, None);
        assert_eq!(e.agreement(), None);
        assert_eq!(rule.judge(&e, &card(0.9, None), rule.period * 2), Verdict::Wait);
        assert!(matches!(rule.judge(&e, &card(0.9, None), rule.period * 3), Verdict::RollBack(_)));
    }
}
