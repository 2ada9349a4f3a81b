//! The Savina kernels on ractor 0.16 on a tokio current_thread runtime (ractor runs there: it
//! only needs `tokio::spawn`). Sends are `ActorRef::cast` (unbounded); the message flows, checks
//! and `Latch` completion are the same as the aiot kernels.

use std::sync::Arc;

use ::ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{check, fork_join_expected, fork_join_work, Kernel, Latch, Measured, Sizes, Timer};

/// Runs one cell on a fresh tokio current_thread runtime (built as actix-rt builds its own).
pub fn run(kernel: Kernel, sizes: &Sizes, timer: Timer) -> Result<Measured, String> {
    let rt = super::current_thread_runtime()?;
    rt.block_on(async {
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

async fn start<A: Actor>(actor: A, args: A::Arguments) -> Result<ActorRef<A::Msg>, String> {
    let (aref, _handle) = Actor::spawn(None, actor, args).await.map_err(|e| format!("spawn: {e}"))?;
    Ok(aref)
}

/// A cast that reports failure through the kernel's latch (a ractor handler error would only
/// stop the actor).
fn cast<M: ::ractor::Message>(to: &ActorRef<M>, msg: M, done: &Latch) {
    if to.send_message(msg).is_err() {
        done.fail("cast to a stopped actor");
    }
}

fn stop_all<M: ::ractor::Message>(refs: &[ActorRef<M>]) {
    for r in refs {
        r.stop(None);
    }
}

// ---- ping-pong ------------------------------------------------------------------------------

enum PingPongMsg {
    SetPeer(ActorRef<PingPongMsg>),
    Start,
    Ball(u64),
}

struct Player {
    peer: Option<ActorRef<PingPongMsg>>,
    serve: u64,
    received: u64,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

struct PlayerActor;

impl Actor for PlayerActor {
    type Msg = PingPongMsg;
    type State = Player;
    type Arguments = Player;

    async fn pre_start(
        &self,
        _me: ActorRef<PingPongMsg>,
        args: Player,
    ) -> Result<Player, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _me: ActorRef<PingPongMsg>,
        msg: PingPongMsg,
        s: &mut Player,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PingPongMsg::SetPeer(peer) => {
                s.peer = Some(peer);
                s.ready.arrive(0);
            }
            PingPongMsg::Start => match &s.peer {
                Some(peer) => cast(peer, PingPongMsg::Ball(1), &s.done),
                None => s.done.fail("no peer"),
            },
            PingPongMsg::Ball(i) => {
                let Some(peer) = &s.peer else {
                    s.done.fail("no peer");
                    return Ok(());
                };
                if s.serve == 0 {
                    cast(peer, PingPongMsg::Ball(i), &s.done);
                    return Ok(());
                }
                s.received += 1;
                if i != s.received {
                    s.done.fail(format!("ball {i} came back as number {}", s.received));
                } else if i == s.serve {
                    s.done.arrive(s.received);
                } else {
                    cast(peer, PingPongMsg::Ball(i + 1), &s.done);
                }
            }
        }
        Ok(())
    }
}

async fn ping_pong(n: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(2);
    let done = Latch::new(1);
    let player = |serve| Player { peer: None, serve, received: 0, ready: ready.clone(), done: done.clone() };
    let ping = start(PlayerActor, player(n)).await?;
    let pong = start(PlayerActor, player(0)).await?;
    cast(&ping, PingPongMsg::SetPeer(pong.clone()), &done);
    cast(&pong, PingPongMsg::SetPeer(ping.clone()), &done);
    ready.wait("ping-pong start").await?;

    let window = timer.start();
    cast(&ping, PingPongMsg::Start, &done);
    let received = done.wait("ping-pong").await?;
    let m = window.stop(2 * n);
    check("ping-pong balls returned", received, n)?;
    stop_all(&[ping, pong]);
    Ok(m)
}

// ---- thread ring ----------------------------------------------------------------------------

enum RingMsg {
    SetNext(ActorRef<RingMsg>),
    Token(u64),
}

struct Node {
    index: u64,
    next: Option<ActorRef<RingMsg>>,
    ready: Arc<Latch>,
    done: Arc<Latch>,
}

struct NodeActor;

impl Actor for NodeActor {
    type Msg = RingMsg;
    type State = Node;
    type Arguments = Node;

    async fn pre_start(&self, _me: ActorRef<RingMsg>, args: Node) -> Result<Node, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _me: ActorRef<RingMsg>,
        msg: RingMsg,
        s: &mut Node,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RingMsg::SetNext(next) => {
                s.next = Some(next);
                s.ready.arrive(0);
            }
            RingMsg::Token(0) => s.done.arrive(s.index),
            RingMsg::Token(left) => match &s.next {
                Some(next) => cast(next, RingMsg::Token(left - 1), &s.done),
                None => s.done.fail("no next node"),
            },
        }
        Ok(())
    }
}

