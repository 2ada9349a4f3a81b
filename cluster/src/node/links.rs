//! Peers: accepting and dialling, one connection per pair (`keep_new_connection`), and on
//! each connection the control stream (both ways) and one data stream per lane and direction.
//! A frame the wire codec refuses closes that connection with the reason; the node goes on.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{ActorPath, AnyCell, DeliveryError, SystemCore};
use tokio::sync::mpsc::unbounded_channel;

use super::migrate::{self, Forward};
use super::{NodeEvent, PeerLink, PeerOut, Shared};
use crate::control::ControlMsg;
use crate::lanes::{encode_open, Body, DataFrame, LaneMsg, LANES};
use crate::relay::LaneKey;
use crate::transport::keep_new_connection;
use crate::transport::quic::{
    accept, accept_control, accept_lane, connect, open_control, open_lane, send_frame, write_frames,
    Accepted, Connection, ControlSend, FrameReader, Peer, TransportError,
};

use super::LANE_BATCH_BYTES;

/// A receiver acknowledges a lane every this many frames as well as on each tick, so a fast
/// lane's retry buffer stays far below `LANE_UNACKED_MAX`.
const ACK_EVERY: u64 = 4096;

/// Close codes, with the reason as text.
const CLOSE_PROTOCOL: u32 = 3;
const CLOSE_DUPLICATE: u32 = 4;

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(shared: Arc<Shared>) {
    while let Some(accepted) = accept(&shared.endpoint, &shared.tls).await {
        match accepted {
            Ok(Accepted::Admin(admin)) => {
                shared.emit(NodeEvent::Admin(admin.identity.name.clone()));
                tokio::spawn(super::admin::serve(shared.clone(), admin));
            }
            Ok(Accepted::Peer(peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    shared.emit(NodeEvent::Authenticated {
                        peer: peer.identity.name.clone(),
                        tags: peer.identity.tags.clone(),
                    });
                    if let Ok((send, reader)) = accept_control(&peer).await {
                        let dialled_by = peer.identity.name.clone();
                        register(&shared, peer, dialled_by, send, reader);
                    }
                });
            }
            Err(e) => shared.emit(NodeEvent::Refused(e.to_string())),
        }
    }
}

/// Connects to `name` at `addr` unless an attempt is under way; registers it once authenticated.
pub(crate) fn dial(shared: &Arc<Shared>, name: String, addr: SocketAddr) {
    if !shared.dialing.lock().insert(name.clone()) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        match connect(&shared.endpoint, &shared.tls, addr, &name).await {
            Ok(peer) => {
                shared.emit(NodeEvent::Authenticated {
                    peer: peer.identity.name.clone(),
                    tags: peer.identity.tags.clone(),
                });
                if let Ok((send, reader)) = open_control(&peer).await {
                    let dialled_by = shared.name.clone();
                    register(&shared, peer, dialled_by, send, reader);
                }
            }
            Err(e) => shared.emit(NodeEvent::Unreachable { peer: name.clone(), addr, why: e.to_string() }),
        }
        shared.dialing.lock().remove(&name);
    });
}

/// Wires an authenticated peer: keeps one connection per pair, then runs its control stream
/// and its data lanes.
fn register(
    shared: &Arc<Shared>,
    peer: Peer,
    dialled_by: String,
    mut send: ControlSend,
    reader: FrameReader,
) {
    let name = peer.identity.name.clone();
    let (tx, mut rx) = unbounded_channel::<ControlMsg>();
    {
        let mut peers = shared.peers.lock();
        // A link whose connection is closed (its reader has not removed it yet) is no rival:
        // keeping it would refuse a peer that reconnects at once as a duplicate.
        let replace = match peers.get(&name) {
            None => true,
            Some(link) if link.connection.close_reason().is_some() => true,
            Some(link) => keep_new_connection(&link.dialled_by, &dialled_by, &shared.name, &name),
        };
        if !replace {
            peer.connection
                .close(CLOSE_DUPLICATE.into(), b"duplicate connection: the pair keeps the other one");
            return;
        }
        let link = PeerLink { control: tx.clone(), dialled_by, connection: peer.connection.clone() };
        if let Some(old) = peers.insert(name.clone(), link) {
            old.connection
                .close(CLOSE_DUPLICATE.into(), b"duplicate connection: the pair keeps the other one");
        }
    }
    // A new peer hears at once what this node hosts.
    let hosting = shared.coordinator.lock().hosting_msg();
    let _ = tx.send(hosting);
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if send_frame(&mut send, &msg).await.is_err() {
                break;
            }
        }
    });
    let out = shared.peer_out(&name);
    for lane in 0..LANES {
        tokio::spawn(write_lane(shared.clone(), out.clone(), lane, peer.connection.clone()));
    }
    tokio::spawn(accept_lanes(shared.clone(), name.clone(), peer.connection.clone()));
    tokio::spawn(read_control(shared.clone(), name, peer.connection, reader, tx));
}

