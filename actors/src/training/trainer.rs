//! The trainer (BLUEPRINT section 5): stage 2's model, fitted by Newton on the DSP windows of
//! the `features` stream, labelled by the outcomes of the `maintenance` stream, and installed
//! on every stage-2 replica.
//!
//! - **Its data is the log.** It reads both streams from the start, every partition, with no
//!   group and no commits, and keeps the last [`TrainerConfig::keep_windows`] DSP windows and
//!   every outcome. After a restart it reads them again: nothing to snapshot. Copies of a window
//!   (the streams are at least once) are kept once, by their frame.
//! - **When it trains:** at the first tick after `every` of cluster time since the last
//!   training (the first once `first_after` has passed since it started), and at once on
//!   [`TrainerMsg::Retrain`] (the drift monitor's command; its evidence is logged).
//! - **What it trains:** `ml::dataset` labels the windows as known now (flagged and unlabelled
//!   windows left out), `ml::scorer::fit` splits by motor, standardises, fits and validates. A
//!   fit that refuses (too little data, one class on a side, no convergence) installs nothing
//!   and is reported; the replicas keep the model they have. The alert threshold is the
//!   `negative_quantile` of the training negatives' scores.
//! - **Installing:** the model goes to every replica as `Stage2Control::Install` and is sent
//!   again every [`ANNOUNCE_EVERY`], so a replica that restarted (and lost it) gets it back;
//!   installing a model twice changes nothing. The drift monitor is told the training's time
//!   along with it (its reference is the windows before it).
//! - **Registering** (with a registry configured, `/registry`): each training is one release:
//!   the version comes from the registry (`NextVersion`), the motes' int8 stage-1 model is
//!   trained on the stage-1 vectors of the same stream by the same labels (`ml::train`), and
//!   the registry signs and stores both, stage 2's model in the card; only once it is durable
//!   is stage 2's model installed. A registry that is not caught up, or does not answer, is
//!   asked again at the next tick. Without a registry, versions count this incarnation's
//!   trainings.
//! - **Deploying** (with a deployer configured, `/deployer`): a registered release is handed
//!   to the deployer, asked again every [`ANNOUNCE_EVERY`] until its rollout settles (so a
//!   restarted deployer picks it up). The motes' model of the last release installed on the
//!   fleet is scored beside each new one on its held-out windows (the card's
//!   `stage1_int8_auc_current`), which the canary rule compares.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_firmware::model::Model;
use aiot_runtime::{Actor, ActorError, ActorRef, AskError, Ctx, PortRef};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::monitor::MonitorMsg;
use super::windows::WindowStore;
use crate::deploy::canary::{AUC, AUC_CURRENT};
use crate::deploy::deployer::{DeployState, DeployerMsg};
use crate::inference::alerts::AlertRule;
use crate::inference::features::{FeatureRecord, FeatureSource, FEATURES};
use crate::inference::stage2::Stage2Control;
use crate::maintenance::MaintenanceRecord;
use crate::ml::dataset::Dataset;
use crate::ml::labels::{LabelRule, Outcomes};
use crate::ml::scorer::{fit, FitConfig};
use crate::ml::train::{train, TrainConfig};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{Start, StoredRecord, Subscription};
use crate::registry::artifact::{ModelCard, Stage2Model};
use crate::registry::service::RegistryMsg;
use crate::streams::reader;
use crate::streams::stage::StageMsg;
use crate::streams::MAINTENANCE;

/// How often the installed model is sent to the replicas again.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);
/// How long the registry has to answer.
pub const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Records the trainer's consumer may deliver before it grants more.
const CREDIT: u32 = 1024;

/// What the trainer does, and for whom.
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    pub labels: LabelRule,
    pub fit: FitConfig,
    /// Where the alert threshold goes among the training negatives' scores (default 0.995).
    pub negative_quantile: f64,
    /// The alert rule installed with each model (its threshold replaced by the trained one).
    pub rule: AlertRule,
    /// Cluster time from the trainer's start to its first training.
    pub first_after: Duration,
    /// Cluster time between trainings.
    pub every: Duration,
    /// DSP windows kept, the oldest dropped first.
    pub keep_windows: usize,
    /// The stage-2 replicas (`/stage2-1` ...).
    pub replicas: Vec<String>,
    /// The drift monitor, told each training's time (its reference).
    pub monitor: Option<String>,
    /// The registry that versions, signs and stores each release; none: versions count.
    pub registry: Option<String>,
    /// The motes' stage-1 model's training (with a registry).
    pub stage1: TrainConfig,
    /// The deployer that rolls each registered release out to the motes (with a registry).
    pub deployer: Option<String>,
}

