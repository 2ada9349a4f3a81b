//! One model version's rollout over the fleet, as a pure state machine: the deployer feeds it
//! what the motes report (their running model, OTA receipts, canary windows) and the time, and
//! sends the transfers it asks for.
//!
//! - **Cohort.** `cohort` of the motes known at the start (at least one), spread evenly over
//!   their ids, run the candidate first; motes whose motor is stopped (tripped) are passed
//!   over while others are left, since their windows are no evidence. A fleet that is still
//!   empty gets its first mote heard.
//! - **Phases.** `Canary`: only the cohort is sent the candidate; the canary's clock runs
//!   while at least one of them runs it with its motor running (a cohort mote that rebooted on
//!   trial, and so rolled back, or whose motor is stopped, gives no windows of the candidate),
//!   and [`CanaryRule::judge`] decides. `Fleet` (promoted):
//!   every mote is sent it; `Installed` once every mote known runs it and confirmed it (a
//!   mote already running it when the rollout began counts as confirmed). `RolledBack`: motes
//!   running the candidate are sent the previous model (when there is one), the others left
//!   alone; `Restored` once none runs it.
//! - **Transfers.** A mote that does not run the model its phase wants, and has no transfer of
//!   it in flight, is sent one; a transfer with no activation after `transfer_timeout`, or a
//!   refusal (a reboot lost the transfer, a trial still pending), is sent again after
//!   `retry_after`. New motes heard later join the current phase.
//! - **Receipts** are kept per mote (the last [`RECEIPTS_KEPT`]): the install record.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiot_firmware::actuation::ActuationState;
use aiot_firmware::model::Model;
use aiot_firmware::ota::OtaStatus;
use aiot_firmware::protocol::{FeaturesReport, OtaReceipt};
use serde::{Deserialize, Serialize};

use super::canary::{CanaryEvidence, CanaryRule, Verdict};
use crate::registry::artifact::ModelCard;

/// Receipts kept per mote.
pub const RECEIPTS_KEPT: usize = 16;

/// A rollout's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RolloutConfig {
    pub canary: CanaryRule,
    /// The canary cohort's share of the fleet (default 0.1).
    pub cohort: f64,
    /// A transfer not activated after this long is sent again (default 20 minutes: a transfer
    /// is a few commands, each confirmed by the mote's next report).
    pub transfer_timeout: Duration,
    /// After a refusal, send again this much later (default 2 minutes).
    pub retry_after: Duration,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            canary: CanaryRule::default(),
            cohort: 0.1,
            transfer_timeout: Duration::from_secs(20 * 60),
            retry_after: Duration::from_secs(2 * 60),
        }
    }
}

/// The model most of `running` (what each mote runs) run, other than `version` and none (0):
/// a rollout's shadow and what a rollback restores. A tie goes to the higher version.
pub fn fleet_model(running: impl Iterator<Item = u32>, version: u32) -> Option<u32> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for running in running.filter(|&v| v != 0 && v != version) {
        *counts.entry(running).or_default() += 1;
    }
    counts.iter().max_by_key(|(v, n)| (**n, **v)).map(|(v, _)| *v)
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Canary,
    /// Promoted: going to every mote.
    Fleet,
    /// Every mote known runs it, confirmed.
    Installed,
    /// The canary failed: the cohort goes back to the previous model.
    RolledBack,
    /// Rolled back, and no mote runs the candidate any more.
    Restored,
}

impl Phase {
    /// The rollout has nothing left to do (new motes aside).
    pub fn settled(self) -> bool {
        matches!(self, Phase::Installed | Phase::Restored)
    }
}

/// One receipt from a mote, as kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Cluster time it was read, ms.
    pub at_ms: u64,
    pub model_version: u32,
    pub active_version: u32,
    /// `receiving`, `activated`, `confirmed`, `rolled back`, or `refused: why`.
    pub status: String,
}

fn status_text(status: OtaStatus) -> String {
    match status {
        OtaStatus::Receiving => "receiving".into(),
        OtaStatus::Activated => "activated".into(),
        OtaStatus::Confirmed => "confirmed".into(),
        OtaStatus::RolledBack => "rolled back".into(),
        OtaStatus::Refused(why) => format!("refused: {why}"),
    }
}

