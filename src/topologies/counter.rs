//! `counter`: a stateful counter under load, the subject of live migration. A load on the
//! platform tier sends numbered messages (10 every millisecond, a number used only once its
//! send succeeded) to a counter on the inference tier, which keeps which numbers it received
//! as its state (`snapshot`/`restore`): so a move (`aiot shell -c "move /counter NODE"`) that
//! lost a message shows as a number missing, and one that repeated a message as a duplicate.
//! The counter prints a line every 2000 numbers and when it starts from a moved state. It is
//! checkpointed every second: when its node fails, it starts elsewhere from the last
//! checkpoint (the numbers handled after it are then missing: a checkpoint keeps state, it
//! does not replay messages).

use std::collections::BTreeSet;
use std::time::Duration;

use aiot_runtime::prelude::*;
use serde::{Deserialize, Serialize};

const LOAD_EVERY: Duration = Duration::from_millis(1);
const LOAD_BURST: u64 = 10;
const PRINT_EVERY: u64 = 2000;
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

pub fn topology(node: &str) -> Topology {
    let mut t = Topology::builder();
    let here = node.to_string();
    t.actor("/counter", move |_| Counter { node: here.clone(), ..Counter::default() })
        .requires("tier=inference")
        .checkpoint_every(CHECKPOINT_EVERY);
    t.actor("/load", |_| Load { counter: ActorRef::parse("/counter").expect("valid path"), next: 0 })
        .requires("tier=platform");
    t.build().expect("the counter topology is valid")
}

#[derive(Debug, Serialize, Deserialize)]
pub enum CounterMsg {
    Number(u64),
}

/// What the counter received: every number below `next`, and those in `ahead`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Received {
    next: u64,
    ahead: BTreeSet<u64>,
    count: u64,
    duplicates: u64,
}

#[derive(Default)]
struct Counter {
    node: String,
    received: Received,
    restored: bool,
}

impl Actor for Counter {
    type Msg = CounterMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        if self.restored {
            let r = &self.received;
            println!(
                "counter: restored on {}: {} received, every number below {}, {} duplicates",
                self.node, r.count, r.next, r.duplicates
            );
        }
        Ok(())
    }

    fn handle(&mut self, msg: CounterMsg, _ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        let CounterMsg::Number(n) = msg;
        let r = &mut self.received;
        r.count += 1;
        if n < r.next || !r.ahead.insert(n) {
            r.duplicates += 1;
        }
        while r.ahead.remove(&r.next) {
            r.next += 1;
        }
        if r.count.is_multiple_of(PRINT_EVERY) {
            println!(
                "counter: on {}: {} received, every number below {}, {} duplicates",
                self.node, r.count, r.next, r.duplicates
            );
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(aiot_runtime::message::encode(&self.received))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.received = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        self.restored = true;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LoadMsg {
    Tick,
}

struct Load {
    counter: ActorRef<CounterMsg>,
    next: u64,
}

impl Actor for Load {
    type Msg = LoadMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, LoadMsg>) -> Result<(), ActorError> {
        ctx.schedule_every(LOAD_EVERY, LoadMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, _tick: LoadMsg, ctx: &mut Ctx<'_, LoadMsg>) -> Result<(), ActorError> {
        for _ in 0..LOAD_BURST {
            // Before the counter is placed a send fails: its number is used again.
            if ctx.send(&self.counter, CounterMsg::Number(self.next)).is_err() {
                return Ok(());
            }
            self.next += 1;
        }
        Ok(())
    }
}
