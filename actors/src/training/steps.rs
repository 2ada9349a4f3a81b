//! The ML pipeline's steps and what they hand on (BLUEPRINT section 5, the MLOps flow):
//!
//! `ingest -> extract -> drift-check -> train -> validate -> quantize -> register -> deploy`
//!
//! - `ingest` (`/ingest`, [`super::ingest`]): the DSP and stage-1 windows and the outcomes read
//!   from the streams, as known at the run's start.
//! - `extract` (`/extract`, here): both training sets, labelled by the outcomes as known then
//!   (flagged and unlabelled windows left out).
//! - `drift-check` (`/drift-monitor`): the drift monitor's evidence, recorded with the run.
//! - `train` (`/train`, here; placed on an accelerator or the platform tier): stage 2's model
//!   and the motes' float model fitted by Newton, each validated on held-out motors. A set too
//!   small or one-sided is a refusal: retrying would not help.
//! - `validate` (`/release`, [`super::release`]): stage 2's alert threshold; refuses a model
//!   no better than [`TrainerConfig::min_validation_auc`]; chooses the windows the motes' new
//!   model is compared on with the one in service (after the drift check's last drift, when
//!   that model predates it) and scores the one in service on them.
//! - `quantize` (`/quantize`, here): the motes' int8 model, refused outside the quantization
//!   targets.
//! - `register` and `deploy` (`/release`): signed and stored by the registry, stage 2's model
//!   installed; the motes' model rolled out by the deployer, canary first.
//!
//! Without a registry the motes' model is neither trained nor quantized (there is nowhere to
//! sign and send it) and `register` numbers stage 2's models itself; without a deployer there is
//! no `deploy` step.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Actor, ActorError, Ctx};
use serde::{Deserialize, Serialize};

use super::{TrainerConfig, TrainerStats};
use crate::deploy::deployer::DeployState;
use crate::ml::compare::{ComparisonSet, Figures};
use crate::ml::dataset::{Dataset, Window};
use crate::ml::labels::Outcomes;
use crate::ml::scorer::{fit, Fitted};
use crate::ml::train::quantize_fitted;
use crate::pipeline::coordinator::{PipelineBuilder, StepRequest};
use crate::pipeline::dag::{Retry, StepSpec};
use crate::pipeline::run::StepResult;
use crate::registry::artifact::Stage2Model;

pub const INGEST: &str = "ingest";
pub const EXTRACT: &str = "extract";
pub const DRIFT_CHECK: &str = "drift-check";
pub const TRAIN: &str = "train";
pub const VALIDATE: &str = "validate";
pub const QUANTIZE: &str = "quantize";
pub const REGISTER: &str = "register";
pub const DEPLOY: &str = "deploy";

/// What the steps hand on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Artifact {
    Snapshot(Box<Snapshot>),
    Datasets(Box<Datasets>),
    /// The drift monitor's state and last evidence.
    Drift(DriftCheck),
    Fitted(Box<FittedModels>),
    Validated(Box<Validation>),
    /// The motes' int8 model (none without a registry).
    Quantized(Option<Quantized>),
    /// The version of the release.
    Registered(u32),
    Deployed(DeployState),
}

/// The streams as known at `at_ms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub at_ms: u64,
    pub dsp: Vec<Window>,
    pub stage1: Vec<Window>,
    pub outcomes: Outcomes,
}

/// What the drift monitor reports to a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DriftCheck {
    /// Its state and last evidence, for people.
    pub summary: String,
    /// The time of the last drift it found (cluster ms; `None`: none since it started).
    pub last_drift_ms: Option<u64>,
}

/// Both training sets (the motes' one only with a registry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Datasets {
    pub at_ms: u64,
    pub stage2: Dataset,
    pub stage1: Option<Dataset>,
}

/// Both fitted models with their held-out data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedModels {
    pub stage2: Fitted,
    pub stage1: Option<Fitted>,
}

/// What validation found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    pub stage2: Stage2Model,
    /// The motes' float model's held-out AUC.
    pub stage1_auc: Option<f64>,
    /// The windows the motes' new model is compared on with the one in service (when there is
    /// one), and that model's figures on them.
    pub compare: Option<(ComparisonSet, Figures)>,
    /// The time the training data is known to (the snapshot's).
    pub data_at_ms: u64,
    /// The lineage: the SHA-256 of the motes' training set (stage 2's without a registry).
    pub dataset_sha256: [u8; 32],
    /// For people: the data and the held-out figures.
    pub line: String,
}