/// One mote in a rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoteRollout {
    /// The model it runs (its last report or receipt; 0: none).
    pub running: u32,
    pub canary: bool,
    /// It confirmed the candidate (or ran it when the rollout began).
    pub confirmed: bool,
    /// Its last report said its motor is tripped (stopped).
    pub stopped: bool,
    /// A transfer in flight: the version and when it was sent (cluster ms).
    pub sending: Option<(u32, u64)>,
    /// No transfer before this (cluster ms).
    pub retry_at_ms: u64,
    pub transfers: u32,
    pub receipts: Vec<Receipt>,
}

/// Something the deployer must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send `mote` a whole transfer of `version`.
    Send { mote: u32, version: u32 },
}

/// A rollout of `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub version: u32,
    /// The model the fleet ran when it began: the shadow, and what a rollback restores.
    pub previous: Option<u32>,
    pub phase: Phase,
    /// The canary's verdict, for people.
    pub verdict: Option<String>,
    /// How long a cohort mote has been running the candidate (the canary's clock), ms.
    pub canary_ms: u64,
    /// When the rollout first stepped, when the canary's clock started, when the canary's
    /// verdict came, and when the rollout settled (cluster ms).
    pub began_ms: Option<u64>,
    pub canary_from_ms: Option<u64>,
    pub decided_ms: Option<u64>,
    pub settled_ms: Option<u64>,
    last_step_ms: Option<u64>,
    pub motes: BTreeMap<u32, MoteRollout>,
    pub evidence: CanaryEvidence,
    config: RolloutConfig,
}

impl Rollout {
    /// A rollout of `version` over the motes known (`running`: mote -> the model it runs;
    /// `stopped`: motes whose motor is tripped).
    pub fn new(
        version: u32,
        previous: Option<u32>,
        running: &BTreeMap<u32, u32>,
        stopped: &BTreeSet<u32>,
        config: RolloutConfig,
    ) -> Rollout {
        let mut ids: Vec<u32> = running.keys().copied().filter(|m| !stopped.contains(m)).collect();
        if ids.is_empty() {
            ids = running.keys().copied().collect();
        }
        let size = ((ids.len() as f64 * config.cohort).ceil() as usize).clamp(1, ids.len().max(1));
        let cohort: Vec<u32> = (0..size.min(ids.len())).map(|i| ids[i * ids.len() / size]).collect();
        let motes = running
            .iter()
            .map(|(&mote, &running)| {
                let state = MoteRollout {
                    running,
                    canary: cohort.contains(&mote),
                    stopped: stopped.contains(&mote),
                    confirmed: running == version,
                    ..MoteRollout::default()
                };
                (mote, state)
            })
            .collect();
        Rollout {
            version,
            previous,
            phase: Phase::Canary,
            verdict: None,
            canary_ms: 0,
            began_ms: None,
            canary_from_ms: None,
            decided_ms: None,
            settled_ms: None,
            last_step_ms: None,
            motes,
            evidence: CanaryEvidence::default(),
            config,
        }
    }

    fn mote(&mut self, mote: u32) -> &mut MoteRollout {
        let first = self.motes.is_empty() && self.phase == Phase::Canary;
        self.motes.entry(mote).or_insert_with(|| MoteRollout { canary: first, ..MoteRollout::default() })
    }

    /// A mote's report: the model it runs, and whether its motor is stopped.
    pub fn on_report(&mut self, mote: u32, running: u32, stopped: bool) {
        let state = self.mote(mote);
        state.running = running;
        state.stopped = stopped;
        if state.sending.is_some_and(|(v, _)| v == running) {
            state.sending = None;
        }
    }

    /// A mote's features report, its newest frame (`tripped_now`: its motor ran at the mote's
    /// report before this one); `models`, the candidate and the shadow model, when the window
    /// is canary evidence ([`Rollout::is_canary_window`]). A tripped motor is stopped: its
    /// windows say nothing of either model; the window that tripped it is evidence, and checked
    /// for a disputed trip ([`CanaryEvidence::observe_trip`]).
    pub fn on_features(
        &mut self,
        mote: u32,
        report: &FeaturesReport,
        tripped_now: bool,
        models: Option<(&Model, Option<&Model>)>,
    ) {
        let stopped = report.state == ActuationState::Trip;
        self.on_report(mote, report.model_version, stopped);
        let Some((candidate, current)) = models else { return };
        if tripped_now {
            self.evidence.observe_trip(mote, &report.features, report.score, candidate, current);
        } else if let (Some(score), false) = (report.score, stopped) {
            self.evidence.observe(&report.features, score, candidate, current);
        }
    }

