//! The node's tick and the execution of the coordinator's outputs: control messages go out
//! (dialling peers not connected yet), subtrees start and stop in the actor system, released
//! peers' queued frames become dead letters, the directory copy used by the send path is
//! refreshed, lanes are acknowledged.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::links::dial;
use super::migrate;
use super::{NodeEvent, Shared};
use crate::control::ControlMsg;
use crate::coordinator::{Note, Output};

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
        acknowledge(&shared);
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
            Output::Start(root) => {
                let started = migrate::start_moved_in(shared, &root).unwrap_or_else(|| {
                    let spec = shared.topology.get(&root).cloned();
                    spec.is_some_and(|spec| shared.system.start_subtrees(&[spec]).is_ok())
                });
                if started {
                    shared.stats.placements.fetch_add(1, Relaxed);
                    shared.emit(NodeEvent::Hosting(root));
                } else {
                    shared.coordinator.lock().start_failed(&root);
                }
            }
            Output::Stop { root, why } => {
                shared.system.stop_subtree(&root);
                shared.emit(NodeEvent::Stopped { root, why });
            }
            Output::Released(node) => release(shared, &node),
            Output::DirectoryChanged => {
                // Copied under the coordinator's lock: two executions at once cannot leave the
                // older copy behind.
                let coordinator = shared.coordinator.lock();
                *shared.directory.write() = coordinator.directory().clone();
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

/// A node gone for longer than its lease: what this node had not got acknowledged by it is
/// dropped as dead letters.
///
/// The lanes stay, with their sequence counters: the peer (same incarnation, back after a
/// partition) still remembers the highest sequence it delivered, so lanes that started again
/// from 1 would have their frames dropped as retries until they passed it.
fn release(shared: &Shared, node: &str) {
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

/// Acknowledges, per peer lane, every frame delivered since the last acknowledgement.
fn acknowledge(shared: &Shared) {
    let due: Vec<(String, ControlMsg)> = {
        let mut inbound = shared.inbound.lock();
        let highs: Vec<((String, u64, u16), u64)> =
            inbound.dedup.highs().map(|(key, high)| (key.clone(), high)).collect();
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
            }
        }
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
                inbound.turns.retain(|(n, inc, _), _| n != peer || *inc >= incarnation);
                inbound.acked.retain(|(n, inc, _), _| n != peer || *inc >= incarnation);
            }
        }
    }
}
