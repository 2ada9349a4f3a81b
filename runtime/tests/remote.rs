//! The remote seam: two deterministic systems joined by an in-test `Remote` that carries bytes,
//! the way the cluster's transport does. Sends and asks cross "nodes" through the same
//! `ActorRef` calls as local ones; bytes are decoded by the type the receiving path takes.

use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::prelude::*;
use aiot_runtime::{AnyCell, DeliveryError, Remote, RemoteSendError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// What crossed the in-test wire.
#[derive(Debug)]
enum Wire {
    Msg { to: ActorPath, bytes: Vec<u8> },
    Reply { origin: String, to: ActorPath, corr: u64, bytes: Vec<u8> },
}

/// Routes every non-local path to the other node, if it is listed there. The wire holds at
/// most `room` items (a full lane); senders parked on it are notified when `carry` empties it.
struct Link {
    hosts: Vec<ActorPath>,
    wire: Arc<Mutex<Vec<Wire>>>,
    room: usize,
    waiters: Arc<Mutex<Vec<Arc<dyn AnyCell>>>>,
}

impl Link {
    fn new(hosts: Vec<ActorPath>, wire: &Arc<Mutex<Vec<Wire>>>) -> Self {
        Link { hosts, wire: wire.clone(), room: usize::MAX, waiters: Arc::default() }
    }
}

impl Remote for Link {
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError> {
        if !self.hosts.contains(to) {
            return Err(RemoteSendError::NoRoute);
        }
        let mut wire = self.wire.lock();
        if wire.len() >= self.room {
            return Err(RemoteSendError::Full(bytes));
        }
        wire.push(Wire::Msg { to: to.clone(), bytes });
        Ok(())
    }
    fn wait_for_room(&self, _to: &ActorPath, waiter: Arc<dyn AnyCell>) -> bool {
        let wire = self.wire.lock();
        if wire.len() < self.room {
            return false;
        }
        self.waiters.lock().push(waiter);
        true
    }
    fn reply(&self, origin: &str, to: &ActorPath, corr: u64, bytes: Vec<u8>) -> Result<(), SendError> {
        self.wire.lock().push(Wire::Reply { origin: origin.to_string(), to: to.clone(), corr, bytes });
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(ReplyTo<u64>),
}

struct Counter(u64);

impl Actor for Counter {
    type Msg = CounterMsg;
    fn handle(&mut self, msg: CounterMsg, ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Add(n) => self.0 += n,
            CounterMsg::Get(to) => {
                ctx.reply(&to, self.0).map_err(|e| ActorError::new(e.to_string()))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum AskerMsg {
    Go,
    Got(Result<u64, AskError>),
}

struct Asker {
    counter: ActorRef<CounterMsg>,
    got: Arc<Mutex<Vec<Result<u64, AskError>>>>,
}

impl Actor for Asker {
    type Msg = AskerMsg;
    fn handle(&mut self, msg: AskerMsg, ctx: &mut Ctx<'_, AskerMsg>) -> Result<(), ActorError> {
        match msg {
            AskerMsg::Go => {
                for n in 1..=3 {
                    ctx.send(&self.counter, CounterMsg::Add(n))
                        .map_err(|e| ActorError::new(e.to_string()))?;
                }
                ctx.ask(&self.counter, CounterMsg::Get, Duration::from_secs(1), AskerMsg::Got)
                    .map_err(|e| ActorError::new(e.to_string()))?;
            }
            AskerMsg::Got(result) => self.got.lock().push(result),
        }
        Ok(())
    }
}

/// Moves what is on the wire into the node it is for; returns how many items moved.
fn carry(wire: &Arc<Mutex<Vec<Wire>>>, a: (&str, &DetSystem), b: (&str, &DetSystem)) -> usize {
    let items: Vec<Wire> = std::mem::take(&mut *wire.lock());
    let n = items.len();
    for item in items {
        match item {
            Wire::Msg { to, bytes } => {
                // The in-test router only knows the counter, which lives on b.
                b.1.core().deliver_remote(&to, &bytes).unwrap();
            }
            Wire::Reply { origin, to, corr, bytes } => {
                let node = if origin == a.0 { a.1 } else { b.1 };
                node.core().deliver_remote_reply(&to, corr, &bytes).unwrap();
            }
        }
    }
    n
}

#[test]
fn sends_and_asks_cross_nodes_through_the_same_refs() {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut a = DetSystem::with_seed(1);
    let mut b = DetSystem::with_seed(1);
    let counter_path = ActorPath::parse("/counter").unwrap();
    a.core().set_remote("a", Arc::new(Link::new(vec![counter_path.clone()], &wire)));
    b.core().set_remote("b", Arc::new(Link::new(vec![], &wire)));
    let counter = b.spawn("counter", ActorSpec::new(|_| Counter(0))).unwrap();
    let remote_counter = ActorRef::<CounterMsg>::new(counter_path.clone());
    let asker_got = got.clone();
    let asker = a
        .spawn(
            "asker",
            ActorSpec::new(move |_| Asker { counter: remote_counter.clone(), got: asker_got.clone() }),
        )
        .unwrap();
    a.tell(&asker, AskerMsg::Go).unwrap();
    // Run in short slices: idling would let the virtual clock jump to the ask's timeout.
    let slice = Duration::from_millis(1);
    for _ in 0..4 {
        a.run_for(slice);
        b.run_for(slice);
        carry(&wire, ("a", &a), ("b", &b));
    }
    assert_eq!(*got.lock(), vec![Ok(6)]);
    // An ask from outside any actor, on node a, to the counter on node b.
    let mut pending =
        a.ask(&ActorRef::<CounterMsg>::new(counter_path), CounterMsg::Get, Duration::from_secs(1)).unwrap();
    carry(&wire, ("a", &a), ("b", &b));
    b.run_for(slice);
    carry(&wire, ("a", &a), ("b", &b));
    a.run_for(slice);
    assert_eq!(pending.try_take(), Some(Ok(6)));
    drop(counter);
}

#[test]
fn unknown_paths_and_wrong_bytes_are_refused_and_counted() {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let mut a = DetSystem::with_seed(2);
    a.core().set_remote("a", Arc::new(Link::new(vec![], &wire)));
    // No node hosts it: a dead letter, nothing on the wire.
    let nowhere = ActorRef::<CounterMsg>::parse("/nowhere").unwrap();
    assert_eq!(a.tell(&nowhere, CounterMsg::Add(1)), Err(SendError::NoActor(nowhere.path().clone())));
    assert!(wire.lock().is_empty());
    assert_eq!(a.core().dead_letters(), 1);
    // Bytes for a path this node does not host, and bytes of the wrong shape.
    let missing = ActorPath::parse("/counter").unwrap();
    let bytes = aiot_runtime::message::encode(&CounterMsg::Add(1));
    assert_eq!(a.core().deliver_remote(&missing, &bytes), Err(DeliveryError::NoActor(missing.clone())));
    assert_eq!(a.core().dead_letters(), 2);
    let counter = a.spawn("counter", ActorSpec::new(|_| Counter(0))).unwrap();
    a.run_until_idle();
    let garbage = [0xff, 0xff, 0xff];
    assert!(matches!(a.core().deliver_remote(counter.path(), &garbage), Err(DeliveryError::Decode { .. })));
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(a.core().deliver_remote(counter.path(), &trailing), Err(DeliveryError::Decode { .. })));
    assert_eq!(a.core().deliver_remote(counter.path(), &bytes), Ok(()));
}

#[test]
fn a_full_way_to_another_node_parks_the_sender_and_loses_nothing() {
    let wire = Arc::new(Mutex::new(Vec::new()));
    let got = Arc::new(Mutex::new(Vec::new()));
    let mut a = DetSystem::with_seed(3);
    let mut b = DetSystem::with_seed(3);
    let counter_path = ActorPath::parse("/counter").unwrap();
    let link = Arc::new(Link { room: 2, ..Link::new(vec![counter_path.clone()], &wire) });
    a.core().set_remote("a", link.clone());
    b.core().set_remote("b", Arc::new(Link::new(vec![], &wire)));
    b.spawn("counter", ActorSpec::new(|_| Counter(0))).unwrap();
    let remote_counter = ActorRef::<CounterMsg>::new(counter_path);
    let asker_got = got.clone();
    let asker = a
        .spawn(
            "asker",
            ActorSpec::new(move |_| Asker { counter: remote_counter.clone(), got: asker_got.clone() }),
        )
        .unwrap();
    a.tell(&asker, AskerMsg::Go).unwrap();
    let slice = Duration::from_millis(1);
    a.run_for(slice);
    // Room for two: the third Add and the ask wait in the asker's outbox, in order.
    assert_eq!(wire.lock().len(), 2);
    assert_eq!(link.waiters.lock().len(), 1, "the asker is parked on the full way");
    for _ in 0..6 {
        carry(&wire, ("a", &a), ("b", &b));
        for waiter in std::mem::take(&mut *link.waiters.lock()) {
            waiter.notify();
        }
        a.run_for(slice);
        b.run_for(slice);
    }
    assert_eq!(*got.lock(), vec![Ok(6)], "1 + 2 + 3 arrived, in order, before the ask");
    assert_eq!(a.core().dead_letters(), 0);
}