    /// A mote's OTA receipt, its newest frame, read at `now_ms`.
    pub fn on_receipt(&mut self, mote: u32, receipt: &OtaReceipt, now_ms: u64) {
        let retry_after = self.config.retry_after.as_millis() as u64;
        let state = self.mote(mote);
        state.running = receipt.active_version;
        match receipt.status {
            OtaStatus::Receiving => {}
            OtaStatus::Activated | OtaStatus::Confirmed => state.sending = None,
            OtaStatus::RolledBack | OtaStatus::Refused(_) => {
                state.sending = None;
                state.retry_at_ms = now_ms + retry_after;
            }
        }
        self.on_late_receipt(mote, receipt, now_ms);
    }

    /// A mote's OTA receipt older than a frame of its read before (a resend whose first send
    /// was lost): part of the install record, and a confirmation still counts, but what the
    /// mote runs and does now is the newer frame's news.
    pub fn on_late_receipt(&mut self, mote: u32, receipt: &OtaReceipt, now_ms: u64) {
        let version = self.version;
        let state = self.mote(mote);
        state.confirmed |= receipt.status == OtaStatus::Confirmed && receipt.model_version == version;
        state.receipts.push(Receipt {
            at_ms: now_ms,
            model_version: receipt.model_version,
            active_version: receipt.active_version,
            status: status_text(receipt.status),
        });
        if state.receipts.len() > RECEIPTS_KEPT {
            state.receipts.remove(0);
        }
    }

    /// A window of `mote`'s that is canary evidence: a cohort mote running the candidate,
    /// during the canary.
    pub fn is_canary_window(&self, mote: u32, model_version: u32) -> bool {
        self.phase == Phase::Canary
            && model_version == self.version
            && self.motes.get(&mote).is_some_and(|m| m.canary)
    }

    /// The model `mote` should run in this phase (`None`: leave it alone).
    fn wanted(&self, state: &MoteRollout) -> Option<u32> {
        match self.phase {
            Phase::Canary => state.canary.then_some(self.version),
            Phase::Fleet | Phase::Installed => Some(self.version),
            Phase::RolledBack | Phase::Restored => self.previous.filter(|_| state.running == self.version),
        }
    }