/// The motes' int8 model and its quality against the float model on the held-out motors.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quantized {
    #[serde(with = "serde_bytes")]
    pub image: Vec<u8>,
    pub int8_auc: f64,
    pub agreement: f64,
}

/// The outputs a step takes, by step name.
pub type Inputs = BTreeMap<String, Artifact>;

/// The input `step` handed on, if it is of the kind `pick` takes.
pub fn input<'a, T>(
    inputs: &'a Inputs,
    step: &str,
    pick: impl Fn(&'a Artifact) -> Option<T>,
) -> Result<T, String> {
    inputs.get(step).and_then(pick).ok_or_else(|| format!("no {step} output among the inputs"))
}

pub fn datasets(a: &Artifact) -> Option<&Datasets> {
    match a {
        Artifact::Datasets(d) => Some(d),
        _ => None,
    }
}

pub fn fitted(a: &Artifact) -> Option<&FittedModels> {
    match a {
        Artifact::Fitted(f) => Some(f),
        _ => None,
    }
}

pub fn drift_check(a: &Artifact) -> Option<&DriftCheck> {
    match a {
        Artifact::Drift(d) => Some(d),
        _ => None,
    }
}

pub fn validation(a: &Artifact) -> Option<&Validation> {
    match a {
        Artifact::Validated(v) => Some(v),
        _ => None,
    }
}

/// `extract`: labels both sets as known at the snapshot's time.
pub fn extract(inputs: &Inputs, config: &TrainerConfig) -> StepResult<Artifact> {
    let snapshot = match input(inputs, INGEST, |a| match a {
        Artifact::Snapshot(s) => Some(s),
        _ => None,
    }) {
        Ok(snapshot) => snapshot,
        Err(why) => return StepResult::Refused(why),
    };
    let Snapshot { at_ms, dsp, stage1, outcomes } = snapshot.as_ref();
    let stage2 = Dataset::assemble(dsp, outcomes, &config.labels, *at_ms);
    let stage1 =
        config.registry.is_some().then(|| Dataset::assemble(stage1, outcomes, &config.stage1.rule, *at_ms));
    let c = stage2.counts;
    let summary = format!(
        "{} positive, {} negative windows ({} unlabelled, {} flagged left out)",
        c.positive, c.negative, c.unlabelled, c.flagged
    );
    StepResult::Done {
        summary,
        output: Artifact::Datasets(Box::new(Datasets { at_ms: *at_ms, stage2, stage1 })),
    }
}

/// `train`: both models by Newton, each validated on held-out motors.
pub fn train(inputs: &Inputs, config: &TrainerConfig) -> StepResult<Artifact> {
    let data = match input(inputs, EXTRACT, datasets) {
        Ok(data) => data,
        Err(why) => return StepResult::Refused(why),
    };
    let stage2 = match fit(&data.stage2, &config.fit) {
        Ok(fitted) => fitted,
        Err(why) => return StepResult::Refused(format!("stage 2's model: {why}")),
    };
    let stage1 = match data.stage1.as_ref().map(|set| fit(set, &config.stage1.fit)).transpose() {
        Ok(fitted) => fitted,
        Err(why) => return StepResult::Refused(format!("the motes' model: {why}")),
    };
    let summary = format!(
        "stage 2: {} iterations, held-out AUC {:.4}{}",
        stage2.iterations,
        stage2.validation_auc,
        stage1
            .as_ref()
            .map_or(String::new(), |f| format!("; motes' model: held-out AUC {:.4}", f.validation_auc))
    );
    StepResult::Done { summary, output: Artifact::Fitted(Box::new(FittedModels { stage2, stage1 })) }
}

/// `quantize`: the motes' int8 model (its version is set when registered).
pub fn quantize(inputs: &Inputs, config: &TrainerConfig) -> StepResult<Artifact> {
    let models = match input(inputs, TRAIN, fitted) {
        Ok(models) => models,
        Err(why) => return StepResult::Refused(why),
    };
    let Some(stage1) = &models.stage1 else {
        let summary = "no motes' model to quantize (no registry)".into();
        return StepResult::Done { summary, output: Artifact::Quantized(None) };
    };
    let (int8, quality) = match quantize_fitted(stage1, &config.stage1, 1) {
        Ok(q) => q,
        Err(why) => return StepResult::Refused(why),
    };
    let mut image = vec![0; aiot_firmware::model::MODEL_LEN];
    if let Err(e) = int8.encode(&mut image) {
        return StepResult::Refused(format!("the int8 model does not encode: {e:?}"));
    }
    let summary = format!("int8 AUC {:.4}, agreement {:.4}", quality.auc_int8, quality.agreement);
    let quantized = Quantized { image, int8_auc: quality.auc_int8, agreement: quality.agreement };
    StepResult::Done { summary, output: Artifact::Quantized(Some(quantized)) }
}

