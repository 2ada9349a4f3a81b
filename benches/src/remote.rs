//! `aiot-bench remote`: two aiot nodes on loopback against a raw quinn baseline, same run.
//!
//! - **Throughput:** N tells with a 128-byte payload from an actor on one node to an actor on
//!   the other (256 per message the sender handles; a full lane parks the sender, as raw
//!   quinn's flow control holds its writer), counted where the receiver has handled each one. Baseline: one quinn stream between the same two
//!   mutual-TLS endpoints, carrying the same frames (`LaneMsg::Data` in wire framing, payload in
//!   bincode) gathered into the same 64 KiB batches, decoded on arrival down to the payload.
//! - **Ask round trip:** sequential asks from one node to an echo actor on the other, each timed
//!   (p50, p99). Baseline: the same frames as a ping-pong on one bidirectional quinn stream.
//!
//! Each figure is the median of `--runs` runs (after one warm-up), ours and the baseline's
//! interleaved. Ratios: throughput ours/raw (higher is better), latency ours/raw (lower).

// Host code (a benchmark): it spawns tasks and reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiot_cluster::config::Seed;
use aiot_cluster::identity::{init_ca, issue, parse_tags, Subject, Validity};
use aiot_cluster::lanes::{Body, DataFrame, LaneMsg};
use aiot_cluster::membership::MembershipConfig;
use aiot_cluster::node::{Node, NodeSetup, LANE_BATCH_BYTES};
use aiot_cluster::transport::quic::{
    accept, accept_control, accept_lane, connect, open_control, open_lane, send_frame, write_frames,
    Accepted, ControlSend, FrameReader, LaneSend, NodeTls,
};
use aiot_cluster::wire;
use aiot_runtime::prelude::*;
use serde::{Deserialize, Serialize};

/// `aiot-bench remote` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Runs per figure; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Small sizes (a smoke test).
    #[arg(long)]
    pub quick: bool,
}

const PAYLOAD_LEN: usize = 128;
const STEP_MAX: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SinkMsg {
    Blob(Vec<u8>),
}

/// Counts what it handled.
struct Sink(Arc<AtomicU64>);

