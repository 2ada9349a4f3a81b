//! A cluster node on tokio and QUIC: membership, the directory, placement and the data lanes
//! around one `TokioSystem`. This is host code, the composition of the sans-IO parts with the
//! QUIC adapter; `aiot node` and the `remote` benchmark run it, and the simulator composes the
//! same sans-IO parts over its own network instead.
//!
//! - `links`: accepting and dialling peers, one connection per pair, the control stream and
//!   the data lanes' streams.
//! - `drive`: the tick, and the execution of the coordinator's outputs (the decisions
//!   themselves are `coordinator`'s, sans-IO): control messages, starting and stopping
//!   subtrees, releasing peers, acknowledging lanes.
//! - `router`: the runtime's `Remote`: a send to a path hosted elsewhere goes on its lane.
//! - `admin`: answers the shell (an admin connection's requests).
//! - `metrics`: the node's Prometheus metrics.
//! - `migrate`: live migration: handoffs out and in, frames held and forwarded meanwhile.
// Host code: it spawns the tasks that drive the endpoint (actor code never does).
#![allow(clippy::disallowed_methods)]

mod admin;
mod checkpoints;
pub use crate::checkpoints::KeptCheckpoint;
pub use admin::{AppAnswer, AppQueries, AppQuery};
pub use checkpoints::CheckpointDisk;
mod drive;
mod links;
pub mod metrics;
mod migrate;
mod router;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::exec::tokio::TokioSystem;
use aiot_runtime::{ActorPath, AnyCell, ClusterClock, Instant, SystemConfig, Topology};
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

use crate::config::{tag_report, Seed};
use crate::control::ControlMsg;
use crate::coordinator::Coordinator;
use crate::directory::Directory;
use crate::lanes::{Dedup, OutLane, LANES};
use crate::membership::{MemberEvent, MemberInfo, MembershipConfig, Status};
use crate::relay::{Fences, Relay};
use crate::transport::quic::{Connection, Endpoint, NodeTls};

/// What a node needs to start.
pub struct NodeSetup {
    pub tls: NodeTls,
    pub listen: SocketAddr,
    pub seeds: Vec<Seed>,
    pub membership: MembershipConfig,
    /// The topology every node of the cluster runs; this node starts the subtrees placed on it.
    pub topology: Topology,
    /// Seeds the actors' random generators.
    pub seed: u64,
    /// This start's incarnation: higher than any earlier start of the same node.
    pub incarnation: u64,
    /// Tags the configuration claims; only those the certificate attests count.
    pub claimed_tags: BTreeMap<String, String>,
    /// Runs on the new actor system before any actor is placed (ports are installed here).
    pub prepare: Option<Prepare>,
    /// The cluster time its actors stamp records with (the host's wall clock at start).
    pub clock: ClusterClock,
    /// The wall instant `clock.origin_ms` was read at, when that was before this start: the
    /// node moves the origin on to the instant its actor system starts, so that a start that
    /// takes a while (a broker to start, a log to open) does not leave its cluster time behind
    /// the clock it was given, by that while times the warp. None: the origin is the start.
    pub clock_read_at: Option<std::time::Instant>,
    /// Where a platform node keeps the checkpoints it keeps across its restarts (none: in
    /// memory only).
    pub checkpoint_disk: Option<Box<dyn CheckpointDisk>>,
}

/// `clock` with its origin moved from the instant it was read to now (see
/// `NodeSetup::clock_read_at`).
// Host code: the node's start reads the wall clock once, as the actor system it starts does.
#[allow(clippy::disallowed_methods)]
fn clock_at_start(clock: ClusterClock, read_at: Option<std::time::Instant>) -> ClusterClock {
    let Some(read_at) = read_at else { return clock };
    clock.after(std::time::Instant::now().saturating_duration_since(read_at))
}

/// A host's preparation of a node's actor system (see `NodeSetup::prepare`).
pub type Prepare = Box<dyn FnOnce(&TokioSystem) -> Result<(), String> + Send>;

