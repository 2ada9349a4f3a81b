//! Mailbox overflow policies and their counters, FIFO per (sender, receiver) pair under both
//! executors, and sends to actors that are gone.

mod common;

use std::time::Duration;

use aiot_runtime::prelude::*;
use aiot_runtime::MetricsSnapshot;
use common::*;
use serde::{Deserialize, Serialize};

/// Records every number it receives, tagged by sender.
struct Recorder {
    log: Log,
}

#[derive(Debug, Serialize, Deserialize)]
enum Rec {
    Num { from: u32, seq: u32 },
}

impl Actor for Recorder {
    type Msg = Rec;
    fn handle(&mut self, msg: Rec, _ctx: &mut Ctx<'_, Rec>) -> Result<(), ActorError> {
        let Rec::Num { from, seq } = msg;
        self.log.lock().push(format!("{from}:{seq}"));
        Ok(())
    }
}

fn recorder(log: &Log, capacity: usize, overflow: Overflow) -> ActorSpec<Recorder> {
    let log = log.clone();
    ActorSpec::new(move |_| Recorder { log: log.clone() }).mailbox(capacity, overflow)
}

fn metrics_of(system: &DetSystem, path: &str) -> MetricsSnapshot {
    system.core().lookup(&ActorPath::parse(path).unwrap()).expect("live").metrics()
}

#[test]
fn drop_oldest_keeps_the_newest_and_counts_the_drops() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    let r = system.spawn("r", recorder(&log, 4, Overflow::DropOldest)).unwrap();
    system.run_until_idle();
    for seq in 0..10 {
        system.tell(&r, Rec::Num { from: 0, seq }).expect("drop-oldest never refuses");
    }
    let m = metrics_of(&system, "/r");
    assert_eq!((m.dropped_oldest, m.depth, m.depth_max), (6, 4, 4));
    system.run_until_idle();
    assert_eq!(*log.lock(), ["0:6", "0:7", "0:8", "0:9"]);
    assert_eq!(metrics_of(&system, "/r").handled, 4);
}

#[test]
fn reject_returns_an_error_to_the_sender_and_counts_it() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    let r = system.spawn("r", recorder(&log, 4, Overflow::Reject)).unwrap();
    system.run_until_idle();
    let results: Vec<_> = (0..10).map(|seq| system.tell(&r, Rec::Num { from: 0, seq })).collect();
    let refused = results.iter().filter(|r| matches!(r, Err(SendError::MailboxFull(_)))).count();
    assert_eq!(refused, 6);
    assert_eq!(metrics_of(&system, "/r").rejected, 6);
    system.run_until_idle();
    assert_eq!(*log.lock(), ["0:0", "0:1", "0:2", "0:3"]);
}

/// Sends `count` numbers to `to` in one handler, then logs when it handles its next message.
struct Burst {
    to: ActorRef<Rec>,
    id: u32,
    count: u32,
    log: Log,
    refused: u32,
}

#[derive(Debug, Serialize, Deserialize)]
enum BurstMsg {
    Go,
    Next,
}

impl Actor for Burst {
    type Msg = BurstMsg;
    fn handle(&mut self, msg: BurstMsg, ctx: &mut Ctx<'_, BurstMsg>) -> Result<(), ActorError> {
        match msg {
            BurstMsg::Go => {
                for seq in 0..self.count {
                    if ctx.send(&self.to, Rec::Num { from: self.id, seq }).is_err() {
                        self.refused += 1;
                    }
                }
                self.log.lock().push(format!("burst{}:refused={}", self.id, self.refused));
            }
            BurstMsg::Next => self.log.lock().push(format!("next{}", self.id)),
        }
        Ok(())
    }
}

fn burst(to: &str, id: u32, count: u32, log: &Log) -> ActorSpec<Burst> {
    let (to, log) = (ActorRef::parse(to).unwrap(), log.clone());
    ActorSpec::new(move |_| Burst { to: to.clone(), id, count, log: log.clone(), refused: 0 })
}

#[test]
fn backpressure_parks_the_sender_until_its_outbox_drains() {
    for seed in 0..20 {
        let log = log();
        let mut system = DetSystem::with_seed(seed);
        system.spawn("r", recorder(&log, 4, Overflow::Backpressure)).unwrap();
        let b = system.spawn("b", burst("/r", 1, 10, &log)).unwrap();
        system.run_until_idle();
        system.tell(&b, BurstMsg::Go).unwrap();
        system.tell(&b, BurstMsg::Next).unwrap();
        system.run_until_idle();
        let lines = log.lock().clone();
        let received: Vec<&String> = lines.iter().filter(|l| l.starts_with("1:")).collect();
        assert_eq!(received.len(), 10, "seed {seed}: nothing lost under backpressure: {lines:?}");
        let next_at = lines.iter().position(|l| l == "next1").unwrap();
        let before_next = lines[..next_at].iter().filter(|l| l.starts_with("1:")).count();
        assert!(before_next >= 6, "seed {seed}: the sender ran again before its outbox drained: {lines:?}");
        assert!(lines.contains(&"burst1:refused=0".to_string()));
        assert!(metrics_of(&system, "/r").parked >= 1, "seed {seed}");
    }
}

#[test]
fn reject_from_an_actor_comes_back_as_an_error() {
    let log = log();
    let mut system = DetSystem::with_seed(5);
    system.spawn("r", recorder(&log, 4, Overflow::Reject)).unwrap();
    let b = system.spawn("b", burst("/r", 1, 10, &log)).unwrap();
    system.run_until_idle();
    system.tell(&b, BurstMsg::Go).unwrap();
    system.run_until_idle();
    assert!(log.lock().contains(&"burst1:refused=6".to_string()), "{:?}", log.lock());
}