/// A pure step, as an actor.
pub type StepFn = fn(&Inputs, &TrainerConfig) -> StepResult<Artifact>;

/// What a pure step's actor takes.
#[derive(Debug, Serialize, Deserialize)]
pub struct ComputeMsg(pub StepRequest<Artifact>);

impl From<StepRequest<Artifact>> for ComputeMsg {
    fn from(request: StepRequest<Artifact>) -> Self {
        ComputeMsg(request)
    }
}

/// The actor of a pure step (`extract`, `train`, `quantize`): it holds no state, so a restart
/// loses nothing and the coordinator's retry asks it again. A refusal (too little data, a
/// model off its targets) is counted and becomes the trainer's last line.
pub struct Compute {
    pub step: StepFn,
    pub config: TrainerConfig,
    pub stats: Arc<TrainerStats>,
}

impl Actor for Compute {
    type Msg = ComputeMsg;

    fn handle(
        &mut self,
        ComputeMsg(request): ComputeMsg,
        ctx: &mut Ctx<'_, ComputeMsg>,
    ) -> Result<(), ActorError> {
        let result = (self.step)(&request.inputs, &self.config);
        if let StepResult::Refused(why) = &result {
            self.stats.refuse(&request.reason, why);
        }
        ctx.reply(&request.reply, result)?;
        Ok(())
    }
}

/// The pipeline's shape for `config`: the steps above, each with its actor, timeout and
/// retries, and handed only the outputs it uses. Fits take seconds; a rollout takes its canary
/// period and more.
pub fn pipeline(config: &TrainerConfig) -> PipelineBuilder<Artifact> {
    use super::ingest::IngestMsg;
    use super::monitor::MonitorMsg;
    use super::release::ReleaseMsg;
    let quick = Retry { attempts: 3, backoff: Duration::from_secs(10) };
    let step = |name: &str, after: &[&str], timeout: u64| {
        StepSpec::new(name, after).timeout(Duration::from_secs(timeout)).retry(quick)
    };
    // A registry catching up with its log after a restart may take minutes: ten attempts,
    // 10 s doubling (about 85 minutes in all).
    let registering = StepSpec::new(REGISTER, &[QUANTIZE])
        .takes(&[VALIDATE, QUANTIZE])
        .timeout(Duration::from_secs(120))
        .retry(Retry { attempts: 10, backoff: Duration::from_secs(10) });
    let mut p = PipelineBuilder::default()
        .step::<IngestMsg>(step(INGEST, &[], 60), "/ingest")
        .step::<ComputeMsg>(step(EXTRACT, &[INGEST], 300), "/extract")
        .step::<MonitorMsg>(step(DRIFT_CHECK, &[EXTRACT], 60).takes(&[]), "/drift-monitor")
        .step::<ComputeMsg>(step(TRAIN, &[DRIFT_CHECK], 1800).takes(&[EXTRACT]), "/train")
        .step::<ReleaseMsg>(step(VALIDATE, &[TRAIN], 300).takes(&[TRAIN, EXTRACT, DRIFT_CHECK]), "/release")
        .step::<ComputeMsg>(step(QUANTIZE, &[VALIDATE], 300).takes(&[TRAIN]), "/quantize")
        .step::<ReleaseMsg>(registering, "/release");
    if config.registry.is_some() && config.deployer.is_some() {
        // A canary period is 30 minutes (three when evidence is short), and the fleet's
        // transfers a few report periods: a rollout not settled in six hours ends the run as
        // failed, so later runs are not held behind it (the deployer supersedes it with theirs).
        let rollout = StepSpec::new(DEPLOY, &[REGISTER])
            .takes(&[REGISTER, QUANTIZE])
            .timeout(Duration::from_secs(3 * 3600))
            .retry(Retry { attempts: 2, backoff: Duration::from_secs(60) });
        p = p.step::<ReleaseMsg>(rollout, "/release");
    }
    p
}
