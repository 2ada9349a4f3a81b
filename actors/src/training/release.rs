//! The pipeline's `validate`, `register` and `deploy` steps (`/release`, platform): the actor
//! that knows the models in service, so it judges a candidate against them, puts it into
//! service, and keeps it there.
//!
//! - **validate:** stage 2's alert threshold is the `negative_quantile` of the training
//!   negatives' scores; a model whose held-out AUC is under `min_validation_auc` is refused;
//!   the windows the motes' new model is compared on with the one in service are chosen
//!   ([`ComparisonSet::select`]: after the drift check's last drift when the model in service
//!   was trained on data from before it) and the model in service is scored on them.
//! - The new int8 model is scored on the same windows when it is registered; both figures go
//!   on its card (`stage1_compared_*`), which the canary rule compares.
//! - **register:** with a registry, the version comes from it (`NextVersion`), the int8 image
//!   is stamped with it, and the registry signs and stores both models (stage 2's in the card);
//!   only once that is durable is stage 2's model installed. A registry that is not caught up
//!   or does not answer fails the attempt (the coordinator retries). Without a registry the
//!   versions count this incarnation's installs.
//! - **Installing:** the model goes to every stage-2 replica as `Stage2Control::Install`, and
//!   again every [`ANNOUNCE_EVERY`], so a replica that restarted gets it back; the drift
//!   monitor is told the training's time (its reference) along with it.
//! - **deploy:** the deployer is asked to roll the release out, and asked again every
//!   [`ANNOUNCE_EVERY`] until the rollout settles (a restarted deployer picks it up): installed
//!   on the fleet (the motes' model in service is then this one) or rolled back (a refusal).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aiot_firmware::model::{Model, MODEL_LEN};
use aiot_runtime::{Actor, ActorError, ActorRef, AskError, Ctx, Message, ReplyTo};
use serde::{Deserialize, Serialize};

use super::monitor::MonitorMsg;
use super::steps::{self, datasets, drift_check, fitted, input, validation, Artifact, Quantized, Validation};
use super::{TrainerConfig, TrainerStats};
use crate::deploy::canary::card_metrics;
use crate::deploy::deployer::{DeployState, DeployerMsg};
use crate::deploy::rollout::Phase;
use crate::inference::alerts::AlertRule;
use crate::inference::stage2::Stage2Control;
use crate::ml::compare::ComparisonSet;
use crate::pipeline::coordinator::StepRequest;
use crate::pipeline::run::StepResult;
use crate::registry::artifact::{ModelCard, Stage2Model};
use crate::registry::service::RegistryMsg;
use crate::streams::stage::StageMsg;

/// How often the installed model is sent to the replicas again, and the deployer asked again.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);
/// How long the registry and the deployer have to answer.
pub const ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// What `/release` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReleaseMsg {
    Step(StepRequest<Artifact>),
    Tick,
    /// The registry's answer to `NextVersion` (`None`: not caught up) for a registration.
    Version {
        ticket: u64,
        version: Result<Option<u32>, String>,
    },
    /// The registry's answer to `Register` for a registration.
    Registered {
        ticket: u64,
        result: Result<u32, String>,
    },
    /// The deployer's answer about a release's rollout.
    Deployed {
        version: u32,
        state: Result<DeployState, String>,
    },
}

impl From<StepRequest<Artifact>> for ReleaseMsg {
    fn from(request: StepRequest<Artifact>) -> Self {
        ReleaseMsg::Step(request)
    }
}

/// A release on its way into the registry.
struct Registering {
    /// This attempt's number: answers to an earlier attempt (retried after a timeout) are
    /// told apart and ignored.
    ticket: u64,
    reply: ReplyTo<StepResult<Artifact>>,
    reason: String,
    validation: Validation,
    quantized: Option<Quantized>,
    dataset_sha256: [u8; 32],
    /// The int8 image as registered (stamped with its version).
    image: Vec<u8>,
}

/// A release being rolled out.
struct Deploying {
    version: u32,
    model: Model,
    /// The time its training data is known to.
    data_at_ms: u64,
    reply: ReplyTo<StepResult<Artifact>>,
}