/// Something an operator wants to see, one line each (`aiot node` prints them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    Authenticated {
        peer: String,
        tags: BTreeMap<String, String>,
    },
    Refused(String),
    /// An admin (the shell) connected.
    Admin(String),
    Unreachable {
        peer: String,
        addr: SocketAddr,
        why: String,
    },
    Member(MemberEvent),
    /// This node started the subtree.
    Hosting(ActorPath),
    /// This node stopped the subtree.
    Stopped {
        root: ActorPath,
        why: String,
    },
    /// Subtrees that fit no node that is up (each with what it needs).
    Unplaced(Vec<String>),
    /// The lease was lost (true: regained).
    Lease(bool),
    /// A peer's connection was closed for what it sent.
    ConnectionClosed {
        peer: String,
        why: String,
    },
    /// A subtree moved from here to `to` (live migration).
    Moved {
        root: ActorPath,
        to: String,
    },
    /// A move to `to` failed; the subtree runs here again.
    MoveAborted {
        root: ActorPath,
        to: String,
        why: String,
    },
    /// A tag the configuration claims but the certificate does not attest (ignored).
    UnattestedTag {
        key: String,
        value: String,
    },
    /// The subtree started here from the checkpoint of this generation (failover with state).
    Restored {
        root: ActorPath,
        generation: u64,
    },
    /// No checkpoint of the subtree was taken this time (the last one kept stays).
    CheckpointFailed {
        root: ActorPath,
        why: String,
    },
    /// A checkpoint could not be saved on, or loaded from, this node's disk.
    CheckpointDisk(String),
}

impl fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeEvent::Authenticated { peer, tags } => {
                write!(f, "peer {peer} authenticated [{}]", tag_list(tags))
            }
            NodeEvent::Refused(why) => write!(f, "refused a connection: {why}"),
            NodeEvent::Admin(name) => write!(f, "admin {name} connected"),
            NodeEvent::Unreachable { peer, addr, why } => write!(f, "{peer}@{addr} not reachable yet: {why}"),
            NodeEvent::Member(MemberEvent::Up(n)) => write!(f, "member {n} up"),
            NodeEvent::Member(MemberEvent::Down(n)) => write!(f, "member {n} down"),
            NodeEvent::Member(MemberEvent::Left(n)) => write!(f, "member {n} left"),
            NodeEvent::Hosting(root) => write!(f, "hosting {root}"),
            NodeEvent::Stopped { root, why } => write!(f, "stopped {root}: {why}"),
            NodeEvent::Unplaced(why) => write!(f, "cannot place yet: {}", why.join("; ")),
            NodeEvent::Lease(true) => write!(f, "lease held: a majority acknowledges this node"),
            NodeEvent::Lease(false) => write!(f, "lease lost: cut off from the majority, actors stopped"),
            NodeEvent::ConnectionClosed { peer, why } => write!(f, "closed the connection of {peer}: {why}"),
            NodeEvent::Moved { root, to } => write!(f, "moved {root} to {to}"),
            NodeEvent::MoveAborted { root, to, why } => {
                write!(f, "moving {root} to {to} failed, it runs here again: {why}")
            }
            NodeEvent::UnattestedTag { key, value } => {
                write!(f, "ignored tag {key}={value}: claimed in the configuration but not attested by the certificate")
            }
            NodeEvent::Restored { root, generation } => {
                write!(f, "restored {root} from its checkpoint (generation {generation})")
            }
            NodeEvent::CheckpointFailed { root, why } => {
                write!(f, "no checkpoint of {root} this time: {why}")
            }
            NodeEvent::CheckpointDisk(why) => write!(f, "checkpoint disk: {why}"),
        }
    }
}

