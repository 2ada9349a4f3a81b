//! `migration`: a client actor on a things node tells numbered pushes to a stateful counter
//! on an inference node and asks it for its count, while the counter (and the client) are
//! moved live between nodes, and partitions, one-way cuts, clogs, connection resets and
//! crashes strike, also in the middle of moves.
//!
//! Invariants: never two live copies of the counter; no push handled twice, nor after a later
//! push of the same client (order per sender across moves, `OVERTAKEN`); every state the
//! counter is restored to is one it had (a snapshot it gave); and as long as neither actor was
//! started afresh nor from a checkpoint, both actors' own state carried through every move. A
//! crash, or a partition long enough for a lease to lapse, starts an actor elsewhere: afresh in
//! `migration` (failover without a snapshot: its state is lost), from its newest checkpoint in
//! `failover-state`, where the counter is declared with `checkpoint_every` and two platform
//! nodes keep its checkpoints (what it handled after that checkpoint is lost from its state).
//! Liveness: membership agrees, the counter runs on exactly one node, the client's last ask is
//! answered or timed out, and every push sent is handled, unless an actor was started afresh
//! or from a checkpoint, or a node let a peer go (declared it down: what the lanes to it still
//! held is lost, as BLUEPRINT section 10 says of a broken connection).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ClientMsg, CounterMsg, ASK_TIMEOUT, CLIENT_EVERY};
use crate::scenario::Scenario;
use crate::world::{probe, NodeSpec, Probe, ProbeData, World};
use aiot_runtime::prelude::*;

/// The counter's state, moved with it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Count {
    handled: u64,
}

/// Records each push it handles (`counter`) and its own count before it (`counter-state`),
/// each count it gives as a snapshot (`counter-snapshots`) and each it is restored to
/// (`counter-restored`).
struct StatefulCounter {
    count: Count,
    restored: bool,
    probe: Probe,
}

/// Counts a start without a moved state under `name` (the first start is one too).
fn count_fresh_start(probe_: &Probe, restored: bool, name: &'static str) {
    if !restored {
        *probe(probe_).counts.entry(name).or_insert(0) += 1;
    }
}

impl Actor for StatefulCounter {
    type Msg = CounterMsg;
    fn started(&mut self, _: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        count_fresh_start(&self.probe, self.restored, "counter fresh starts");
        Ok(())
    }
    fn handle(&mut self, msg: CounterMsg, ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Push(n) => {
                let mut probe = probe(&self.probe);
                let epochs = probe.seqs.get("sent epoch").cloned().unwrap_or_default();
                let epoch = epochs.get(n as usize).copied();
                let handled = probe.seqs.entry("counter").or_default();
                let twice = handled.contains(&n);
                // A later push of the same client incarnation handled before this one.
                let overtaken = handled.iter().any(|m| *m > n && epochs.get(*m as usize).copied() == epoch);
                handled.push(n);
                if twice {
                    *probe.counts.entry("handled twice").or_insert(0) += 1;
                }
                if overtaken {
                    *probe.counts.entry(OVERTAKEN).or_insert(0) += 1;
                }
                probe.seqs.entry("counter-state").or_default().push(self.count.handled);
                self.count.handled += 1;
            }
            CounterMsg::Get(reply) => {
                let _ = ctx.reply(&reply, self.count.handled);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        probe(&self.probe).seqs.entry("counter-snapshots").or_default().push(self.count.handled);
        Some(aiot_runtime::message::encode(&self.count))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.count = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        self.restored = true;
        probe(&self.probe).seqs.entry("counter-restored").or_default().push(self.count.handled);
        Ok(())
    }
}

/// The client's state, moved with it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Sent {
    /// The next number it pushes.
    next: u64,
    ticks: u64,
}

/// Every tick pushes the next number to the counter; every fifth also asks for the count
/// unless an ask is pending (an ask dies with the incarnation that made it: a moved client
/// starts with none). Numbers come from the probe's `sent` count, so they stay unique and
/// increasing when a fresh start loses the client's state; its own `next` must agree unless
/// one did (`client state lost` counts when it does not).
struct MovingClient {
    sent: Sent,
    asking: bool,
    restored: bool,
    counter: ActorRef<CounterMsg>,
    probe: Probe,
}

impl MovingClient {
    fn set_asking(&mut self, asking: bool) {
        self.asking = asking;
        probe(&self.probe).counts.insert("ask pending", u64::from(asking));
    }
}

