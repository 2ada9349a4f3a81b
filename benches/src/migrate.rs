//! `aiot-bench migrate`: live migration of a stateful actor under load against a stop-and-restart
//! move, same run, same three nodes on loopback (mutual-TLS QUIC).
//!
//! A source on node `c` (platform tier) sends numbered messages to `/counter` (inference tier,
//! on `a` or `b`): 10 every millisecond. The counter keeps how many it handled and a state blob
//! (`--state-kib`), and records when it handled each number (host-side, for the figures).
//!
//! - **Live migration:** `Node::move_subtree` (what the shell's `move` asks) moves the counter
//!   between `a` and `b`, `--moves` times. Per move: the **pause** (the longest gap between two
//!   handled messages from the move's start until 300 ms after it finished) and the **dip**
//!   (the fewest messages handled in a 50 ms window from the start until 300 ms after the
//!   end, as a share of the steady rate in the 300 ms before). Over all moves: numbers lost or handled twice,
//!   and whether the count survived.
//! - **Stop and restart** (what a runtime without migration offers): the node hosting the
//!   counter leaves gracefully, as an operator frees a node without moving actors; the
//!   cluster places the counter afresh on the other node. Same figures, plus the numbers the
//!   source could not send (no node hosted the counter) and the state lost. `--restarts`
//!   runs, each on a fresh cluster.
//!
//! Ratios: pause ours/restart (lower is better), dip (higher is better).

// Host code (a benchmark): it spawns tasks and reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiot_cluster::config::Seed;
use aiot_cluster::identity::{init_ca, issue, parse_tags, Subject, Validity};
use aiot_cluster::membership::MembershipConfig;
use aiot_cluster::node::{Node, NodeSetup};
use aiot_cluster::transport::quic::NodeTls;
use aiot_runtime::prelude::*;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// `aiot-bench migrate` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Live moves (back and forth between two nodes).
    #[arg(long, default_value_t = 20)]
    pub moves: usize,
    /// Stop-and-restart moves, each on a fresh cluster.
    #[arg(long, default_value_t = 3)]
    pub restarts: usize,
    /// The counter's state blob, KiB (moved with it).
    #[arg(long, default_value_t = 64)]
    pub state_kib: usize,
    /// Few moves (a smoke test).
    #[arg(long)]
    pub quick: bool,
}

const SEND_EVERY: Duration = Duration::from_millis(1);
const SEND_BURST: u64 = 10;
const STEADY: Duration = Duration::from_millis(300);
const DIP_WINDOW: Duration = Duration::from_millis(50);
const STEP_MAX: Duration = Duration::from_secs(60);

/// Each handled number: when, which, and the counter's count after it.
type Handled = Arc<Mutex<Vec<(Instant, u64, u64)>>>;

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    Number(u64),
}

#[derive(Serialize, Deserialize)]
struct CounterState {
    count: u64,
    blob: Vec<u8>,
}

struct Counter {
    state: CounterState,
    handled: Handled,
}