/// `tier=inference, accel=gpu`.
pub fn tag_list(tags: &BTreeMap<String, String>) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// A node's traffic counters.
#[derive(Debug, Default)]
pub struct NodeStats {
    /// Messages (and replies) put on a lane to another node.
    pub remote_sent: AtomicU64,
    /// Frames delivered from other nodes.
    pub remote_received: AtomicU64,
    /// Message bytes (without framing) put on lanes, and delivered from them.
    pub remote_bytes_sent: AtomicU64,
    pub remote_bytes_received: AtomicU64,
    /// Subtrees started here.
    pub placements: AtomicU64,
    /// Subtrees moved from here to another node.
    pub migrations: AtomicU64,
    /// Retried frames dropped as already delivered.
    pub duplicates_dropped: AtomicU64,
    /// Frames whose bytes were not the message type of their path (dead letters).
    pub decode_errors: AtomicU64,
    /// Sends that found a lane to a peer holding `LANE_UNACKED_MAX` frames (an actor's send
    /// parks and goes later; a send from outside any actor is refused).
    pub lane_full: AtomicU64,
    /// Connections closed for a malformed, oversized or unknown-version frame.
    pub frames_refused: AtomicU64,
    /// Unacknowledged frames dropped because their peer was released (dead letters).
    pub abandoned: AtomicU64,
    /// Tags the configuration claimed that the certificate does not attest (ignored).
    pub unattested_tags: AtomicU64,
    /// Checkpoints of subtrees hosted here sent to a keeper (`checkpoints`).
    pub checkpoints_sent: AtomicU64,
    /// Checkpoints taken while no keeper (another platform-tier node) was reachable.
    pub checkpoints_unreplicated: AtomicU64,
    /// Checkpoints not taken: an actor gave no snapshot, or it was over the size limit.
    pub checkpoints_failed: AtomicU64,
    /// Checkpoints of other nodes' subtrees this node keeps (newer than the one it kept).
    pub checkpoints_kept: AtomicU64,
    /// Checkpoints refused as no newer than the one kept (the host then goes above it).
    pub checkpoints_stale: AtomicU64,
    /// Checkpoints that could not be saved on, or loaded from, this node's disk.
    pub checkpoint_disk_errors: AtomicU64,
    /// Subtrees started here from a checkpoint.
    pub checkpoint_starts: AtomicU64,
    /// Fences (`relay::Fences`) that fell before the earlier frames they waited for were
    /// acknowledged: order across those moves is not guaranteed.
    pub fences_given_up: AtomicU64,
}

/// A snapshot of `NodeStats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NodeStatsSnapshot {
    pub remote_sent: u64,
    pub remote_received: u64,
    pub remote_bytes_sent: u64,
    pub remote_bytes_received: u64,
    pub placements: u64,
    pub migrations: u64,
    pub duplicates_dropped: u64,
    pub decode_errors: u64,
    pub lane_full: u64,
    pub frames_refused: u64,
    pub abandoned: u64,
    pub unattested_tags: u64,
    pub checkpoints_sent: u64,
    pub checkpoints_unreplicated: u64,
    pub checkpoints_failed: u64,
    pub checkpoints_kept: u64,
    pub checkpoints_stale: u64,
    pub checkpoint_disk_errors: u64,
    pub checkpoint_starts: u64,
    pub fences_given_up: u64,
}

/// The sending side of the lanes to one peer.
pub(crate) struct PeerOut {
    lanes: Vec<LaneOut>,
}

pub(crate) struct LaneOut {
    state: Mutex<OutLane>,
    /// Wakes the stream writer of the connection in use.
    wake: Notify,
    /// Actors parked on this full lane (locked after `state`).
    waiters: Mutex<Vec<Arc<dyn AnyCell>>>,
}

impl LaneOut {
    /// Frames up to `seq` arrived: the retry buffer shrinks, and parked senders run again once
    /// there is room.
    fn ack(&self, seq: u64) {
        let mut state = self.state.lock();
        state.ack(seq);
        if state.has_room() {
            self.wake_waiters();
        }
    }

    fn wake_waiters(&self) {
        for waiter in std::mem::take(&mut *self.waiters.lock()) {
            waiter.notify();
        }
    }
}

impl PeerOut {
    fn new() -> Self {
        PeerOut {
            lanes: (0..LANES)
                .map(|_| LaneOut {
                    state: Mutex::new(OutLane::default()),
                    wake: Notify::new(),
                    waiters: Mutex::new(Vec::new()),
                })
                .collect(),
        }
    }
}

/// The connection in use to one peer.
pub(crate) struct PeerLink {
    control: UnboundedSender<ControlMsg>,
    dialled_by: String,
    connection: Connection,
}

