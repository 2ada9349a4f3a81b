//! `aiot-bench ingest`: frames from N motes through a real MQTT broker into the things tier
//! (gateway -> proxies -> counting sink), against the same broker's raw publish-to-subscribe
//! rate, in the same run, at the same QoS (1), with the same frames.
//!
//! - **Motes:** N rumqttc connections (the `RumqttcConnection` adapter, with each mote's login),
//!   each subscribed at QoS 1 to its down topic, so the broker delivers the cluster's acks as
//!   in production (the motes count them; they do not resend). Frames are encoded at publish
//!   time with the firmware's encoder (`encode_frame`: header, payload, CRC-32, HMAC-SHA256
//!   under the mote's key) with a distinct (boot epoch, seq) and `capture_ms` stamped then.
//!   One driver publishes round-robin over the motes.
//! - **Ours:** a fresh `TokioSystem` per measurement with the MQTT port (a rumqttc connection
//!   subscribed to `aiot/+/up`) and the things tier (`things::declare`); a frame counts once
//!   the counting sink has it: after the gateway's checks (codec, CRC, topic, HMAC, payload)
//!   and the proxy's de-duplication. Each frame is also acknowledged down to its mote (the
//!   proxies send acks as ranges of consecutive frames, one publish per range); acks the
//!   gateway's MQTT queue refused are counted and printed (a real mote would resend those
//!   frames). The run fails if any frame is refused or undeliverable.
//! - **Raw:** the same motes publish the same frames to the same topics; one rumqttc subscriber
//!   on `aiot/+/up` (the gateway's filter and login) counts them, reading only the mote and
//!   sequence from the header. No actors, no checks, no acks.
//! - **Throughput** (closed loop): every mote sends M frames; at most W frames (per kind) are
//!   in flight end to end (published, not yet counted by the receiver), the same window for
//!   both. Time runs from the first publish to the last frame's arrival at the receiver.
//! - **Latency:** publish call (the capture stamp) to arrival at the sink (after the proxy) or
//!   at the raw subscriber, for every frame, on one clock (the system's, `ctx.now()`). Measured
//!   twice: during the throughput run (at saturation it is mostly the window's queueing, about
//!   window / rate), and in an open-loop run paced at half the slower side's throughput (the
//!   same offered load for both).
//!
//! Throughput and saturation latency are medians of `--runs` runs (after one warm-up run),
//! ours and raw interleaved. Ratios: throughput ours/raw (higher is better; target >= 0.80),
//! latency ours/raw (lower is better).

// Host code (a benchmark): it reads the wall clock, spawns tasks and threads via the adapters.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::adapters::mosquitto::{Mosquitto, MosquittoOptions};
use aiot_actors::adapters::rumqttc::RumqttcConnection;
use aiot_actors::adapters::rumqttd::EmbeddedBroker;
use aiot_actors::ports::mqtt::adapter::MqttLink;
use aiot_actors::ports::mqtt::{
    BrokerAddr, ConnectOptions, EventSink, Mqtt, MqttConnection, MqttError, MqttEvent, Publish, QoS,
};
use aiot_actors::provision::{to_hex, Fleet, Login, MoteCredentials};
use aiot_actors::things::gateway::GatewayStats;
use aiot_actors::things::sink::SinkCounts;
use aiot_actors::things::{self, Downstream, ThingsConfig};
use aiot_firmware::actuation::ActuationState;
use aiot_firmware::features::extract;
use aiot_firmware::protocol::{
    encode_frame, open_frame, DownMark, Envelope, FeaturesReport, MoteId, MoteKey, Payload, RawWindow,
    UP_TOPIC_FILTER,
};
use aiot_firmware::sampling::{Window, DEFAULT_SAMPLE_RATE_HZ};
use aiot_runtime::prelude::*;
use parking_lot::Mutex;

