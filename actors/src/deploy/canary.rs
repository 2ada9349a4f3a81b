//! The canary rule (BLUEPRINT section 10, "Canary quality"): promotion does not wait for
//! failures. The canary motes run the candidate; every window they report is also scored in
//! shadow by the model the fleet runs now, on the same features. At the end of the canary
//! period the candidate is promoted when, over the canary's windows:
//!
//! - **decision agreement** (`candidate score >= its threshold` equals `current score >= its
//!   threshold`) is at least [`CanaryRule::min_agreement`] (default 0.95);
//! - **score stability**: PSI of the candidate's scores against the current model's shadow
//!   scores is at most [`CanaryRule::max_psi`] (default 0.25), unless the candidate is judged
//!   after a drift the current model has not seen (below): the shadow scores are then the
//!   stale model's on a regime it was not trained for, and moving away from them is what the
//!   retraining is for, so the PSI is reported and does not decide. The bins are fixed on the
//!   probability scale (ten, edges 0.1 .. 0.9: two calibrations that differ inside a bin make
//!   the same decisions, which quantile bins would call a shift), and each bin's fraction is
//!   smoothed, `(count + 0.5) / (n + 5)`: a canary has tens of windows, and with the drift
//!   monitor's floor of `1e-4` for an empty bin one window crossing an edge would read as a
//!   shift (0.35 for 18 windows) where the smoothed index reads 0.05;
//! - **validation**: the candidate's int8 model beats the current model on the comparison
//!   windows the trainer chose ([`crate::ml::compare`]: after a drift the current model has not
//!   seen, the held-out positives and the negatives captured since the drift; otherwise every
//!   held-out window): a ROC AUC higher by more than [`CanaryRule::auc_tie`] (default 0.005:
//!   the int8 model is vouched for only within 0.005 AUC of its float model, so a smaller
//!   difference between two int8 models is within what rounding alone moves), or an AUC
//!   within it and a lower log loss (the card's `stage1_compared_*` figures). A card without
//!   the current model's figures (the trainer did not know one) needs its int8 held-out AUC
//!   (`stage1_int8_auc`) at least `min_auc` (default 0.75).
//!
//! Otherwise it is rolled back. With fewer than `min_windows` (default 20) canary windows at the
//! end of the period, the period is extended; still too few after three periods is a rollback.
//! Without a current model to shadow (a fleet's first model) only validation decides.
//!
//! A stopped (tripped) motor's windows are no evidence and do not count. The trip itself is:
//! a canary mote whose motor the candidate tripped on a window the current model scores under
//! its threshold is a **disputed trip** (the canary has stopped a motor the fleet's model would
//! have left running), and its window a disagreement. Disputed trips on more than
//! [`CanaryRule::max_disputed_share`] of the cohort (default 0.2) roll the candidate back at
//! once, period or not. One trip alone does not, unless the cohort is small enough for it to
//! exceed the share: a retrained model is expected to catch some worn motor the current model
//! misses (in a fleet with one motor in twenty wearing out, a cohort of twelve often has one),
//! while a broken model trips healthy motors across the cohort within the same few windows.

use std::time::Duration;

use aiot_firmware::features::FeatureVector;
use aiot_firmware::model::Model;
use serde::{Deserialize, Serialize};

use crate::ml::compare::{ComparisonSet, Figures};
use crate::ml::quantize::QualityTargets;
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
    /// AUCs closer than this are a tie, which log loss breaks.
    pub auc_tie: f64,
    /// Disputed trips on more than this share of the cohort roll the candidate back at once
    /// (default 0.2; 0: any one does; 1: never at once).
    pub max_disputed_share: f64,
}

impl Default for CanaryRule {
    fn default() -> Self {
        CanaryRule {
            period: Duration::from_secs(30 * 60),
            min_windows: 20,
            min_agreement: 0.95,
            max_psi: 0.25,
            min_auc: 0.75,
            auc_tie: QualityTargets::default().auc_difference_max,
            max_disputed_share: 0.2,
        }
    }
}

