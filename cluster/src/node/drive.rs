//! The node's tick and the execution of the coordinator's outputs: control messages go out
//! (dialling peers not connected yet), subtrees start and stop in the actor system, released
//! peers' queued frames become dead letters, the directory copy used by the send path is
//! refreshed, lanes are acknowledged.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::ActorPath;

use super::links::dial;
use super::{checkpoints, migrate};
use super::{NodeEvent, Shared};
use crate::control::ControlMsg;
use crate::coordinator::{Note, Output};
use crate::directory::Directory;

/// Runs the tick every `period` for the life of the node.
pub(crate) async fn drive(shared: Arc<Shared>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.left.load(Relaxed) {
            return;
        }
        let now = shared.now();
        shared.coordinator.lock().handle_timeout(now);
        execute(&shared);
        checkpoints::tick(&shared);
        release_fenced(&shared);
        // A safety net for a wake-up taken by a writer whose connection was closing.
        for out in shared.out.read().values() {
            for lane in &out.lanes {
                if lane.state.lock().has_unsent() {
                    lane.wake.notify_one();
                }
            }
        }
    }
}

/// Acknowledges delivered frames every `period` for the life of the node.
pub(crate) async fn acknowledge_every(shared: Arc<Shared>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.left.load(Relaxed) {
        tick.tick().await;
        acknowledge(&shared);
    }
}

/// Carries out everything the coordinator asked for so far.
pub(crate) fn execute(shared: &Arc<Shared>) {
    loop {
        let output = shared.coordinator.lock().poll_output();
        let Some(output) = output else { return };
        match output {
            Output::Send { to, addr, msg } => {
                if shared.control(&to, msg) {
                    continue;
                }
                let addr = addr.and_then(|a| a.parse().ok()).or_else(|| shared.seeds.get(&to).copied());
                if let Some(addr) = addr {
                    dial(shared, to, addr);
                }
            }
            Output::Start(root) => match migrate::start_moved_in(shared, &root) {
                Some(started) => report_start(shared, &root, started),
                // Started (and reported) once the newest checkpoint kept of it is here.
                None if checkpoints::declared(shared, &root) => checkpoints::start(shared, root),
                None => {
                    let spec = shared.topology.get(&root).cloned();
                    let started = spec.is_some_and(|spec| shared.system.start_subtrees(&[spec]).is_ok());
                    report_start(shared, &root, started);
                }
            },
            Output::Stop { root, why } => {
                shared.system.stop_subtree(&root);
                shared.emit(NodeEvent::Stopped { root, why });
            }
            Output::Released(node) => release(shared, &node),
            Output::DirectoryChanged => {
                // Copied under the coordinator's lock: two executions at once cannot leave the
                // older copy behind.
                let coordinator = shared.coordinator.lock();
                let new = coordinator.directory().clone();
                let old = std::mem::replace(&mut *shared.directory.write(), new.clone());
                fence_moves(shared, &old, &new);
            }
            Output::Note(Note::Member(event)) => shared.emit(NodeEvent::Member(event)),
            Output::Note(Note::Unplaced(why)) => shared.emit(NodeEvent::Unplaced(why)),
            Output::Note(Note::Lease(held)) => shared.emit(NodeEvent::Lease(held)),
            Output::MoveOut { root, to } => migrate::move_out(shared, root, to),
            Output::MoveDone { root, to } => migrate::done(shared, root, to),
            Output::MoveAborted { root, to, why, reclaim } => {
                migrate::aborted(shared, root, to, why, reclaim)
            }
            Output::MoveInDropped { root } => migrate::dropped(shared, root),
        }
    }
}

/// Counts and announces a subtree started here, or tells the coordinator it could not start.
pub(crate) fn report_start(shared: &Shared, root: &ActorPath, started: bool) {
    if started {
        shared.stats.placements.fetch_add(1, Relaxed);
        shared.emit(NodeEvent::Hosting(root.clone()));
    } else {
        shared.coordinator.lock().start_failed(root);
    }
}