/// `aiot-bench ingest` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Runs per throughput figure; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Small sizes (a smoke test of a few seconds).
    #[arg(long)]
    pub quick: bool,
    /// Motes (publisher connections).
    #[arg(long)]
    pub motes: Option<u32>,
    /// Brokers, comma-separated: rumqttd, mosquitto.
    #[arg(long, default_value = "rumqttd,mosquitto", value_delimiter = ',')]
    pub brokers: Vec<String>,
    /// Frame kinds, comma-separated: features (~140 B), raw (raw windows, ~16.5 KB).
    #[arg(long, default_value = "features,raw", value_delimiter = ',')]
    pub frames: Vec<String>,
    /// Diagnostic: the raw subscriber also publishes one 76-byte QoS 1 message per frame to the
    /// mote's down topic (as the cluster's acks do).
    #[arg(long)]
    pub echo: bool,
}

/// How long any one step may take before the run fails.
const STEP_MAX: Duration = Duration::from_secs(180);
/// The open-loop latency run lasts about this long (`--quick`: a third of it).
const PACED_SECONDS: f64 = 3.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Features,
    Raw,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Features => "features",
            Kind::Raw => "raw-window",
        }
    }
}

/// One frame kind's sizes.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    motes: u32,
    /// Frames per mote in a throughput run.
    per_mote: u32,
    /// Frames in flight end to end at most (closed loop).
    window: u64,
}

fn sizes(args: &Args, kind: Kind) -> Sizes {
    let motes = args.motes.unwrap_or(if args.quick { 10 } else { 100 });
    let (per_mote, window) = match (kind, args.quick) {
        (Kind::Features, false) => (1_000, 2_048),
        (Kind::Features, true) => (500, 1_024),
        (Kind::Raw, false) => (100, 128),
        (Kind::Raw, true) => (20, 64),
    };
    Sizes { motes, per_mote, window }
}

pub fn run(args: &Args) -> Result<(), String> {
    let kinds: Vec<Kind> = args
        .frames
        .iter()
        .map(|k| match k.as_str() {
            "features" => Ok(Kind::Features),
            "raw" => Ok(Kind::Raw),
            other => Err(format!("unknown frame kind {other:?} (features, raw)")),
        })
        .collect::<Result<_, _>>()?;
    let runtime = crate::node_runtime()?;
    let motes = args.motes.unwrap_or(if args.quick { 10 } else { 100 });
    let fleet = fleet(motes);
    for broker in &args.brokers {
        // A fresh broker per frame kind, shared by ours and raw.
        for &kind in &kinds {
            let sizes = sizes(args, kind);
            let (_broker, addr, label) = match broker.as_str() {
                "rumqttd" => {
                    let b = EmbeddedBroker::start(0, Some(fleet.logins())).map_err(|e| e.to_string())?;
                    let addr = b.addr().clone();
                    (Broker::Rumqttd(b), addr, "rumqttd 0.20 (embedded)")
                }
                "mosquitto" => {
                    let b = Mosquitto::start(&MosquittoOptions {
                        logins: Some(fleet.logins()),
                        acl: Some(fleet.mosquitto_acl()),
                    })?;
                    let addr = b.addr().clone();
                    (Broker::Mosquitto(b), addr, "mosquitto (logins + ACL)")
                }
                other => return Err(format!("unknown broker {other:?} (rumqttd, mosquitto)")),
            };
            runtime.block_on(bench_one(&addr, label, &fleet, kind, sizes, args))?;
        }
    }
    Ok(())
}

