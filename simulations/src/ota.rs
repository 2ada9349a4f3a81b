//! Over-the-air rollouts in the simulated plant (the `ota` scenario): the registry and the
//! deployer run on the platform node beside the bridge, and a release plan stands in for the
//! trainer: it asks the deployer to roll out model 2 (the factory model, its bias lowered by
//! 0.02: it decides like model 1 but for windows within 0.02 of the decision logit), then
//! model 3 (a regression, a sign error: it scores healthy and stopped motors over its threshold
//! and worn ones under it), each until its rollout settles, as the trainer does. The models stream
//! holds all three, sealed and signed by the plant's model-signing key, from the start.
//!
//! Checked while it runs: no mote outside model 3's canary cohort ever activates model 3 (a
//! rollout reaches the fleet only through a passed canary). Checked at the end: model 2's
//! rollout settled `Installed`, model 3's `Restored`; every mote runs model 2, and every
//! cohort mote went back to it after running model 3.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::deploy::canary::{CanaryRule, AUC, COMPARED_AUC, COMPARED_AUC_CURRENT};
use aiot_actors::deploy::deployer::{DeployState, DeployStats, DeployerConfig, DeployerMsg};
use aiot_actors::deploy::rollout::{Phase, Rollout, RolloutConfig};
use aiot_actors::registry::artifact::{ModelCard, SignedModel};
use aiot_actors::registry::service::{ModelsRecord, Registry, RegistryKeys, RegistryStats};
use aiot_firmware::model::{Model, MODEL_LEN};
use aiot_runtime::{Actor, ActorError, ActorRef, AskError, Ctx, Overflow, TopologyBuilder};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::closed_loop::{factory_model, signing_key};

/// The plant's storage key for sealed models (a simulation has no secrets).
pub const STORAGE_KEY: [u8; 32] = [0x11; 32];
/// The good release and the regression, in the order they are deployed.
pub const GOOD: u32 = 2;
pub const REGRESSION: u32 = 3;
/// The first release is asked for this long after the run starts (the fleet is heard by then).
pub const FIRST_RELEASE_AFTER: Duration = Duration::from_secs(180);

/// What the rollouts share with the plant's checks.
#[derive(Debug, Clone, Default)]
pub struct OtaShared {
    pub deploy: Arc<DeployStats>,
    pub registry: Arc<RegistryStats>,
    /// The release plan's progress: each version's last answered state (kept across restarts
    /// of the plan's actor, as an operator's intent would be).
    pub releases: Arc<Mutex<BTreeMap<u32, DeployState>>>,
    /// Motes that ran the regression: cohort motes (the deployer's), and any mote seen
    /// running it.
    pub regression_cohort: Arc<Mutex<BTreeSet<u32>>>,
    /// The good model's rollout as last seen before the regression's replaced it (its times).
    pub good_rollout: Arc<Mutex<Option<Rollout>>>,
}

impl OtaShared {
    /// The good model's rollout times, in cluster seconds: from its first step to its canary's
    /// clock starting (the transfer to the cohort), the canary, and from the promotion to
    /// every mote running it confirmed; for those it has reached.
    pub fn good_rollout_times(&self) -> Vec<(&'static str, u64)> {
        let Some(r) = self.good_rollout.lock().clone() else { return Vec::new() };
        let span = |from: Option<u64>, to: Option<u64>| Some(to?.saturating_sub(from?) / 1000);
        [
            ("model 2: rollout start to its canary, s", span(r.began_ms, r.canary_from_ms)),
            ("model 2: canary, s", span(r.canary_from_ms, r.decided_ms)),
            ("model 2: promotion to every mote, s", span(r.decided_ms, r.settled_ms)),
        ]
        .into_iter()
        .filter_map(|(name, span)| Some((name, span?)))
        .collect()
    }
}

/// The three models: the factory model (1), a recalibrated one (2) and a regression (3).
pub fn models() -> Vec<SignedModel> {
    let factory = factory_model();
    let good = Model { version: GOOD, bias: factory.bias - 0.02, ..factory };
    // A sign error: it alarms on healthy and stopped motors and misses worn ones.
    let weights = factory.weights.map(|w| -w);
    let regression = Model { version: REGRESSION, weights, bias: 3.0, ..factory };
    // Held-out figures as the trainer would report them (the comparison with the current
    // model on every held-out window); the regression validates well: only the canary can
    // catch it.
    let metrics = |auc: f64, current: Option<f64>| {
        let mut m = BTreeMap::from([(AUC.to_string(), auc)]);
        if let Some(current) = current {
            m.insert(COMPARED_AUC.to_string(), auc);
            m.insert(COMPARED_AUC_CURRENT.to_string(), current);
        }
        m
    };
    [(factory, metrics(0.9, None)), (good, metrics(0.93, Some(0.9))), (regression, metrics(0.95, Some(0.93)))]
        .into_iter()
        .map(|(model, metrics)| {
            plant_signed(&model, model.version.checked_sub(1).filter(|v| *v > 0), metrics)
        })
        .collect()
}

/// `model` signed by the plant's model-signing key as the registry signs it, its card with
/// `parent` and `metrics`.
pub fn plant_signed(model: &Model, parent: Option<u32>, metrics: BTreeMap<String, f64>) -> SignedModel {
    let mut image = vec![0; MODEL_LEN];
    model.encode(&mut image).expect("a valid model");
    let card = ModelCard {
        version: model.version,
        parent,
        created_ms: 0,
        dataset_sha256: [model.version as u8; 32],
        params: BTreeMap::new(),
        metrics,
        image_sha256: [0; 32],
        image_len: 0,
        stage2: None,
    };
    SignedModel::sign(card, image, &signing_key()).expect("the plant's models sign")
}

