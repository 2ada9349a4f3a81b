//! The Savina kernels on aiot: `aiot_runtime::exec::tokio::TokioSystem` on a tokio
//! current_thread runtime. Sends are `ctx.send` inside actors and `system.tell` from the
//! harness; completion reaches the harness through a `Latch` held in the actor structs.

use std::sync::Arc;

use aiot_runtime::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    check, fork_join_expected, fork_join_work, Kernel, Latch, Measured, Sizes, Timer, KERNEL_TIMEOUT,
};

/// Runs one cell on a fresh tokio current_thread runtime (built as actix-rt builds its own) and
/// a fresh system.
pub fn run(kernel: Kernel, sizes: &Sizes, timer: Timer) -> Result<Measured, String> {
    let rt = super::current_thread_runtime()?;
    rt.block_on(async {
        let system = TokioSystem::start(SystemConfig::with_seed(1));
        let result = match kernel {
            Kernel::PingPong => ping_pong(&system, sizes.ping_pong_round_trips, timer).await,
            Kernel::Ring => ring(&system, sizes.ring_actors, sizes.ring_hops, timer).await,
            Kernel::Counting => counting(&system, sizes.counting_messages, timer).await,
            Kernel::ForkJoin => {
                fork_join(&system, sizes.fork_join_workers, sizes.fork_join_messages, timer).await
            }
            Kernel::Spawn => return spawn_rate(system, sizes.spawn_actors, timer).await,
            Kernel::Memory => memory(&system, sizes.idle_actors).await,
        };
        shutdown(&system).await?;
        result
    })
}

async fn shutdown(system: &TokioSystem) -> Result<(), String> {
    match tokio::time::timeout(KERNEL_TIMEOUT, system.shutdown()).await {
        Ok(_) => Ok(()),
        Err(_) => Err(format!("system.shutdown() not complete after {KERNEL_TIMEOUT:?}")),
    }
}

fn spawn<A: Actor>(system: &TokioSystem, name: &str, spec: ActorSpec<A>) -> Result<ActorRef<A::Msg>, String> {
    system.spawn(name, spec).map_err(|e| format!("spawn {name}: {e}"))
}

fn tell<M: aiot_runtime::Message>(system: &TokioSystem, to: &ActorRef<M>, msg: M) -> Result<(), String> {
    system.tell(to, msg).map_err(|e| format!("tell: {e}"))
}

// ---- ping-pong ------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum PingPongMsg {
    Start,
    Ball(u64),
}

struct Player {
    peer: ActorRef<PingPongMsg>,
    /// Round trips to play; 0 for the side that only answers.
    serve: u64,
    received: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Player {
    type Msg = PingPongMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, PingPongMsg>) -> Result<(), ActorError> {
        self.ready.arrive(0);
        Ok(())
    }

    fn handle(&mut self, msg: PingPongMsg, ctx: &mut Ctx<'_, PingPongMsg>) -> Result<(), ActorError> {
        match msg {
            PingPongMsg::Start => ctx.send(&self.peer, PingPongMsg::Ball(1))?,
            PingPongMsg::Ball(i) if self.serve == 0 => ctx.send(&self.peer, PingPongMsg::Ball(i))?,
            PingPongMsg::Ball(i) => {
                self.received += 1;
                if i != self.received {
                    self.done.fail(format!("ball {i} came back as number {}", self.received));
                } else if i == self.serve {
                    self.done.arrive(self.received);
                } else {
                    ctx.send(&self.peer, PingPongMsg::Ball(i + 1))?;
                }
            }
        }
        Ok(())
    }
}

async fn ping_pong(system: &TokioSystem, n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(2);
    let done = Latch::new(1);
    let player = |peer: &'static str, serve: u64| {
        let (ready, done) = (ready.clone(), done.clone());
        ActorSpec::new(move |_| Player {
            peer: ActorRef::parse(peer).expect("valid path"),
            serve,
            received: 0,
            ready: ready.clone(),
            done: done.clone(),
        })
    };
    let ping = spawn(system, "ping", player("/pong", n))?;
    spawn(system, "pong", player("/ping", 0))?;
    ready.wait("ping-pong start").await?;

    let window = timer.start();
    tell(system, &ping, PingPongMsg::Start)?;
    let received = done.wait("ping-pong").await?;
    let m = window.stop(2 * n);
    check("ping-pong balls returned", received, n)?;
    Ok(m)
}