/// Keeps a broker alive for its measurements.
enum Broker {
    Rumqttd(#[allow(dead_code)] EmbeddedBroker),
    Mosquitto(#[allow(dead_code)] Mosquitto),
}

fn fleet(motes: u32) -> Fleet {
    let login = |user: &str| Login { user: user.into(), password: format!("{user}-secret") };
    let motes = (1..=motes)
        .map(|id| MoteCredentials {
            mote: id,
            mqtt_user: format!("mote-{id}"),
            mqtt_password: format!("mote-{id}-secret"),
            hmac_key: to_hex(&[(id % 251) as u8 + 1; 32]),
            model_signing_public: to_hex(&[7; 32]),
        })
        .collect();
    Fleet { gateway: login("aiot-gateway"), crew: login("aiot-crew"), motes }
}

/// One measurement's figures.
#[derive(Debug, Clone)]
struct Figures {
    frames_per_s: f64,
    /// Publish-to-receiver latency of every frame, us, sorted.
    latency_us: Vec<u64>,
    /// Ours: acks the gateway's MQTT connection refused (its request queue was full); a real
    /// mote would resend those frames.
    acks_refused: u64,
}

impl Figures {
    fn p(&self, q: f64) -> f64 {
        let i = ((self.latency_us.len() as f64 - 1.0) * q).round() as usize;
        self.latency_us[i] as f64 / 1000.0
    }
}

async fn bench_one(
    broker: &BrokerAddr,
    label: &str,
    fleet: &Fleet,
    kind: Kind,
    sizes: Sizes,
    args: &Args,
) -> Result<(), String> {
    let runs = args.runs.max(1);
    let motes = Motes::connect(broker, fleet).await?;
    let env = Env { broker, fleet, motes: &motes, echo: args.echo };
    let mut maker = FrameMaker::new(kind);
    let frame_len = maker
        .encode(&motes.keys[0], &Envelope { mote: MoteId(1), boot_epoch: 0, seq: 0, capture_ms: 0 })
        .len();
    let mut epoch = 0;
    let mut next_epoch = || {
        epoch += 1;
        epoch
    };
    // Warm-up (discarded): a tenth of the frames each way.
    let warm = Sizes { per_mote: (sizes.per_mote / 10).max(2), ..sizes };
    let closed = Mode::Window(sizes.window);
    measure_ours(&env, &mut maker, warm, closed, next_epoch()).await?;
    measure_raw(&env, &mut maker, warm, closed, next_epoch()).await?;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(measure_ours(&env, &mut maker, sizes, closed, next_epoch()).await?);
        raw.push(measure_raw(&env, &mut maker, sizes, closed, next_epoch()).await?);
    }
    let (ours, raw) = (median(ours), median(raw));
    // Open loop, the same offered load for both: half of the slower side's throughput.
    let rate = 0.5 * ours.frames_per_s.min(raw.frames_per_s);
    let seconds = if args.quick { PACED_SECONDS / 3.0 } else { PACED_SECONDS };
    let per_mote = ((rate * seconds) / f64::from(sizes.motes)).round().max(2.0);
    let paced_sizes = Sizes { per_mote: per_mote as u32, ..sizes };
    let paced = Mode::Paced(rate);
    let ours_paced = measure_ours(&env, &mut maker, paced_sizes, paced, next_epoch()).await?;
    let raw_paced = measure_raw(&env, &mut maker, paced_sizes, paced, next_epoch()).await?;
    motes.close().await;
    report(label, kind, frame_len, sizes, runs, (&ours, &raw), rate, (&ours_paced, &raw_paced));
    Ok(())
}

fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by(|a, b| a.frames_per_s.total_cmp(&b.frames_per_s));
    runs.swap_remove(runs.len() / 2)
}