impl Actor for Sink {
    type Msg = SinkMsg;
    fn handle(&mut self, msg: SinkMsg, _ctx: &mut Ctx<'_, SinkMsg>) -> Result<(), ActorError> {
        let SinkMsg::Blob(bytes) = msg;
        if bytes.len() == PAYLOAD_LEN {
            self.0.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}

/// Sends a burst of tells to the sink per message it handles: the sending side is an actor,
/// as in an application (it yields to the executor between messages).
#[derive(Debug, Serialize, Deserialize)]
enum SourceMsg {
    Burst(u32),
}

struct Source {
    sink: ActorRef<SinkMsg>,
    payload: Vec<u8>,
    refused: Arc<AtomicU64>,
}

impl Actor for Source {
    type Msg = SourceMsg;
    fn handle(&mut self, msg: SourceMsg, ctx: &mut Ctx<'_, SourceMsg>) -> Result<(), ActorError> {
        let SourceMsg::Burst(n) = msg;
        for _ in 0..n {
            if ctx.send(&self.sink, SinkMsg::Blob(self.payload.clone())).is_err() {
                self.refused.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, Deserialize)]
enum EchoMsg {
    Ping(u64, ReplyTo<u64>),
}

struct Echo;

impl Actor for Echo {
    type Msg = EchoMsg;
    fn handle(&mut self, msg: EchoMsg, ctx: &mut Ctx<'_, EchoMsg>) -> Result<(), ActorError> {
        let EchoMsg::Ping(n, reply) = msg;
        ctx.reply(&reply, n).map_err(|e| ActorError::new(e.to_string()))
    }
}

/// Tells per `Burst` message.
const BURST: u32 = 256;

fn topology(count: &Arc<AtomicU64>, refused: &Arc<AtomicU64>) -> Topology {
    let mut t = Topology::builder();
    let count = count.clone();
    t.actor("/sink", move |_| Sink(count.clone())).requires("tier=inference");
    let refused = refused.clone();
    t.actor("/source", move |_| Source {
        sink: ActorRef::parse("/sink").expect("a path"),
        payload: vec![7u8; PAYLOAD_LEN],
        refused: refused.clone(),
    })
    .requires("tier=platform");
    t.actor("/echo", |_| Echo).requires("tier=inference");
    t.build().expect("a valid topology")
}

struct Sizes {
    tells: u64,
    asks: usize,
}

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    msgs_per_s: f64,
    p50: Duration,
    p99: Duration,
}

pub fn run(args: &Args) -> Result<(), String> {
    let sizes = if args.quick {
        Sizes { tells: 100_000, asks: 2_000 }
    } else {
        Sizes { tells: 1_000_000, asks: 20_000 }
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    pki(dir.path())?;
    let runtime = crate::node_runtime()?;
    runtime.block_on(async {
        let ours = Ours::start(dir.path()).await?;
        let raw = Raw::start(dir.path()).await?;
        // Warm-up, then interleaved runs.
        ours.measure(&Sizes { tells: sizes.tells / 10, asks: sizes.asks / 10 }).await?;
        raw.measure(&Sizes { tells: sizes.tells / 10, asks: sizes.asks / 10 }).await?;
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..args.runs.max(1) {
            mine.push(ours.measure(&sizes).await?);
            theirs.push(raw.measure(&sizes).await?);
        }
        report(&sizes, &median(&mine), &median(&theirs));
        let stats = ours.b.stats();
        if stats.decode_errors + stats.frames_refused + stats.lane_full != 0 {
            return Err(format!("the aiot run was not clean: {stats:?}"));
        }
        Ok(())
    })
}

fn median(runs: &[Figures]) -> Figures {
    let pick = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Figures {
        msgs_per_s: pick(runs.iter().map(|f| f.msgs_per_s).collect()),
        p50: Duration::from_secs_f64(pick(runs.iter().map(|f| f.p50.as_secs_f64()).collect())),
        p99: Duration::from_secs_f64(pick(runs.iter().map(|f| f.p99.as_secs_f64()).collect())),
    }
}

fn report(sizes: &Sizes, ours: &Figures, raw: &Figures) {
    println!("remote: two nodes on loopback, mutual-TLS QUIC, {PAYLOAD_LEN}-byte payloads");
    println!("  {} tells (counted where handled), {} sequential asks; medians", sizes.tells, sizes.asks);
    println!("{:<26} {:>14} {:>14} {:>24}", "figure", "aiot", "raw quinn", "ratio");
    println!(
        "{:<26} {:>14.0} {:>14.0} {:>10.2} (ours/raw, higher is better; target >= 0.70)",
        "tell throughput (msg/s)",
        ours.msgs_per_s,
        raw.msgs_per_s,
        ours.msgs_per_s / raw.msgs_per_s
    );
    for (name, a, b) in
        [("ask round trip p50 (us)", ours.p50, raw.p50), ("ask round trip p99 (us)", ours.p99, raw.p99)]
    {
        let target = if name.contains("p99") { "; target <= 1.50" } else { "" };
        println!(
            "{:<26} {:>14.1} {:>14.1} {:>10.2} (ours/raw, lower is better{target})",
            name,
            a.as_secs_f64() * 1e6,
            b.as_secs_f64() * 1e6,
            a.as_secs_f64() / b.as_secs_f64()
        );
    }
}

fn pki(dir: &Path) -> Result<(), String> {
    init_ca(dir, "bench").map_err(|e| e.to_string())?;
    for (name, tags) in [("a", "tier=platform"), ("b", "tier=inference")] {
        let subject = Subject::Node { name: name.into(), tags: parse_tags(tags).map_err(|e| e.to_string())? };
        issue(dir, dir, &subject, Validity::from_now(1)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn tls(dir: &Path, name: &str) -> Result<NodeTls, String> {
    NodeTls::load(&dir.join("ca.pem"), &dir.join(format!("{name}.pem")), &dir.join(format!("{name}.key")))
        .map_err(|e| e.to_string())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Two aiot nodes: the sink and the echo are placed on b; the sender and asker run on a.
struct Ours {
    a: Node,
    b: Node,
    count: Arc<AtomicU64>,
    /// Tells the source could not send; the run fails if any.
    refused: Arc<AtomicU64>,
}

impl Ours {
    async fn start(dir: &Path) -> Result<Ours, String> {
        let count = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let setup = |name: &str, seeds: Vec<Seed>| -> Result<NodeSetup, String> {
            Ok(NodeSetup {
                tls: tls(dir, name)?,
                listen: "127.0.0.1:0".parse().expect("an address"),
                seeds,
                membership: MembershipConfig::default(),
                topology: topology(&count, &refused),
                seed: 1,
                incarnation: 1,
                claimed_tags: Default::default(),
                prepare: None,
                clock: aiot_runtime::ClusterClock::default(),
                clock_read_at: None,
                checkpoint_disk: None,
            })
        };
        let (a, _) = Node::start(setup("a", Vec::new())?)?;
        let (b, _) = Node::start(setup("b", vec![Seed { name: "a".into(), addr: a.addr() }])?)?;
        let placed = async {
            let placed = |p: &str| a.node_of(&ActorPath::parse(p).expect("a path")).is_some();
            while !(placed("/sink") && placed("/echo") && placed("/source")) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(STEP_MAX, placed).await.map_err(|_| "the sink was never placed".to_string())?;
        Ok(Ours { a, b, count, refused })
    }

    async fn measure(&self, sizes: &Sizes) -> Result<Figures, String> {
        let source = ActorRef::<SourceMsg>::parse("/source").expect("a path");
        let total = sizes.tells.div_ceil(u64::from(BURST)) * u64::from(BURST);
        let target = self.count.load(Relaxed) + total;
        let started = Instant::now();
        let mut bursts = total / u64::from(BURST);
        while bursts > 0 {
            match self.a.system().tell(&source, SourceMsg::Burst(BURST)) {
                Ok(()) => bursts -= 1,
                // The source's mailbox is full (it is parked on its full lane, or busy): wait
                // without spinning, so this driver does not take a core from the nodes.
                Err(SendError::MailboxFull(_)) => tokio::time::sleep(Duration::from_micros(200)).await,
                Err(e) => return Err(format!("tell failed: {e}")),
            }
        }
        while self.count.load(Relaxed) < target {
            if started.elapsed() > STEP_MAX || self.refused.load(Relaxed) > 0 {
                return Err(format!(
                    "the sink never handled every tell ({} refused)",
                    self.refused.load(Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let msgs_per_s = total as f64 / started.elapsed().as_secs_f64();
        let echo = ActorRef::<EchoMsg>::parse("/echo").expect("a path");
        let mut times = Vec::with_capacity(sizes.asks);
        for n in 0..sizes.asks as u64 {
            let t = Instant::now();
            let got = self.a.system().ask(&echo, |r| EchoMsg::Ping(n, r), Duration::from_secs(5)).await;
            if got != Ok(n) {
                return Err(format!("ask {n} answered {got:?}"));
            }
            times.push(t.elapsed());
        }
        times.sort();
        Ok(Figures { msgs_per_s, p50: percentile(&times, 0.5), p99: percentile(&times, 0.99) })
    }
}

/// The raw baseline: one connection between the same identities, no actors.
struct Raw {
    /// Opened once and kept, like a node's lanes: the throughput stream and the ping-pong one.
    lane: tokio::sync::Mutex<LaneSend>,
    pingpong: tokio::sync::Mutex<(ControlSend, FrameReader)>,
    _client: aiot_cluster::transport::quic::Peer,
    _server: aiot_cluster::transport::quic::Endpoint,
    _client_endpoint: aiot_cluster::transport::quic::Endpoint,
    counted: Arc<AtomicU64>,
}

/// The frame ours puts on a lane for one tell: the payload copied into a message (as the
/// source actor does), encoded, and addressed by path.
fn data_frame(seq: u64, to: &ActorPath, payload: &[u8]) -> LaneMsg {
    let bytes = aiot_runtime::message::encode(&SinkMsg::Blob(payload.to_vec()));
    LaneMsg::Data(DataFrame { seq, to: to.clone(), body: Body::Tell(bytes) })
}

impl Raw {
    async fn start(dir: &Path) -> Result<Raw, String> {
        let server_tls = Arc::new(tls(dir, "b")?);
        let client_tls = tls(dir, "a")?;
        let server =
            server_tls.bind("127.0.0.1:0".parse().expect("an address")).map_err(|e| e.to_string())?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        let counted = Arc::new(AtomicU64::new(0));
        let (endpoint, tls2, counter) = (server.clone(), server_tls.clone(), counted.clone());
        tokio::spawn(async move {
            let Some(Ok(Accepted::Peer(peer))) = accept(&endpoint, &tls2).await else { return };
            let peer = Arc::new(peer);
            // The ping-pong stream: every frame goes straight back.
            let pong = peer.clone();
            tokio::spawn(async move {
                while let Ok((mut send, mut reader)) = accept_control(&pong).await {
                    tokio::spawn(async move {
                        while let Ok(Some(frame)) = reader.next::<LaneMsg>().await {
                            if send_frame(&mut send, &frame).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            // Throughput streams: decode down to the payload and count.
            while let Some(mut reader) = accept_lane(&peer.connection).await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    while let Ok(Some(LaneMsg::Data(frame))) = reader.next::<LaneMsg>().await {
                        if let Body::Tell(bytes) = &frame.body {
                            if let Ok(SinkMsg::Blob(b)) = aiot_runtime::message::decode::<SinkMsg>(bytes) {
                                if b.len() == PAYLOAD_LEN {
                                    counter.fetch_add(1, Relaxed);
                                }
                            }
                        }
                    }
                });
            }
        });
        let client_endpoint =
            client_tls.bind("127.0.0.1:0".parse().expect("an address")).map_err(|e| e.to_string())?;
        let client = connect(&client_endpoint, &client_tls, addr, "b").await.map_err(|e| e.to_string())?;
        let lane = open_lane(&client.connection).await.map_err(|e| e.to_string())?;
        let pingpong = open_control(&client).await.map_err(|e| e.to_string())?;
        Ok(Raw {
            lane: tokio::sync::Mutex::new(lane),
            pingpong: tokio::sync::Mutex::new(pingpong),
            _client: client,
            _server: server,
            _client_endpoint: client_endpoint,
            counted,
        })
    }

    async fn measure(&self, sizes: &Sizes) -> Result<Figures, String> {
        let target = self.counted.load(Relaxed) + sizes.tells;
        let payload = vec![7u8; PAYLOAD_LEN];
        let started = Instant::now();
        let mut lane = self.lane.lock().await;
        let mut batch = Vec::with_capacity(LANE_BATCH_BYTES + 1024);
        let sink = ActorPath::parse("/sink").expect("a path");
        for seq in 1..=sizes.tells {
            wire::encode(&data_frame(seq, &sink, &payload), &mut batch).map_err(|e| e.to_string())?;
            if batch.len() >= LANE_BATCH_BYTES {
                write_frames(&mut lane, &batch).await.map_err(|e| e.to_string())?;
                batch.clear();
            }
        }
        write_frames(&mut lane, &batch).await.map_err(|e| e.to_string())?;
        while self.counted.load(Relaxed) < target {
            if started.elapsed() > STEP_MAX {
                return Err("the raw receiver never counted every message".into());
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let msgs_per_s = sizes.tells as f64 / started.elapsed().as_secs_f64();
        let mut pingpong = self.pingpong.lock().await;
        let (send, reader) = &mut *pingpong;
        let mut times = Vec::with_capacity(sizes.asks);
        for n in 0..sizes.asks as u64 {
            let t = Instant::now();
            send_frame(send, &data_frame(n, &sink, &n.to_le_bytes())).await.map_err(|e| e.to_string())?;
            match reader.next::<LaneMsg>().await {
                Ok(Some(LaneMsg::Data(frame))) if frame.seq == n => {}
                other => return Err(format!("ping {n} answered {other:?}")),
            }
            times.push(t.elapsed());
        }
        times.sort();
        Ok(Figures { msgs_per_s, p50: percentile(&times, 0.5), p99: percentile(&times, 0.99) })
    }
}