// ---- thread ring ----------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum RingMsg {
    Token(u64),
}

struct Node {
    index: u64,
    next: ActorRef<RingMsg>,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Node {
    type Msg = RingMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, RingMsg>) -> Result<(), ActorError> {
        self.ready.arrive(0);
        Ok(())
    }

    fn handle(&mut self, msg: RingMsg, ctx: &mut Ctx<'_, RingMsg>) -> Result<(), ActorError> {
        let RingMsg::Token(left) = msg;
        if left == 0 {
            self.done.arrive(self.index);
        } else {
            ctx.send(&self.next, RingMsg::Token(left - 1))?;
        }
        Ok(())
    }
}

async fn ring(system: &TokioSystem, actors: usize, hops: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(actors as u64);
    let done = Latch::new(1);
    let mut first = None;
    for i in 0..actors {
        let next = format!("/ring-{}", (i + 1) % actors);
        let (ready, done) = (ready.clone(), done.clone());
        let spec = ActorSpec::new(move |_| Node {
            index: i as u64,
            next: ActorRef::parse(&next).expect("valid path"),
            ready: ready.clone(),
            done: done.clone(),
        });
        let node = spawn(system, &format!("ring-{i}"), spec)?;
        first.get_or_insert(node);
    }
    ready.wait("ring start").await?;
    let first = first.ok_or("a ring needs actors")?;

    let window = timer.start();
    tell(system, &first, RingMsg::Token(hops))?;
    let last = done.wait("ring").await?;
    let m = window.stop(hops);
    check("ring: index of the actor holding the token last", last, hops % actors as u64)?;
    Ok(m)
}

// ---- counting -------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Increment,
    Report,
}

struct Counter {
    total: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Counter {
    type Msg = CounterMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        self.ready.arrive(0);
        Ok(())
    }

    fn handle(&mut self, msg: CounterMsg, _ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Increment => self.total += 1,
            CounterMsg::Report => self.done.arrive(self.total),
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
enum ProducerMsg {
    Start,
}

struct Producer {
    counter: ActorRef<CounterMsg>,
    n: u64,
    ready: Arc<Latch>,
}

impl Actor for Producer {
    type Msg = ProducerMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, ProducerMsg>) -> Result<(), ActorError> {
        self.ready.arrive(0);
        Ok(())
    }

    fn handle(&mut self, _msg: ProducerMsg, ctx: &mut Ctx<'_, ProducerMsg>) -> Result<(), ActorError> {
        for _ in 0..self.n {
            ctx.send(&self.counter, CounterMsg::Increment)?;
        }
        ctx.send(&self.counter, CounterMsg::Report)?;
        Ok(())
    }
}

async fn counting(system: &TokioSystem, n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(2);
    let done = Latch::new(1);
    let (r, d) = (ready.clone(), done.clone());
    let counter_spec = ActorSpec::new(move |_| Counter { total: 0, ready: r.clone(), done: d.clone() })
        .mailbox(n as usize + 1, Overflow::Backpressure);
    let counter = spawn(system, "counter", counter_spec)?;
    let r = ready.clone();
    let producer = spawn(
        system,
        "producer",
        ActorSpec::new(move |_| Producer { counter: counter.clone(), n, ready: r.clone() }),
    )?;
    ready.wait("counting start").await?;

    let window = timer.start();
    tell(system, &producer, ProducerMsg::Start)?;
    let total = done.wait("counting").await?;
    let m = window.stop(n);
    check("counting: the counter's total", total, n)?;
    Ok(m)
}

// ---- fork-join throughput -------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum WorkerMsg {
    Work(u64),
}

struct Worker {
    n: u64,
    handled: u64,
    acc: f64,
    expected: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Worker {
    type Msg = WorkerMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, WorkerMsg>) -> Result<(), ActorError> {
        self.ready.arrive(0);
        Ok(())
    }

