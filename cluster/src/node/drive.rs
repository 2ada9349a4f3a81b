//! The node's tick: membership timers and messages, the lease, releasing the subtrees of
//! nodes that are gone, placing and stopping subtrees, announcing what this node hosts, and
//! acknowledging the peers' lanes.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::ActorPath;

use super::links::dial;
use super::{NodeEvent, Shared};
use crate::control::ControlMsg;
use crate::membership::{MemberEvent, MemberMsg};
use crate::placement::{plan, NodeView};

/// Runs the tick every `period` for the life of the node.
pub(crate) async fn drive(shared: Arc<Shared>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if shared.left.load(Relaxed) {
            return;
        }
        step(&shared);
    }
}

/// What membership decided in one tick, taken out from under its lock.
struct Round {
    sends: Vec<(String, MemberMsg)>,
    events: Vec<MemberEvent>,
    addrs: BTreeMap<String, String>,
    holds_lease: bool,
    may_place: bool,
    up: Vec<NodeView>,
    released: Vec<String>,
}

fn step(shared: &Arc<Shared>) {
    let now = shared.now();
    let round = {
        let mut m = shared.membership.lock();
        m.handle_timeout(now);
        let sends: Vec<(String, MemberMsg)> = std::iter::from_fn(|| m.poll_send()).collect();
        let events: Vec<MemberEvent> = std::iter::from_fn(|| m.poll_event()).collect();
        let addrs =
            sends.iter().filter_map(|(to, _)| m.member(to).map(|i| (to.clone(), i.addr.clone()))).collect();
        let up = m
            .up()
            .into_iter()
            .map(|i| NodeView { name: i.name.clone(), tags: i.tags.clone(), up: true })
            .collect();
        let announced: Vec<String> = shared.directory.read().entries().into_keys().collect();
        let released = announced
            .into_iter()
            .filter(|n| *n != shared.name && m.release_at(n).is_some_and(|at| now >= at))
            .collect();
        let holds_lease = m.holds_lease(now);
        Round { sends, events, addrs, holds_lease, may_place: holds_lease && m.settled(now), up, released }
    };
    for event in round.events {
        shared.emit(NodeEvent::Member(event));
    }
    for node in &round.released {
        release(shared, node);
    }
    let was_held = std::mem::replace(&mut *shared.lease_held.lock(), round.holds_lease);
    if was_held != round.holds_lease {
        shared.emit(NodeEvent::Lease(round.holds_lease));
    }
    if !round.holds_lease {
        stop_all(shared, "lease lost: cut off from the majority");
    } else if round.may_place {
        place(shared, &round.up);
    }
    let hosting = hosting_msg(shared);
    for (to, msg) in round.sends {
        let heartbeat = matches!(msg, MemberMsg::Heartbeat { .. });
        if shared.control(&to, ControlMsg::Member(msg)) {
            if heartbeat {
                shared.control(&to, hosting.clone());
            }
            continue;
        }
        let addr =
            round.addrs.get(&to).and_then(|a| a.parse().ok()).or_else(|| shared.seeds.get(&to).copied());
        if let Some(addr) = addr {
            dial(shared, to, addr);
        }
    }
    acknowledge(shared);
    // A safety net for a wake-up taken by a writer whose connection was closing.
    for out in shared.out.read().values() {
        for lane in &out.lanes {
            if lane.state.lock().has_unsent() {
                lane.wake.notify_one();
            }
        }
    }
}

/// A node gone for longer than its lease: its subtrees leave the directory (to be placed
/// again), and what this node had not got acknowledged by it is dropped as dead letters.
fn release(shared: &Shared, node: &str) {
    shared.directory.write().forget(node);
    if let Some(out) = shared.out.write().remove(node) {
        for lane in &out.lanes {
            for path in lane.state.lock().abandon() {
                shared.stats.abandoned.fetch_add(1, Relaxed);
                shared.system.core().dead_letter(&path, 1);
            }
        }
    }
}