#[test]
fn external_send_to_a_full_backpressure_mailbox_is_refused_not_blocked() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    let r = system.spawn("r", recorder(&log, 2, Overflow::Backpressure)).unwrap();
    system.run_until_idle();
    assert!(system.tell(&r, Rec::Num { from: 0, seq: 0 }).is_ok());
    assert!(system.tell(&r, Rec::Num { from: 0, seq: 1 }).is_ok());
    assert_eq!(system.tell(&r, Rec::Num { from: 0, seq: 2 }), Err(SendError::MailboxFull(r.path().clone())));
}

/// Checks that every sender's sequence arrives in order; counts all it got.
fn assert_fifo(lines: &[String], senders: u32, per_sender: u32) {
    let mut next = vec![0u32; senders as usize];
    for line in lines.iter().filter(|l| !l.starts_with("burst")) {
        let (from, seq) = line.split_once(':').unwrap();
        let (from, seq): (usize, u32) = (from.parse::<usize>().unwrap() - 1, seq.parse().unwrap());
        assert_eq!(seq, next[from], "sender {from} out of order: {lines:?}");
        next[from] += 1;
    }
    assert!(next.iter().all(|&n| n == per_sender), "{next:?}");
}

#[test]
fn fifo_per_pair_under_the_deterministic_executor() {
    for seed in 0..50 {
        let log = log();
        let mut system = DetSystem::with_seed(seed);
        system.spawn("r", recorder(&log, 3, Overflow::Backpressure)).unwrap();
        let senders: Vec<_> =
            (1..=5).map(|i| system.spawn(&format!("s{i}"), burst("/r", i, 40, &log)).unwrap()).collect();
        system.run_until_idle();
        for s in &senders {
            system.tell(s, BurstMsg::Go).unwrap();
        }
        system.run_until_idle();
        assert_fifo(&log.lock(), 5, 40);
    }
}

#[test]
fn fifo_per_pair_under_tokio() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let log = log();
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        system.spawn("r", recorder(&log, 3, Overflow::Backpressure)).unwrap();
        let senders: Vec<_> =
            (1..=5).map(|i| system.spawn(&format!("s{i}"), burst("/r", i, 2000, &log)).unwrap()).collect();
        while system.core().paths().len() < 6 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for s in &senders {
            system.tell(s, BurstMsg::Go).unwrap();
        }
        while log.lock().len() < 5 * 2000 + 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_fifo(&log.lock(), 5, 2000);
        system.shutdown().await;
    });
}

#[test]
fn sends_to_a_stopped_actor_are_errors_and_dead_letters_never_panics() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    let w = system.spawn("w", Worker::spec("w", &log).restart(Restart::Temporary)).unwrap();
    system.run_until_idle();
    system.tell(&w, Cmd::Stop).unwrap();
    system.run_until_idle();
    let before = system.core().dead_letters();
    assert_eq!(system.tell(&w, Cmd::Add(1)), Err(SendError::NoActor(w.path().clone())));
    let nobody = ActorRef::<Cmd>::parse("/nobody").unwrap();
    assert_eq!(system.tell(&nobody, Cmd::Add(1)), Err(SendError::NoActor(nobody.path().clone())));
    assert_eq!(system.core().dead_letters(), before + 2);
    let wrong = ActorRef::<u8>::parse("/r").unwrap();
    system.spawn("r", recorder(&log, 4, Overflow::Reject)).unwrap();
    system.run_until_idle();
    assert!(matches!(system.tell(&wrong, 1u8), Err(SendError::WrongType { .. })));
}

/// Sends `burst` messages to `to` for every message it handles; says when it stops.
struct Flood {
    to: ActorRef<u32>,
    burst: u32,
    log: Log,
}

impl Actor for Flood {
    type Msg = u32;
    fn handle(&mut self, n: u32, ctx: &mut Ctx<'_, u32>) -> Result<(), ActorError> {
        for i in 0..self.burst {
            // Once its peer has stopped, sends are dead letters, not a failure.
            let _ = ctx.send(&self.to, n + i);
        }
        Ok(())
    }
    fn stopped(&mut self, ctx: &mut Ctx<'_, u32>) {
        self.log.lock().push(format!("{} stopped", ctx.path()));
    }
}

/// Two actors blocked on each other's full mailbox (a deadlock of backpressure, as a lane to
/// an unreachable node makes): stopping one must not wait for room that never comes. (Found by
/// the `bridge` simulation: a node told to stop its subtree kept a blocked copy half-stopped,
/// and local sends went into it.)
#[test]
fn an_actor_blocked_on_a_full_mailbox_still_stops_when_told() {
    let log = log();
    let mut system = DetSystem::with_seed(1);
    let flood = |to: &str| {
        let (to, log) = (ActorRef::parse(to).unwrap(), log.clone());
        ActorSpec::new(move |_| Flood { to: to.clone(), burst: 8, log: log.clone() })
            .mailbox(1, Overflow::Backpressure)
    };
    let a = system.spawn("a", flood("/b")).unwrap();
    system.spawn("b", flood("/a")).unwrap();
    system.run_until_idle();
    system.tell(&a, 0).unwrap();
    system.run_until_idle();
    assert!(log.lock().is_empty(), "deadlocked, nothing stopped: {:?}", log.lock());
    assert!(system.stop_subtree(a.path()));
    system.run_until_idle();
    assert_eq!(*log.lock(), ["/a stopped"]);
    assert!(system.core().lookup(a.path()).is_none(), "its mailbox closed and left the registry");
}