    fn handle(&mut self, msg: WorkerMsg, _ctx: &mut Ctx<'_, WorkerMsg>) -> Result<(), ActorError> {
        let WorkerMsg::Work(i) = msg;
        self.acc += fork_join_work(i);
        self.handled += 1;
        if self.handled == self.n {
            if self.acc.to_bits() == self.expected {
                self.done.arrive(self.handled);
            } else {
                self.done.fail("a worker's checksum differs (messages lost or reordered)");
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
enum SenderMsg {
    Start,
}

struct Sender {
    workers: Vec<ActorRef<WorkerMsg>>,
    n: u64,
    ready: Arc<Latch>,
}

impl Actor for Sender {
    type Msg = SenderMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, SenderMsg>) -> Result<(), ActorError> {
        self.ready.arrive(0);
        Ok(())
    }

    fn handle(&mut self, _msg: SenderMsg, ctx: &mut Ctx<'_, SenderMsg>) -> Result<(), ActorError> {
        for i in 0..self.n {
            for w in &self.workers {
                ctx.send(w, WorkerMsg::Work(i))?;
            }
        }
        Ok(())
    }
}

async fn fork_join(system: &TokioSystem, k: usize, n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(k as u64 + 1);
    let done = Latch::new(k as u64);
    let expected = fork_join_expected(n);
    let mut workers = Vec::with_capacity(k);
    for w in 0..k {
        let (r, d) = (ready.clone(), done.clone());
        let spec = ActorSpec::new(move |_| Worker {
            n,
            handled: 0,
            acc: 0.0,
            expected,
            ready: r.clone(),
            done: d.clone(),
        })
        .mailbox(n as usize, Overflow::Backpressure);
        workers.push(spawn(system, &format!("worker-{w}"), spec)?);
    }
    let r = ready.clone();
    let sender = spawn(
        system,
        "sender",
        ActorSpec::new(move |_| Sender { workers: workers.clone(), n, ready: r.clone() }),
    )?;
    ready.wait("fork-join start").await?;

    let window = timer.start();
    tell(system, &sender, SenderMsg::Start)?;
    let handled = done.wait("fork-join").await?;
    let m = window.stop(n * k as u64);
    check("fork-join: messages the workers handled", handled, n * k as u64)?;
    Ok(m)
}

// ---- spawn rate and idle memory -------------------------------------------------------------

#[derive(Serialize, Deserialize)]
enum IdleMsg {
    Wake,
}

struct Idle {
    started: Arc<Latch>,
    stopped: Arc<Latch>,
}

impl Actor for Idle {
    type Msg = IdleMsg;

    fn started(&mut self, _ctx: &mut Ctx<'_, IdleMsg>) -> Result<(), ActorError> {
        self.started.arrive(1);
        Ok(())
    }

    fn handle(&mut self, _msg: IdleMsg, _ctx: &mut Ctx<'_, IdleMsg>) -> Result<(), ActorError> {
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Ctx<'_, IdleMsg>) {
        self.stopped.arrive(1);
    }
}

fn spawn_idle(
    system: &TokioSystem,
    name: &str,
    started: &Arc<Latch>,
    stopped: &Arc<Latch>,
) -> Result<(), String> {
    let (s, t) = (started.clone(), stopped.clone());
    spawn(system, name, ActorSpec::new(move |_| Idle { started: s.clone(), stopped: t.clone() })).map(|_| ())
}

/// Creation rate (counted once every actor has run `started`), then stop rate (`shutdown`).
async fn spawn_rate(system: TokioSystem, n: u64, timer: Timer) -> Result<Measured, String> {
    let started = Latch::new(n);
    let stopped = Latch::new(n);

    let window = timer.start();
    for i in 0..n {
        spawn_idle(&system, &format!("idle-{i}"), &started, &stopped)?;
    }
    let count = started.wait("spawn").await?;
    let mut m = window.stop(n);
    check("spawn: actors started", count, n)?;

    let window = Timer { profile: false }.start();
    shutdown(&system).await?;
    let count = stopped.wait("stop").await?;
    let stop = window.stop(n);
    check("stop: actors stopped", count, n)?;
    m.extra = Some(stop.ops as f64 / stop.secs);
    Ok(m)
}

/// Live bytes per idle actor: spawn `n`, wait until all have started and gone idle.
async fn memory(system: &TokioSystem, n: u64) -> Result<Measured, String> {
    // One actor first, so one-time structures (tokio's, the registry's root) are not counted.
    let warm = Latch::new(1);
    spawn_idle(system, "warm", &warm, &Latch::new(1))?;
    warm.wait("memory warm-up").await?;
    super::settle().await;

    let started = Latch::new(n);
    let stopped = Latch::new(n);
    let window = Timer::counting().start();
    for i in 0..n {
        spawn_idle(system, &format!("idle-{i}"), &started, &stopped)?;
    }
    let count = started.wait("memory").await?;
    super::settle().await;
    let m = window.stop(n);
    check("memory: actors started", count, n)?;
    Ok(m)
}
