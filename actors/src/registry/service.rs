//! The `Registry` actor (platform tier): keeps the registered models in the `models` stream
//! (one partition, so versions are in order) through the event-log port, sealed
//! ([`super::artifact`]): the log's disk sees only ciphertext, whatever its backend.
//!
//! - **Loading.** It reads `models` from the start. Every record must open (authentic under
//!   the storage key, both signatures valid under the model-signing key, a loadable image):
//!   a record that does not is refused, counted and logged, and the registry goes on.
//! - **Caught up.** To know it has read everything before it registers a version, it appends a
//!   marker with a nonce of its own and waits to read it back (one partition: whatever was
//!   there before the marker has been read by then). Until then `Register` is refused.
//! - **Registering.** `NextVersion` gives the version the next model must carry (the trainer
//!   puts it in the image); `Register` signs the card and image with the model-signing key,
//!   appends the sealed model (retried until durable) and answers with the version once it is.
//!   A second registration of a version already taken is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use aiot_runtime::{Actor, ActorError, Ctx, Instant, PortRef, ReplyTo};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::artifact::{ModelCard, SignedModel};
use crate::ports::eventlog::adapter::{Log, LogEvent, LogRequest};
use crate::ports::eventlog::{ConsumerEvent, Record, Start, StoredRecord, Subscription};
use crate::streams::appender::{AppendStats, KeyedAppender, RETRY_EVERY};
use crate::streams::stage::RETRY_AFTER;
use crate::streams::{decode, encode};

/// The registry's stream: sealed models (and the registry's markers), one partition.
pub const MODELS: &str = "models";

/// A record of the `models` stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelsRecord {
    /// A sealed `SignedModel`.
    Model(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A registry incarnation's catch-up marker.
    Marker(u64),
}

impl ModelsRecord {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

/// The registry's keys.
#[derive(Clone)]
pub struct RegistryKeys {
    /// Seals models at rest (from configuration or a file; never in the repo).
    pub storage: [u8; 32],
    /// The model-signing key (`aiot ca init`); its public half is what motes verify.
    pub signing: SigningKey,
}

/// The registry's counters, shared with the host.
#[derive(Debug, Default)]
pub struct RegistryStats {
    pub loaded: AtomicU64,
    /// Records that did not open (corrupt, foreign, unsigned, tampered, undecodable).
    pub refused: AtomicU64,
    pub registered: AtomicU64,
    /// It has read its marker back: everything stored before is loaded.
    pub caught_up: AtomicBool,
    pub appends: Arc<AppendStats>,
}

impl RegistryStats {
    /// One line for a node's status.
    pub fn status(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "registry: {} models loaded, {} registered, {} refused{}",
            load(&self.loaded),
            load(&self.registered),
            load(&self.refused),
            if self.caught_up.load(Ordering::Relaxed) { "" } else { " (catching up)" }
        )
    }
}

/// What the registry takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RegistryMsg {
    Log(LogEvent),
    /// The version the next model must carry; `None` until caught up.
    NextVersion {
        reply: ReplyTo<Option<u32>>,
    },
    /// Signs and stores a model; answers with its version once durable.
    Register {
        card: Box<ModelCard>,
        image: Vec<u8>,
        reply: ReplyTo<Result<u32, String>>,
    },
    Get {
        version: u32,
        reply: ReplyTo<Option<SignedModel>>,
    },
    /// Every model's card, by version.
    List {
        reply: ReplyTo<Vec<ModelCard>>,
    },
    Tick,
}

/// A model being appended, and who asked for it.
type Registering = (SignedModel, ReplyTo<Result<u32, String>>);

/// The registry actor, at `/registry`.
pub struct Registry {
    keys: RegistryKeys,
    /// The signing key's public half, which every loaded model must verify under.
    public: VerifyingKey,
    stats: Arc<RegistryStats>,
    log: Option<PortRef<Log>>,
    models: BTreeMap<u32, SignedModel>,
    /// Appends to `models`; a model's tag is the model and who asked, for when it is durable.
    appender: KeyedAppender<u8, Option<Registering>>,
    /// This incarnation's marker, until it is read back.
    marker: Option<u64>,
    /// Versions being appended (taken: not offered again).
    pending: BTreeSet<u32>,
    /// The log refused the subscription: subscribe again at this time.
    resubscribe_at: Option<Instant>,
}

impl Registry {
    pub fn new(keys: RegistryKeys, stats: Arc<RegistryStats>) -> Self {
        Registry {
            public: keys.signing.verifying_key(),
            keys,
            appender: KeyedAppender::new(Arc::clone(&stats.appends)),
            stats,
            log: None,
            models: BTreeMap::new(),
            marker: None,
            pending: BTreeSet::new(),
            resubscribe_at: None,
        }
    }

    /// (Re)creates the topic, reads it from the start, and appends a fresh marker.
    fn subscribe(&mut self, ctx: &mut Ctx<'_, RegistryMsg>) -> Result<(), ActorError> {
        let Some(log) = self.log.clone() else { return Ok(()) };
        ctx.port_request(&log, LogRequest::CreateTopic { topic: MODELS.into(), partitions: 1 })?;
        let subscription = Subscription::all(&[MODELS], "registry", Start::Earliest);
        ctx.port_request(&log, LogRequest::Subscribe(subscription))?;
        let nonce = ctx.rng().random::<u64>();
        self.marker = Some(nonce);
        self.stats.caught_up.store(false, Ordering::Relaxed);
        self.append(&ModelsRecord::Marker(nonce), None, ctx);
        Ok(())
    }