/// What the node's tasks share.
pub(crate) struct Shared {
    name: String,
    incarnation: u64,
    tls: Arc<NodeTls>,
    endpoint: Endpoint,
    epoch: tokio::time::Instant,
    system: TokioSystem,
    topology: Topology,
    coordinator: Mutex<Coordinator>,
    /// The coordinator's directory, copied on each change: the send path reads it without
    /// taking the coordinator's lock.
    directory: RwLock<Directory>,
    peers: Mutex<BTreeMap<String, PeerLink>>,
    dialing: Mutex<BTreeSet<String>>,
    seeds: BTreeMap<String, SocketAddr>,
    out: RwLock<BTreeMap<String, Arc<PeerOut>>>,
    inbound: Mutex<Inbound>,
    stats: NodeStats,
    events: UnboundedSender<NodeEvent>,
    /// Set once the node left: the tick stops.
    left: AtomicBool,
    /// Moves in progress (`migrate`).
    moves: Mutex<migrate::Moves>,
    /// Checkpoints taken here and kept here (`checkpoints`).
    checkpoints: Mutex<checkpoints::Checkpoints>,
    /// Frames forwarded from here, acknowledged to their senders once their target has them.
    relay: Mutex<Relay>,
    /// Subtrees that moved lately whose new frames wait for the earlier ones (taken before
    /// `directory`, `out` and the lanes).
    fences: Mutex<Fences>,
    /// Whether any fence stands (the send path checks `fences` only then).
    fenced: AtomicBool,
    /// Subtrees moving in whose frames are held: lane readers check `moves` only when nonzero.
    holds: std::sync::atomic::AtomicUsize,
    /// The application's answers to the shell (`set_app`).
    app: RwLock<Option<admin::AppQueries>>,
}

/// The receiving side of every peer's lanes.
#[derive(Default)]
pub(crate) struct Inbound {
    dedup: Dedup,
    /// What was last acknowledged per (peer, incarnation, lane).
    acked: BTreeMap<(String, u64, u16), u64>,
    /// One reader at a time per (peer, incarnation, lane): a new connection's stream waits
    /// until the old one's reader ended, so a lane's frames are delivered in sequence order.
    turns: BTreeMap<(String, u64, u16), Arc<tokio::sync::Mutex<()>>>,
}

impl Shared {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// The lanes to `peer`, made on first use.
    fn peer_out(&self, peer: &str) -> Arc<PeerOut> {
        if let Some(out) = self.out.read().get(peer) {
            return out.clone();
        }
        self.out.write().entry(peer.to_string()).or_insert_with(|| Arc::new(PeerOut::new())).clone()
    }

    fn stats_snapshot(&self) -> NodeStatsSnapshot {
        let s = &self.stats;
        NodeStatsSnapshot {
            remote_sent: s.remote_sent.load(Relaxed),
            remote_received: s.remote_received.load(Relaxed),
            remote_bytes_sent: s.remote_bytes_sent.load(Relaxed),
            remote_bytes_received: s.remote_bytes_received.load(Relaxed),
            placements: s.placements.load(Relaxed),
            migrations: s.migrations.load(Relaxed),
            duplicates_dropped: s.duplicates_dropped.load(Relaxed),
            decode_errors: s.decode_errors.load(Relaxed),
            lane_full: s.lane_full.load(Relaxed),
            frames_refused: s.frames_refused.load(Relaxed),
            abandoned: s.abandoned.load(Relaxed),
            unattested_tags: s.unattested_tags.load(Relaxed),
            checkpoints_sent: s.checkpoints_sent.load(Relaxed),
            checkpoints_unreplicated: s.checkpoints_unreplicated.load(Relaxed),
            checkpoints_failed: s.checkpoints_failed.load(Relaxed),
            checkpoints_kept: s.checkpoints_kept.load(Relaxed),
            checkpoints_stale: s.checkpoints_stale.load(Relaxed),
            checkpoint_disk_errors: s.checkpoint_disk_errors.load(Relaxed),
            checkpoint_starts: s.checkpoint_starts.load(Relaxed),
            fences_given_up: s.fences_given_up.load(Relaxed),
        }
    }

