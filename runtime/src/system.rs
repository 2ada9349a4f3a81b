//! State every executor shares: the registry (path -> cell), id and correlation counters, dead
//! letters, the supervision event log and the system's exit reason.

use crate::migration::{ActorHandoff, Handoff};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::actor::ExitReason;
use crate::cell::AnyCell;
use crate::error::SendError;
use crate::mailbox::ActorId;
use crate::message::Message;
use crate::metrics::MetricsSnapshot;
use crate::path::ActorPath;
use crate::remote::{DeliveryError, EncodedReply, Remote, RemoteSendError};
use crate::supervision::SupervisorSpec;
use crate::time::{ClusterClock, Instant};

/// Supervision events kept for inspection; older ones are dropped (the listener sees them all).
pub const EVENT_LOG_LEN_MAX: usize = 1024;
/// Dead letters remembered by path (the count covers all of them).
pub const DEAD_LETTER_LOG_LEN_MAX: usize = 256;

/// Settings common to both executors.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// Seeds every actor's `ctx.rng()` (and, under the deterministic executor, every choice).
    pub seed: u64,
    /// How the root guardian supervises the top-level actors.
    pub root: SupervisorSpec,
    /// The cluster time actors read with `ctx.cluster_ms()`.
    pub clock: ClusterClock,
}

impl SystemConfig {
    pub fn with_seed(seed: u64) -> Self {
        SystemConfig { seed, root: SupervisorSpec::default(), clock: ClusterClock::default() }
    }
}