/// The card metric of the candidate's int8 AUC on its held-out windows.
pub const AUC: &str = "stage1_int8_auc";
/// The card metrics of the comparison with the current model: the candidate's int8 AUC and
/// log loss on the comparison windows, the current model's on the same windows, their number,
/// and the drift the negatives were taken after (absent: every held-out window).
pub const COMPARED_AUC: &str = "stage1_compared_auc";
pub const COMPARED_AUC_CURRENT: &str = "stage1_compared_auc_current";
pub const COMPARED_LOG_LOSS: &str = "stage1_compared_log_loss";
pub const COMPARED_LOG_LOSS_CURRENT: &str = "stage1_compared_log_loss_current";
pub const COMPARED_WINDOWS: &str = "stage1_compared_windows";
pub const COMPARED_SINCE_MS: &str = "stage1_compared_since_ms";
/// The data time of the model in service, when only windows labelled after it were compared.
pub const COMPARED_UNSEEN_AFTER_MS: &str = "stage1_compared_unseen_after_ms";

/// The card metrics the rule reads, for a candidate whose int8 model has `int8_auc` on its
/// held-out windows: with `compared` (the comparison windows, the candidate's figures and the
/// current model's on them), the comparison too.
pub fn card_metrics(
    int8_auc: f64,
    compared: Option<(&ComparisonSet, Figures, Figures)>,
) -> Vec<(&'static str, f64)> {
    let mut metrics = vec![(AUC, int8_auc)];
    if let Some((set, new, current)) = compared {
        metrics.extend([
            (COMPARED_AUC, new.auc),
            (COMPARED_LOG_LOSS, new.log_loss),
            (COMPARED_AUC_CURRENT, current.auc),
            (COMPARED_LOG_LOSS_CURRENT, current.log_loss),
            (COMPARED_WINDOWS, set.len() as f64),
        ]);
        metrics.extend(set.since_ms.map(|ms| (COMPARED_SINCE_MS, ms as f64)));
        metrics.extend(set.unseen_after_ms.map(|ms| (COMPARED_UNSEEN_AFTER_MS, ms as f64)));
    }
    metrics
}

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

    /// A canary mote's motor tripped on this window under the candidate (its `score`): a
    /// window like any other, and a disputed trip when the current model scores it under its
    /// threshold.
    pub fn observe_trip(
        &mut self,
        mote: u32,
        features: &FeatureVector,
        score: Option<f32>,
        candidate: &Model,
        current: Option<&Model>,
    ) {
        if current.is_some_and(|m| m.score(features) < m.threshold) && !self.disputed_trips.contains(&mote) {
            self.disputed_trips.push(mote);
        }
        if let Some(score) = score {
            self.observe(features, score, candidate, current);
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
    /// The verdict `elapsed` into the canary period on `evidence` from a cohort of `cohort`
    /// motes, for the candidate's `card`.
    pub fn judge(
        &self,
        evidence: &CanaryEvidence,
        card: &ModelCard,
        elapsed: Duration,
        cohort: usize,
    ) -> Verdict {
        let disputed = &evidence.disputed_trips;
        if disputed.len() as f64 > self.max_disputed_share * cohort.max(1) as f64 {
            let motes: Vec<String> = disputed.iter().map(|m| format!("mote-{m}")).collect();
            return Verdict::RollBack(format!(
                "it tripped the motors of {} of {cohort} canary motes on windows the current model scores under its threshold ({})",
                disputed.len(),
                motes.join(", ")
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
        if !disputed.is_empty() {
            findings.push(format!("{} disputed trips of {cohort} canary motes", disputed.len()));
        }
        let mut failed = Vec::new();
        let metric = |name: &str| card.metrics.get(name).copied();
        let after_drift = metric(COMPARED_SINCE_MS).is_some();
        if let Some(agreement) = evidence.agreement() {
            findings.push(format!("agreement {agreement:.3}"));
            if agreement < self.min_agreement {
                failed.push(format!("agreement {agreement:.3} < {}", self.min_agreement));
            }
        }
        if let Some(psi) = evidence.psi() {
            if after_drift {
                findings.push(format!("score PSI {psi:.3} (after a drift: reported, not bounded)"));
            } else {
                findings.push(format!("score PSI {psi:.3}"));
                if psi > self.max_psi {
                    failed.push(format!("score PSI {psi:.3} > {}", self.max_psi));
                }
            }
        }
        let figures = |auc: &str, loss: &str| {
            Some(Figures { auc: metric(auc)?, log_loss: metric(loss).unwrap_or(f64::INFINITY) })
        };
        let candidate = figures(COMPARED_AUC, COMPARED_LOG_LOSS);
        let current = figures(COMPARED_AUC_CURRENT, COMPARED_LOG_LOSS_CURRENT);
        match (current, candidate, metric(AUC)) {
            (Some(old), Some(new), _) => {
                let windows = metric(COMPARED_WINDOWS).unwrap_or(f64::NAN);
                let on = match (after_drift, metric(COMPARED_UNSEEN_AFTER_MS).is_some()) {
                    (true, true) => "post-drift comparison (unseen by the current model)",
                    (true, false) => "post-drift comparison",
                    (false, true) => "held-out (unseen by the current model)",
                    (false, false) => "held-out",
                };
                let line = format!(
                    "{on} AUC {:.5} vs current {:.5}, log loss {:.4} vs {:.4} ({windows} windows)",
                    new.auc, old.auc, new.log_loss, old.log_loss
                );
                if new.beat(&old, self.auc_tie) {
                    findings.push(line);
                } else {
                    failed.push(format!("not better than the current model: {line}"));
                }
            }
            (Some(_), None, _) => {
                failed.push("the card has the current model's figures, not the candidate's".into())
            }
            (None, _, Some(auc)) => {
                findings.push(format!("held-out AUC {auc:.4}"));
                if auc < self.min_auc {
                    failed.push(format!("held-out AUC {auc:.4} < {}", self.min_auc));
                }
            }
            (None, _, None) => failed.push("the card has no held-out AUC".into()),
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

    /// The canary cohort's size in these tests.
    const COHORT: usize = 10;
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
        assert_eq!(rule.judge(&e, &card(0.9, Some(0.8)), rule.period / 2, COHORT), Verdict::Wait);
        assert!(matches!(rule.judge(&e, &card(0.9, Some(0.8)), rule.period, COHORT), Verdict::Promote(_)));
        // Validation decides too: not better than the current model.
        let worse = rule.judge(&e, &card(0.8, Some(0.85)), rule.period, COHORT);
        assert!(matches!(worse, Verdict::RollBack(why) if why.contains("not better")));
        // No current figure: the floor.
        assert!(matches!(rule.judge(&e, &card(0.9, None), rule.period, COHORT), Verdict::Promote(_)));
        assert!(matches!(rule.judge(&e, &card(0.6, None), rule.period, COHORT), Verdict::RollBack(_)));
    }

    #[test]
    fn a_tie_in_auc_is_broken_by_log_loss() {
        let rule = CanaryRule::default();
        let (current, candidate) = (model(-6.0), model(-6.5));
        let e = evidence(&candidate, Some(&current));
        let judge = |auc: f64, current: f64, loss: f64, current_loss: f64| {
            let mut c = card(auc, Some(current));
            c.metrics.insert(COMPARED_LOG_LOSS.into(), loss);
            c.metrics.insert(COMPARED_LOG_LOSS_CURRENT.into(), current_loss);
            rule.judge(&e, &c, rule.period, COHORT)
        };
        assert!(
            matches!(judge(1.0, 1.0, 0.02, 0.05), Verdict::Promote(why) if why.contains("log loss 0.0200 vs 0.0500"))
        );
        assert!(matches!(judge(1.0, 1.0, 0.05, 0.05), Verdict::RollBack(why) if why.contains("not better")));
        // Without log losses a tie cannot be broken.
        assert!(matches!(rule.judge(&e, &card(1.0, Some(1.0)), rule.period, COHORT), Verdict::RollBack(_)));
        // A difference within the resolution is a tie too: 0.99996 against 1.0 (one pair in
        // 25 000) with a better log loss is promoted; 1.0 against 0.99996 with a worse one is not.
        assert!(matches!(judge(0.99996, 1.0, 0.02, 0.03), Verdict::Promote(_)));
        assert!(matches!(judge(1.0, 0.99996, 0.0358, 0.0268), Verdict::RollBack(_)));
        assert!(matches!(judge(1.0, 0.99, 0.05, 0.01), Verdict::Promote(_)), "clearly higher");
    }

    #[test]
    fn after_a_drift_the_score_shift_from_the_stale_model_is_reported_not_bounded() {
        let rule = CanaryRule::default();
        // The stale model scores the new regime's healthy windows 0.12 to 0.3, the candidate
        // 0.02 to 0.05: the same decisions, a large PSI.
        let (stale, candidate) = (model(-0.85), model(-3.0));
        let e = evidence(&candidate, Some(&stale));
        assert_eq!(e.agreement(), Some(1.0));
        let psi = e.psi().unwrap();
        assert!(psi > rule.max_psi, "{psi}");
        let before = rule.judge(&e, &card(0.95, Some(0.9)), rule.period, COHORT);
        assert!(matches!(&before, Verdict::RollBack(why) if why.contains("score PSI")), "{before:?}");
        let mut after = card(0.95, Some(0.9));
        after.metrics.insert(COMPARED_SINCE_MS.into(), 1_000.0);
        let verdict = rule.judge(&e, &after, rule.period, COHORT);
        assert!(
            matches!(&verdict, Verdict::Promote(why) if why.contains("not bounded") && why.contains("post-drift")),
            "{verdict:?}"
        );
        // Decisions still bound it.
        let broken = model(3.0);
        let e = evidence(&broken, Some(&stale));
        assert!(
            matches!(rule.judge(&e, &after, rule.period, COHORT), Verdict::RollBack(why) if why.contains("agreement"))
        );
    }

    #[test]
    fn a_candidate_that_alarms_on_healthy_motors_is_rolled_back() {
        let rule = CanaryRule::default();
        let (current, broken) = (model(-6.0), model(3.0));
        let e = evidence(&broken, Some(&current));
        assert_eq!(e.agreement(), Some(0.0));
        assert!(e.psi().unwrap() > 1.0);
        let verdict = rule.judge(&e, &card(0.95, Some(0.8)), rule.period, COHORT);
        assert!(
            matches!(&verdict, Verdict::RollBack(why) if why.contains("agreement") && why.contains("PSI")),
            "{verdict:?}"
        );
    }

    #[test]
    fn trips_the_current_model_would_not_have_made_roll_back_at_once_past_a_share_of_the_cohort() {
        let rule = CanaryRule::default();
        let (current, candidate) = (model(-6.0), model(-6.5));
        let mut e = evidence(&candidate, Some(&current));
        let worn = [1.0; FEATURE_COUNT];
        let trip = |e: &mut CanaryEvidence, mote: u32, features: &FeatureVector| {
            e.observe_trip(mote, features, Some(candidate.score(features)), &candidate, Some(&current))
        };
        trip(&mut e, 4, &worn);
        assert!(e.disputed_trips.is_empty(), "the current model trips it too");
        assert_eq!(e.windows(), 41, "the window that tripped it is evidence");
        let healthy = [-0.1; FEATURE_COUNT];
        trip(&mut e, 5, &healthy);
        trip(&mut e, 5, &healthy);
        assert_eq!(e.disputed_trips, vec![5], "a mote is disputed once");
        let soon = Duration::from_secs(1);
        // One of ten canary motes: within the share; the canary goes on.
        assert_eq!(rule.judge(&e, &card(0.9, Some(0.8)), soon, 10), Verdict::Wait);
        // One of two: past it.
        let verdict = rule.judge(&e, &card(0.9, Some(0.8)), soon, 2);
        assert!(matches!(&verdict, Verdict::RollBack(why) if why.contains("mote-5")), "{verdict:?}");
        // Three of ten: past it.
        trip(&mut e, 6, &healthy);
        trip(&mut e, 7, &healthy);
        let verdict = rule.judge(&e, &card(0.9, Some(0.8)), soon, 10);
        assert!(matches!(&verdict, Verdict::RollBack(why) if why.contains("3 of 10")), "{verdict:?}");
    }

    #[test]
    fn too_few_windows_extend_the_period_then_roll_back() {
        let rule = CanaryRule::default();
        let mut e = CanaryEvidence::default();
        let candidate = model(-6.0);
        e.observe(&[0.0; FEATURE_COUNT], 0.01, &candidate, None);
        assert_eq!(e.agreement(), None);
        assert_eq!(rule.judge(&e, &card(0.9, None), rule.period * 2, COHORT), Verdict::Wait);
        assert!(matches!(rule.judge(&e, &card(0.9, None), rule.period * 3, COHORT), Verdict::RollBack(_)));
    }
}
