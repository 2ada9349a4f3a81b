//! `aiot node --config node.toml`: a cluster node. It loads and checks its configuration and
//! certificate, binds its QUIC endpoint, joins through its seeds, authenticates every peer, and
//! runs membership over each connection's control stream: heartbeats, the failure detector,
//! member up/down/left lines, a graceful leave on Ctrl-C. (The directory, placement and actors
//! come with the rest of issue 3.) Each event is one line on stdout; refusals say why.

// The node is host code: it spawns the tasks that drive its endpoint (actor code never does).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use aiot_cluster::config::{tag_report, NodeConfig};
use aiot_cluster::membership::{MemberEvent, MemberInfo, MemberMsg, Membership, MembershipConfig, Status};
use aiot_cluster::transport::keep_new_connection;
use aiot_cluster::transport::quic::{
    accept, accept_control, connect, open_control, send_frame, ControlSend, Endpoint, FrameReader, NodeTls,
    Peer,
};
use aiot_runtime::Instant;
use parking_lot::Mutex;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How often membership's timers run (heartbeats are every 500 ms, see `MembershipConfig`).
const DRIVE_TICK: Duration = Duration::from_millis(100);
/// How long a leaving node waits for its leave notices to go out.
const LEAVE_FLUSH: Duration = Duration::from_millis(300);

pub struct Options {
    pub config: PathBuf,
    /// Check the configuration and certificate, print the identity, and exit.
    pub check: bool,
}

pub fn run(options: Options) -> Result<(), String> {
    let config = NodeConfig::load(&options.config).map_err(|e| e.to_string())?;
    let tls = NodeTls::load(&config.tls.ca, &config.tls.cert, &config.tls.key).map_err(|e| e.to_string())?;
    let report = tag_report(&config.tags, &tls.me.tags);
    println!("node {} with attested tags [{}]", tls.me.name, tag_list(&report.attested));
    for (key, value) in &report.unattested {
        println!(
            "ignored tag {key}={value}: claimed in {} but not attested by the certificate",
            options.config.display()
        );
    }
    if options.check {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(serve(config, Arc::new(tls)))
}

/// `tier=inference, accel=gpu`.
fn tag_list(tags: &BTreeMap<String, String>) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

/// The connection in use to one peer.
struct PeerLink {
    frames: UnboundedSender<MemberMsg>,
    dialled_by: String,
    connection: aiot_cluster::transport::quic::Connection,
}

/// What the node's tasks share.
struct Shared {
    tls: Arc<NodeTls>,
    endpoint: Endpoint,
    epoch: tokio::time::Instant,
    membership: Mutex<Membership>,
    /// Authenticated peers: where to send their control frames, and who dialled the connection.
    peers: Mutex<BTreeMap<String, PeerLink>>,
    /// Peers being dialled (one attempt at a time each).
    dialing: Mutex<BTreeSet<String>>,
    /// Seeds by name: where to dial before membership knows them.
    seeds: BTreeMap<String, SocketAddr>,
}

impl Shared {
    fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// This process's incarnation: later starts get higher numbers (milliseconds since the epoch;
/// host code, so reading the wall clock is right here).
fn incarnation() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

async fn serve(config: NodeConfig, tls: Arc<NodeTls>) -> Result<(), String> {
    let endpoint = tls.bind(config.listen).map_err(|e| e.to_string())?;
    let listen = endpoint.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {listen}");
    let epoch = tokio::time::Instant::now();
    let me = MemberInfo {
        name: tls.me.name.clone(),
        incarnation: incarnation(),
        status: Status::Up,
        tags: tls.me.tags.clone(),
        addr: listen.to_string(),
    };
    let seed_names = config.seeds.iter().map(|s| s.name.clone()).collect();
    let membership = Membership::new(me, seed_names, MembershipConfig::default(), Instant::ZERO);
    let shared = Arc::new(Shared {
        tls,
        endpoint: endpoint.clone(),
        epoch,
        membership: Mutex::new(membership),
        peers: Mutex::new(BTreeMap::new()),
        dialing: Mutex::new(BTreeSet::new()),
        seeds: config.seeds.iter().map(|s| (s.name.clone(), s.addr)).collect(),
    });
    tokio::spawn(drive(shared.clone()));
    loop {
        tokio::select! {
            accepted = accept(&endpoint, &shared.tls) => match accepted {
                Some(Ok(peer)) => {
                    println!("peer {} authenticated [{}]", peer.identity.name, tag_list(&peer.identity.tags));
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Ok((send, reader)) = accept_control(&peer).await {
                            let dialled_by = peer.identity.name.clone();
                            register(&shared, peer, dialled_by, send, reader);
                        }
                    });
                }
                Some(Err(e)) => println!("refused a connection: {e}"),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                leave(&shared).await;
                return Ok(());
            }
        }
    }
}