impl Actor for Counter {
    type Msg = CounterMsg;
    fn handle(&mut self, msg: CounterMsg, _ctx: &mut Ctx<'_, CounterMsg>) -> Result<(), ActorError> {
        let CounterMsg::Number(n) = msg;
        self.state.count += 1;
        self.handled.lock().push((Instant::now(), n, self.state.count));
        Ok(())
    }
    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(aiot_runtime::message::encode(&self.state))
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.state = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SourceMsg {
    Tick,
}

/// Sends `SEND_BURST` numbers every `SEND_EVERY`; a number whose send failed is counted as
/// refused and not sent again.
struct Source {
    counter: ActorRef<CounterMsg>,
    next: u64,
    refused: Arc<AtomicU64>,
}

impl Actor for Source {
    type Msg = SourceMsg;
    fn started(&mut self, ctx: &mut Ctx<'_, SourceMsg>) -> Result<(), ActorError> {
        ctx.schedule_every(SEND_EVERY, SourceMsg::Tick);
        Ok(())
    }
    fn handle(&mut self, _tick: SourceMsg, ctx: &mut Ctx<'_, SourceMsg>) -> Result<(), ActorError> {
        for _ in 0..SEND_BURST {
            if ctx.send(&self.counter, CounterMsg::Number(self.next)).is_err() {
                self.refused.fetch_add(1, Relaxed);
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// Three nodes: `c` (platform) runs the source; `a` and `b` (inference) may host the counter.
struct Cluster {
    nodes: BTreeMap<String, Node>,
    handled: Handled,
    refused: Arc<AtomicU64>,
}

impl Cluster {
    async fn start(dir: &Path, state_kib: usize) -> Result<Cluster, String> {
        let handled: Handled = Arc::default();
        let refused = Arc::new(AtomicU64::new(0));
        let topology = || {
            let mut t = Topology::builder();
            let handled = Arc::clone(&handled);
            t.actor("/counter", move |_| Counter {
                state: CounterState { count: 0, blob: vec![7; state_kib * 1024] },
                handled: Arc::clone(&handled),
            })
            .requires("tier=inference")
            .mailbox(1 << 16, Overflow::Backpressure);
            let refused = Arc::clone(&refused);
            t.actor("/source", move |_| Source {
                counter: ActorRef::parse("/counter").expect("a path"),
                next: 0,
                refused: Arc::clone(&refused),
            })
            .requires("tier=platform");
            t.build().expect("a valid topology")
        };
        let setup = |name: &str, seeds: Vec<Seed>| -> Result<NodeSetup, String> {
            let tls = NodeTls::load(
                &dir.join("ca.pem"),
                &dir.join(format!("{name}.pem")),
                &dir.join(format!("{name}.key")),
            )
            .map_err(|e| e.to_string())?;
            Ok(NodeSetup {
                tls,
                listen: "127.0.0.1:0".parse().expect("an address"),
                seeds,
                membership: MembershipConfig::default(),
                topology: topology(),
                seed: 1,
                incarnation: 1,
                claimed_tags: Default::default(),
                prepare: None,
                clock: aiot_runtime::ClusterClock::default(),
                clock_read_at: None,
                checkpoint_disk: None,
            })
        };
        let (c, _) = Node::start(setup("c", Vec::new())?)?;
        let seed = vec![Seed { name: "c".into(), addr: c.addr() }];
        let (a, _) = Node::start(setup("a", seed.clone())?)?;
        let (b, _) = Node::start(setup("b", seed)?)?;
        let nodes = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b), ("c".to_string(), c)]);
        let cluster = Cluster { nodes, handled, refused };
        cluster
            .wait("the counter was never placed", |c| c.host().is_some() && c.handled.lock().len() > 100)
            .await?;
        Ok(cluster)
    }

    /// The node hosting the counter, as the source's node sees it.
    fn host(&self) -> Option<String> {
        self.nodes["c"].node_of(&ActorPath::parse("/counter").expect("a path"))
    }

    async fn wait(&self, what: &str, done: impl Fn(&Cluster) -> bool) -> Result<(), String> {
        let started = Instant::now();
        while !done(self) {
            if started.elapsed() > STEP_MAX {
                return Err(what.to_string());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }
}

/// One move's figures.
#[derive(Debug, Clone, Copy)]
struct MoveFigures {
    pause: Duration,
    /// The fewest messages in a `DIP_WINDOW` after the start, as a share of the steady rate.
    dip: f64,
}

/// The figures of the move that started at `start` and finished at `end`, from what the
/// counter handled.
fn figures(handled: &[(Instant, u64, u64)], start: Instant, end: Instant) -> MoveFigures {
    let (from, to) = (start - STEADY, end + STEADY);
    let times: Vec<Instant> = handled.iter().map(|(t, ..)| *t).filter(|t| *t >= from && *t <= to).collect();
    let before = times.iter().filter(|t| **t >= start - STEADY && **t < start).count();
    let rate = before as f64 / STEADY.as_secs_f64();
    let last_before = times.iter().rev().find(|t| **t < start).copied().unwrap_or(start);
    let after: Vec<Instant> = times.iter().copied().filter(|t| *t >= start && *t <= end + STEADY).collect();
    let mut pause = Duration::ZERO;
    let mut previous = last_before;
    for t in &after {
        pause = pause.max(t.saturating_duration_since(previous));
        previous = *t;
    }
    pause = pause.max((end + STEADY).saturating_duration_since(previous));
    let mut fewest = usize::MAX;
    let mut window = start;
    while window + DIP_WINDOW <= end + STEADY {
        let n = times.iter().filter(|t| **t >= window && **t < window + DIP_WINDOW).count();
        fewest = fewest.min(n);
        window += DIP_WINDOW / 5;
    }
    let expected = rate * DIP_WINDOW.as_secs_f64();
    MoveFigures { pause, dip: if expected > 0.0 { fewest as f64 / expected } else { 0.0 } }
}

/// Numbers from the first handled up to `upto` never handled (those before it were sent
/// before the counter was first placed), and numbers handled more than once.
fn lost_and_repeated(handled: &[(Instant, u64, u64)], upto: u64) -> (u64, u64) {
    let first = handled.iter().map(|(_, n, _)| *n).min().unwrap_or(0);
    let mut times = vec![0u32; upto.saturating_sub(first) as usize];
    let mut repeated = 0;
    for (_, n, _) in handled {
        if let Some(slot) = n.checked_sub(first).and_then(|i| times.get_mut(i as usize)) {
            *slot += 1;
            if *slot > 1 {
                repeated += 1;
            }
        }
    }
    (times.iter().filter(|t| **t == 0).count() as u64, repeated)
}

pub fn run(args: &Args) -> Result<(), String> {
    let (moves, restarts) = if args.quick { (4, 1) } else { (args.moves.max(1), args.restarts.max(1)) };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    init_ca(dir.path(), "bench").map_err(|e| e.to_string())?;
    for (name, tags) in [("a", "tier=inference"), ("b", "tier=inference"), ("c", "tier=platform")] {
        let subject = Subject::Node { name: name.into(), tags: parse_tags(tags).map_err(|e| e.to_string())? };
        issue(dir.path(), dir.path(), &subject, Validity::from_now(1)).map_err(|e| e.to_string())?;
    }
    let runtime = crate::node_runtime()?;
    runtime.block_on(async {
        let live = live_moves(dir.path(), args.state_kib, moves).await?;
        let restarted = stop_and_restart(dir.path(), args.state_kib, restarts).await?;
        report(args.state_kib, &live, &restarted);
        if live.lost + live.repeated != 0 || !live.state_kept {
            return Err(format!("live migration lost or repeated messages, or the state: {live:?}"));
        }
        Ok(())
    })
}

/// What a series of moves gave.
#[derive(Debug)]
struct Series {
    moves: Vec<MoveFigures>,
    /// Numbers never handled (sent or refused) and handled twice.
    lost: u64,
    repeated: u64,
    refused: u64,
    state_kept: bool,
}

async fn live_moves(dir: &Path, state_kib: usize, moves: usize) -> Result<Series, String> {
    let cluster = Cluster::start(dir, state_kib).await?;
    let refused_before = cluster.refused.load(Relaxed);
    let mut figures_of = Vec::new();
    let mut state_kept = true;
    for _ in 0..moves {
        tokio::time::sleep(STEADY).await;
        let from = cluster.host().ok_or("the counter is nowhere")?;
        let to = if from == "a" { "b" } else { "a" };
        let count_before = cluster.handled.lock().last().map_or(0, |(_, _, count)| *count);
        let start = Instant::now();
        cluster.nodes[&from].move_subtree("/counter", to).await?;
        let end = Instant::now();
        tokio::time::sleep(STEADY).await;
        let handled = cluster.handled.lock();
        figures_of.push(figures(&handled, start, end));
        // The count goes on from where it was: no handled message after the move counts less.
        state_kept &= handled.iter().filter(|(t, ..)| *t >= end).all(|(_, _, count)| *count > count_before);
    }
    let handled = cluster.handled.lock();
    // Numbers sent in the last 100 ms may still be on their way.
    let upto = handled.iter().map(|(_, n, _)| *n).max().unwrap_or(0).saturating_sub(1000);
    let (lost, repeated) = lost_and_repeated(&handled, upto);
    let refused = cluster.refused.load(Relaxed) - refused_before;
    Ok(Series { moves: figures_of, lost, repeated, refused, state_kept })
}

async fn stop_and_restart(dir: &Path, state_kib: usize, runs: usize) -> Result<Series, String> {
    let mut series = Series { moves: Vec::new(), lost: 0, repeated: 0, refused: 0, state_kept: true };
    for _ in 0..runs {
        let mut cluster = Cluster::start(dir, state_kib).await?;
        tokio::time::sleep(STEADY).await;
        let from = cluster.host().ok_or("the counter is nowhere")?;
        let count_before = cluster.handled.lock().last().map_or(0, |(_, _, count)| *count);
        let refused_before = cluster.refused.load(Relaxed);
        let start = Instant::now();
        let leaving = cluster.nodes.remove(&from).expect("the host is a member");
        leaving.leave().await;
        // Done once the counter handles again elsewhere.
        let mark = cluster.handled.lock().len();
        cluster.wait("the counter never ran again", |c| c.handled.lock().len() > mark + 100).await?;
        let first_again = cluster.handled.lock()[mark..].iter().find(|(t, ..)| *t > start).map(|(t, ..)| *t);
        let end = first_again.unwrap_or_else(Instant::now);
        tokio::time::sleep(STEADY).await;
        let handled = cluster.handled.lock();
        series.moves.push(figures(&handled, start, end));
        series.state_kept &=
            handled.iter().filter(|(t, ..)| *t >= end).all(|(_, _, count)| *count > count_before);
        let upto = handled.iter().map(|(_, n, _)| *n).max().unwrap_or(0).saturating_sub(1000);
        let (lost, repeated) = lost_and_repeated(&handled, upto);
        series.lost += lost;
        series.repeated += repeated;
        series.refused += cluster.refused.load(Relaxed) - refused_before;
    }
    Ok(series)
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 - 1.0) * q).round() as usize]
}

fn report(state_kib: usize, live: &Series, restarted: &Series) {
    let ms = |s: &Series| s.moves.iter().map(|m| m.pause.as_secs_f64() * 1e3).collect::<Vec<_>>();
    let dips = |s: &Series| s.moves.iter().map(|m| m.dip).collect::<Vec<_>>();
    let (mut ours, mut theirs) = (ms(live), ms(restarted));
    let (mut our_dip, mut their_dip) = (dips(live), dips(restarted));
    println!("migrate: a stateful counter ({state_kib} KiB of state) under 10 000 messages/s, three nodes on loopback");
    println!(
        "  {} live moves (Node::move_subtree) vs {} stop-and-restart moves (the host leaves; placed afresh)",
        live.moves.len(),
        restarted.moves.len()
    );
    println!("{:<34} {:>12} {:>16} {:>10}", "figure", "live move", "stop+restart", "ratio");
    for (name, q) in [("pause p50 (ms)", 0.5), ("pause p99 (ms)", 0.99)] {
        let (a, b) = (quantile(&mut ours, q), quantile(&mut theirs, q));
        println!("{name:<34} {a:>12.1} {b:>16.1} {:>10.3} (live/restart, lower is better)", a / b);
    }
    let (a, b) = (quantile(&mut our_dip, 0.5), quantile(&mut their_dip, 0.5));
    println!(
        "{:<34} {a:>12.2} {b:>16.2}   (share of the steady rate, median; higher is better)",
        "lowest 50 ms throughput"
    );
    let (a, b) = (quantile(&mut our_dip, 0.0), quantile(&mut their_dip, 0.0));
    println!("{:<34} {a:>12.2} {b:>16.2}", "lowest 50 ms throughput, worst move");
    println!("{:<34} {:>12} {:>16}", "messages lost", live.lost, restarted.lost);
    println!("{:<34} {:>12} {:>16}", "  of which refused at send", live.refused, restarted.refused);
    println!("{:<34} {:>12} {:>16}", "messages handled twice", live.repeated, restarted.repeated);
    let kept = |s: &Series| if s.state_kept { "kept" } else { "lost" };
    println!("{:<34} {:>12} {:>16}", "state", kept(live), kept(restarted));
}