/// The release actor.
pub struct Release {
    config: TrainerConfig,
    stats: Arc<TrainerStats>,
    installed: Option<Stage2Control>,
    /// The installed model's training time, cluster ms.
    trained_at_ms: u64,
    version: u32,
    registering: Option<Registering>,
    tickets: u64,
    deploying: Option<Deploying>,
    /// The motes' model in service: the last release installed on the fleet (without a
    /// deployer: the last registered), and the time its training data is known to (0: not
    /// known).
    fleet_model: Option<Model>,
    fleet_data_ms: u64,
    /// The last release registered and its training data's time.
    last_registered: Option<(u32, u64)>,
}

impl Release {
    pub fn new(config: TrainerConfig, stats: Arc<TrainerStats>) -> Release {
        Release {
            config,
            stats,
            installed: None,
            trained_at_ms: 0,
            version: 0,
            registering: None,
            tickets: 0,
            deploying: None,
            fleet_model: None,
            fleet_data_ms: 0,
            last_registered: None,
        }
    }

    /// The `validate` step; an error is a refusal (a model not good enough is not retried).
    fn validate(&self, inputs: &steps::Inputs) -> Result<StepResult<Artifact>, String> {
        let models = input(inputs, steps::TRAIN, fitted)?;
        let data = input(inputs, steps::EXTRACT, datasets)?;
        let min = self.config.min_validation_auc;
        let stage2 = &models.stage2;
        let threshold = stage2
            .negative_score_quantile(self.config.negative_quantile)
            .ok_or("no negative windows to set the threshold")?;
        if stage2.validation_auc < min {
            return Err(format!("stage 2's held-out AUC {:.4} is under {min}", stage2.validation_auc));
        }
        let stage1_auc = models.stage1.as_ref().map(|f| f.validation_auc);
        if let Some(auc) = stage1_auc.filter(|auc| *auc < min) {
            return Err(format!("the motes' model's held-out AUC {auc:.4} is under {min}"));
        }
        let drift_ms = inputs.get(steps::DRIFT_CHECK).and_then(drift_check).and_then(|d| d.last_drift_ms);
        let compare = match (&models.stage1, &self.fleet_model) {
            (Some(candidate), Some(current)) => {
                let set = ComparisonSet::select(&candidate.validation, Some(self.fleet_data_ms), drift_ms);
                let figures =
                    set.measure(current).map_err(|why| format!("the motes' model in service: {why}"))?;
                Some((set, figures))
            }
            _ => None,
        };
        let c = data.stage2.counts;
        let line = format!(
            "{} positive, {} negative windows ({} unlabelled, {} flagged left out), held-out AUC {:.4}, threshold {threshold:.4}",
            c.positive, c.negative, c.unlabelled, c.flagged, stage2.validation_auc
        );
        let summary = match &compare {
            Some((set, current)) => {
                let on = if set.since_ms.is_some() { "post-drift comparison" } else { "held-out" };
                format!(
                    "{line}; the motes' model in service: AUC {:.4}, log loss {:.4} on {} {on} windows",
                    current.auc,
                    current.log_loss,
                    set.len()
                )
            }
            None => line.clone(),
        };
        let stage2 = Stage2Model { scorer: stage2.scorer.clone(), threshold };
        let dataset_sha256 = data.stage1.as_ref().unwrap_or(&data.stage2).sha256();
        let data_at_ms = data.at_ms;
        let validation = Validation { stage2, stage1_auc, compare, data_at_ms, dataset_sha256, line };
        Ok(StepResult::Done { summary, output: Artifact::Validated(Box::new(validation)) })
    }