    /// Sends a control message to `peer` if it is connected.
    fn control(&self, peer: &str, msg: ControlMsg) -> bool {
        match self.peers.lock().get(peer) {
            Some(link) => link.control.send(msg).is_ok(),
            None => false,
        }
    }
}

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    metrics: Mutex<prometheus_client::registry::Registry>,
}

/// Bytes a lane writer gathers into one write (the `remote` benchmark's raw baseline batches
/// the same way).
pub const LANE_BATCH_BYTES: usize = 64 * 1024;

/// How often the drive tick runs (heartbeats are every 500 ms, see `MembershipConfig`).
const DRIVE_TICK: Duration = Duration::from_millis(100);
/// How often delivered frames are acknowledged: senders keep frames until then, and the
/// senders of a subtree that moved hold their new frames until the earlier ones are
/// acknowledged (`relay`), so this bounds a move's pause for them. Idle lanes send nothing.
const ACK_TICK: Duration = Duration::from_millis(5);
/// How long a leaving node waits for its last frames to go out.
const LEAVE_FLUSH: Duration = Duration::from_millis(300);

impl Node {
    /// Binds the endpoint, starts the actor system and the node's tasks, and joins through the
    /// seeds. Events arrive on the returned channel. Call from within a tokio runtime.
    pub fn start(setup: NodeSetup) -> Result<(Node, UnboundedReceiver<NodeEvent>), String> {
        let tls = Arc::new(setup.tls);
        let endpoint = tls.bind(setup.listen).map_err(|e| e.to_string())?;
        let listen = endpoint.local_addr().map_err(|e| e.to_string())?;
        let name = tls.me.name.clone();
        let me = MemberInfo {
            name: name.clone(),
            incarnation: setup.incarnation,
            status: Status::Up,
            tags: tls.me.tags.clone(),
            addr: listen.to_string(),
        };
        let seed_names = setup.seeds.iter().map(|s| s.name.clone()).collect();
        let coordinator =
            Coordinator::new(me, seed_names, setup.membership, setup.topology.clone(), Instant::ZERO);
        let (events, receiver) = unbounded_channel();
        let clock = clock_at_start(setup.clock, setup.clock_read_at);
        let system = TokioSystem::start(SystemConfig { clock, ..SystemConfig::with_seed(setup.seed) });
        if let Some(prepare) = setup.prepare {
            prepare(&system)?;
        }
        let (checkpoints, unreadable) = checkpoints::Checkpoints::load(setup.checkpoint_disk);
        let shared = Arc::new(Shared {
            name: name.clone(),
            incarnation: setup.incarnation,
            tls,
            endpoint,
            epoch: tokio::time::Instant::now(),
            system,
            topology: setup.topology,
            coordinator: Mutex::new(coordinator),
            directory: RwLock::new(Directory::new()),
            peers: Mutex::new(BTreeMap::new()),
            dialing: Mutex::new(BTreeSet::new()),
            seeds: setup.seeds.iter().map(|s| (s.name.clone(), s.addr)).collect(),
            out: RwLock::new(BTreeMap::new()),
            inbound: Mutex::new(Inbound::default()),
            stats: NodeStats::default(),
            events,
            left: AtomicBool::new(false),
            moves: Mutex::new(migrate::Moves::default()),
            holds: std::sync::atomic::AtomicUsize::new(0),
            checkpoints: Mutex::new(checkpoints),
            relay: Mutex::new(Relay::default()),
            fences: Mutex::new(Fences::default()),
            fenced: AtomicBool::new(false),
            app: RwLock::new(None),
        });
        for why in unreadable {
            shared.stats.checkpoint_disk_errors.fetch_add(1, Relaxed);
            shared.emit(NodeEvent::CheckpointDisk(why));
        }
        for (key, value) in tag_report(&setup.claimed_tags, &shared.tls.me.tags).unattested {
            shared.stats.unattested_tags.fetch_add(1, Relaxed);
            shared.emit(NodeEvent::UnattestedTag { key, value });
        }
        let router = router::Router::new(&shared);
        shared.system.core().set_remote(&name, Arc::new(router));
        tokio::spawn(links::accept_loop(shared.clone()));
        tokio::spawn(drive::drive(shared.clone(), DRIVE_TICK));
        tokio::spawn(drive::acknowledge_every(shared.clone(), ACK_TICK));
        let mut metrics = prometheus_client::registry::Registry::with_prefix("aiot");
        metrics.register_collector(Box::new(metrics::NodeCollector { shared: Arc::downgrade(&shared) }));
        Ok((Node { shared, metrics: Mutex::new(metrics) }, receiver))
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Where the endpoint listens.
    pub fn addr(&self) -> SocketAddr {
        self.shared.endpoint.local_addr().expect("a bound endpoint has an address")
    }

    /// The actor system the node's actors run in.
    pub fn system(&self) -> &TokioSystem {
        &self.shared.system
    }

    /// The top-level subtrees running here.
    pub fn hosted(&self) -> Vec<ActorPath> {
        self.shared.coordinator.lock().hosted().iter().cloned().collect()
    }

    /// The directory as this node sees it: node -> the subtrees it announced.
    pub fn directory(&self) -> BTreeMap<String, Vec<ActorPath>> {
        self.shared.directory.read().entries()
    }

    /// The node that hosts `path`, as this node's directory has it.
    pub fn node_of(&self, path: &ActorPath) -> Option<String> {
        self.shared.directory.read().node_of(path).map(str::to_string)
    }

    /// Members (not this node) and their status.
    pub fn members(&self) -> BTreeMap<String, Status> {
        self.shared.coordinator.lock().members()
    }

    pub fn stats(&self) -> NodeStatsSnapshot {
        self.shared.stats_snapshot()
    }

    /// Closes the connection to `peer` (it is dialled again at the next heartbeat, and the
    /// lanes' unacknowledged frames go again on the new one). For operators and tests.
    pub fn disconnect(&self, peer: &str) -> bool {
        match self.shared.peers.lock().remove(peer) {
            Some(link) => {
                link.connection.close(5u32.into(), b"disconnected by the operator");
                true
            }
            None => false,
        }
    }

    /// Adds a collector to the node's metrics (what the host's application knows); names get
    /// the `aiot_` prefix.
    pub fn register_metrics(&self, collector: Box<dyn prometheus_client::collector::Collector>) {
        self.metrics.lock().register_collector(collector);
    }

    /// Sets what answers the shell's application questions (`AdminRequest::App`).
    pub fn set_app(&self, queries: admin::AppQueries) {
        *self.shared.app.write() = Some(queries);
    }

    /// Answers `Nodes`, `Actors`, `Stats` or `Placement` from this node's view, as the shell
    /// gets them (the host's own views, such as a dashboard, show the same).
    pub fn answer(&self, request: &crate::admin::AdminRequest) -> crate::admin::AdminResponse {
        admin::respond(&self.shared, request)
    }

    /// Moves the subtree at `root`, running here, to node `to` with its state (live
    /// migration), as the shell's `move` does; answers once it runs there, or why not.
    pub async fn move_subtree(&self, root: &str, to: &str) -> Result<crate::admin::MoveReport, String> {
        match admin::move_subtree(&self.shared, root, to).await {
            crate::admin::AdminResponse::Moved(report) => Ok(report),
            crate::admin::AdminResponse::Refused(why) => Err(why),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Asks this node's application `query`, as an admin would.
    pub async fn ask_app(&self, query: admin::AppQuery) -> Result<String, String> {
        let queries = self.shared.app.read().clone().ok_or("this node's topology answers no questions")?;
        queries(query, self.shared.system.clone()).await
    }

    /// Every metric, in the Prometheus text format (version 0.0.4).
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.metrics.lock())
            .expect("writing to a String cannot fail");
        text
    }

    /// The transport's refusal counters.
    pub fn tls(&self) -> &NodeTls {
        &self.shared.tls
    }

    /// Leaves gracefully: stops the subtrees hosted here, tells every member, and closes.
    pub async fn leave(&self) {
        self.shared.left.store(true, Relaxed);
        self.shared.coordinator.lock().leave();
        drive::execute(&self.shared);
        tokio::time::sleep(LEAVE_FLUSH).await;
        self.shared.endpoint.close(0u32.into(), b"node left");
        self.shared.endpoint.wait_idle().await;
    }
}
