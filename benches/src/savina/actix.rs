//! The Savina kernels on actix 0.13: one `actix::System` (actix-rt 2: a tokio current_thread
//! runtime plus a `LocalSet`) per cell, `Addr::do_send` for every send, and the same message
//! flows, checks and `Latch` completion as the aiot kernels.

use std::sync::Arc;

use ::actix::prelude::*;

use super::{check, fork_join_expected, fork_join_work, Kernel, Latch, Measured, Sizes, Timer};

/// Runs one cell on a fresh `actix::System`.
pub fn run(kernel: Kernel, sizes: &Sizes, timer: Timer) -> Result<Measured, String> {
    let system = System::new();
    let sizes = sizes.clone();
    system.block_on(async move {
        match kernel {
            Kernel::PingPong => ping_pong(sizes.ping_pong_round_trips, timer).await,
            Kernel::Ring => ring(sizes.ring_actors, sizes.ring_hops, timer).await,
            Kernel::Counting => counting(sizes.counting_messages, timer).await,
            Kernel::ForkJoin => fork_join(sizes.fork_join_workers, sizes.fork_join_messages, timer).await,
            Kernel::Spawn => spawn(sizes.spawn_actors, timer).await,
            Kernel::Memory => memory(sizes.idle_actors).await,
        }
    })
}

// ---- ping-pong ------------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct SetPeer(Addr<Player>);

#[derive(Message)]
#[rtype(result = "()")]
struct Start;

#[derive(Message)]
#[rtype(result = "()")]
struct Ball(u64);

struct Player {
    peer: Option<Addr<Player>>,
    serve: u64,
    received: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Player {
    type Context = Context<Self>;
}

impl Handler<SetPeer> for Player {
    type Result = ();
    fn handle(&mut self, msg: SetPeer, _ctx: &mut Context<Self>) {
        self.peer = Some(msg.0);
        self.ready.arrive(0);
    }
}

impl Handler<Start> for Player {
    type Result = ();
    fn handle(&mut self, _msg: Start, _ctx: &mut Context<Self>) {
        if let Some(peer) = &self.peer {
            peer.do_send(Ball(1));
        }
    }
}

impl Handler<Ball> for Player {
    type Result = ();
    fn handle(&mut self, Ball(i): Ball, _ctx: &mut Context<Self>) {
        let Some(peer) = &self.peer else { return self.done.fail("no peer") };
        if self.serve == 0 {
            peer.do_send(Ball(i));
            return;
        }
        self.received += 1;
        if i != self.received {
            self.done.fail(format!("ball {i} came back as number {}", self.received));
        } else if i == self.serve {
            self.done.arrive(self.received);
        } else {
            peer.do_send(Ball(i + 1));
        }
    }
}

async fn ping_pong(n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(2);
    let done = Latch::new(1);
    let player = |serve| Player { peer: None, serve, received: 0, ready: ready.clone(), done: done.clone() };
    let ping = player(n).start();
    let pong = player(0).start();
    ping.do_send(SetPeer(pong.clone()));
    pong.do_send(SetPeer(ping.clone()));
    ready.wait("ping-pong start").await?;

    let window = timer.start();
    ping.do_send(Start);
    let received = done.wait("ping-pong").await?;
    let m = window.stop(2 * n);
    check("ping-pong balls returned", received, n)?;
    Ok(m)
}

// ---- thread ring ----------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct SetNext(Addr<Node>);

#[derive(Message)]
#[rtype(result = "()")]
struct Token(u64);

struct Node {
    index: u64,
    next: Option<Addr<Node>>,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Node {
    type Context = Context<Self>;
}

impl Handler<SetNext> for Node {
    type Result = ();
    fn handle(&mut self, msg: SetNext, _ctx: &mut Context<Self>) {
        self.next = Some(msg.0);
        self.ready.arrive(0);
    }
}

impl Handler<Token> for Node {
    type Result = ();
    fn handle(&mut self, Token(left): Token, _ctx: &mut Context<Self>) {
        if left == 0 {
            self.done.arrive(self.index);
        } else if let Some(next) = &self.next {
            next.do_send(Token(left - 1));
        }
    }
}

async fn ring(actors: usize, hops: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(actors as u64);
    let done = Latch::new(1);
    let nodes: Vec<Addr<Node>> = (0..actors)
        .map(|i| Node { index: i as u64, next: None, ready: ready.clone(), done: done.clone() }.start())
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        node.do_send(SetNext(nodes[(i + 1) % actors].clone()));
    }
    ready.wait("ring start").await?;

    let window = timer.start();
    nodes[0].do_send(Token(hops));
    let last = done.wait("ring").await?;
    let m = window.stop(hops);
    check("ring: index of the actor holding the token last", last, hops % actors as u64)?;
    Ok(m)
}

// ---- counting -------------------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct Increment;

#[derive(Message)]
#[rtype(result = "()")]
struct Report;

struct Counter {
    total: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Counter {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.ready.arrive(0);
    }
}

impl Handler<Increment> for Counter {
    type Result = ();
    fn handle(&mut self, _msg: Increment, _ctx: &mut Context<Self>) {
        self.total += 1;
    }
}

impl Handler<Report> for Counter {
    type Result = ();
    fn handle(&mut self, _msg: Report, _ctx: &mut Context<Self>) {
        self.done.arrive(self.total);
    }
}

struct Producer {
    counter: Addr<Counter>,
    n: u64,
    ready: Arc<Latch>,
}

impl Actor for Producer {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.ready.arrive(0);
    }
}