async fn ring(actors: usize, hops: u64, timer: Timer) -> Result<Measured, String> {
    let ready = Latch::new(actors as u64);
    let done = Latch::new(1);
    let mut nodes = Vec::with_capacity(actors);
    for i in 0..actors {
        let node = Node { index: i as u64, next: None, ready: ready.clone(), done: done.clone() };
        nodes.push(start(NodeActor, node).await?);
    }
    for (i, node) in nodes.iter().enumerate() {
        cast(node, RingMsg::SetNext(nodes[(i + 1) % actors].clone()), &done);
    }
    ready.wait("ring start").await?;

    let window = timer.start();
    cast(&nodes[0], RingMsg::Token(hops), &done);
    let last = done.wait("ring").await?;
    let m = window.stop(hops);
    check("ring: index of the actor holding the token last", last, hops % actors as u64)?;
    stop_all(&nodes);
    Ok(m)
}

// ---- counting -------------------------------------------------------------------------------

enum CounterMsg {
    Increment,
    Report,
}

struct Counter {
    total: u64,
    done: Arc<Latch>,
}

struct CounterActor;

impl Actor for CounterActor {
    type Msg = CounterMsg;
    type State = Counter;
    type Arguments = Counter;

    async fn pre_start(
        &self,
        _me: ActorRef<CounterMsg>,
        args: Counter,
    ) -> Result<Counter, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _me: ActorRef<CounterMsg>,
        msg: CounterMsg,
        s: &mut Counter,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Increment => s.total += 1,
            CounterMsg::Report => s.done.arrive(s.total),
        }
        Ok(())
    }
}

struct Producer {
    counter: ActorRef<CounterMsg>,
    n: u64,
    done: Arc<Latch>,
}

struct ProducerActor;

impl Actor for ProducerActor {
    type Msg = ();
    type State = Producer;
    type Arguments = Producer;

    async fn pre_start(&self, _me: ActorRef<()>, args: Producer) -> Result<Producer, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(&self, _me: ActorRef<()>, _msg: (), s: &mut Producer) -> Result<(), ActorProcessingErr> {
        for _ in 0..s.n {
            cast(&s.counter, CounterMsg::Increment, &s.done);
        }
        cast(&s.counter, CounterMsg::Report, &s.done);
        Ok(())
    }
}

async fn counting(n: u64, timer: Timer) -> Result<Measured, String> {
    let done = Latch::new(1);
    let counter = start(CounterActor, Counter { total: 0, done: done.clone() }).await?;
    let producer = start(ProducerActor, Producer { counter: counter.clone(), n, done: done.clone() }).await?;

    let window = timer.start();
    cast(&producer, (), &done);
    let total = done.wait("counting").await?;
    let m = window.stop(n);
    check("counting: the counter's total", total, n)?;
    producer.stop(None);
    counter.stop(None);
    Ok(m)
}

// ---- fork-join throughput -------------------------------------------------------------------

struct Worker {
    n: u64,
    handled: u64,
    acc: f64,
    expected: u64,
    done: Arc<Latch>,
}

struct WorkerActor;

impl Actor for WorkerActor {
    type Msg = u64;
    type State = Worker;
    type Arguments = Worker;

    async fn pre_start(&self, _me: ActorRef<u64>, args: Worker) -> Result<Worker, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(&self, _me: ActorRef<u64>, i: u64, s: &mut Worker) -> Result<(), ActorProcessingErr> {
        s.acc += fork_join_work(i);
        s.handled += 1;
        if s.handled == s.n {
            if s.acc.to_bits() == s.expected {
                s.done.arrive(s.handled);
            } else {
                s.done.fail("a worker's checksum differs (messages lost or reordered)");
            }
        }
        Ok(())
    }
}