impl Default for TrainerConfig {
    /// The first training after a day, then one a day; 200 000 windows (about 80 days of 100
    /// motors' hourly raw windows).
    fn default() -> Self {
        TrainerConfig {
            labels: LabelRule::default(),
            fit: FitConfig::default(),
            negative_quantile: 0.995,
            rule: AlertRule::default(),
            first_after: Duration::from_secs(24 * 3600),
            every: Duration::from_secs(24 * 3600),
            keep_windows: 200_000,
            replicas: Vec::new(),
            monitor: None,
            registry: None,
            stage1: TrainConfig::default(),
            deployer: None,
        }
    }
}

/// What the trainer takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TrainerMsg {
    Log(LogEvent),
    /// Train when due; announce the model.
    Tick,
    /// Train now (the drift monitor's command), for this reason.
    Retrain {
        reason: String,
    },
    /// The registry's answer to `NextVersion` (`None`: not caught up), for a training's reason.
    Version {
        reason: String,
        version: Result<Option<u32>, String>,
    },
    /// The registry's answer to `Register`.
    Registered(Result<u32, String>),
    /// The deployer's answer about a release's rollout.
    Deployed {
        version: u32,
        state: Result<DeployState, String>,
    },
}

/// The trainer's counters, shared with the host.
#[derive(Debug, Default)]
pub struct TrainerStats {
    /// DSP and stage-1 windows kept (copies not counted).
    pub windows: AtomicU64,
    pub stage1_windows: AtomicU64,
    pub outcomes: AtomicU64,
    /// Records that did not decode.
    pub undecodable: AtomicU64,
    /// Models installed, and the version of the last.
    pub trainings: AtomicU64,
    pub version: AtomicU64,
    /// Trainings that fitted nothing.
    pub refused: AtomicU64,
    /// Registry requests that failed and were made again.
    pub registry_retries: AtomicU64,
    /// The last training's result, for people.
    pub last: Mutex<Option<String>>,
    /// The last release's rollout as the deployer reported it.
    pub deploy: Mutex<Option<(u32, DeployState)>>,
}

impl TrainerStats {
    /// One line for a node's status.
    pub fn status(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let last = self.last.lock().clone().unwrap_or_else(|| "no training yet".into());
        format!(
            "trainer: {} windows, {} outcomes, {} models, {} refused; {last}",
            load(&self.windows),
            load(&self.outcomes),
            load(&self.trainings),
            load(&self.refused)
        )
    }
}

/// The trainer actor.
pub struct Trainer {
    config: TrainerConfig,
    stats: Arc<TrainerStats>,
    log: Option<PortRef<Log>>,
    /// DSP vectors (stage 2's training data) and stage-1 vectors (the motes').
    windows: WindowStore,
    stage1: WindowStore,
    outcomes: Outcomes,
    /// Cluster time of the next scheduled training.
    train_at_ms: Option<u64>,
    installed: Option<Stage2Control>,
    /// The installed model's training time, cluster ms.
    trained_at_ms: u64,
    version: u32,
    /// A release the registry is storing: stage 2's model to install once it is durable, and
    /// the motes' model.
    registering: Option<(Stage2Control, Model)>,
    /// A release being deployed (until its rollout settles).
    deploying: Option<(u32, Model)>,
    /// The motes' model of the last release installed on the fleet.
    fleet_model: Option<Model>,
    /// A request to the registry is pending.
    asking: bool,
    /// The log refused the subscription: ask again at the next tick.
    resubscribe: bool,
}