    /// Starts registering a release: at once without a registry, else by asking it for the
    /// version.
    fn register(
        &mut self,
        request: StepRequest<Artifact>,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) -> Result<(), ActorError> {
        let StepRequest { reason, inputs, reply, .. } = request;
        self.tickets += 1;
        let ticket = self.tickets;
        let gathered = (|| {
            let validation = input(&inputs, steps::VALIDATE, validation)?.clone();
            let quantized = match inputs.get(steps::QUANTIZE) {
                Some(Artifact::Quantized(q)) => q.clone(),
                _ => return Err("no quantize output among the inputs".to_string()),
            };
            Ok((validation, quantized))
        })();
        let (validation, quantized) = match gathered {
            Ok(gathered) => gathered,
            Err(why) => return Ok(ctx.reply(&reply, StepResult::Refused(why))?),
        };
        let dataset_sha256 = validation.dataset_sha256;
        let Some(registry) = self.config.registry.clone() else {
            let version = self.version + 1;
            self.install(
                &validation,
                version,
                ctx.cluster_ms(),
                format!("model {version} ({reason}): {}", validation.line),
                ctx,
            );
            let summary = format!("model {version} installed on stage 2 (no registry)");
            return Ok(
                ctx.reply(&reply, StepResult::Done { summary, output: Artifact::Registered(version) })?
            );
        };
        let pending =
            Registering { ticket, reply, reason, validation, quantized, dataset_sha256, image: Vec::new() };
        self.registering = Some(pending);
        let on_reply = move |r: Result<Option<u32>, AskError>| ReleaseMsg::Version {
            ticket,
            version: r.map_err(|e| format!("{e:?}")),
        };
        let asked = ask_at(ctx, &registry, |reply| RegistryMsg::NextVersion { reply }, on_reply);
        if let Err(why) = asked {
            self.registry_failed(ticket, format!("asking the registry for a version: {why}"), ctx)?;
        }
        Ok(())
    }