    fn caught_up(&self) -> bool {
        self.stats.caught_up.load(Ordering::Relaxed)
    }

    fn next_version(&self) -> u32 {
        let highest = self.models.keys().chain(&self.pending).max().copied().unwrap_or(0);
        highest + 1
    }

    fn append(&mut self, record: &ModelsRecord, owed: Option<Registering>, ctx: &mut Ctx<'_, RegistryMsg>) {
        let record = Record::new(MODELS, b"models".to_vec(), record.encode(), ctx.cluster_ms());
        self.appender.push(0, record, owed, self.log.as_ref(), ctx);
    }

    fn on_records(
        &mut self,
        records: Vec<StoredRecord>,
        ctx: &mut Ctx<'_, RegistryMsg>,
    ) -> Result<(), ActorError> {
        let count = records.len() as u32;
        for stored in records {
            match decode::<ModelsRecord>(&stored.record.payload, "models") {
                Ok(ModelsRecord::Marker(nonce)) => {
                    if self.marker == Some(nonce) {
                        self.marker = None;
                        self.stats.caught_up.store(true, Ordering::Relaxed);
                    }
                }
                Ok(ModelsRecord::Model(sealed)) => {
                    match SignedModel::open(&sealed, &self.keys.storage, &self.public) {
                        Ok((model, _)) => {
                            if self.models.insert(model.card.version, model).is_none() {
                                self.stats.loaded.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(why) => self.refuse(&stored, &why.to_string()),
                    }
                }
                Err(why) => self.refuse(&stored, &why),
            }
        }
        match &self.log {
            Some(log) => Ok(ctx.port_request(log, LogRequest::Grant(count))?),
            None => Ok(()),
        }
    }

    fn refuse(&self, stored: &StoredRecord, why: &str) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("registry: refused {}@{}: {why}", stored.partition, stored.offset);
    }

    fn register(
        &mut self,
        card: ModelCard,
        image: Vec<u8>,
        reply: ReplyTo<Result<u32, String>>,
        ctx: &mut Ctx<'_, RegistryMsg>,
    ) {
        let version = card.version;
        let refusal = if !self.caught_up() {
            Some("the registry has not caught up with the models stream yet: ask again".to_string())
        } else if version != self.next_version() {
            Some(format!("version {version} is not the next one ({})", self.next_version()))
        } else {
            None
        };
        if let Some(why) = refusal {
            let _ = ctx.reply(&reply, Err(why));
            return;
        }
        match SignedModel::sign(card, image, &self.keys.signing) {
            Ok(signed) => {
                let sealed = signed.seal(&self.keys.storage);
                self.pending.insert(version);
                self.append(&ModelsRecord::Model(sealed), Some((signed, reply)), ctx);
            }
            Err(why) => {
                let _ = ctx.reply(&reply, Err(why.to_string()));
            }
        }
    }
}

impl Actor for Registry {
    type Msg = RegistryMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, RegistryMsg>) -> Result<(), ActorError> {
        self.log = Some(ctx.open_port::<Log>(RegistryMsg::Log));
        self.subscribe(ctx)?;
        ctx.schedule_every(RETRY_EVERY, RegistryMsg::Tick);
        Ok(())
    }

    fn stopped(&mut self, ctx: &mut Ctx<'_, RegistryMsg>) {
        if let Some(log) = &self.log {
            let _ = ctx.port_request(log, LogRequest::Unsubscribe);
        }
    }

    fn handle(&mut self, msg: RegistryMsg, ctx: &mut Ctx<'_, RegistryMsg>) -> Result<(), ActorError> {
        match msg {
            RegistryMsg::Log(LogEvent::Consumer(ConsumerEvent::Records(records))) => {
                self.on_records(records, ctx)?
            }
            RegistryMsg::Log(LogEvent::Outcome(outcome)) => {
                if let Some(durable) = self.appender.on_outcome(outcome, self.log.as_ref(), ctx) {
                    if let Some((model, reply)) = durable.tag {
                        // Kept now, not when read back: the version is taken from this moment.
                        let version = model.card.version;
                        self.pending.remove(&version);
                        self.models.insert(version, model);
                        self.stats.registered.fetch_add(1, Ordering::Relaxed);
                        let _ = ctx.reply(&reply, Ok(version));
                    }
                }
            }
            RegistryMsg::Log(LogEvent::Refused { request, error }) => {
                // Topic creation or the subscription (the log is down): start over shortly.
                tracing::warn!("registry: the log refused to {request}: {error}");
                self.resubscribe_at.get_or_insert(ctx.now() + RETRY_AFTER);
            }
            RegistryMsg::Log(_) => {}
            RegistryMsg::NextVersion { reply } => {
                let next = self.caught_up().then(|| self.next_version());
                let _ = ctx.reply(&reply, next);
            }
            RegistryMsg::Register { card, image, reply } => self.register(*card, image, reply, ctx),
            RegistryMsg::Get { version, reply } => {
                let _ = ctx.reply(&reply, self.models.get(&version).cloned());
            }
            RegistryMsg::List { reply } => {
                let _ = ctx.reply(&reply, self.models.values().map(|m| m.card.clone()).collect());
            }
            RegistryMsg::Tick => {
                if self.resubscribe_at.is_some_and(|at| at <= ctx.now()) {
                    self.resubscribe_at = None;
                    self.subscribe(ctx)?;
                }
                self.appender.retry_due(self.log.as_ref(), ctx);
            }
        }
        Ok(())
    }
}