impl Trainer {
    pub fn new(config: TrainerConfig, stats: Arc<TrainerStats>) -> Trainer {
        Trainer {
            stats,
            log: None,
            windows: WindowStore::new(config.keep_windows),
            stage1: WindowStore::new(config.keep_windows),
            outcomes: Outcomes::default(),
            train_at_ms: None,
            installed: None,
            trained_at_ms: 0,
            version: 0,
            registering: None,
            deploying: None,
            fleet_model: None,
            asking: false,
            resubscribe: false,
            config,
        }
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        let Some(log) = &self.log else { return Ok(()) };
        let topics = [FEATURES, MAINTENANCE];
        let subscription =
            Subscription { credit: CREDIT, ..Subscription::all(&topics, "trainer", Start::Earliest) };
        Ok(ctx.port_request(log, LogRequest::Subscribe(subscription))?)
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, TrainerMsg>,
    ) -> Result<(), ActorError> {
        let count = records.len() as u32;
        for stored in records {
            let topic = stored.partition.topic.as_str();
            let taken = if topic == FEATURES {
                FeatureRecord::decode(&stored.record.payload).map(|f| self.keep(f))
            } else if topic == MAINTENANCE {
                MaintenanceRecord::from_json(&stored.record.payload).map(|r| {
                    self.outcomes.record(&r);
                    self.stats.outcomes.fetch_add(1, Ordering::Relaxed);
                })
            } else {
                Ok(())
            };
            if let Err(why) = taken {
                self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("trainer: {}@{}: {why}", stored.partition, stored.offset);
            }
        }
        reader::grant(self.log.as_ref(), count, ctx)
    }

    /// Keeps a DSP or stage-1 window (once per frame), dropping the oldest beyond the limit.
    fn keep(&mut self, features: FeatureRecord) {
        let (store, counter) = match features.source {
            FeatureSource::Dsp => (&mut self.windows, &self.stats.windows),
            FeatureSource::Stage1 { .. } => (&mut self.stage1, &self.stats.stage1_windows),
        };
        store.keep(features);
        counter.store(store.len() as u64, Ordering::Relaxed);
    }

    /// Starts a training at `now_ms`: at once without a registry, else by asking it for the
    /// version (one release at a time).
    fn train(&mut self, now_ms: u64, reason: &str, ctx: &mut Ctx<'_, TrainerMsg>) {
        self.train_at_ms = Some(now_ms.saturating_add(self.config.every.as_millis() as u64));
        let Some(registry) = self.config.registry.clone() else {
            let version = self.version + 1;
            match self.fit_stage2(now_ms, version) {
                Ok((install, line)) => {
                    self.install(install, now_ms, format!("model {version} ({reason}): {line}"), ctx)
                }
                Err(why) => self.refused(format!("no model ({reason}): {why}")),
            }
            return;
        };
        if self.asking {
            return;
        }
        let reason = reason.to_string();
        let on_reply = move |r: Result<Option<u32>, AskError>| TrainerMsg::Version {
            reason,
            version: r.map_err(|e| format!("{e:?}")),
        };
        let asked = ActorRef::<RegistryMsg>::parse(&registry).map_err(|e| format!("{e:?}")).and_then(|to| {
            ctx.ask(&to, |reply| RegistryMsg::NextVersion { reply }, REGISTRY_TIMEOUT, on_reply)
                .map_err(|e| e.to_string())
        });
        match asked {
            Ok(_) => self.asking = true,
            Err(why) => self.retry_registry(now_ms, &why),
        }
    }

    /// The registry could not help now: ask again at the next tick.
    fn retry_registry(&mut self, now_ms: u64, why: &str) {
        self.asking = false;
        self.stats.registry_retries.fetch_add(1, Ordering::Relaxed);
        *self.stats.last.lock() = Some(format!("waiting for the registry: {why}"));
        self.train_at_ms = Some(now_ms);
    }

    /// Stage 2's model on the DSP windows known at `now_ms`, and a line about it.
    fn fit_stage2(&self, now_ms: u64, version: u32) -> Result<(Stage2Control, String), String> {
        let data = Dataset::assemble(&self.windows.to_vec(), &self.outcomes, &self.config.labels, now_ms);
        let fitted = fit(&data, &self.config.fit)?;
        let threshold = fitted
            .negative_score_quantile(self.config.negative_quantile)
            .ok_or("no negative windows to set the threshold")?;
        let line = format!(
            "{} positive, {} negative windows ({} unlabelled, {} flagged left out), held-out AUC {:.4}, threshold {threshold:.4}",
            data.counts.positive,
            data.counts.negative,
            data.counts.unlabelled,
            data.counts.flagged,
            fitted.validation_auc
        );
        let rule = AlertRule { threshold, ..self.config.rule };
        Ok((Stage2Control::Install { version, scorer: fitted.scorer, rule }, line))
    }

