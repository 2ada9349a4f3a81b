//! The deployer actor, `/deployer` (platform tier): rolls a registered model out to the motes
//! over the air, canary first (BLUEPRINT sections 5 and 10).
//!
//! - **What it reads.** `telemetry` (every partition, no group) from `lookback` before its
//!   start: every mote's features frames (the model it runs, and for canary motes the window
//!   and its score, unless the mote reports its motor tripped: a stopped motor's windows say
//!   nothing of either model) and OTA receipts. A frame is taken once (per mote, by (boot epoch,
//!   sequence)); one older than the newest read (a resend whose first send was lost) still
//!   counts as canary evidence and as a receipt, but what the mote runs is the newest's news.
//! - **Deploy.** `DeployerMsg::Deploy { version }` is idempotent and answers the rollout's
//!   phase at once, so the trainer asks again every few seconds until it is settled: a
//!   restarted deployer picks the rollout up from the next ask. A higher version replaces a
//!   rollout in progress. Once `warmup` has passed since it started (its view of the fleet is
//!   current by then: every mote reports at least once a minute), the deployer fetches the
//!   candidate and the model most motes run now (the shadow, and what a rollback restores)
//!   from the registry, then runs the [`Rollout`].
//! - **Transfers** go into the `commands` stream as command records ([`super::transfer`]),
//!   appended in order per mote and retried until durable; the command relay and the gateway
//!   carry them to the mote.
//! - **Status.** [`DeployStats`] holds the rollout (phase, verdict, evidence, each mote's
//!   receipts) for the host, the shell and tests.
//!
//! A restarted deployer forgets the canary's evidence: the canary period starts again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_firmware::actuation::ActuationState;
use aiot_firmware::model::Model;
use aiot_firmware::protocol::{Kind, Payload};
use aiot_runtime::{Actor, ActorError, ActorRef, AskError, Ctx, PortRef, ReplyTo};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::rollout::{fleet_model, Action, Phase, Rollout, RolloutConfig};
use super::transfer::{transfer, CHUNK_LEN};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{Record, Start, StoredRecord, Subscription};
use crate::registry::artifact::SignedModel;
use crate::registry::service::RegistryMsg;
use crate::streams::appender::{AppendStats, KeyedAppender};
use crate::streams::reader;
use crate::streams::{mote_key, TelemetryRecord, COMMANDS, TELEMETRY};
use crate::things::dedup::{FrameDedup, Seen};

/// How often the deployer steps its rollout.
pub const TICK_EVERY: Duration = Duration::from_secs(1);
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(30);
const CREDIT: u32 = 1024;

/// The deployer's settings.
#[derive(Debug, Clone)]
pub struct DeployerConfig {
    pub rollout: RolloutConfig,
    /// Image bytes per OTA chunk.
    pub chunk_len: usize,
    /// How far back it reads `telemetry` when it starts (default 1 hour).
    pub lookback: Duration,
    /// No rollout starts before this long after the deployer did (default 2 minutes).
    pub warmup: Duration,
    pub registry: String,
}

impl Default for DeployerConfig {
    fn default() -> Self {
        DeployerConfig {
            rollout: RolloutConfig::default(),
            chunk_len: CHUNK_LEN,
            lookback: Duration::from_secs(3600),
            warmup: Duration::from_secs(120),
            registry: "/registry".into(),
        }
    }
}

/// A rollout's state, as `Deploy` answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeployState {
    /// Fetching the models from the registry.
    Preparing,
    Rolling(Phase),
    /// The deployer is rolling out a higher version.
    Superseded,
}

impl DeployState {
    /// Nothing more will happen for this version.
    pub fn settled(self) -> bool {
        match self {
            DeployState::Rolling(phase) => phase.settled(),
            DeployState::Superseded => true,
            DeployState::Preparing => false,
        }
    }
}

/// What the deployer takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum DeployerMsg {
    Log(LogEvent),
    Tick,
    /// Roll `version` out (again, if it is the current rollout: nothing changes); answers its
    /// state.
    Deploy {
        version: u32,
        reply: ReplyTo<DeployState>,
    },
    /// The registry's answer about a model.
    Fetched {
        version: u32,
        model: Result<Option<Box<SignedModel>>, String>,
    },
    /// The current (or last) rollout, each mote's receipts with it (for the shell). Last, so
    /// the variants before it keep their encoding.
    Rollout {
        reply: ReplyTo<Option<Rollout>>,
    },
}