#[allow(clippy::too_many_arguments)]
fn report(
    label: &str,
    kind: Kind,
    frame_len: usize,
    sizes: Sizes,
    runs: usize,
    (ours, raw): (&Figures, &Figures),
    rate: f64,
    (ours_paced, raw_paced): (&Figures, &Figures),
) {
    println!(
        "ingest: {} motes -> {label} -> gateway -> proxies -> sink; QoS 1; {} frames of {frame_len} B",
        sizes.motes,
        kind.name()
    );
    println!(
        "  throughput: {} frames per run ({} per mote), at most {} in flight; median of {runs} runs",
        u64::from(sizes.motes) * u64::from(sizes.per_mote),
        sizes.per_mote,
        sizes.window
    );
    println!("{:<34} {:>12} {:>12} {:>10}", "figure", "aiot", "raw broker", "ratio");
    println!(
        "{:<34} {:>12.0} {:>12.0} {:>10.2} (ours/raw, higher is better; target >= 0.80)",
        "throughput (frames/s)",
        ours.frames_per_s,
        raw.frames_per_s,
        ours.frames_per_s / raw.frames_per_s
    );
    let rows = [
        ("latency p50 at saturation (ms)", ours.p(0.5), raw.p(0.5)),
        ("latency p99 at saturation (ms)", ours.p(0.99), raw.p(0.99)),
        (&*format!("latency p50 at {rate:.0}/s (ms)"), ours_paced.p(0.5), raw_paced.p(0.5)),
        (&*format!("latency p99 at {rate:.0}/s (ms)"), ours_paced.p(0.99), raw_paced.p(0.99)),
    ];
    for (name, a, b) in rows {
        println!("{name:<34} {a:>12.2} {b:>12.2} {:>10.2} (ours/raw, lower is better)", a / b.max(0.001));
    }
    println!(
        "  acks refused by the gateway's full MQTT queue: {} of {} (median run), {} of {} (paced run)",
        ours.acks_refused,
        ours.latency_us.len(),
        ours_paced.acks_refused,
        ours_paced.latency_us.len()
    );
    println!(
        "  (paced runs: {} frames at {rate:.0} frames/s offered, achieved {:.0} (aiot) and {:.0} (raw))",
        ours_paced.latency_us.len(),
        ours_paced.frames_per_s,
        raw_paced.frames_per_s
    );
    println!();
}

/// The executor's clock, in us: the system's (`ctx.now()`) for ours, the same tokio clock from
/// a fresh epoch for raw.
#[derive(Clone)]
enum Clock {
    System(TokioSystem),
    Epoch(tokio::time::Instant),
}

impl Clock {
    fn us(&self) -> u64 {
        match self {
            Clock::System(s) => s.now().since_start().as_micros() as u64,
            Clock::Epoch(e) => e.elapsed().as_micros() as u64,
        }
    }
}

/// What every measurement on one broker shares.
struct Env<'a> {
    broker: &'a BrokerAddr,
    fleet: &'a Fleet,
    motes: &'a Motes,
    echo: bool,
}

/// The N motes' connections, kept for every measurement on one broker.
struct Motes {
    connections: Vec<Conn>,
    keys: Vec<MoteKey>,
    topics: Vec<String>,
    /// Frames acknowledged to the motes (an ack frame names a range; any other message on a
    /// down topic, the `--echo` diagnostic's, counts one), all motes.
    acks: Arc<AtomicU64>,
}

impl Motes {
    async fn connect(broker: &BrokerAddr, fleet: &Fleet) -> Result<Motes, String> {
        let acks = Arc::new(AtomicU64::new(0));
        let subscribed = Arc::new(AtomicU64::new(0));
        let mut motes = Motes { connections: Vec::new(), keys: Vec::new(), topics: Vec::new(), acks };
        for creds in &fleet.motes {
            let (acks, subscribed) = (Arc::clone(&motes.acks), Arc::clone(&subscribed));
            let key = creds.key().map_err(|e| e.0)?;
            let sink: EventSink = Arc::new(move |event: MqttEvent| match event {
                MqttEvent::Message(message) => {
                    acks.fetch_add(frames_acknowledged(&message.payload, &key), Relaxed);
                }
                MqttEvent::Subscribed { .. } => {
                    subscribed.fetch_add(1, Relaxed);
                }
                _ => {}
            });
            let options = ConnectOptions::new(creds.mqtt_user.clone())
                .with_credentials(&creds.mqtt_user, &creds.mqtt_password);
            let connection = Conn::connect(broker, options, sink);
            wait_until("a mote connects", || connection.is_connected()).await?;
            connection
                .subscribe(creds.id().down_topic().as_str(), QoS::AtLeastOnce)
                .map_err(|e| e.to_string())?;
            motes.connections.push(connection);
            motes.keys.push(creds.key().map_err(|e| e.0)?);
            motes.topics.push(creds.id().up_topic().as_str().to_string());
        }
        let n = fleet.motes.len() as u64;
        wait_until("the motes' subscriptions", || subscribed.load(Relaxed) >= n).await?;
        Ok(motes)
    }