impl Handler<Start> for Producer {
    type Result = ();
    fn handle(&mut self, _msg: Start, _ctx: &mut Context<Self>) {
        for _ in 0..self.n {
            self.counter.do_send(Increment);
        }
        self.counter.do_send(Report);
    }
}

async fn counting(n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(2);
    let done = Latch::new(1);
    let counter = Counter { total: 0, ready: ready.clone(), done: done.clone() }.start();
    let producer = Producer { counter, n, ready: ready.clone() }.start();
    ready.wait("counting start").await?;

    let window = timer.start();
    producer.do_send(Start);
    let total = done.wait("counting").await?;
    let m = window.stop(n);
    check("counting: the counter's total", total, n)?;
    Ok(m)
}

// ---- fork-join throughput -------------------------------------------------------------------

#[derive(Message)]
#[rtype(result = "()")]
struct Work(u64);

struct Worker {
    n: u64,
    handled: u64,
    acc: f64,
    expected: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

impl Actor for Worker {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.ready.arrive(0);
    }
}

impl Handler<Work> for Worker {
    type Result = ();
    fn handle(&mut self, Work(i): Work, _ctx: &mut Context<Self>) {
        self.acc += fork_join_work(i);
        self.handled += 1;
        if self.handled == self.n {
            if self.acc.to_bits() == self.expected {
                self.done.arrive(self.handled);
            } else {
                self.done.fail("a worker's checksum differs (messages lost or reordered)");
            }
        }
    }
}

struct Sender {
    workers: Vec<Addr<Worker>>,
    n: u64,
    ready: Arc<Latch>,
}

impl Actor for Sender {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.ready.arrive(0);
    }
}

impl Handler<Start> for Sender {
    type Result = ();
    fn handle(&mut self, _msg: Start, _ctx: &mut Context<Self>) {
        for i in 0..self.n {
            for w in &self.workers {
                w.do_send(Work(i));
            }
        }
    }
}

async fn fork_join(k: usize, n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(k as u64 + 1);
    let done = Latch::new(k as u64);
    let expected = fork_join_expected(n);
    let workers: Vec<Addr<Worker>> = (0..k)
        .map(|_| {
            Worker { n, handled: 0, acc: 0.0, expected, ready: ready.clone(), done: done.clone() }.start()
        })
        .collect();
    let sender = Sender { workers, n, ready: ready.clone() }.start();
    ready.wait("fork-join start").await?;

    let window = timer.start();
    sender.do_send(Start);
    let handled = done.wait("fork-join").await?;
    let m = window.stop(n * k as u64);
    check("fork-join: messages the workers handled", handled, n * k as u64)?;
    Ok(m)
}

// ---- spawn rate and idle memory -------------------------------------------------------------

struct Idle {
    started: Arc<Latch>,
    stopped: Arc<Latch>,
}

impl Actor for Idle {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.started.arrive(1);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.stopped.arrive(1);
    }
}

/// Creation rate (counted once every actor has run `started`), then stop rate (every `Addr`
/// dropped; an actix actor stops when no address to it is left).
async fn spawn(n: u64, timer: Timer) -> Result<Measured, String> {
    let started = Latch::new(n);
    let stopped = Latch::new(n);
    let mut addrs = Vec::with_capacity(n as usize);

    let window = timer.start();
    for _ in 0..n {
        addrs.push(Idle { started: started.clone(), stopped: stopped.clone() }.start());
    }
    let count = started.wait("spawn").await?;
    let mut m = window.stop(n);
    check("spawn: actors started", count, n)?;

    let window = Timer { profile: false }.start();
    drop(addrs);
    let count = stopped.wait("stop").await?;
    let stop = window.stop(n);
    check("stop: actors stopped", count, n)?;
    m.extra = Some(stop.ops as f64 / stop.secs);
    Ok(m)
}

/// Live bytes per idle actor: start `n`, wait until all have started and gone idle.
async fn memory(n: u64) -> Result<Measured, String> {
    let warm_started = Latch::new(1);
    let warm = Idle { started: warm_started.clone(), stopped: Latch::new(1) }.start();
    warm_started.wait("memory warm-up").await?;
    super::settle().await;

    let started = Latch::new(n);
    let stopped = Latch::new(n);
    let mut addrs = Vec::with_capacity(n as usize);
    let window = Timer::counting().start();
    for _ in 0..n {
        addrs.push(Idle { started: started.clone(), stopped: stopped.clone() }.start());
    }
    let count = started.wait("memory").await?;
    super::settle().await;
    let m = window.stop(n);
    check("memory: actors started", count, n)?;
    drop((warm, addrs));
    stopped.wait("memory stop").await?;
    Ok(m)
}