struct Sender {
    workers: Vec<ActorRef<u64>>,
    n: u64,
    done: Arc<Latch>,
}

struct SenderActor;

impl Actor for SenderActor {
    type Msg = ();
    type State = Sender;
    type Arguments = Sender;

    async fn pre_start(&self, _me: ActorRef<()>, args: Sender) -> Result<Sender, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(&self, _me: ActorRef<()>, _msg: (), s: &mut Sender) -> Result<(), ActorProcessingErr> {
        for i in 0..s.n {
            for w in &s.workers {
                cast(w, i, &s.done);
            }
        }
        Ok(())
    }
}

async fn fork_join(k: usize, n: u64, timer: Timer) -> Result<Measured, String> {
    let done = Latch::new(k as u64);
    let expected = fork_join_expected(n);
    let mut workers = Vec::with_capacity(k);
    for _ in 0..k {
        let worker = Worker { n, handled: 0, acc: 0.0, expected, done: done.clone() };
        workers.push(start(WorkerActor, worker).await?);
    }
    let sender = start(SenderActor, Sender { workers: workers.clone(), n, done: done.clone() }).await?;

    let window = timer.start();
    cast(&sender, (), &done);
    let handled = done.wait("fork-join").await?;
    let m = window.stop(n * k as u64);
    check("fork-join: messages the workers handled", handled, n * k as u64)?;
    sender.stop(None);
    stop_all(&workers);
    Ok(m)
}

// ---- spawn rate and idle memory -------------------------------------------------------------

struct Idle {
    started: Arc<Latch>,
    stopped: Arc<Latch>,
}

struct IdleActor;

impl Actor for IdleActor {
    type Msg = ();
    type State = Idle;
    type Arguments = Idle;

    async fn pre_start(&self, _me: ActorRef<()>, args: Idle) -> Result<Idle, ActorProcessingErr> {
        args.started.arrive(1);
        Ok(args)
    }

    async fn post_stop(&self, _me: ActorRef<()>, s: &mut Idle) -> Result<(), ActorProcessingErr> {
        s.stopped.arrive(1);
        Ok(())
    }
}

/// Creation rate (`Actor::spawn` awaits `pre_start`, where each counts itself), then stop rate
/// (`stop` on every ref, then every `JoinHandle` awaited).
async fn spawn(n: u64, timer: Timer) -> Result<Measured, String> {
    let started = Latch::new(n);
    let stopped = Latch::new(n);
    let mut actors = Vec::with_capacity(n as usize);

    let window = timer.start();
    for _ in 0..n {
        let idle = Idle { started: started.clone(), stopped: stopped.clone() };
        actors.push(Actor::spawn(None, IdleActor, idle).await.map_err(|e| format!("spawn: {e}"))?);
    }
    let count = started.wait("spawn").await?;
    let mut m = window.stop(n);
    check("spawn: actors started", count, n)?;

    let window = Timer { profile: false }.start();
    for (aref, _) in &actors {
        aref.stop(None);
    }
    for (_, handle) in actors {
        handle.await.map_err(|e| format!("join: {e}"))?;
    }
    let count = stopped.wait("stop").await?;
    let stop = window.stop(n);
    check("stop: actors stopped", count, n)?;
    m.extra = Some(stop.ops as f64 / stop.secs);
    Ok(m)
}

/// Live bytes per idle actor: spawn `n`, wait until all have started and gone idle.
async fn memory(n: u64) -> Result<Measured, String> {
    let warm_started = Latch::new(1);
    let warm = start(IdleActor, Idle { started: warm_started.clone(), stopped: Latch::new(1) }).await?;
    warm_started.wait("memory warm-up").await?;
    super::settle().await;

    let started = Latch::new(n);
    let stopped = Latch::new(n);
    let mut actors = Vec::with_capacity(n as usize);
    let window = Timer::counting().start();
    for _ in 0..n {
        let idle = Idle { started: started.clone(), stopped: stopped.clone() };
        actors.push(Actor::spawn(None, IdleActor, idle).await.map_err(|e| format!("spawn: {e}"))?);
    }
    let count = started.wait("memory").await?;
    super::settle().await;
    let m = window.stop(n);
    check("memory: actors started", count, n)?;
    warm.stop(None);
    for (aref, _) in &actors {
        aref.stop(None);
    }
    stopped.wait("memory stop").await?;
    Ok(m)
}