/// Places every subtree not hosted anywhere; starts the ones placed here; stops the ones a
/// node with a lower name also hosts.
fn place(shared: &Arc<Shared>, up: &[NodeView]) {
    let conflicts = shared.directory.read().conflicts(&shared.name);
    for root in conflicts {
        stop(shared, &root, "another node hosts it too (the lower name keeps it)");
    }
    let held = shared.directory.read().held(|_| true);
    let plan = plan(&shared.topology, up, &held);
    let mine: Vec<ActorPath> = plan
        .placed
        .iter()
        .filter(|(root, node)| **node == shared.name && !held.contains_key(*root))
        .map(|(root, _)| root.clone())
        .collect();
    for root in mine {
        let Some(spec) = shared.topology.get(&root) else { continue };
        match shared.system.start_subtrees(std::slice::from_ref(spec)) {
            Ok(()) => {
                shared.hosted.lock().insert(root.clone());
                shared.emit(NodeEvent::Hosting(root));
            }
            // The path is still taken by the copy being stopped: next tick.
            Err(_) => continue,
        }
    }
    let unplaced: Vec<String> = plan.unplaced.iter().map(ToString::to_string).collect();
    let mut last = shared.unplaced.lock();
    if *last != unplaced {
        if !unplaced.is_empty() {
            shared.emit(NodeEvent::Unplaced(unplaced.clone()));
        }
        *last = unplaced;
    }
    drop(last);
    announce(shared);
}

fn stop(shared: &Shared, root: &ActorPath, why: &str) {
    if shared.hosted.lock().remove(root) {
        shared.system.stop_subtree(root);
        shared.emit(NodeEvent::Stopped { root: root.clone(), why: why.to_string() });
    }
}

/// Stops every subtree hosted here.
pub(crate) fn stop_all(shared: &Shared, why: &str) {
    let hosted: Vec<ActorPath> = shared.hosted.lock().iter().cloned().collect();
    for root in hosted {
        stop(shared, &root, why);
    }
    if !shared.directory.read().entries().get(&shared.name).is_none_or(Vec::is_empty) {
        announce(shared);
    }
}

/// What this node hosts, as the message that replicates it.
pub(crate) fn hosting_msg(shared: &Shared) -> ControlMsg {
    ControlMsg::Hosting {
        incarnation: shared.incarnation,
        roots: shared.hosted.lock().iter().cloned().collect(),
    }
}

/// Records what this node hosts in its own directory and tells every connected peer.
pub(crate) fn announce(shared: &Shared) {
    let roots: Vec<ActorPath> = shared.hosted.lock().iter().cloned().collect();
    let changed = {
        let mut directory = shared.directory.write();
        let before = directory.entries().get(&shared.name).cloned().unwrap_or_default();
        directory.announce(&shared.name, shared.incarnation, roots.iter().cloned());
        before != roots
    };
    if changed {
        let msg = ControlMsg::Hosting { incarnation: shared.incarnation, roots };
        let peers: Vec<String> = shared.peers.lock().keys().cloned().collect();
        for peer in peers {
            shared.control(&peer, msg.clone());
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

/// A control frame from `peer`.
pub(crate) fn handle_control(shared: &Shared, peer: &str, msg: ControlMsg) {
    match msg {
        ControlMsg::Member(msg) => {
            let restarted = match &msg {
                MemberMsg::Heartbeat { from, .. } => Some(from.incarnation),
                MemberMsg::Leave { .. } => None,
            };
            shared.membership.lock().handle_message(peer, msg, shared.now());
            if let Some(incarnation) = restarted {
                let mut inbound = shared.inbound.lock();
                inbound.dedup.forget_before(peer, incarnation);
                inbound.turns.retain(|(n, inc, _), _| n != peer || *inc >= incarnation);
                inbound.acked.retain(|(n, inc, _), _| n != peer || *inc >= incarnation);
            }
        }
        ControlMsg::Hosting { incarnation, roots } => {
            // Only from the incarnation membership knows: an older life's claims are void.
            let current = shared.membership.lock().incarnation_of(peer);
            if current.is_some_and(|c| incarnation >= c) {
                shared.directory.write().announce(peer, incarnation, roots);
            }
        }
        ControlMsg::Ack { incarnation, lane, seq } => {
            if incarnation == shared.incarnation {
                if let Some(out) = shared.out.read().get(peer) {
                    if let Some(lane) = out.lanes.get(usize::from(lane)) {
                        lane.state.lock().ack(seq);
                    }
                }
            }
        }
    }
}