/// Every tick: the failure detector runs, heartbeats go out (dialling members not connected
/// yet), membership changes are printed.
async fn drive(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(DRIVE_TICK);
    loop {
        tick.tick().await;
        let (sends, events, addrs) = {
            let mut m = shared.membership.lock();
            m.handle_timeout(shared.now());
            let sends: Vec<(String, MemberMsg)> = std::iter::from_fn(|| m.poll_send()).collect();
            let events: Vec<MemberEvent> = std::iter::from_fn(|| m.poll_event()).collect();
            let addrs: BTreeMap<String, String> = sends
                .iter()
                .filter_map(|(to, _)| m.member(to).map(|i| (to.clone(), i.addr.clone())))
                .collect();
            (sends, events, addrs)
        };
        for event in events {
            match event {
                MemberEvent::Up(name) => println!("member {name} up"),
                MemberEvent::Down(name) => println!("member {name} down"),
                MemberEvent::Left(name) => println!("member {name} left"),
            }
        }
        for (to, msg) in sends {
            let sender = shared.peers.lock().get(&to).map(|link| link.frames.clone());
            match sender {
                Some(tx) => {
                    let _ = tx.send(msg);
                }
                None => {
                    let addr = addrs
                        .get(&to)
                        .and_then(|a| a.parse().ok())
                        .or_else(|| shared.seeds.get(&to).copied());
                    if let Some(addr) = addr {
                        dial(&shared, to, addr);
                    }
                }
            }
        }
    }
}

/// Connects to `name` at `addr` unless an attempt is under way; registers it once authenticated.
fn dial(shared: &Arc<Shared>, name: String, addr: SocketAddr) {
    if !shared.dialing.lock().insert(name.clone()) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        match connect(&shared.endpoint, &shared.tls, addr, &name).await {
            Ok(peer) => {
                println!("connected to {} at {addr} [{}]", peer.identity.name, tag_list(&peer.identity.tags));
                if let Ok((send, reader)) = open_control(&peer).await {
                    let dialled_by = shared.tls.me.name.clone();
                    register(&shared, peer, dialled_by, send, reader);
                }
            }
            Err(e) => println!("{name}@{addr} not reachable yet: {e}"),
        }
        shared.dialing.lock().remove(&name);
    });
}

/// Wires an authenticated peer's control stream to membership, keeping one connection per pair
/// (`keep_new_connection`): a duplicate is closed with the reason.
fn register(
    shared: &Arc<Shared>,
    peer: Peer,
    dialled_by: String,
    mut send: ControlSend,
    mut reader: FrameReader,
) {
    let name = peer.identity.name.clone();
    let (tx, mut rx) = unbounded_channel::<MemberMsg>();
    {
        let mut peers = shared.peers.lock();
        let me = &shared.tls.me.name;
        let replace = match peers.get(&name) {
            None => true,
            Some(link) => keep_new_connection(&link.dialled_by, &dialled_by, me, &name),
        };
        if !replace {
            peer.connection.close(4u32.into(), b"duplicate connection: the pair keeps the other one");
            return;
        }
        let link = PeerLink { frames: tx.clone(), dialled_by, connection: peer.connection.clone() };
        if let Some(old) = peers.insert(name.clone(), link) {
            old.connection.close(4u32.into(), b"duplicate connection: the pair keeps the other one");
        }
    }
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if send_frame(&mut send, &msg).await.is_err() {
                break;
            }
        }
    });
    let shared = shared.clone();
    tokio::spawn(async move {
        let connection = peer.connection;
        loop {
            match reader.next::<MemberMsg>().await {
                Ok(Some(msg)) => shared.membership.lock().handle_message(&name, msg, shared.now()),
                Ok(None) => break,
                Err(e) => {
                    connection.close(3u32.into(), e.to_string().as_bytes());
                    break;
                }
            }
        }
        let mut peers = shared.peers.lock();
        if peers.get(&name).is_some_and(|current| current.frames.same_channel(&tx)) {
            peers.remove(&name);
        }
    });
}

/// Tells every member this node leaves, gives the frames a moment to go, and closes.
async fn leave(shared: &Arc<Shared>) {
    let sends: Vec<(String, MemberMsg)> = {
        let mut m = shared.membership.lock();
        m.leave();
        std::iter::from_fn(|| m.poll_send()).collect()
    };
    for (to, msg) in sends {
        if let Some(link) = shared.peers.lock().get(&to) {
            let _ = link.frames.send(msg);
        }
    }
    tokio::time::sleep(LEAVE_FLUSH).await;
    println!("left the cluster");
    shared.endpoint.close(0u32.into(), b"node left");
    shared.endpoint.wait_idle().await;
}