    /// The registry gave `version`: trains both models and asks it to register them.
    fn on_version(&mut self, reason: String, version: u32, now_ms: u64, ctx: &mut Ctx<'_, TrainerMsg>) {
        let release = self.fit_stage2(now_ms, version).and_then(|(install, line)| {
            let stage1 = train(
                &self.stage1.to_vec(),
                &self.outcomes,
                &self.config.stage1,
                now_ms,
                version,
                self.fleet_model.as_ref(),
            )
            .map_err(|why| format!("the motes' model: {why}"))?;
            let model = Model::decode(&stage1.image).map_err(|e| format!("the motes' model: {e:?}"))?;
            Ok((install, line, stage1, model))
        });
        let (install, line, stage1, model) = match release {
            Ok(release) => release,
            Err(why) => {
                self.asking = false;
                return self.refused(format!("no model ({reason}): {why}"));
            }
        };
        let Stage2Control::Install { scorer, rule, .. } = &install else {
            unreachable!("fit_stage2 makes an Install")
        };
        let logistic = self.config.fit.logistic;
        let card = Box::new(ModelCard {
            version,
            parent: (self.version > 0).then_some(self.version),
            created_ms: now_ms,
            dataset_sha256: stage1.dataset_sha256,
            params: BTreeMap::from([("c".into(), logistic.c), ("tol".into(), logistic.tol)]),
            metrics: BTreeMap::from_iter(
                [
                    ("stage1_validation_auc", Some(stage1.validation_auc)),
                    (AUC, Some(stage1.int8_auc)),
                    ("stage1_int8_agreement", Some(stage1.int8_agreement)),
                    (AUC_CURRENT, stage1.current_int8_auc),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_string(), value?))),
            ),
            image_sha256: [0; 32],
            image_len: 0,
            stage2: Some(Stage2Model { scorer: scorer.clone(), threshold: rule.threshold }),
        });
        let summary = format!(
            "model {version} ({reason}): {line}; motes' model: held-out AUC {:.4}, int8 AUC {:.4}, agreement {:.4}",
            stage1.validation_auc, stage1.int8_auc, stage1.int8_agreement
        );
        let image = stage1.image;
        let on_reply = |r: Result<Result<u32, String>, AskError>| {
            TrainerMsg::Registered(r.map_err(|e| format!("{e:?}")).and_then(|r| r))
        };
        let registry = self.config.registry.clone().unwrap_or_default();
        let asked = ActorRef::<RegistryMsg>::parse(&registry).map_err(|e| format!("{e:?}")).and_then(|to| {
            ctx.ask(&to, |reply| RegistryMsg::Register { card, image, reply }, REGISTRY_TIMEOUT, on_reply)
                .map_err(|e| e.to_string())
        });
        match asked {
            Ok(_) => {
                *self.stats.last.lock() = Some(summary);
                self.registering = Some((install, model));
            }
            Err(why) => self.retry_registry(now_ms, &why),
        }
    }

    /// The registry answered the registration: once stored, stage 2 gets its model.
    fn on_registered(&mut self, result: Result<u32, String>, now_ms: u64, ctx: &mut Ctx<'_, TrainerMsg>) {
        self.asking = false;
        let Some((install, model)) = self.registering.take() else { return };
        match result {
            Ok(version) => {
                let summary = self.stats.last.lock().clone().unwrap_or_default();
                self.install(install, now_ms, format!("{summary}; registered"), ctx);
                if self.config.deployer.is_some() {
                    self.deploying = Some((version, model));
                    self.deploy(ctx);
                } else {
                    self.fleet_model = Some(model);
                }
            }
            Err(why) => self.retry_registry(now_ms, &format!("registering: {why}")),
        }
    }

    fn install(&mut self, install: Stage2Control, now_ms: u64, line: String, ctx: &mut Ctx<'_, TrainerMsg>) {
        if let Stage2Control::Install { version, .. } = &install {
            self.version = *version;
        }
        self.installed = Some(install);
        self.trained_at_ms = now_ms;
        self.announce(ctx);
        self.stats.trainings.fetch_add(1, Ordering::Relaxed);
        self.stats.version.store(u64::from(self.version), Ordering::Relaxed);
        tracing::info!("trainer: {line}");
        *self.stats.last.lock() = Some(line);
    }

    /// Asks the deployer to roll the release out (again: it is idempotent).
    fn deploy(&self, ctx: &mut Ctx<'_, TrainerMsg>) {
        let (Some((version, _)), Some(deployer)) = (&self.deploying, &self.config.deployer) else { return };
        let version = *version;
        let on_reply = move |r: Result<DeployState, AskError>| TrainerMsg::Deployed {
            version,
            state: r.map_err(|e| format!("{e:?}")),
        };
        let asked = ActorRef::<DeployerMsg>::parse(deployer).map_err(|e| format!("{e:?}")).and_then(|to| {
            ctx.ask(&to, |reply| DeployerMsg::Deploy { version, reply }, REGISTRY_TIMEOUT, on_reply)
                .map_err(|e| e.to_string())
        });
        if let Err(why) = asked {
            tracing::warn!("trainer: asking the deployer to roll out model {version}: {why}");
        }
    }

    /// The deployer's answer: a settled rollout is not asked about again; the fleet's model is
    /// the release's once it is installed.
    fn on_deployed(&mut self, version: u32, state: Result<DeployState, String>) {
        let Ok(state) = state else { return }; // asked again at the next tick
        *self.stats.deploy.lock() = Some((version, state));
        if !state.settled() || self.deploying.as_ref().is_none_or(|(v, _)| *v != version) {
            return;
        }
        let (_, model) = self.deploying.take().expect("a release being deployed");
        if state == DeployState::Rolling(crate::deploy::rollout::Phase::Installed) {
            self.fleet_model = Some(model);
        }
    }

    fn refused(&mut self, line: String) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!("trainer: {line}");
        *self.stats.last.lock() = Some(line);
    }

    /// Sends the installed model to every replica (a replica gone is a dead letter), and its
    /// training time to the drift monitor.
    fn announce(&self, ctx: &mut Ctx<'_, TrainerMsg>) {
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
                Err(e) => tracing::warn!("trainer: replica path {replica:?}: {e:?}"),
            }
        }
    }
}