/// What happened to an actor, for timelines and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Started {
        incarnation: u64,
    },
    Failed {
        reason: String,
    },
    Restarted {
        incarnation: u64,
    },
    Stopped {
        reason: ExitReason,
    },
    /// A supervisor exceeded its restart intensity and failed itself.
    Escalated {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemEvent {
    pub at: Instant,
    pub path: ActorPath,
    pub kind: EventKind,
}

type Listener = Box<dyn Fn(&SystemEvent) + Send + Sync>;

static NEXT_SYSTEM_ID: AtomicU64 = AtomicU64::new(1);

/// The executor-independent state of one actor system.
pub struct SystemCore {
    id: u64,
    config: SystemConfig,
    registry: RwLock<BTreeMap<ActorPath, Arc<dyn AnyCell>>>,
    next_actor: AtomicU64,
    next_corr: AtomicU64,
    dead_letters: AtomicU64,
    dead_letter_log: Mutex<VecDeque<ActorPath>>,
    events: Mutex<VecDeque<SystemEvent>>,
    listener: RwLock<Option<Listener>>,
    exit: Mutex<Option<ExitReason>>,
    /// This node's name and the cluster's router, once the host joined a cluster.
    remote: OnceLock<(Arc<str>, Arc<dyn Remote>)>,
    /// Parts of moved-in subtrees, by path, until each actor starts (`migration`).
    restoring: Mutex<BTreeMap<ActorPath, ActorHandoff>>,
    /// Traced paths and their unread events (`trace`).
    traces: Mutex<crate::trace::Traces>,
}

impl SystemCore {
    pub(crate) fn new(config: SystemConfig) -> Arc<Self> {
        Arc::new(SystemCore {
            id: NEXT_SYSTEM_ID.fetch_add(1, Relaxed),
            config,
            registry: RwLock::new(BTreeMap::new()),
            next_actor: AtomicU64::new(1),
            next_corr: AtomicU64::new(1),
            dead_letters: AtomicU64::new(0),
            dead_letter_log: Mutex::new(VecDeque::new()),
            events: Mutex::new(VecDeque::new()),
            listener: RwLock::new(None),
            exit: Mutex::new(None),
            remote: OnceLock::new(),
            restoring: Mutex::new(BTreeMap::new()),
            traces: Mutex::new(crate::trace::Traces::default()),
        })
    }

    /// The messages the actor at `path` handled since `after_seq` (`TraceEvent::seq`); the
    /// first read starts tracing it. Refused when no actor runs at `path` here.
    pub fn trace_read(
        &self,
        path: &ActorPath,
        after_seq: u64,
    ) -> Result<Vec<crate::trace::TraceEvent>, String> {
        let cell = self
            .lookup(path)
            .filter(|c| !c.is_closed())
            .ok_or_else(|| format!("no actor runs at {path} here"))?;
        let events = self.traces.lock().read(path, after_seq);
        cell.set_traced(true);
        Ok(events)
    }

    /// Stops tracing `path`.
    pub fn trace_stop(&self, path: &ActorPath) {
        self.traces.lock().stop(path);
        if let Some(cell) = self.lookup(path) {
            cell.set_traced(false);
        }
    }

    /// Records a message the traced actor at `path` handled; false once its trace stopped.
    pub(crate) fn trace_record(&self, path: &ActorPath, at_us: u64, kind: &str, message: &str) -> bool {
        self.traces.lock().record(path, at_us, kind, message)
    }

    /// Keeps a moved-in subtree's parts until each of its actors starts.
    pub(crate) fn stash_handoff(&self, handoff: Handoff) {
        let mut restoring = self.restoring.lock();
        for part in handoff.actors {
            restoring.insert(part.path.clone(), part);
        }
    }

    /// The moved-in part of the actor starting at `path`, once.
    pub(crate) fn take_restoring(&self, path: &ActorPath) -> Option<ActorHandoff> {
        let mut restoring = self.restoring.lock();
        if restoring.is_empty() {
            return None;
        }
        restoring.remove(path)
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub fn config(&self) -> &SystemConfig {
        &self.config
    }

    pub(crate) fn next_actor_id(&self) -> ActorId {
        ActorId(self.next_actor.fetch_add(1, Relaxed))
    }

    pub(crate) fn next_corr(&self) -> u64 {
        self.next_corr.fetch_add(1, Relaxed)
    }

    /// Registers `cell` under its path; refuses a path that a live actor holds.
    pub(crate) fn register(&self, cell: Arc<dyn AnyCell>) -> Result<(), ActorPath> {
        let mut reg = self.registry.write();
        if let Some(old) = reg.get(cell.path()) {
            if !old.is_closed() {
                return Err(cell.path().clone());
            }
        }
        reg.insert(cell.path().clone(), cell);
        Ok(())
    }

    /// Removes `id`'s registration (a newer incarnation under the same path is left alone).
    pub(crate) fn unregister(&self, path: &ActorPath, id: ActorId) {
        let mut reg = self.registry.write();
        if reg.get(path).is_some_and(|c| c.id() == id) {
            reg.remove(path);
        }
    }

    /// The live cell under `path`, if any.
    pub fn lookup(&self, path: &ActorPath) -> Option<Arc<dyn AnyCell>> {
        self.registry.read().get(path).filter(|c| !c.is_closed()).cloned()
    }

    /// Paths of the live actors, in path order.
    pub fn paths(&self) -> Vec<ActorPath> {
        let reg = self.registry.read();
        reg.iter().filter(|(_, c)| !c.is_closed()).map(|(p, _)| p.clone()).collect()
    }

    /// Metrics of every live actor, in path order.
    pub fn metrics(&self) -> Vec<(ActorPath, MetricsSnapshot)> {
        let reg = self.registry.read();
        reg.iter().filter(|(_, c)| !c.is_closed()).map(|(p, c)| (p.clone(), c.metrics())).collect()
    }

    /// Counts `count` messages to `to` that found no live receiver.
    pub fn dead_letter(&self, to: &ActorPath, count: u64) {
        if count == 0 {
            return;
        }
        self.dead_letters.fetch_add(count, Relaxed);
        let mut log = self.dead_letter_log.lock();
        if log.len() == DEAD_LETTER_LOG_LEN_MAX {
            log.pop_front();
        }
        log.push_back(to.clone());
    }

    /// Messages that found no live receiver.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Relaxed)
    }

    /// The most recent dead letters' destinations, oldest first.
    pub fn recent_dead_letters(&self) -> Vec<ActorPath> {
        self.dead_letter_log.lock().iter().cloned().collect()
    }

    pub(crate) fn event(&self, at: Instant, path: &ActorPath, kind: EventKind) {
        let event = SystemEvent { at, path: path.clone(), kind };
        if let Some(listener) = &*self.listener.read() {
            listener(&event);
        }
        let mut events = self.events.lock();
        if events.len() == EVENT_LOG_LEN_MAX {
            events.pop_front();
        }
        events.push_back(event);
    }

    /// Calls `f` on every supervision event from now on (the demo prints its timeline so).
    pub fn on_event(&self, f: impl Fn(&SystemEvent) + Send + Sync + 'static) {
        *self.listener.write() = Some(Box::new(f));
    }

    /// The supervision events so far (at most `EVENT_LOG_LEN_MAX`, oldest first).
    pub fn events(&self) -> Vec<SystemEvent> {
        self.events.lock().iter().cloned().collect()
    }

    /// Makes this system part of a cluster as node `node`: sends to paths with no local actor
    /// go to `remote`. Once only; false if a router was installed already.
    pub fn set_remote(&self, node: &str, remote: Arc<dyn Remote>) -> bool {
        self.remote.set((Arc::from(node), remote)).is_ok()
    }

    /// This node's name, once the system is part of a cluster.
    pub fn node_name(&self) -> Option<&Arc<str>> {
        self.remote.get().map(|(node, _)| node)
    }

    /// The cluster's router, once the system is part of a cluster.
    pub(crate) fn remote(&self) -> Option<&Arc<dyn Remote>> {
        self.remote.get().map(|(_, remote)| remote)
    }

    /// Routes a send from outside any actor whose receiver is not local through the cluster
    /// (`NoActor` outside one; `MailboxFull` when the way there is full: nothing can park).
    pub(crate) fn send_remote<M: Message>(&self, to: &ActorPath, msg: &M) -> Result<(), SendError> {
        let Some(remote) = self.remote() else { return Err(SendError::NoActor(to.clone())) };
        match remote.send(to, crate::message::encode(msg)) {
            Ok(()) => Ok(()),
            Err(RemoteSendError::NoRoute) => Err(SendError::NoActor(to.clone())),
            Err(RemoteSendError::Full(_)) => Err(SendError::MailboxFull(to.clone())),
            Err(RemoteSendError::TooLarge { len, max }) => {
                Err(SendError::TooLarge { path: to.clone(), len, max })
            }
        }
    }

    /// Routes a reply to an asker on another node (`NoActor` outside a cluster, or when the
    /// asker's node is this one).
    pub(crate) fn reply_remote<R: Message>(
        &self,
        origin: Option<&str>,
        to: &ActorPath,
        corr: u64,
        value: &R,
    ) -> Result<(), SendError> {
        match (self.remote.get(), origin) {
            (Some((me, remote)), Some(origin)) if **me != *origin => {
                remote.reply(origin, to, corr, crate::message::encode(value))
            }
            _ => Err(SendError::NoActor(to.clone())),
        }
    }

    /// Delivers an encoded message from another node to the local actor at `to`, decoded into
    /// the type that actor takes. A missing actor is a dead letter.
    pub fn deliver_remote(&self, to: &ActorPath, bytes: &[u8]) -> Result<(), DeliveryError> {
        let result = match self.lookup(to) {
            Some(cell) => cell.push_encoded(bytes),
            None => Err(DeliveryError::NoActor(to.clone())),
        };
        if let Err(DeliveryError::NoActor(_)) = &result {
            self.dead_letter(to, 1);
        }
        result
    }

    /// Delivers an encoded reply from another node to the local asker at `to`; the asker
    /// decodes it into the type it expects. A missing asker is a dead letter.
    pub fn deliver_remote_reply(&self, to: &ActorPath, corr: u64, bytes: &[u8]) -> Result<(), DeliveryError> {
        let delivered = self.lookup(to).is_some_and(|cell| {
            cell.push_reply(ActorId::EXTERNAL, corr, Box::new(EncodedReply(bytes.to_vec())))
        });
        if delivered {
            Ok(())
        } else {
            self.dead_letter(to, 1);
            Err(DeliveryError::NoActor(to.clone()))
        }
    }

    pub(crate) fn set_exit(&self, reason: ExitReason) {
        self.exit.lock().get_or_insert(reason);
    }

    /// Why the root guardian stopped, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.exit.lock().clone()
    }
}