/// The `models` stream's records: the three models, sealed.
pub fn model_records() -> Vec<Vec<u8>> {
    models().iter().map(|m| ModelsRecord::Model(m.seal(&STORAGE_KEY)).encode()).collect()
}

/// The deployer's settings here: a 10-minute canary of at least 10 windows (12 motes: 2 in
/// the cohort, a window each a minute).
pub fn deployer_config() -> DeployerConfig {
    let canary = CanaryRule { period: Duration::from_secs(600), min_windows: 10, ..CanaryRule::default() };
    DeployerConfig {
        rollout: RolloutConfig { canary, ..RolloutConfig::default() },
        ..DeployerConfig::default()
    }
}

/// Declares the registry, the deployer (`deployer_config`) and the release plan on the
/// platform tier.
pub fn declare(t: &mut TopologyBuilder, shared: &OtaShared) {
    declare_with(t, shared, deployer_config());
}

/// [`declare`] with a deployer of these settings (a test may break the canary on purpose).
pub fn declare_with(t: &mut TopologyBuilder, shared: &OtaShared, deployer: DeployerConfig) {
    let keys = RegistryKeys { storage: STORAGE_KEY, signing: signing_key() };
    let stats = Arc::clone(&shared.registry);
    t.actor("/registry", move |_| Registry::new(keys.clone(), Arc::clone(&stats)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
    aiot_actors::deploy::declare(t, deployer, Arc::clone(&shared.deploy));
    let shared = shared.clone();
    t.actor("/release-plan", move |_| ReleasePlan { shared: shared.clone(), started_ms: 0 })
        .requires("tier=platform");
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PlanMsg {
    Tick,
    Answer { version: u32, state: Result<DeployState, String> },
}

/// Stands in for the trainer: asks for each release until its rollout settles.
struct ReleasePlan {
    shared: OtaShared,
    started_ms: u64,
}

impl Actor for ReleasePlan {
    type Msg = PlanMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, PlanMsg>) -> Result<(), ActorError> {
        self.started_ms = ctx.cluster_ms();
        ctx.schedule_every(Duration::from_secs(10), PlanMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: PlanMsg, ctx: &mut Ctx<'_, PlanMsg>) -> Result<(), ActorError> {
        match msg {
            PlanMsg::Tick => {
                if ctx.cluster_ms() < self.started_ms + FIRST_RELEASE_AFTER.as_millis() as u64 {
                    return Ok(());
                }
                let releases = self.shared.releases.lock();
                let next =
                    [GOOD, REGRESSION].into_iter().find(|v| !releases.get(v).is_some_and(|s| s.settled()));
                drop(releases);
                let Some(version) = next else { return Ok(()) };
                let deployer = ActorRef::<DeployerMsg>::parse("/deployer").expect("a path");
                let on_reply = move |r: Result<DeployState, AskError>| PlanMsg::Answer {
                    version,
                    state: r.map_err(|e| format!("{e:?}")),
                };
                let _ = ctx.ask(
                    &deployer,
                    |reply| DeployerMsg::Deploy { version, reply },
                    Duration::from_secs(5),
                    on_reply,
                );
            }
            PlanMsg::Answer { version, state: Ok(state) } => {
                self.shared.releases.lock().insert(version, state);
            }
            PlanMsg::Answer { .. } => {}
        }
        Ok(())
    }
}

/// While it runs: only the regression's cohort ever runs it. `running` is every mote's active
/// model now. Also keeps the regression's cohort as the deployer chose it, and the good
/// model's rollout while it is the deployer's.
pub fn check(shared: &OtaShared, running: &BTreeMap<u32, u32>) -> Result<(), String> {
    match shared.deploy.rollout.lock().as_ref() {
        Some(r) if r.version == REGRESSION => shared
            .regression_cohort
            .lock()
            .extend(r.motes.iter().filter(|(_, m)| m.canary).map(|(id, _)| *id)),
        Some(r) if r.version == GOOD => *shared.good_rollout.lock() = Some(r.clone()),
        _ => {}
    }
    let cohort = shared.regression_cohort.lock();
    for (&mote, &version) in running {
        if version == REGRESSION && !cohort.contains(&mote) {
            return Err(format!(
                "mote-{mote} runs model {REGRESSION} but is not in its canary cohort {cohort:?}; verdicts {:?}",
                shared.deploy.verdicts.lock()
            ));
        }
    }
    Ok(())
}

/// At the end: both rollouts settled as they must, every mote runs the good model.
pub fn settled(shared: &OtaShared, running: &BTreeMap<u32, u32>) -> Result<(), String> {
    let releases = shared.releases.lock().clone();
    let status = format!("{}; verdicts {:?}", shared.deploy.status(), shared.deploy.verdicts.lock());
    if releases.get(&GOOD) != Some(&DeployState::Rolling(Phase::Installed)) {
        return Err(format!("model {GOOD} is not installed: {releases:?}; {status}"));
    }
    if releases.get(&REGRESSION) != Some(&DeployState::Rolling(Phase::Restored)) {
        return Err(format!("model {REGRESSION} was not rolled back and restored: {releases:?}; {status}"));
    }
    if let Some((mote, version)) = running.iter().find(|(_, v)| **v != GOOD) {
        return Err(format!("mote-{mote} runs model {version}, not {GOOD}; {status}"));
    }
    if shared.regression_cohort.lock().is_empty() {
        return Err("the regression had no canary cohort".into());
    }
    Ok(())
}