impl Actor for Trainer {
    type Msg = TrainerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(TrainerMsg::Log));
        self.subscribe(ctx)?;
        let first = ctx.cluster_ms().saturating_add(self.config.first_after.as_millis() as u64);
        self.train_at_ms = Some(first);
        ctx.schedule_every(ANNOUNCE_EVERY, TrainerMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: TrainerMsg, ctx: &mut Ctx<'_, TrainerMsg>) -> Result<(), ActorError> {
        match msg {
            TrainerMsg::Log(event) => {
                if let Some(records) = reader::records(event, "trainer", &mut self.resubscribe) {
                    self.on_records(records, ctx)?
                }
            }
            TrainerMsg::Tick => {
                if std::mem::take(&mut self.resubscribe) {
                    self.subscribe(ctx)?;
                }
                let now_ms = ctx.cluster_ms();
                if self.train_at_ms.is_some_and(|at| now_ms >= at) {
                    self.train(now_ms, "scheduled", ctx);
                } else {
                    self.announce(ctx);
                }
                self.deploy(ctx);
            }
            TrainerMsg::Retrain { reason } => self.train(ctx.cluster_ms(), &reason, ctx),
            TrainerMsg::Version { reason, version } => {
                let now_ms = ctx.cluster_ms();
                match version {
                    Ok(Some(version)) => self.on_version(reason, version, now_ms, ctx),
                    Ok(None) => self.retry_registry(now_ms, "not caught up"),
                    Err(why) => self.retry_registry(now_ms, &why),
                }
            }
            TrainerMsg::Registered(result) => self.on_registered(result, ctx.cluster_ms(), ctx),
            TrainerMsg::Deployed { version, state } => self.on_deployed(version, state),
        }
        Ok(())
    }
}