/// A node gone for longer than its lease: what this node had not got acknowledged by it is
/// dropped as dead letters.
///
/// The lanes stay, with their sequence counters: the peer (same incarnation, back after a
/// partition) still remembers the highest sequence it delivered, so lanes that started again
/// from 1 would have their frames dropped as retries until they passed it.
fn release(shared: &Shared, node: &str) {
    shared.relay.lock().released(node);
    let mut fences = shared.fences.lock();
    fences.released(node);
    shared.stats.fences_given_up.fetch_add(fences.take_given_up(), Relaxed);
    drop(fences);
    if let Some(out) = shared.out.read().get(node) {
        for lane in &out.lanes {
            for path in lane.state.lock().abandon() {
                shared.stats.abandoned.fetch_add(1, Relaxed);
                shared.system.core().dead_letter(&path, 1);
            }
            // Parked senders try again: the subtree goes elsewhere or their sends are dead letters.
            lane.wake_waiters();
        }
    }
}

/// Subtrees the directory shows moved: new frames for them wait for the earlier ones
/// (`relay::Fences`).
fn fence_moves(shared: &Shared, old: &Directory, new: &Directory) {
    let mut fences = shared.fences.lock();
    let out = shared.out.read();
    let lane = |node: &str, lane: u16| out.get(node).map(|o| o.lanes[usize::from(lane)].state.lock());
    let pushed = |node: &str, l: u16| lane(node, l).map_or(0, |state| state.last_pushed());
    let acked = |node: &str, l: u16| lane(node, l).map_or(0, |state| state.acked());
    fences.directory_changed(&shared.name, old, new, shared.now(), pushed, acked);
    shared.fenced.store(!fences.is_empty(), Relaxed);
}

/// Sends the frames whose fence fell, in order (under the fences' lock: a new send waits
/// behind them); those that find their lane full wait for the next call.
pub(crate) fn release_fenced(shared: &Shared) {
    if !shared.fenced.load(Relaxed) {
        return;
    }
    let mut fences = shared.fences.lock();
    let ready = fences.release(shared.now(), |node, lane| migrate::acked(shared, node, lane));
    shared.stats.fences_given_up.fetch_add(fences.take_given_up(), Relaxed);
    let route = |to: &ActorPath, bytes| super::router::route(shared, to, bytes);
    fences.send_released(ready, shared.now(), shared.system.core(), route);
    shared.fenced.store(!fences.is_empty(), Relaxed);
}

/// Acknowledges, per peer lane, every frame delivered since the last acknowledgement (a
/// forwarded frame once its target has it).
fn acknowledge(shared: &Shared) {
    let due: Vec<(String, ControlMsg)> = {
        let mut inbound = shared.inbound.lock();
        let relay = shared.relay.lock();
        let highs: Vec<((String, u64, u16), u64)> =
            inbound.dedup.delivered().map(|(key, high)| (key.clone(), relay.ceiling(key, high))).collect();
        drop(relay);
        let due: Vec<((String, u64, u16), u64)> = highs
            .into_iter()
            .filter(|(key, high)| inbound.acked.get(key).is_none_or(|acked| high > acked))
            .collect();
        due.into_iter()
            .map(|((peer, incarnation, lane), seq)| {
                inbound.acked.insert((peer.clone(), incarnation, lane), seq);
                (peer, ControlMsg::Ack { incarnation, lane, seq })
            })
            .collect()
    };
    for (peer, ack) in due {
        shared.control(&peer, ack);
    }
}

/// A control frame from `peer`: lane acknowledgements are handled here, the rest by the
/// coordinator.
pub(crate) fn handle_control(shared: &Arc<Shared>, peer: &str, msg: ControlMsg) {
    match msg {
        ControlMsg::Ack { incarnation, lane, seq } => {
            if incarnation == shared.incarnation {
                if let Some(out) = shared.out.read().get(peer) {
                    if let Some(lane) = out.lanes.get(usize::from(lane)) {
                        lane.ack(seq);
                    }
                }
                shared.relay.lock().acked(peer, lane, seq);
                release_fenced(shared);
            }
        }
        msg if msg.is_checkpoint() => checkpoints::handle(shared, peer, msg),
        msg => {
            let restarted = match &msg {
                ControlMsg::Member(crate::membership::MemberMsg::Heartbeat { from, .. }) => {
                    Some(from.incarnation)
                }
                _ => None,
            };
            shared.coordinator.lock().handle_control(peer, msg, shared.now());
            execute(shared);
            if let Some(incarnation) = restarted {
                let mut inbound = shared.inbound.lock();
                inbound.dedup.forget_before(peer, incarnation);
                shared.relay.lock().forget_before(peer, incarnation);
                inbound.turns.retain(|(n, inc, _), _| n != peer || *inc >= incarnation);
                inbound.acked.retain(|(n, inc, _), _| n != peer || *inc >= incarnation);
            }
        }
    }
}