    /// The registry gave `version`: stamps the image, writes the card, asks it to register both.
    fn on_version(
        &mut self,
        ticket: u64,
        version: u32,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) -> Result<(), ActorError> {
        let Some(pending) = self.registering.as_mut().filter(|p| p.ticket == ticket) else { return Ok(()) };
        let Some(quantized) = &pending.quantized else {
            let pending = self.registering.take().expect("checked above");
            let why = "a registry stores the motes' model, and none was made".to_string();
            return Ok(ctx.reply(&pending.reply, StepResult::Refused(why))?);
        };
        let decoded = Model::decode(&quantized.image).map(|model| Model { version, ..model });
        let compared = match (&decoded, &pending.validation.compare) {
            (Ok(model), Some((set, current))) => match set.measure(model) {
                Ok(new) => Some((set, new, *current)),
                Err(why) => {
                    let pending = self.registering.take().expect("checked above");
                    let why = format!("the new motes' model on the comparison windows: {why}");
                    return Ok(ctx.reply(&pending.reply, StepResult::Refused(why))?);
                }
            },
            _ => None,
        };
        let image = match decoded {
            Ok(model) => {
                let mut image = vec![0; MODEL_LEN];
                match model.encode(&mut image) {
                    Ok(_) => image,
                    Err(e) => return self.registry_failed(ticket, format!("stamping the image: {e:?}"), ctx),
                }
            }
            Err(e) => return self.registry_failed(ticket, format!("the int8 image: {e:?}"), ctx),
        };
        let logistic = self.config.fit.logistic;
        let v = &pending.validation;
        let metrics =
            [("stage1_validation_auc", v.stage1_auc), ("stage1_int8_agreement", Some(quantized.agreement))]
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?)))
                .chain(card_metrics(quantized.int8_auc, compared));
        let card = Box::new(ModelCard {
            version,
            parent: (self.version > 0).then_some(self.version),
            created_ms: ctx.cluster_ms(),
            dataset_sha256: pending.dataset_sha256,
            params: BTreeMap::from([("c".into(), logistic.c), ("tol".into(), logistic.tol)]),
            metrics: metrics.map(|(name, value)| (name.to_string(), value)).collect(),
            image_sha256: [0; 32],
            image_len: 0,
            stage2: Some(v.stage2.clone()),
        });
        pending.image = image.clone();
        let on_reply = move |r: Result<Result<u32, String>, AskError>| ReleaseMsg::Registered {
            ticket,
            result: r.map_err(|e| format!("{e:?}")).and_then(|r| r),
        };
        let registry = self.config.registry.clone().unwrap_or_default();
        let asked = ask_at(ctx, &registry, |reply| RegistryMsg::Register { card, image, reply }, on_reply);
        if let Err(why) = asked {
            return self.registry_failed(ticket, format!("registering: {why}"), ctx);
        }
        Ok(())
    }

    /// The registry stored the release: stage 2 gets its model, the step is done.
    fn on_registered(
        &mut self,
        ticket: u64,
        result: Result<u32, String>,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) -> Result<(), ActorError> {
        if self.registering.as_ref().is_none_or(|p| p.ticket != ticket) {
            return Ok(());
        }
        let version = match result {
            Ok(version) => version,
            Err(why) => return self.registry_failed(ticket, format!("registering: {why}"), ctx),
        };
        let pending = self.registering.take().expect("checked above");
        let figures = pending.quantized.as_ref().map_or(String::new(), |q| {
            format!(
                "; motes' model: held-out AUC {:.4}, int8 AUC {:.4}, agreement {:.4}",
                pending.validation.stage1_auc.unwrap_or(f64::NAN),
                q.int8_auc,
                q.agreement
            )
        });
        let line =
            format!("model {version} ({}): {}{figures}; registered", pending.reason, pending.validation.line);
        self.install(&pending.validation, version, ctx.cluster_ms(), line, ctx);
        let data_at_ms = pending.validation.data_at_ms;
        self.last_registered = Some((version, data_at_ms));
        if self.config.deployer.is_none() {
            self.fleet_model = Model::decode(&pending.image).ok();
            self.fleet_data_ms = data_at_ms;
        }
        let summary = format!("model {version} signed and stored; stage 2 runs it");
        ctx.reply(&pending.reply, StepResult::Done { summary, output: Artifact::Registered(version) })?;
        Ok(())
    }

    fn registry_failed(
        &mut self,
        ticket: u64,
        why: String,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) -> Result<(), ActorError> {
        if self.registering.as_ref().is_none_or(|p| p.ticket != ticket) {
            return Ok(()); // an earlier attempt's late answer
        }
        let pending = self.registering.take().expect("checked above");
        self.stats.registry_retries.fetch_add(1, Ordering::Relaxed);
        *self.stats.last.lock() = Some(format!("waiting for the registry: {why}"));
        ctx.reply(&pending.reply, StepResult::Failed(why))?;
        Ok(())
    }

    fn install(
        &mut self,
        validation: &Validation,
        version: u32,
        now_ms: u64,
        line: String,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) {
        let Stage2Model { scorer, threshold } = validation.stage2.clone();
        let rule = AlertRule { threshold, ..self.config.rule };
        self.installed = Some(Stage2Control::Install { version, scorer: Box::new(scorer), rule });
        self.version = version;
        self.trained_at_ms = now_ms;
        self.announce(ctx);
        self.stats.trainings.fetch_add(1, Ordering::Relaxed);
        self.stats.version.store(u64::from(version), Ordering::Relaxed);
        tracing::info!("release: {line}");
        *self.stats.last.lock() = Some(line);
    }

    /// Starts (or, on a retry, goes on with) a release's rollout.
    fn deploy(
        &mut self,
        request: StepRequest<Artifact>,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) -> Result<(), ActorError> {
        let StepRequest { inputs, reply, .. } = request;
        let version = match inputs.get(steps::REGISTER) {
            Some(Artifact::Registered(version)) => *version,
            _ => {
                return Ok(
                    ctx.reply(&reply, StepResult::Refused("no register output among the inputs".into()))?
                )
            }
        };
        let model = match inputs.get(steps::QUANTIZE) {
            Some(Artifact::Quantized(Some(q))) => Model::decode(&q.image).map(|m| Model { version, ..m }),
            _ => {
                return Ok(ctx.reply(&reply, StepResult::Refused("no motes' model among the inputs".into()))?)
            }
        };
        let Ok(model) = model else {
            return Ok(ctx.reply(&reply, StepResult::Refused("the motes' model does not decode".into()))?);
        };
        let data_at_ms = self.last_registered.filter(|(v, _)| *v == version).map_or(0, |(_, ms)| ms);
        self.deploying = Some(Deploying { version, model, data_at_ms, reply });
        self.ask_deployer(ctx);
        Ok(())
    }

    /// Asks the deployer to roll the release out (again: it is idempotent).
    fn ask_deployer(&self, ctx: &mut Ctx<'_, ReleaseMsg>) {
        let (Some(Deploying { version, .. }), Some(deployer)) = (&self.deploying, &self.config.deployer)
        else {
            return;
        };
        let version = *version;
        let on_reply = move |r: Result<DeployState, AskError>| ReleaseMsg::Deployed {
            version,
            state: r.map_err(|e| format!("{e:?}")),
        };
        let asked = ask_at(ctx, deployer, |reply| DeployerMsg::Deploy { version, reply }, on_reply);
        if let Err(why) = asked {
            tracing::warn!("release: asking the deployer to roll out model {version}: {why}");
        }
    }

    /// The deployer's answer: a settled rollout ends the step.
    fn on_deployed(
        &mut self,
        version: u32,
        state: Result<DeployState, String>,
        ctx: &mut Ctx<'_, ReleaseMsg>,
    ) -> Result<(), ActorError> {
        let Ok(state) = state else { return Ok(()) }; // asked again at the next tick
        *self.stats.deploy.lock() = Some((version, state));
        if !state.settled() || self.deploying.as_ref().is_none_or(|d| d.version != version) {
            return Ok(());
        }
        let Deploying { model, data_at_ms, reply, .. } = self.deploying.take().expect("checked above");
        let result = match state {
            DeployState::Rolling(Phase::Installed) => {
                self.fleet_model = Some(model);
                self.fleet_data_ms = data_at_ms;
                let summary = format!("model {version} installed on every mote");
                StepResult::Done { summary, output: Artifact::Deployed(state) }
            }
            DeployState::Superseded => {
                StepResult::Refused(format!("model {version} was superseded by a later one"))
            }
            other => StepResult::Refused(format!("model {version}'s rollout ended {other:?}")),
        };
        ctx.reply(&reply, result)?;
        Ok(())
    }

    /// Sends the installed model to every replica (a replica gone is a dead letter), and its
    /// training time to the drift monitor.
    fn announce(&self, ctx: &mut Ctx<'_, ReleaseMsg>) {
        let Some(install) = &self.installed else { return };
        if let Some(monitor) = &self.config.monitor {
            if let Ok(to) = ActorRef::<MonitorMsg>::parse(monitor) {
                let _ = ctx.send(&to, MonitorMsg::Reference { at_ms: self.trained_at_ms });
            }
        }
        for replica in &self.config.replicas {
            match ActorRef::<StageMsg<Stage2Control>>::parse(replica) {
                Ok(to) => {
                    let _ = ctx.send(&to, StageMsg::Control(install.clone()));
                }
                Err(e) => tracing::warn!("release: replica path {replica:?}: {e:?}"),
            }
        }
    }
}

