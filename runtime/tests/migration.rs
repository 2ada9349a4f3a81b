//! Live migration's runtime half: a top-level subtree (a stateful parent and child) taken out
//! of one system mid-stream and started in another carries each actor's state and every
//! message that had reached its mailbox, so the sequence each actor handled across both
//! systems has no gap and no duplicate. Messages sent while it moves, and after, are routed
//! through the cluster's seam (`Remote`) to where it went. Also: a stateless actor moves with
//! its waiting messages and starts fresh; only top-level subtrees that run here move.
//! Checkpoints (the snapshots of a subtree that runs on) start a subtree elsewhere the same way.

use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::migration::MigrateError;
use aiot_runtime::prelude::*;
use aiot_runtime::{AnyCell, Remote, RemoteSendError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The way to the node a subtree moved to: every send that finds no local actor is carried.
#[derive(Default)]
struct Wire(Mutex<Vec<(ActorPath, Vec<u8>)>>);

impl Remote for Wire {
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
        self.0.lock().push((to.clone(), bytes));
        Ok(())
    }
    fn reply(&self, _node: &str, to: &ActorPath, _corr: u64, _bytes: Vec<u8>) -> Result<(), SendError> {
        Err(SendError::NoActor(to.clone()))
    }
    fn wait_for_room(&self, _to: &ActorPath, _waiter: Arc<dyn AnyCell>) -> bool {
        false
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum CountMsg {
    Add(u64),
    Seen(ReplyTo<Vec<u64>>),
}

/// Records every number it is sent, in order; its record is its state.
#[derive(Default)]
struct Counter {
    seen: Vec<u64>,
    stateful: bool,
}

impl Actor for Counter {
    type Msg = CountMsg;
    fn handle(&mut self, msg: CountMsg, ctx: &mut Ctx<'_, CountMsg>) -> Result<(), ActorError> {
        match msg {
            CountMsg::Add(n) => self.seen.push(n),
            CountMsg::Seen(reply) => {
                let _ = ctx.reply(&reply, self.seen.clone());
            }
        }
        Ok(())
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        self.stateful.then(|| aiot_runtime::message::encode(&self.seen))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.seen = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        Ok(())
    }
}

fn topology() -> Topology {
    let mut t = Topology::builder();
    t.actor("/bank", |_| Counter { stateful: true, ..Counter::default() });
    t.actor("/bank/ledger", |_| Counter { stateful: true, ..Counter::default() });
    t.actor("/cache", |_| Counter::default());
    t.build().unwrap()
}

fn counter(path: &str) -> ActorRef<CountMsg> {
    ActorRef::parse(path).unwrap()
}

fn seen(system: &mut DetSystem, path: &str) -> Vec<u64> {
    let mut reply = system.ask(&counter(path), CountMsg::Seen, Duration::from_secs(1)).unwrap();
    system.run_until(|_| false);
    reply.try_take().expect("answered").unwrap()
}

#[test]
fn a_stateful_subtree_moves_mid_stream_with_its_state_and_waiting_messages() {
    let topology = topology();
    for seed in 0..50 {
        let mut from = DetSystem::with_seed(seed);
        from.start(&topology).unwrap();
        for n in 0..100 {
            from.tell(&counter("/bank"), CountMsg::Add(n)).unwrap();
            from.tell(&counter("/bank/ledger"), CountMsg::Add(n)).unwrap();
            from.tell(&counter("/cache"), CountMsg::Add(n)).unwrap();
        }
        // Some of the messages are handled; the rest wait in the mailboxes.
        for _ in 0..(seed * 3) {
            from.step();
        }
        let mut bank = from.migrate_subtree(&ActorPath::parse("/bank").unwrap()).unwrap();
        let mut cache = from.migrate_subtree(&ActorPath::parse("/cache").unwrap()).unwrap();
        from.run_until_idle();
        let bank = bank.try_take().expect("the subtree stopped").unwrap();
        let cache = cache.try_take().expect("the subtree stopped").unwrap();
        assert!(from.core().lookup(&ActorPath::parse("/bank/ledger").unwrap()).is_none());
        assert_eq!(from.core().dead_letters(), 0, "seed {seed}: nothing is left behind");
        let order: Vec<&str> = bank.actors.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(order, ["/bank/ledger", "/bank"], "children stop before their parent");
        assert!(cache.actors[0].snapshot.is_none(), "a stateless actor gives no snapshot");

        let mut to = DetSystem::with_seed(seed + 1000);
        to.start_subtree_from(topology.get(&bank.root).unwrap(), bank).unwrap();
        let cache_handled_before_move = 100 - cache.pending_len() as u64;
        to.start_subtree_from(topology.get(&cache.root).unwrap(), cache).unwrap();
        // A child's mailbox exists once its parent has started.
        let ledger = ActorPath::parse("/bank/ledger").unwrap();
        assert!(to.run_until(|s| s.core().lookup(&ledger).is_some()));
        for n in 100..150 {
            to.tell(&counter("/bank"), CountMsg::Add(n)).unwrap();
            to.tell(&counter("/bank/ledger"), CountMsg::Add(n)).unwrap();
            to.tell(&counter("/cache"), CountMsg::Add(n)).unwrap();
        }
        to.run_until_idle();
        let all: Vec<u64> = (0..150).collect();
        assert_eq!(seen(&mut to, "/bank"), all, "seed {seed}: /bank lost, repeated or reordered");
        assert_eq!(seen(&mut to, "/bank/ledger"), all, "seed {seed}: /bank/ledger");
        // The stateless cache starts fresh, but handles every message that was waiting.
        let fresh: Vec<u64> = (cache_handled_before_move..150).collect();
        assert_eq!(seen(&mut to, "/cache"), fresh, "seed {seed}: /cache");
    }
}

#[test]
fn only_a_running_top_level_subtree_moves() {
    let mut system = DetSystem::with_seed(1);
    system.start(&topology()).unwrap();
    let child = ActorPath::parse("/bank/ledger").unwrap();
    assert_eq!(system.migrate_subtree(&child).err(), Some(MigrateError::NotTopLevel(child)));
    let absent = ActorPath::parse("/nowhere").unwrap();
    assert_eq!(system.migrate_subtree(&absent).err(), Some(MigrateError::NotHosted(absent)));
    // A handoff starts only the subtree it was taken from.
    let bank = ActorPath::parse("/bank").unwrap();
    let mut pending = system.migrate_subtree(&bank).unwrap();
    system.run_until_idle();
    let handoff = pending.try_take().unwrap().unwrap();
    let topology = topology();
    let cache = topology.get(&ActorPath::parse("/cache").unwrap()).unwrap();
    let mut other = DetSystem::with_seed(2);
    assert!(other.start_subtree_from(cache, handoff).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tokio_the_handoff_resolves_once_the_subtree_has_stopped() {
    let topology = topology();
    let from = TokioSystem::start(SystemConfig::with_seed(3));
    from.start_subtrees(&[topology.get(&ActorPath::parse("/bank").unwrap()).unwrap().clone()]).unwrap();
    for n in 0..1000 {
        from.tell(&counter("/bank"), CountMsg::Add(n)).unwrap();
    }
    let handoff = from.migrate_subtree(&ActorPath::parse("/bank").unwrap()).unwrap().await.unwrap();
    let to = TokioSystem::start(SystemConfig::with_seed(4));
    to.start_subtree_from(topology.get(&handoff.root).unwrap(), handoff).unwrap();
    let seen: Vec<u64> = to.ask(&counter("/bank"), CountMsg::Seen, Duration::from_secs(5)).await.unwrap();
    assert_eq!(seen, (0..1000).collect::<Vec<u64>>());
}

#[test]
fn messages_sent_while_and_after_it_moves_follow_it() {
    let topology = topology();
    for seed in 0..50 {
        let mut from = DetSystem::with_seed(seed);
        let wire = Arc::new(Wire::default());
        from.core().set_remote("a", wire.clone());
        from.start(&topology).unwrap();
        let mut sent = 0;
        let mut send = |system: &DetSystem, n: u64| {
            for _ in 0..n {
                system.tell(&counter("/bank"), CountMsg::Add(sent)).unwrap();
                sent += 1;
            }
        };
        send(&from, 100);
        for _ in 0..seed {
            from.step();
        }
        let mut pending = from.migrate_subtree(&ActorPath::parse("/bank").unwrap()).unwrap();
        // Sends go on while the subtree stops: each reaches the mailbox (and moves with it) or
        // finds it closed or gone (and takes the wire).
        let handoff = loop {
            send(&from, 3);
            from.step();
            if let Some(handoff) = pending.try_take() {
                break handoff.unwrap();
            }
        };
        send(&from, 50);
        assert_eq!(from.core().dead_letters(), 0, "seed {seed}");

        let mut to = DetSystem::with_seed(seed + 1000);
        to.start_subtree_from(topology.get(&handoff.root).unwrap(), handoff).unwrap();
        for (path, bytes) in wire.0.lock().drain(..) {
            assert_eq!(path.as_str(), "/bank");
            to.core().deliver_remote(&path, &bytes).unwrap();
        }
        to.run_until_idle();
        assert_eq!(seen(&mut to, "/bank"), (0..sent).collect::<Vec<u64>>(), "seed {seed}");
    }
}

/// An actor whose snapshot panics.
struct Fragile;

impl Actor for Fragile {
    type Msg = CountMsg;
    fn handle(&mut self, _msg: CountMsg, _ctx: &mut Ctx<'_, CountMsg>) -> Result<(), ActorError> {
        Ok(())
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        panic!("cannot encode its state")
    }
}

#[test]
fn a_checkpoint_takes_each_state_between_two_messages_and_the_subtree_runs_on() {
    let topology = topology();
    let bank = ActorPath::parse("/bank").unwrap();
    let ledger = ActorPath::parse("/bank/ledger").unwrap();
    for seed in 0..50 {
        let mut system = DetSystem::with_seed(seed);
        system.start(&topology).unwrap();
        for n in 0..100 {
            system.tell(&counter("/bank"), CountMsg::Add(n)).unwrap();
            system.tell(&counter("/bank/ledger"), CountMsg::Add(n)).unwrap();
        }
        for _ in 0..(seed * 3) {
            system.step();
        }
        let mut pending = system.checkpoint_subtree(&bank).unwrap();
        system.run_until_idle();
        let checkpoint = pending.try_take().expect("every actor answered").unwrap();
        let order: Vec<&str> = checkpoint.actors.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(order, ["/bank/ledger", "/bank"], "listed as a handoff lists them");
        assert!(checkpoint.actors.iter().all(|a| a.pending.is_empty()), "no message leaves the mailboxes");
        // Each part is a state the actor had: the numbers it handled so far, in order.
        let states: Vec<Vec<u64>> = checkpoint
            .actors
            .iter()
            .map(|a| aiot_runtime::message::decode(a.snapshot.as_ref().unwrap()).unwrap())
            .collect();
        for state in &states {
            assert_eq!(*state, (0..state.len() as u64).collect::<Vec<u64>>(), "seed {seed}");
        }
        // The subtree runs on, every message handled once.
        for n in 100..150 {
            system.tell(&counter("/bank"), CountMsg::Add(n)).unwrap();
        }
        system.run_until_idle();
        assert_eq!(seen(&mut system, "/bank"), (0..150).collect::<Vec<u64>>(), "seed {seed}");
        assert_eq!(system.core().dead_letters(), 0);
        // Elsewhere, the subtree starts from exactly the checkpointed states.
        let mut other = DetSystem::with_seed(seed + 1000);
        other.start_subtree_from(topology.get(&bank).unwrap(), checkpoint).unwrap();
        assert!(other.run_until(|s| s.core().lookup(&ledger).is_some()));
        assert_eq!(seen(&mut other, "/bank/ledger"), states[0], "seed {seed}");
        assert_eq!(seen(&mut other, "/bank"), states[1], "seed {seed}");
    }
}

#[test]
fn a_checkpoint_with_a_part_missing_fails_rather_than_yield_a_partial_state() {
    use aiot_runtime::checkpoint::CheckpointError;
    let mut t = Topology::builder();
    t.actor("/bank", |_| Counter { stateful: true, ..Counter::default() });
    t.actor("/bank/fragile", |_| Fragile);
    let topology = t.build().unwrap();
    let mut system = DetSystem::with_seed(5);
    system.start(&topology).unwrap();
    system.run_until_idle();
    let bank = ActorPath::parse("/bank").unwrap();
    let mut pending = system.checkpoint_subtree(&bank).unwrap();
    system.run_until_idle();
    let fragile = ActorPath::parse("/bank/fragile").unwrap();
    assert_eq!(pending.try_take(), Some(Err(CheckpointError::Missing(fragile.clone()))));
    // The panic is counted against the actor, which runs on.
    let failures = system.core().lookup(&fragile).unwrap().metrics().failures;
    assert_eq!(failures, 1);
    let child = ActorPath::parse("/bank/fragile").unwrap();
    assert_eq!(system.checkpoint_subtree(&child).err(), Some(CheckpointError::NotHosted(child)));
}

#[test]
fn checkpoints_are_declared_on_top_level_subtrees_at_a_positive_period() {
    let mut t = Topology::builder();
    t.actor("/bank", |_| Counter::default()).checkpoint_every(Duration::ZERO);
    t.actor("/bank/ledger", |_| Counter::default()).checkpoint_every(Duration::from_secs(1));
    let errors = t.build().err().expect("refused").to_string();
    assert!(errors.contains("/bank: checkpoint_every must be positive"), "{errors}");
    assert!(errors.contains("/bank/ledger: checkpoint_every applies to top-level subtrees only"), "{errors}");
    let mut t = Topology::builder();
    t.actor("/bank", |_| Counter::default()).checkpoint_every(Duration::from_secs(1));
    let topology = t.build().unwrap();
    let spec = topology.get(&ActorPath::parse("/bank").unwrap()).unwrap();
    assert_eq!(spec.checkpoint_every(), Some(Duration::from_secs(1)));
}