/// The deployer's counters and its rollout, shared with the host.
#[derive(Debug, Default)]
pub struct DeployStats {
    pub rollouts: AtomicU64,
    pub transfers: AtomicU64,
    pub receipts: AtomicU64,
    pub undecodable: AtomicU64,
    /// The current (or last) rollout.
    pub rollout: Mutex<Option<Rollout>>,
    /// Each mote heard and the model it last said it runs (0: none): the metrics' model
    /// version per mote.
    pub running: Mutex<BTreeMap<u32, u32>>,
    /// Every canary verdict this incarnation gave: version, and the verdict with its evidence.
    pub verdicts: Mutex<Vec<(u32, String)>>,
    /// Why the deployer cannot go on (a model missing from the registry), for people.
    pub problem: Mutex<Option<String>>,
    pub appends: Arc<AppendStats>,
}

impl DeployStats {
    /// One line for a node's status.
    pub fn status(&self) -> String {
        let rollout = self.rollout.lock().as_ref().map_or_else(|| "no rollout".into(), Rollout::summary);
        let problem = self.problem.lock().as_ref().map(|p| format!(" ({p})")).unwrap_or_default();
        format!(
            "deployer: {} rollouts, {} transfers, {} receipts; {rollout}{problem}",
            self.rollouts.load(Ordering::Relaxed),
            self.transfers.load(Ordering::Relaxed),
            self.receipts.load(Ordering::Relaxed)
        )
    }
}

/// What the deployer has read of one mote.
#[derive(Default)]
struct Heard {
    /// The model it runs, as of its newest frame.
    running: u32,
    /// Its newest frame read, (boot epoch, sequence).
    newest: (u32, u32),
    /// Every frame read: a copy is taken once.
    frames: FrameDedup,
}

/// A rollout asked for whose models are being fetched.
struct Preparing {
    version: u32,
    previous: Option<u32>,
}

/// The deployer actor.
pub struct Deployer {
    config: DeployerConfig,
    stats: Arc<DeployStats>,
    log: Option<PortRef<Log>>,
    /// Every mote heard: the model it runs, its newest frame, the frames read.
    motes: BTreeMap<u32, Heard>,
    /// Motes whose last report said their motor is tripped.
    stopped: BTreeSet<u32>,
    /// Models from the registry (`None`: it has no such version), and those asked for.
    models: BTreeMap<u32, Option<SignedModel>>,
    fetching: BTreeSet<u32>,
    /// The version asked for, until its rollout starts.
    wanted: Option<u32>,
    preparing: Option<Preparing>,
    /// Cluster time it started, ms.
    started_ms: u64,
    rollout: Option<Rollout>,
    appender: KeyedAppender<u32, ()>,
    resubscribe: bool,
}

impl Deployer {
    pub fn new(config: DeployerConfig, stats: Arc<DeployStats>) -> Deployer {
        Deployer {
            appender: KeyedAppender::new(Arc::clone(&stats.appends)),
            stats,
            log: None,
            motes: BTreeMap::new(),
            stopped: BTreeSet::new(),
            models: BTreeMap::new(),
            fetching: BTreeSet::new(),
            wanted: None,
            preparing: None,
            started_ms: 0,
            rollout: None,
            resubscribe: false,
            config,
        }
    }

    fn subscribe(&self, ctx: &mut Ctx<'_, DeployerMsg>) -> Result<(), ActorError> {
        let Some(log) = &self.log else { return Ok(()) };
        let since = ctx.cluster_ms().saturating_sub(self.config.lookback.as_millis() as u64);
        let subscription = Subscription {
            credit: CREDIT,
            ..Subscription::all(&[TELEMETRY], "deployer", Start::Time(since))
        };
        Ok(ctx.port_request(log, LogRequest::Subscribe(subscription))?)
    }