/// Asks the actor at the configured `path`; an error says why the request did not go.
fn ask_at<Q: Message, R: Message>(
    ctx: &mut Ctx<'_, ReleaseMsg>,
    path: &str,
    request: impl FnOnce(ReplyTo<R>) -> Q,
    on_reply: impl FnOnce(Result<R, AskError>) -> ReleaseMsg + Send + 'static,
) -> Result<(), String> {
    let to = ActorRef::<Q>::parse(path).map_err(|e| format!("{path}: {e:?}"))?;
    ctx.ask(&to, request, ASK_TIMEOUT, on_reply).map(|_| ()).map_err(|e| e.to_string())
}

impl Actor for Release {
    type Msg = ReleaseMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, ReleaseMsg>) -> Result<(), ActorError> {
        ctx.schedule_every(ANNOUNCE_EVERY, ReleaseMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: ReleaseMsg, ctx: &mut Ctx<'_, ReleaseMsg>) -> Result<(), ActorError> {
        match msg {
            ReleaseMsg::Step(request) => match request.step.as_str() {
                steps::VALIDATE => {
                    let result = self.validate(&request.inputs).unwrap_or_else(|why| {
                        self.stats.refuse(&request.reason, &why);
                        StepResult::Refused(why)
                    });
                    ctx.reply(&request.reply, result)?;
                }
                steps::REGISTER => self.register(request, ctx)?,
                steps::DEPLOY => self.deploy(request, ctx)?,
                other => {
                    let result = StepResult::Failed(format!("/release does not do step {other:?}"));
                    ctx.reply(&request.reply, result)?;
                }
            },
            ReleaseMsg::Tick => {
                self.announce(ctx);
                self.ask_deployer(ctx);
            }
            ReleaseMsg::Version { ticket, version } => match version {
                Ok(Some(version)) => self.on_version(ticket, version, ctx)?,
                Ok(None) => self.registry_failed(ticket, "the registry is not caught up".into(), ctx)?,
                Err(why) => self.registry_failed(ticket, format!("asking for a version: {why}"), ctx)?,
            },
            ReleaseMsg::Registered { ticket, result } => self.on_registered(ticket, result, ctx)?,
            ReleaseMsg::Deployed { version, state } => self.on_deployed(version, state, ctx)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::dataset::Dataset;
    use crate::ml::scorer::fit;
    use crate::ml::testdata::{fleet, DAY};
    use crate::ml::train::{quantize_fitted, TrainConfig};
    use crate::training::steps::{Datasets, DriftCheck, FittedModels, Inputs};

    /// A run's inputs to `validate` on the test fleet (labels known at day 40; the same fit
    /// stands in for both models), the drift check reporting `drift_ms`; and the int8 model of
    /// that fit.
    fn inputs(drift_ms: Option<u64>) -> (Inputs, Model) {
        let (windows, outcomes) = fleet();
        let config = TrainConfig::default();
        let data = Dataset::assemble(&windows, &outcomes, &config.rule, 40 * DAY);
        let fitted = fit(&data, &config.fit).expect("the test fleet fits");
        let (int8, _) = quantize_fitted(&fitted, &config, 1).expect("within the targets");
        let models = FittedModels { stage2: fitted.clone(), stage1: Some(fitted) };
        let datasets = Datasets { at_ms: 40 * DAY, stage2: data.clone(), stage1: Some(data) };
        let drift = DriftCheck { summary: String::new(), last_drift_ms: drift_ms };
        let inputs = Inputs::from([
            (steps::TRAIN.to_string(), Artifact::Fitted(Box::new(models))),
            (steps::EXTRACT.to_string(), Artifact::Datasets(Box::new(datasets))),
            (steps::DRIFT_CHECK.to_string(), Artifact::Drift(drift)),
        ]);
        (inputs, int8)
    }

    fn validated(release: &Release, inputs: &Inputs) -> Validation {
        match release.validate(inputs) {
            Ok(StepResult::Done { output: Artifact::Validated(v), .. }) => *v,
            other => panic!("validate: {other:?}"),
        }
    }

    #[test]
    fn after_a_drift_the_model_in_service_has_not_seen_the_comparison_takes_the_new_regime() {
        let (drifted, in_service) = inputs(Some(20 * DAY));
        let mut release = Release::new(TrainerConfig::default(), Arc::new(TrainerStats::default()));
        assert!(validated(&release, &drifted).compare.is_none(), "no model in service: nothing to compare");
        let held_out = match drifted.get(steps::TRAIN) {
            Some(Artifact::Fitted(f)) => f.stage1.as_ref().expect("a motes' model").validation.clone(),
            _ => unreachable!(),
        };
        release.fleet_model = Some(in_service);
        // What the model in service cannot have trained on: labelled after its data.
        let unseen = |data_ms: u64, i: usize| held_out.known[i] > data_ms;
        let count = |keep: &dyn Fn(usize) -> bool| (0..held_out.len()).filter(|&i| keep(i)).count();

        // Trained on data up to day 10: the drift at day 20 is news to it.
        release.fleet_data_ms = 10 * DAY;
        let (set, figures) = validated(&release, &drifted).compare.expect("a model in service");
        assert_eq!((set.since_ms, set.unseen_after_ms), (Some(20 * DAY), Some(10 * DAY)));
        let positives = count(&|i| held_out.y[i] == 1.0 && unseen(10 * DAY, i));
        let negatives_since = count(&|i| held_out.y[i] == 0.0 && held_out.times[i] >= 20 * DAY);
        assert_eq!(set.len(), positives + negatives_since, "unseen positives, the negatives since the drift");
        assert!(positives >= 10 && negatives_since >= 10 && set.len() < held_out.len());
        assert!(figures.auc > 0.5 && figures.log_loss > 0.0, "{figures:?}");

        // Trained on data up to day 21, it has seen the drift; no drift known: every window
        // labelled since its data.
        release.fleet_data_ms = 21 * DAY;
        let since_its_data = count(&|i| unseen(21 * DAY, i));
        let (set, _) = validated(&release, &drifted).compare.expect("a model in service");
        assert_eq!((set.since_ms, set.len()), (None, since_its_data));
        let (no_drift, _) = inputs(None);
        let (set, _) = validated(&release, &no_drift).compare.expect("a model in service");
        assert_eq!((set.since_ms, set.len()), (None, since_its_data));
        assert!(since_its_data < held_out.len(), "some were labelled before day 21");
    }
}