impl Actor for MovingClient {
    type Msg = ClientMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, ClientMsg>) -> Result<(), ActorError> {
        count_fresh_start(&self.probe, self.restored, "client fresh starts");
        self.set_asking(false);
        ctx.schedule_every(CLIENT_EVERY, ClientMsg::Tick);
        Ok(())
    }
    fn handle(&mut self, msg: ClientMsg, ctx: &mut Ctx<'_, ClientMsg>) -> Result<(), ActorError> {
        let count = |name: &'static str| *probe(&self.probe).counts.entry(name).or_insert(0) += 1;
        match msg {
            ClientMsg::Tick => {
                let (healed, n) = {
                    let probe = probe(&self.probe);
                    (probe.healed, probe.counts.get("sent").copied().unwrap_or(0))
                };
                if healed {
                    return Ok(()); // faults have stopped: no new work, the rest must land
                }
                self.sent.ticks += 1;
                if self.sent.next != n {
                    count("client state lost");
                }
                if ctx.send(&self.counter, CounterMsg::Push(n)).is_ok() {
                    self.sent.next = n + 1;
                    count("sent");
                    let mut probe = probe(&self.probe);
                    let epoch = probe.counts.get("client fresh starts").copied().unwrap_or(0);
                    probe.seqs.entry("sent epoch").or_default().push(epoch);
                }
                if self.sent.ticks.is_multiple_of(5)
                    && !self.asking
                    && ctx.ask(&self.counter, CounterMsg::Get, ASK_TIMEOUT, ClientMsg::Answer).is_ok()
                {
                    count("asked");
                    self.set_asking(true);
                }
            }
            ClientMsg::Answer(answer) => {
                count(if answer.is_ok() { "answered" } else { "timed out" });
                self.set_asking(false);
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(aiot_runtime::message::encode(&self.sent))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.sent = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        self.restored = true;
        Ok(())
    }
}

/// The scenario, in its two variants.
pub struct Migration {
    name: &'static str,
    /// The counter's checkpoint period (`failover-state`).
    checkpoint_every: Option<Duration>,
}

impl Migration {
    /// Moves, and failover without state.
    pub const MOVES: Migration = Migration { name: "migration", checkpoint_every: None };
    /// Moves, and failover from the counter's checkpoints, kept by two platform nodes.
    pub const FAILOVER_STATE: Migration =
        Migration { name: "failover-state", checkpoint_every: Some(CHECKPOINT_EVERY) };
}

/// The counter's checkpoint period in `failover-state`.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Pushes handled after a later push of the same client incarnation (`sent epoch`: its fresh
/// starts so far): per-sender order broken. A push the client sent to the node a subtree is
/// leaving, which forwards it, could be overtaken by one sent straight to the target once the
/// client learnt where the counter went (seed 3 of this scenario showed it, 31 seeds of 200);
/// `aiot_cluster::relay` closes that race, and this is an invariant since.
pub const OVERTAKEN: &str = "overtaken";

/// Whether the counter or the client was started afresh after its first start (failover).
fn fresh_start_since_the_first(probe: &ProbeData) -> bool {
    ["counter fresh starts", "client fresh starts"]
        .iter()
        .any(|name| probe.counts.get(name).is_some_and(|n| *n > 1))
}

/// Whether some state was lost on the way: an actor started afresh or from a checkpoint.
fn state_lost(world: &World, probe: &ProbeData) -> bool {
    fresh_start_since_the_first(probe) || world.stats.restores > 0
}

fn counter_path() -> ActorPath {
    ActorPath::parse("/counter").expect("a path")
}

impl Scenario for Migration {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        match self.checkpoint_every {
            None => "a stateful counter and its client moved live between nodes under partitions, resets and crashes: never two live copies, no push twice or out of order, none lost and its state kept unless a node crashed",
            Some(_) => "the migration scenario with the counter checkpointed every second to two platform nodes: after a crash it starts elsewhere from its newest checkpoint, a state it really had; never two live copies, no push twice or out of order",
        }
    }
    fn nodes(&self) -> Vec<NodeSpec> {
        let mut nodes = vec![
            NodeSpec::new("inference-1", "tier=inference"),
            NodeSpec::new("inference-2", "tier=inference"),
            NodeSpec::new("inference-3", "tier=inference"),
            NodeSpec::new("things-1", "tier=things"),
            NodeSpec::new("things-2", "tier=things"),
        ];
        if self.checkpoint_every.is_some() {
            nodes.push(NodeSpec::new("platform-1", "tier=platform"));
            nodes.push(NodeSpec::new("platform-2", "tier=platform"));
        }
        nodes
    }
    fn topology(&self, probe: &Probe) -> Topology {
        let mut t = Topology::builder();
        let p = probe.clone();
        t.actor("/client", move |_| MovingClient {
            sent: Sent::default(),
            asking: false,
            restored: false,
            counter: ActorRef::parse("/counter").expect("a path"),
            probe: p.clone(),
        })
        .requires("tier=things");
        let p = probe.clone();
        let counter = t
            .actor("/counter", move |_| StatefulCounter {
                count: Count::default(),
                restored: false,
                probe: p.clone(),
            })
            .requires("tier=inference");
        if let Some(every) = self.checkpoint_every {
            counter.checkpoint_every(every);
        }
        t.build().expect("a valid topology")
    }
    fn faults(&self) -> &'static [&'static str] {
        &["move", "partition", "one-way cut", "crash", "clog", "reset"]
    }
    fn invariant(&self, world: &World) -> Result<(), String> {
        let running = world.running(&counter_path());
        if running.len() > 1 {
            return Err(format!("the counter is live on {running:?}"));
        }
        let probe = probe(world.probe());
        if let Some(twice) = probe.counts.get("handled twice") {
            return Err(format!("the counter handled {twice} pushes twice"));
        }
        // Unless a sender stopped waiting for its earlier frames (`FENCE_MAX`, or their node
        // was let go): then order is not guaranteed, and the totals count it.
        if let Some(overtaken) = probe.counts.get(OVERTAKEN).filter(|_| world.stats.fences_given_up == 0) {
            return Err(format!("{overtaken} pushes were handled after a later push of the same client"));
        }
        let seq = |name: &str| probe.seqs.get(name).map_or(&[][..], Vec::as_slice);
        let snapshots = seq("counter-snapshots");
        if let Some(unreal) = seq("counter-restored").iter().find(|r| !snapshots.contains(r)) {
            return Err(format!("the counter was restored to {unreal}, a count it never gave as a snapshot"));
        }
        if state_lost(world, &probe) {
            return Ok(());
        }
        if let Some(lost) = probe.counts.get("client state lost") {
            return Err(format!("the client's state was lost {lost} times"));
        }
        let states = probe.seqs.get("counter-state").map_or(&[][..], Vec::as_slice);
        match states.iter().enumerate().find(|(i, s)| **s != *i as u64) {
            Some((i, s)) => {
                Err(format!("the counter counted {s} before its message #{i}: its state was lost"))
            }
            None => Ok(()),
        }
    }
    fn live(&self, world: &World) -> bool {
        let probe = probe(world.probe());
        let count = |name: &str| probe.counts.get(name).copied().unwrap_or(0);
        let handled = probe.seqs.get("counter").map_or(0, Vec::len) as u64;
        let may_lose = state_lost(world, &probe) || world.stats.releases > 0;
        world.membership_agrees()
            && world.running(&counter_path()).len() == 1
            && count("ask pending") == 0
            && (may_lose || (count("sent") > 0 && handled == count("sent")))
    }
    fn totals(&self, world: &World) -> BTreeMap<&'static str, u64> {
        let probe = probe(world.probe());
        let count = |name: &str| probe.counts.get(name).copied().unwrap_or(0);
        let afresh = |name: &str| count(name).saturating_sub(1);
        BTreeMap::from([
            ("moves done", world.stats.moves_done),
            ("moves taken back", world.stats.moves_aborted),
            ("peers let go", world.stats.releases),
            ("pushes sent", count("sent")),
            ("pushes handled", probe.seqs.get("counter").map_or(0, Vec::len) as u64),
            ("pushes overtaken", count(OVERTAKEN)),
            ("fences given up", world.stats.fences_given_up),
            ("counter started afresh", afresh("counter fresh starts")),
            ("client started afresh", afresh("client fresh starts")),
            ("checkpoints", world.stats.checkpoints),
            ("started from a checkpoint", world.stats.restores),
        ])
    }
    fn not_live(&self, world: &World) -> String {
        let probe = probe(world.probe());
        format!(
            "membership agrees: {}; counter on {:?}; counts {:?}, counter handled {}",
            world.membership_agrees(),
            world.running(&counter_path()),
            probe.counts,
            probe.seqs.get("counter").map_or(0, Vec::len)
        )
    }
}