    fn state(&self, version: u32) -> DeployState {
        match (&self.rollout, self.wanted) {
            (_, Some(wanted)) if wanted > version => DeployState::Superseded,
            (_, Some(_)) => DeployState::Preparing,
            (Some(r), _) if r.version == version => DeployState::Rolling(r.phase),
            (Some(r), _) if r.version > version => DeployState::Superseded,
            _ => DeployState::Preparing,
        }
    }

    fn on_deploy(&mut self, version: u32) {
        let current = self.wanted.or(self.rollout.as_ref().map(|r| r.version));
        if current.is_none_or(|v| v < version) {
            self.wanted = Some(version);
            self.preparing = None;
        }
    }

    /// Once warm, takes the wanted version's previous model (the one most motes run; ties:
    /// the higher version) and asks the registry for what it lacks.
    fn prepare(&mut self, now_ms: u64, ctx: &mut Ctx<'_, DeployerMsg>) {
        let Some(version) = self.wanted else { return };
        if now_ms < self.started_ms + self.config.warmup.as_millis() as u64 {
            return;
        }
        if self.preparing.is_none() {
            let previous = fleet_model(self.motes.values().map(|heard| heard.running), version);
            self.preparing = Some(Preparing { version, previous });
        }
        let p = self.preparing.as_ref().expect("just prepared");
        let missing: Vec<u32> = std::iter::once(p.version)
            .chain(p.previous)
            .filter(|v| !self.models.contains_key(v) && !self.fetching.contains(v))
            .collect();
        for version in missing {
            self.fetch(version, ctx);
        }
        self.try_start();
    }

    fn fetch(&mut self, version: u32, ctx: &mut Ctx<'_, DeployerMsg>) {
        let on_reply = move |r: Result<Option<SignedModel>, AskError>| DeployerMsg::Fetched {
            version,
            model: r.map(|m| m.map(Box::new)).map_err(|e| format!("{e:?}")),
        };
        let asked = ActorRef::<RegistryMsg>::parse(&self.config.registry)
            .map_err(|e| format!("{e:?}"))
            .and_then(|to| {
                ctx.ask(&to, |reply| RegistryMsg::Get { version, reply }, REGISTRY_TIMEOUT, on_reply)
                    .map_err(|e| e.to_string())
            });
        match asked {
            Ok(_) => {
                self.fetching.insert(version);
            }
            Err(why) => {
                *self.stats.problem.lock() = Some(format!("asking the registry for model {version}: {why}"))
            }
        }
    }

    fn on_fetched(&mut self, version: u32, model: Result<Option<Box<SignedModel>>, String>) {
        self.fetching.remove(&version);
        match model {
            Ok(model) => {
                if model.is_none() {
                    *self.stats.problem.lock() = Some(format!("the registry has no model {version}"));
                }
                self.models.insert(version, model.map(|m| *m));
                self.try_start();
            }
            // Asked again at the next tick.
            Err(why) => {
                *self.stats.problem.lock() = Some(format!("the registry about model {version}: {why}"))
            }
        }
    }

    /// Starts the prepared rollout once the registry answered for both models. Without the
    /// candidate there is nothing to send; without the previous model there is no shadow and
    /// no rollback target (a fleet's factory model, say): the rollout goes on without them.
    fn try_start(&mut self) {
        let Some(p) = &self.preparing else { return };
        let answered = |v: &u32| self.models.contains_key(v);
        if !answered(&p.version) || !p.previous.iter().all(answered) {
            return;
        }
        if self.models[&p.version].is_none() {
            return; // the problem says so; a later Deploy of another version replaces it
        }
        let previous = p.previous.filter(|v| self.models[v].is_some());
        let running = self.motes.iter().map(|(&m, heard)| (m, heard.running)).collect();
        let rollout = Rollout::new(p.version, previous, &running, &self.stopped, self.config.rollout);
        tracing::info!(
            "deployer: rolling out model {} over {} motes (previous {previous:?})",
            p.version,
            running.len()
        );
        self.preparing = None;
        self.wanted = None;
        self.rollout = Some(rollout);
        self.stats.rollouts.fetch_add(1, Ordering::Relaxed);
        *self.stats.problem.lock() = None;
    }