    async fn close(self) {
        for c in &self.connections {
            c.close().await;
        }
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + STEP_MAX;
    while !done() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// Encodes real frames: a features report computed from a synthetic window, or that window.
struct FrameMaker {
    kind: Kind,
    window: Box<Window>,
    report: FeaturesReport,
    buffer: Vec<u8>,
}

impl FrameMaker {
    fn new(kind: Kind) -> Self {
        let window = Box::new(Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |i| {
            let t = i as f32 / DEFAULT_SAMPLE_RATE_HZ as f32;
            let w = std::f32::consts::TAU * 50.0 * t;
            // Sensor noise, so the proxies' sensor-fault checks see a live window.
            let noise = ((i as f32 * 12.9898).sin() * 43_758.547).fract() - 0.5;
            [
                10.0 * w.sin() + 0.1 * noise,
                0.3 * (w * 7.3).sin() + 0.05 * (w * 41.0).sin() + 0.02 * noise,
                0.2 * (w * 3.0).sin() + 0.05 * noise,
                40.0 + 0.05 * noise,
            ]
        }));
        let report = FeaturesReport {
            model_version: 1,
            score: Some(0.1),
            state: ActuationState::Normal,
            clipped: [0; 4],
            ring_dropped: 0,
            down_mark: DownMark::default(),
            features: extract(&window),
        };
        FrameMaker { kind, window, report, buffer: vec![0; aiot_firmware::protocol::MAX_FRAME] }
    }

    fn encode(&mut self, key: &MoteKey, envelope: &Envelope) -> Vec<u8> {
        let payload = match self.kind {
            Kind::Features => Payload::Features(self.report),
            Kind::Raw => Payload::RawWindow(RawWindow::of(&self.window)),
        };
        let len = encode_frame(envelope, &payload, key, &mut self.buffer).expect("a frame fits");
        self.buffer[..len].to_vec()
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Closed loop: at most this many frames in flight end to end.
    Window(u64),
    /// Open loop: this many frames per second, whatever arrives.
    Paced(f64),
}

/// Publish stamps (us) by frame index `(mote - 1) * per_mote + seq`.
type Stamps = Arc<Vec<AtomicU64>>;

/// Publishes `per_mote` frames from every mote, round-robin, stamping each with the clock.
/// Returns the first publish's stamp.
#[allow(clippy::too_many_arguments)]
async fn publish_all(
    motes: &Motes,
    maker: &mut FrameMaker,
    sizes: Sizes,
    mode: Mode,
    epoch: u32,
    clock: &Clock,
    stamps: &Stamps,
    received: &dyn Fn() -> u64,
) -> Result<u64, String> {
    let n = motes.connections.len();
    let total = n as u64 * u64::from(sizes.per_mote);
    let mut next_seq = vec![0u32; n];
    let mut published = 0u64;
    let mut full_in_a_row = 0usize;
    let mut mote = 0usize;
    let first = clock.us();
    let deadline = tokio::time::Instant::now() + STEP_MAX;
    // How many may go before the next look at the receiver (or the pacing clock).
    let mut allowed = 0u64;
    while published < total {
        if allowed == 0 {
            allowed = match mode {
                Mode::Window(w) => w.saturating_sub(published - received()),
                Mode::Paced(rate) => {
                    let due = ((clock.us() - first) as f64 * rate / 1e6) as u64 + 1;
                    due.min(total).saturating_sub(published)
                }
            };
            if let Mode::Window(w) = mode {
                // Refill only once half the window is free: fewer looks at the receiver.
                if allowed < w / 2 {
                    allowed = 0;
                }
            }
            if allowed == 0 {
                if tokio::time::Instant::now() > deadline {
                    return Err("the receiver stopped counting".into());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        if next_seq[mote] < sizes.per_mote {
            let seq = next_seq[mote];
            let now = clock.us();
            let envelope =
                Envelope { mote: MoteId(mote as u32 + 1), boot_epoch: epoch, seq, capture_ms: now / 1000 };
            let frame = maker.encode(&motes.keys[mote], &envelope);
            stamps[mote * sizes.per_mote as usize + seq as usize].store(now, Relaxed);
            let publish = Publish::new(motes.topics[mote].as_str(), frame, QoS::AtLeastOnce);
            match motes.connections[mote].publish(publish) {
                Ok(()) => {
                    next_seq[mote] += 1;
                    published += 1;
                    allowed -= 1;
                    full_in_a_row = 0;
                }
                Err(aiot_actors::ports::mqtt::MqttError::Full) => {
                    full_in_a_row += 1;
                    if full_in_a_row >= n {
                        full_in_a_row = 0;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Err(e) => return Err(format!("mote-{} could not publish: {e}", mote + 1)),
            }
        }
        mote = (mote + 1) % n;
    }
    Ok(first)
}

/// The cluster side for one measurement: a fresh actor system with the things tier.
async fn measure_ours(
    env: &Env<'_>,
    maker: &mut FrameMaker,
    sizes: Sizes,
    mode: Mode,
    epoch: u32,
) -> Result<Figures, String> {
    let (fleet, motes) = (env.fleet, env.motes);
    let link = MqttLink::new();
    let options =
        ConnectOptions::new("aiot-gateway").with_credentials(&fleet.gateway.user, &fleet.gateway.password);
    let connection = Conn::connect(env.broker, options, link.sink());
    link.attach(connection.shared());
    let stats = Arc::new(GatewayStats::default());
    let sink = Arc::new(Mutex::new(SinkCounts::default()));
    let mut t = Topology::builder();
    things::declare(
        &mut t,
        ThingsConfig {
            keys: fleet.keys(),
            gateway_stats: Arc::clone(&stats),
            downstream: Downstream::Sink(Arc::clone(&sink)),
            checkpoint_every: None,
        },
    );
    let topology = t.build().map_err(|e| format!("{e:?}"))?;
    let system = TokioSystem::start(SystemConfig::with_seed(1));
    system.install_port::<Mqtt, _>(link.adapter()).map_err(|e| e.to_string())?;
    system.run(&topology).await.map_err(|e| e.to_string())?;
    wait_until("the gateway connects", || connection.is_connected()).await?;
    let clock = Clock::System(system.clone());

    // The gateway's subscription is in place once a probe frame (epoch 0) reaches the sink.
    let acks_start = motes.acks.load(Relaxed);
    let mut probe_seq = 0;
    while sink.lock().frames() == 0 {
        if probe_seq > 500 {
            return Err("the gateway never received a probe frame".into());
        }
        let envelope =
            Envelope { mote: MoteId(1), boot_epoch: 0, seq: probe_seq, capture_ms: clock.us() / 1000 };
        let probe =
            Publish::new(motes.topics[0].as_str(), maker.encode(&motes.keys[0], &envelope), QoS::AtLeastOnce);
        motes.connections[0].publish(probe).map_err(|e| e.to_string())?;
        probe_seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let probes = sink.lock().frames();
    wait_until("the probes' acks", || motes.acks.load(Relaxed) >= acks_start + probes).await?;

    let total = motes.connections.len() as u64 * u64::from(sizes.per_mote);
    let stamps: Stamps = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let counted = || sink.lock().frames() - probes;
    let first = publish_all(motes, maker, sizes, mode, epoch, &clock, &stamps, &counted).await?;
    wait_until("the sink to count every frame", || counted() >= total).await?;
    // Every frame is acknowledged down to its mote (untimed; also keeps the next run clean),
    // unless the gateway's queue refused acks (counted and printed, not waited for).
    let acks_due = acks_start + probes + total;
    let acked = if stats.downlinks_refused.load(Relaxed) == 0 {
        wait_until("every frame's ack to reach its mote", || motes.acks.load(Relaxed) >= acks_due).await
    } else {
        Ok(())
    };

    let counts = sink.lock().clone();
    let refused = stats.refused_total();
    let undeliverable = stats.undeliverable.load(Relaxed) + link.stats().undeliverable.load(Relaxed);
    if refused != 0 || undeliverable != 0 {
        return Err(format!("the aiot run was not clean: {refused} refused, {undeliverable} undeliverable"));
    }
    acked?;
    let mut latency_us = Vec::with_capacity(total as usize);
    let mut last = first;
    for ((mote, e, seq), at) in &counts.arrived_us {
        if *e != epoch {
            continue;
        }
        let stamp = stamps[(*mote as usize - 1) * sizes.per_mote as usize + *seq as usize].load(Relaxed);
        latency_us.push(at.saturating_sub(stamp));
        last = last.max(*at);
    }
    if latency_us.len() as u64 != total {
        return Err(format!("the sink has {} of {total} frames of epoch {epoch}", latency_us.len()));
    }
    latency_us.sort_unstable();
    system.shutdown().await;
    // Aborting the event loop drops the link's sink, which holds the link and the connection.
    connection.close().await;
    let acks_refused = stats.downlinks_refused.load(Relaxed);
    Ok(Figures {
        frames_per_s: total as f64 / ((last - first).max(1) as f64 / 1e6),
        latency_us,
        acks_refused,
    })
}

/// What the raw subscriber records.
struct RawCounts {
    clock: Clock,
    stamps: Stamps,
    per_mote: usize,
    frame_len: usize,
    counted: AtomicU64,
    wrong: AtomicU64,
    last_us: AtomicU64,
    subscribed: AtomicBool,
    latency_us: Mutex<Vec<u64>>,
    echo: std::sync::OnceLock<Conn>,
}

impl RawCounts {
    /// Counts a message: its length, mote and sequence (from the frame header), no checks.
    fn on_message(&self, payload: &[u8]) {
        let field =
            |at: usize| u32::from_le_bytes([payload[at], payload[at + 1], payload[at + 2], payload[at + 3]]);
        if payload.len() != self.frame_len {
            self.wrong.fetch_add(1, Relaxed);
            return;
        }
        let (mote, seq) = (field(4) as usize, field(12) as usize);
        let now = self.clock.us();
        let stamp = self.stamps[(mote - 1) * self.per_mote + seq].load(Relaxed);
        self.latency_us.lock().push(now.saturating_sub(stamp));
        self.last_us.fetch_max(now, Relaxed);
        self.counted.fetch_add(1, Relaxed);
        if let Some(c) = self.echo.get() {
            let topic = MoteId(mote as u32).down_topic();
            let _ = c.publish(Publish::new(topic.as_str(), vec![0u8; 76], QoS::AtLeastOnce));
        }
    }
}

/// The raw baseline: one subscriber on the gateway's filter, counting.
async fn measure_raw(
    env: &Env<'_>,
    maker: &mut FrameMaker,
    sizes: Sizes,
    mode: Mode,
    epoch: u32,
) -> Result<Figures, String> {
    let motes = env.motes;
    let total = motes.connections.len() as u64 * u64::from(sizes.per_mote);
    let clock = Clock::Epoch(tokio::time::Instant::now());
    let frame_len = maker
        .encode(&motes.keys[0], &Envelope { mote: MoteId(1), boot_epoch: 0, seq: 0, capture_ms: 0 })
        .len();
    let counts = Arc::new(RawCounts {
        clock: clock.clone(),
        stamps: Arc::new((0..total).map(|_| AtomicU64::new(0)).collect()),
        per_mote: sizes.per_mote as usize,
        frame_len,
        counted: AtomicU64::new(0),
        wrong: AtomicU64::new(0),
        last_us: AtomicU64::new(0),
        subscribed: AtomicBool::new(false),
        latency_us: Mutex::new(Vec::with_capacity(total as usize)),
        echo: std::sync::OnceLock::new(),
    });
    let recorder = Arc::clone(&counts);
    let sink: EventSink = Arc::new(move |event: MqttEvent| match event {
        MqttEvent::Message(p) => recorder.on_message(&p.payload),
        MqttEvent::Subscribed { .. } => recorder.subscribed.store(true, Relaxed),
        _ => {}
    });
    let options = ConnectOptions::new("aiot-raw-subscriber")
        .with_credentials(&env.fleet.gateway.user, &env.fleet.gateway.password);
    let connection = Conn::connect(env.broker, options, sink);
    wait_until("the raw subscriber connects", || connection.is_connected()).await?;
    if env.echo {
        let _ = counts.echo.set(connection.clone());
    }
    connection.subscribe(UP_TOPIC_FILTER, QoS::AtLeastOnce).map_err(|e| e.to_string())?;
    wait_until("the raw subscription", || counts.subscribed.load(Relaxed)).await?;

    let counted = || counts.counted.load(Relaxed);
    let first = publish_all(motes, maker, sizes, mode, epoch, &clock, &counts.stamps, &counted).await?;
    wait_until("the raw subscriber to count every frame", || counted() >= total).await?;
    connection.close().await;
    if counts.wrong.load(Relaxed) != 0 || counted() != total {
        return Err(format!(
            "the raw run was not clean: {} of {total} counted, {} of the wrong size",
            counted(),
            counts.wrong.load(Relaxed)
        ));
    }
    let mut latency_us = std::mem::take(&mut *counts.latency_us.lock());
    latency_us.sort_unstable();
    let last = counts.last_us.load(Relaxed);
    Ok(Figures {
        frames_per_s: total as f64 / ((last - first).max(1) as f64 / 1e6),
        latency_us,
        acks_refused: 0,
    })
}

/// A client connection: the production adapter.
#[derive(Clone)]
struct Conn(Arc<RumqttcConnection>);

impl Conn {
    fn connect(broker: &BrokerAddr, options: ConnectOptions, sink: EventSink) -> Conn {
        Conn(RumqttcConnection::connect(&tokio::runtime::Handle::current(), broker, options, sink))
    }

    fn mqtt(&self) -> &dyn MqttConnection {
        &*self.0
    }

    fn shared(&self) -> Arc<dyn MqttConnection> {
        self.0.clone()
    }

    fn is_connected(&self) -> bool {
        self.0.is_connected()
    }

    fn publish(&self, message: Publish) -> Result<(), MqttError> {
        self.mqtt().publish(message)
    }

    fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        self.mqtt().subscribe(filter, qos)
    }

    /// Disconnects, then drops the socket and the event loop (which holds the event sink).
    async fn close(&self) {
        self.mqtt().disconnect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.abort();
    }
}

/// Frames an ack names (its range); one for any other message.
fn frames_acknowledged(message: &[u8], key: &MoteKey) -> u64 {
    match open_frame(message, key).map(|frame| frame.decode_payload()) {
        Ok(Ok(Payload::Ack(ack))) => u64::from(ack.last_seq - ack.first_seq) + 1,
        _ => 1,
    }
}