    /// Advances to `now_ms` (`card`: the candidate's): judges the canary, moves the phase, and
    /// returns the transfers to send.
    pub fn step(&mut self, now_ms: u64, card: &ModelCard) -> Vec<Action> {
        let since_last = now_ms.saturating_sub(self.last_step_ms.unwrap_or(now_ms));
        self.last_step_ms = Some(now_ms);
        self.began_ms.get_or_insert(now_ms);
        if self.phase == Phase::Canary {
            let version = self.version;
            if self.motes.values().any(|m| m.canary && m.running == version && !m.stopped) {
                self.canary_ms += since_last;
                if self.canary_ms > 0 && self.canary_from_ms.is_none() {
                    self.canary_from_ms = Some(now_ms - since_last);
                }
            }
            if self.canary_ms > 0 {
                let elapsed = Duration::from_millis(self.canary_ms);
                let cohort = self.motes.values().filter(|m| m.canary).count();
                match self.config.canary.judge(&self.evidence, card, elapsed, cohort) {
                    Verdict::Wait => {}
                    Verdict::Promote(why) => {
                        self.phase = Phase::Fleet;
                        self.verdict = Some(format!("promoted: {why}"));
                        self.decided_ms = Some(now_ms);
                    }
                    Verdict::RollBack(why) => {
                        self.phase = Phase::RolledBack;
                        self.verdict = Some(format!("rolled back: {why}"));
                        self.decided_ms = Some(now_ms);
                    }
                }
            }
        }
        let mut actions = Vec::new();
        let timeout = self.config.transfer_timeout.as_millis() as u64;
        let wanted: Vec<(u32, Option<u32>)> =
            self.motes.iter().map(|(&id, m)| (id, self.wanted(m))).collect();
        for (id, wanted) in wanted {
            let state = self.motes.get_mut(&id).expect("a mote just listed");
            let Some(version) = wanted.filter(|&v| v != state.running) else {
                continue;
            };
            let in_flight = state.sending.is_some_and(|(v, at)| v == version && now_ms < at + timeout);
            if in_flight || now_ms < state.retry_at_ms {
                continue;
            }
            state.sending = Some((version, now_ms));
            state.transfers += 1;
            actions.push(Action::Send { mote: id, version });
        }
        let version = self.version;
        match self.phase {
            Phase::Fleet if self.motes.values().all(|m| m.running == version && m.confirmed) => {
                self.phase = Phase::Installed
            }
            Phase::RolledBack if self.motes.values().all(|m| m.running != version) => {
                self.phase = Phase::Restored
            }
            _ => {}
        }
        if self.phase.settled() {
            self.settled_ms.get_or_insert(now_ms);
        }
        actions
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        let count = |f: &dyn Fn(&MoteRollout) -> bool| self.motes.values().filter(|m| f(m)).count();
        let version = self.version;
        let evidence = match (self.evidence.agreement(), self.evidence.psi()) {
            (Some(a), Some(p)) => format!(", agreement {a:.3}, score PSI {p:.3}"),
            _ => String::new(),
        };
        format!(
            "model {version} {:?}: {} of {} motes run it ({} confirmed), canary {} motes, {} canary windows{evidence}, {} transfers{}",
            self.phase,
            count(&|m| m.running == version),
            self.motes.len(),
            count(&|m| m.confirmed),
            count(&|m| m.canary),
            self.evidence.windows(),
            self.motes.values().map(|m| m.transfers).sum::<u32>(),
            self.verdict.as_ref().map(|v| format!("; {v}")).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::testing::{self, model};
    use aiot_firmware::features::FEATURE_COUNT;
    use aiot_firmware::ota::OtaError;

    const MIN: u64 = 60_000;

    fn card() -> ModelCard {
        testing::card(0.9, None)
    }

    fn receipt(status: OtaStatus, version: u32, active: u32) -> OtaReceipt {
        OtaReceipt { status, model_version: version, active_version: active, received: 0 }
    }

    fn sent(actions: &[Action]) -> Vec<(u32, u32)> {
        actions.iter().map(|Action::Send { mote, version }| (*mote, *version)).collect()
    }

    /// Ten motes on model 1; the canary motes install model 2 and report `windows` windows
    /// scored by a candidate with `bias` (the current model has bias -6).
    fn through_canary(bias: f32, windows: usize) -> Rollout {
        let fleet: BTreeMap<u32, u32> = (1..=10).map(|m| (m, 1)).collect();
        let mut r = Rollout::new(2, Some(1), &fleet, &BTreeSet::new(), RolloutConfig::default());
        assert_eq!(sent(&r.step(0, &card())), vec![(1, 2)], "one canary mote of ten");
        assert!(r.step(MIN, &card()).is_empty(), "a transfer in flight is not sent again");
        r.on_receipt(1, &receipt(OtaStatus::Activated, 2, 2), 5 * MIN);
        let (candidate, current) = (model(bias), model(-6.0));
        for i in 0..windows {
            let features = [0.01 * (i % 3) as f32; FEATURE_COUNT];
            assert!(r.is_canary_window(1, 2) && !r.is_canary_window(2, 1));
            r.evidence.observe(&features, candidate.score(&features), &candidate, Some(&current));
        }
        assert!(r.step(6 * MIN, &card()).is_empty());
        assert_eq!(r.canary_ms, 5 * MIN, "running since the last step");
        assert_eq!((r.began_ms, r.canary_from_ms, r.decided_ms), (Some(0), Some(MIN), None));
        r
    }

    #[test]
    fn a_late_receipt_is_recorded_and_confirms_but_what_the_mote_runs_is_newer_news() {
        let fleet: BTreeMap<u32, u32> = (1..=2).map(|m| (m, 1)).collect();
        let mut r = Rollout::new(2, Some(1), &fleet, &BTreeSet::new(), RolloutConfig::default());
        r.on_report(1, 2, false);
        // Resends whose first sends were lost: a rollback of an earlier try, then the
        // confirmation of the model it runs now.
        r.on_late_receipt(1, &receipt(OtaStatus::RolledBack, 2, 1), MIN);
        r.on_late_receipt(1, &receipt(OtaStatus::Confirmed, 2, 2), MIN);
        let mote = &r.motes[&1];
        assert_eq!((mote.running, mote.confirmed, mote.retry_at_ms), (2, true, 0));
        assert_eq!(mote.receipts.len(), 2);
    }

    #[test]
    fn a_good_candidate_goes_to_the_cohort_then_the_fleet_and_is_installed_on_confirmation() {
        let mut r = through_canary(-6.5, 30);
        assert_eq!(r.phase, Phase::Canary);
        let actions = r.step(36 * MIN, &card());
        assert_eq!(r.phase, Phase::Fleet, "{:?}", r.verdict);
        assert_eq!(r.decided_ms, Some(36 * MIN));
        assert_eq!(sent(&actions), (2..=10).map(|m| (m, 2)).collect::<Vec<_>>());
        for mote in 1..=10 {
            r.on_receipt(mote, &receipt(OtaStatus::Confirmed, 2, 2), 40 * MIN);
        }
        r.on_report(11, 0, false); // a new mote joins the promoted rollout
        assert_eq!(sent(&r.step(41 * MIN, &card())), vec![(11, 2)]);
        assert_eq!(r.phase, Phase::Fleet);
        r.on_receipt(11, &receipt(OtaStatus::Confirmed, 2, 2), 45 * MIN);
        r.step(46 * MIN, &card());
        assert_eq!(r.phase, Phase::Installed);
        r.step(47 * MIN, &card());
        assert_eq!(r.settled_ms, Some(46 * MIN), "when it settled first");
        assert!(r.motes.values().all(|m| m.receipts.iter().any(|x| x.status == "confirmed")));
        assert!(r.summary().contains("11 of 11 motes run it"), "{}", r.summary());
    }

    #[test]
    fn a_bad_candidate_is_rolled_back_on_the_cohort_only() {
        let mut r = through_canary(4.0, 30);
        let actions = r.step(36 * MIN, &card());
        assert_eq!(r.phase, Phase::RolledBack);
        assert!(r.verdict.as_deref().is_some_and(|v| v.contains("agreement")), "{:?}", r.verdict);
        assert_eq!(sent(&actions), vec![(1, 1)], "only the canary mote goes back");
        r.on_receipt(1, &receipt(OtaStatus::Activated, 1, 1), 40 * MIN);
        r.step(41 * MIN, &card());
        assert_eq!(r.phase, Phase::Restored);
    }

    #[test]
    fn refusals_and_silent_transfers_are_sent_again_later() {
        let fleet: BTreeMap<u32, u32> = (1..=3).map(|m| (m, 1)).collect();
        let mut r = Rollout::new(2, Some(1), &fleet, &BTreeSet::new(), RolloutConfig::default());
        assert_eq!(sent(&r.step(0, &card())), vec![(1, 2)]);
        // The mote rebooted mid-transfer: the next chunk is refused.
        r.on_receipt(1, &receipt(OtaStatus::Refused(OtaError::NoTransfer), 0, 1), MIN);
        assert!(r.step(2 * MIN, &card()).is_empty(), "not before retry_after");
        assert_eq!(sent(&r.step(3 * MIN, &card())), vec![(1, 2)]);
        // Nothing heard: sent again after the transfer timeout.
        assert!(r.step(22 * MIN, &card()).is_empty());
        assert_eq!(sent(&r.step(23 * MIN, &card())), vec![(1, 2)]);
        assert_eq!(r.motes[&1].transfers, 3);
        assert_eq!(r.motes[&1].receipts.len(), 1);
    }

    #[test]
    fn the_cohort_passes_over_stopped_motors_while_others_are_left() {
        let fleet: BTreeMap<u32, u32> = (1..=10).map(|m| (m, 1)).collect();
        let r = Rollout::new(2, Some(1), &fleet, &BTreeSet::from([1, 2]), RolloutConfig::default());
        let cohort: Vec<u32> = r.motes.iter().filter(|(_, m)| m.canary).map(|(id, _)| *id).collect();
        assert_eq!(cohort, vec![3]);
        let all = BTreeSet::from_iter(1..=10);
        let r = Rollout::new(2, Some(1), &fleet, &all, RolloutConfig::default());
        assert_eq!(r.motes.values().filter(|m| m.canary).count(), 1, "all stopped: any will do");
    }

    #[test]
    fn an_empty_fleet_makes_its_first_mote_the_canary() {
        let mut r = Rollout::new(2, None, &BTreeMap::new(), &BTreeSet::new(), RolloutConfig::default());
        assert!(r.step(0, &card()).is_empty());
        r.on_report(5, 0, false);
        r.on_report(6, 0, false);
        assert_eq!(sent(&r.step(MIN, &card())), vec![(5, 2)]);
    }
}