    fn model(&self, version: u32) -> Option<&SignedModel> {
        self.models.get(&version).and_then(Option::as_ref)
    }

    fn decoded(&self, version: u32) -> Option<Model> {
        self.model(version).and_then(|m| Model::decode(&m.image).ok())
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, DeployerMsg>,
    ) -> Result<(), ActorError> {
        let count = records.len() as u32;
        let now_ms = ctx.cluster_ms();
        for stored in records {
            match TelemetryRecord::decode(&stored.record.payload) {
                Ok(record) => self.on_frame(&record, now_ms),
                Err(why) => {
                    self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("deployer: {}@{}: {why}", stored.partition, stored.offset);
                }
            }
        }
        self.advance(ctx);
        reader::grant(self.log.as_ref(), count, ctx)
    }

    fn on_frame(&mut self, record: &TelemetryRecord, now_ms: u64) {
        let frame = (record.boot_epoch, record.seq);
        let known = self.motes.get(&record.mote).map(|heard| heard.newest);
        let heard = self.motes.entry(record.mote).or_default();
        if heard.frames.observe(record.boot_epoch, record.seq) != Seen::New {
            return; // a copy
        }
        if known.is_some_and(|newest| frame < newest) {
            self.on_late_frame(record, now_ms);
            return;
        }
        let Some(kind) = Kind::from_code(record.kind) else { return };
        let payload = match Payload::decode(kind, &record.payload) {
            Ok(payload) => payload,
            Err(why) => {
                self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("deployer: mote-{}'s frame {frame:?}: {why:?}", record.mote);
                return;
            }
        };
        let running = self.motes.get(&record.mote).map_or(0, |heard| heard.running);
        match payload {
            Payload::Features(report) => {
                self.remember(record.mote, report.model_version, frame);
                let (candidate, current) = self.canary_models(record.mote, report.model_version);
                let stopped = report.state == ActuationState::Trip;
                let was_running = known.is_some() && !self.stopped.contains(&record.mote);
                if stopped {
                    self.stopped.insert(record.mote);
                } else {
                    self.stopped.remove(&record.mote);
                }
                let Some(rollout) = self.rollout.as_mut() else { return };
                let models = candidate.as_ref().map(|c| (c, current.as_ref()));
                rollout.on_features(record.mote, &report, stopped && was_running, models);
            }
            Payload::OtaReceipt(receipt) => {
                self.remember(record.mote, receipt.active_version, frame);
                self.stats.receipts.fetch_add(1, Ordering::Relaxed);
                if let Some(rollout) = self.rollout.as_mut() {
                    rollout.on_receipt(record.mote, &receipt, now_ms);
                }
            }
            _ => {
                self.remember(record.mote, running, frame);
            }
        }
    }

    /// A frame older than one read before (a resend that overtook nothing: its first send was
    /// lost). What the mote runs and whether its motor runs are newer news; a canary window
    /// is still evidence, and a receipt is still part of the install record.
    fn on_late_frame(&mut self, record: &TelemetryRecord, now_ms: u64) {
        if self.rollout.is_none() {
            return;
        }
        let payload =
            Kind::from_code(record.kind).and_then(|kind| Payload::decode(kind, &record.payload).ok());
        match payload {
            Some(Payload::Features(report)) if report.state != ActuationState::Trip => {
                let (candidate, current) = self.canary_models(record.mote, report.model_version);
                if let (Some(rollout), Some(candidate), Some(score)) =
                    (self.rollout.as_mut(), candidate, report.score)
                {
                    rollout.evidence.observe(&report.features, score, &candidate, current.as_ref());
                }
            }
            Some(Payload::OtaReceipt(receipt)) => {
                self.stats.receipts.fetch_add(1, Ordering::Relaxed);
                if let Some(rollout) = self.rollout.as_mut() {
                    rollout.on_late_receipt(record.mote, &receipt, now_ms);
                }
            }
            _ => {}
        }
    }