/// Control frames from one peer, until its connection ends.
async fn read_control(
    shared: Arc<Shared>,
    name: String,
    connection: Connection,
    mut reader: FrameReader,
    tx: tokio::sync::mpsc::UnboundedSender<ControlMsg>,
) {
    loop {
        match reader.next::<ControlMsg>().await {
            Ok(Some(msg)) => super::drive::handle_control(&shared, &name, msg),
            Err(TransportError::Frame(e)) => {
                refuse(&shared, &name, &connection, &e.to_string());
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    let mut peers = shared.peers.lock();
    if peers.get(&name).is_some_and(|current| current.control.same_channel(&tx)) {
        peers.remove(&name);
    }
}

/// Closes a peer's connection for what it sent, counting it and saying why.
fn refuse(shared: &Shared, peer: &str, connection: &Connection, why: &str) {
    shared.stats.frames_refused.fetch_add(1, Relaxed);
    connection.close(CLOSE_PROTOCOL.into(), why.as_bytes());
    shared.emit(NodeEvent::ConnectionClosed { peer: peer.to_string(), why: why.to_string() });
}

/// Sends one lane's frames on this connection: first what the peer has not acknowledged,
/// then new frames as they come, gathered into batches.
async fn write_lane(shared: Arc<Shared>, out: Arc<PeerOut>, lane: u16, connection: Connection) {
    let Ok(mut send) = open_lane(&connection).await else { return };
    let slot = &out.lanes[usize::from(lane)];
    let mut batch = Vec::with_capacity(LANE_BATCH_BYTES + 1024);
    encode_open(shared.incarnation, lane, &mut batch);
    slot.state.lock().rewind();
    loop {
        slot.state.lock().take_unsent(&mut batch, LANE_BATCH_BYTES);
        if batch.is_empty() {
            tokio::select! {
                _ = slot.wake.notified() => continue,
                _ = connection.closed() => return,
            }
        }
        if write_frames(&mut send, &batch).await.is_err() {
            return;
        }
        batch.clear();
    }
}

/// Accepts the peer's lane streams on one connection.
async fn accept_lanes(shared: Arc<Shared>, peer: String, connection: Connection) {
    while let Some(reader) = accept_lane(&connection).await {
        tokio::spawn(read_lane(shared.clone(), peer.clone(), connection.clone(), reader));
    }
}

/// Delivers one lane's frames to the local actors, dropping retries already delivered.
async fn read_lane(shared: Arc<Shared>, peer: String, connection: Connection, mut reader: FrameReader) {
    let (incarnation, lane) = match reader.next::<LaneMsg>().await {
        Ok(Some(LaneMsg::Open { incarnation, lane })) if lane < LANES => (incarnation, lane),
        Ok(Some(other)) => {
            let why = format!("a lane must open with its Open frame, not {}", kind(&other));
            return refuse(&shared, &peer, &connection, &why);
        }
        Err(TransportError::Frame(e)) => return refuse(&shared, &peer, &connection, &e.to_string()),
        Ok(None) | Err(_) => return,
    };
    let (high, turn) = {
        let mut inbound = shared.inbound.lock();
        let turn = inbound.turns.entry((peer.clone(), incarnation, lane)).or_default().clone();
        (inbound.dedup.lane(&peer, incarnation, lane), turn)
    };
    let _turn = turn.lock().await;
    let key: LaneKey = (peer.clone(), incarnation, lane);
    let mut cache = CellCache::default();
    let mut reacknowledged = false;
    loop {
        match reader.next::<LaneMsg>().await {
            Ok(Some(LaneMsg::Data(frame))) => {
                if !high.accept(frame.seq) {
                    shared.stats.duplicates_dropped.fetch_add(1, Relaxed);
                    // Retries mean our acknowledgement was lost with the old connection: say
                    // again (once per stream) how far this lane got, or the sender's window
                    // would stay full of frames it believes undelivered.
                    if !reacknowledged {
                        reacknowledged = true;
                        let seq = shared.relay.lock().ceiling(&key, high.delivered_upto());
                        shared.control(&peer, ControlMsg::Ack { incarnation, lane, seq });
                    }
                    continue;
                }
                let seq = frame.seq;
                deliver(&shared, &key, &mut cache, frame).await;
                high.delivered(seq);
                if seq.is_multiple_of(ACK_EVERY) {
                    let seq = shared.relay.lock().ceiling(&key, seq);
                    shared.control(&peer, ControlMsg::Ack { incarnation, lane, seq });
                }
            }
            Ok(Some(LaneMsg::Open { .. })) => {
                return refuse(&shared, &peer, &connection, "a second Open frame on one lane");
            }
            Err(TransportError::Frame(e)) => return refuse(&shared, &peer, &connection, &e.to_string()),
            Ok(None) | Err(_) => return,
        }
    }
}

fn kind(msg: &LaneMsg) -> &'static str {
    match msg {
        LaneMsg::Open { .. } => "an Open frame for an unknown lane",
        LaneMsg::Data(_) => "a data frame",
    }
}

/// The mailbox a lane delivered to last: a lane mostly carries messages for a few actors, so
/// this saves the registry lookup per frame.
#[derive(Default)]
struct CellCache {
    last: Option<(ActorPath, Arc<dyn AnyCell>)>,
}

impl CellCache {
    fn get(&mut self, core: &SystemCore, path: &ActorPath) -> Option<Arc<dyn AnyCell>> {
        if let Some((p, cell)) = &self.last {
            if p == path && !cell.is_closed() {
                return Some(cell.clone());
            }
        }
        let cell = core.lookup(path)?;
        self.last = Some((path.clone(), cell.clone()));
        Some(cell)
    }
}

/// Delivers a frame into its actor's mailbox; a full mailbox under backpressure holds this
/// lane (and, through QUIC flow control, its sender) until there is room. A handoff goes to
/// the node's moves; a frame for a subtree moving in waits until it is up; one for a subtree
/// moving away follows it.
async fn deliver(shared: &Arc<Shared>, lane: &LaneKey, cache: &mut CellCache, frame: DataFrame) {
    let core = shared.system.core();
    let DataFrame { to, body, seq } = frame;
    let body = match body {
        Body::Handoff(bytes) => return migrate::arrived(shared, &lane.0, &to, &bytes),
        Body::Tell(bytes) if shared.holds.load(Relaxed) > 0 => match migrate::hold(shared, &to, bytes) {
            Some(bytes) => Body::Tell(bytes),
            None => return,
        },
        body => body,
    };
    let mut waited = 0u32;
    loop {
        let result = match &body {
            Body::Tell(bytes) => match cache.get(core, &to) {
                Some(cell) => cell.push_encoded(bytes),
                None => Err(DeliveryError::NoActor(to.clone())),
            },
            Body::Reply { corr, bytes } => core.deliver_remote_reply(&to, *corr, bytes),
            Body::Handoff(_) => unreachable!("handed to the moves above"),
        };
        let full = match result {
            Err(DeliveryError::NoActor(_)) if matches!(body, Body::Tell(_)) => {
                match migrate::forward(shared, &to, body.bytes(), Some((lane.clone(), seq))) {
                    Forward::Sent => return,
                    Forward::Full => true,
                    Forward::NotMoving => {
                        core.dead_letter(&to, 1);
                        return;
                    }
                }
            }
            Err(DeliveryError::Full(_)) => true,
            other => {
                count_delivery(shared, other, body.bytes().len());
                return;
            }
        };
        if full {
            // Yield first (the receiving actor may run on this very worker), then back off.
            if waited < 64 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            waited += 1;
        }
    }
}

/// Counts a delivery's outcome (a full mailbox is waited on, not counted).
fn count_delivery(shared: &Shared, result: Result<(), DeliveryError>, len: usize) {
    match result {
        Err(DeliveryError::Decode { .. }) => {
            shared.stats.decode_errors.fetch_add(1, Relaxed);
        }
        Ok(()) => {
            shared.stats.remote_received.fetch_add(1, Relaxed);
            shared.stats.remote_bytes_received.fetch_add(len as u64, Relaxed);
        }
        // A full mailbox is waited on; a dead letter or a rejection the system counted.
        Err(DeliveryError::Full(_) | DeliveryError::NoActor(_) | DeliveryError::Rejected(_)) => {}
    }
}
