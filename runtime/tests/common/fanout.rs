//! A workload whose messages do not depend on the seed: producers send numbered messages to a
//! hub that fans them out to sinks; a flaky actor fails on fixed inputs and is restarted. Only
//! the delivery order differs between seeds; the totals never do.

use std::time::Duration;

use aiot_runtime::prelude::*;
use serde::{Deserialize, Serialize};

pub const PRODUCERS: u32 = 8;
pub const PER_PRODUCER: u32 = 20;
pub const SINKS: u32 = 4;
/// The flaky actor fails on these inputs (so it is restarted twice).
pub const FLAKY_FAILS_ON: [u32; 2] = [5, 12];
pub const FLAKY_INPUTS: u32 = 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    Go,
    Num { from: u32, seq: u32 },
    Report(ReplyTo<(u64, u64)>),
}

pub struct Producer {
    id: u32,
    hub: ActorRef<Msg>,
}

pub struct Hub {
    sinks: Vec<ActorRef<Msg>>,
    flaky: ActorRef<Msg>,
}

pub struct Sink {
    sum: u64,
    count: u64,
}

impl Actor for Producer {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Ctx<'_, Msg>) -> Result<(), ActorError> {
        if let Msg::Go = msg {
            for seq in 0..PER_PRODUCER {
                ctx.send(&self.hub, Msg::Num { from: self.id, seq })?;
            }
        }
        Ok(())
    }
}

impl Actor for Hub {
    type Msg = Msg;
    fn started(&mut self, ctx: &mut Ctx<'_, Msg>) -> Result<(), ActorError> {
        ctx.schedule_once(Duration::from_millis(5), Msg::Go);
        Ok(())
    }
    fn handle(&mut self, msg: Msg, ctx: &mut Ctx<'_, Msg>) -> Result<(), ActorError> {
        match msg {
            Msg::Num { from, seq } => {
                let sink = &self.sinks[((from + seq) % SINKS) as usize];
                ctx.send(sink, Msg::Num { from, seq })?;
            }
            Msg::Go => {
                for seq in 0..FLAKY_INPUTS {
                    ctx.send(&self.flaky, Msg::Num { from: 0, seq })?;
                }
            }
            Msg::Report(_) => {}
        }
        Ok(())
    }
}

impl Actor for Sink {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Ctx<'_, Msg>) -> Result<(), ActorError> {
        match msg {
            Msg::Num { from, seq }
                if FLAKY_FAILS_ON.contains(&seq) && from == 0 && ctx.path().name() == "flaky" =>
            {
                return Err(ActorError::new(format!("flaky fails on {seq}")));
            }
            Msg::Num { from, seq } => {
                self.sum += u64::from(from) * 1000 + u64::from(seq);
                self.count += 1;
            }
            Msg::Report(reply_to) => ctx.reply(&reply_to, (self.sum, self.count))?,
            Msg::Go => {}
        }
        Ok(())
    }
}

/// The workload's topology.
pub fn topology() -> Topology {
    let mut t = Topology::builder();
    t.supervisor("/w", SupervisorSpec::one_for_one().intensity(10, Duration::from_secs(1)));
    for s in 0..SINKS {
        t.actor(&format!("/w/sink{s}"), |_| Sink { sum: 0, count: 0 }).mailbox(4, Overflow::Backpressure);
    }
    t.actor("/w/flaky", |_| Sink { sum: 0, count: 0 });
    t.actor("/w/hub", |_| Hub {
        sinks: (0..SINKS).map(|s| ActorRef::parse(&format!("/w/sink{s}")).unwrap()).collect(),
        flaky: ActorRef::parse("/w/flaky").unwrap(),
    })
    .mailbox(8, Overflow::Backpressure);
    for p in 0..PRODUCERS {
        t.actor(&format!("/w/p{p}"), move |_| Producer {
            id: p + 1,
            hub: ActorRef::parse("/w/hub").unwrap(),
        });
    }
    t.build().expect("valid topology")
}

pub fn producers() -> Vec<ActorRef<Msg>> {
    (0..PRODUCERS).map(|p| ActorRef::parse(&format!("/w/p{p}")).unwrap()).collect()
}

pub fn reporters() -> Vec<ActorRef<Msg>> {
    let mut refs: Vec<_> = (0..SINKS).map(|s| ActorRef::parse(&format!("/w/sink{s}")).unwrap()).collect();
    refs.push(ActorRef::parse("/w/flaky").unwrap());
    refs
}

/// What the workload must end with, whatever the interleaving.
pub fn expected_totals() -> Vec<(u64, u64)> {
    let mut sinks = vec![(0u64, 0u64); SINKS as usize];
    for from in 1..=PRODUCERS {
        for seq in 0..PER_PRODUCER {
            let s = &mut sinks[((from + seq) % SINKS) as usize];
            s.0 += u64::from(from) * 1000 + u64::from(seq);
            s.1 += 1;
        }
    }
    let last_fail = *FLAKY_FAILS_ON.iter().max().unwrap();
    let after: Vec<u64> = (last_fail + 1..FLAKY_INPUTS).map(u64::from).collect();
    sinks.push((after.iter().sum(), after.len() as u64));
    sinks
}

/// Runs the workload under the deterministic executor; returns (trace hash, totals, restarts).
pub fn run_det(seed: u64) -> (u64, Vec<(u64, u64)>, usize) {
    let mut system = DetSystem::with_seed(seed);
    system.start(&topology()).unwrap();
    for p in producers() {
        system.tell(&p, Msg::Go).unwrap();
    }
    system.run_until_idle();
    let mut totals = Vec::new();
    for r in reporters() {
        let mut pending = system.ask(&r, Msg::Report, Duration::from_secs(1)).unwrap();
        system.run_until_idle();
        totals.push(pending.try_take().unwrap().unwrap());
    }
    let restarts = crate::common::restarts_of(&system.core().events(), "/w/flaky");
    (system.trace_hash(), totals, restarts)
}