    /// The candidate and the current (shadow) model, when `mote`'s window of `model_version`
    /// is canary evidence; `(None, None)` otherwise.
    fn canary_models(&self, mote: u32, model_version: u32) -> (Option<Model>, Option<Model>) {
        match &self.rollout {
            Some(r) if r.is_canary_window(mote, model_version) => {
                (self.decoded(r.version), r.previous.and_then(|v| self.decoded(v)))
            }
            _ => (None, None),
        }
    }

    /// Keeps what `mote` runs as of `frame`, its newest, in the shared view too.
    fn remember(&mut self, mote: u32, running: u32, frame: (u32, u32)) {
        let heard = self.motes.entry(mote).or_default();
        heard.running = running;
        heard.newest = frame;
        self.stats.running.lock().insert(mote, running);
    }

    fn on_tick(&mut self, ctx: &mut Ctx<'_, DeployerMsg>) -> Result<(), ActorError> {
        if std::mem::take(&mut self.resubscribe) {
            self.subscribe(ctx)?;
        }
        self.prepare(ctx.cluster_ms(), ctx);
        self.appender.retry_due(self.log.as_ref(), ctx);
        self.advance(ctx);
        Ok(())
    }

    /// Steps the rollout to now and sends the transfers it asks for. Called on every tick and
    /// whenever something it depends on arrived (records, a model, a deploy), so the rollout
    /// moves at the pace of the fleet's reports, not of the tick: under a demo's time warp a
    /// tick is many cluster minutes.
    fn advance(&mut self, ctx: &mut Ctx<'_, DeployerMsg>) {
        let Some(rollout) = self.rollout.as_mut() else { return };
        let Some(Some(candidate)) = self.models.get(&rollout.version) else { return };
        let judged = rollout.verdict.is_some();
        let actions = rollout.step(ctx.cluster_ms(), &candidate.card);
        if let Some(verdict) = rollout.verdict.as_ref().filter(|_| !judged) {
            tracing::info!("deployer: model {}: {verdict}", rollout.version);
            self.stats.verdicts.lock().push((rollout.version, verdict.clone()));
        }
        for Action::Send { mote, version } in actions {
            self.send(mote, version, ctx);
        }
        *self.stats.rollout.lock() = self.rollout.clone();
    }

    /// Appends one transfer of `version` to `mote` to the `commands` stream.
    fn send(&mut self, mote: u32, version: u32, ctx: &mut Ctx<'_, DeployerMsg>) {
        let Some(model) = self.model(version) else { return };
        let records = match transfer(mote, model, self.config.chunk_len) {
            Ok(records) => records,
            Err(why) => {
                *self.stats.problem.lock() = Some(why);
                return;
            }
        };
        let now_ms = ctx.cluster_ms();
        for command in records {
            let record = Record::new(COMMANDS, mote_key(mote), command.encode(), now_ms);
            self.appender.push(mote, record, (), self.log.as_ref(), ctx);
        }
        self.stats.transfers.fetch_add(1, Ordering::Relaxed);
    }
}

impl Actor for Deployer {
    type Msg = DeployerMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, DeployerMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(DeployerMsg::Log));
        self.started_ms = ctx.cluster_ms();
        self.subscribe(ctx)?;
        ctx.schedule_every(TICK_EVERY, DeployerMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: DeployerMsg, ctx: &mut Ctx<'_, DeployerMsg>) -> Result<(), ActorError> {
        match msg {
            DeployerMsg::Log(LogEvent::Outcome(outcome)) => {
                let _ = self.appender.on_outcome(outcome, self.log.as_ref(), ctx);
            }
            DeployerMsg::Log(event) => {
                if let Some(records) = reader::records(event, "deployer", &mut self.resubscribe) {
                    self.on_records(records, ctx)?
                }
            }
            DeployerMsg::Tick => self.on_tick(ctx)?,
            DeployerMsg::Deploy { version, reply } => {
                self.on_deploy(version);
                self.prepare(ctx.cluster_ms(), ctx);
                self.advance(ctx);
                let _ = ctx.reply(&reply, self.state(version));
            }
            DeployerMsg::Rollout { reply } => {
                let _ = ctx.reply(&reply, self.rollout.clone());
            }
            DeployerMsg::Fetched { version, model } => {
                self.on_fetched(version, model);
                self.advance(ctx);
            }
        }
        Ok(())
    }
}
