//! The demo's run: the three nodes, the motes, the timeline, the move midway, the summary.
//! Host code: it reads the wall clock (the demo's own pace) and starts tasks.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aiot_actors::ports::mqtt::BrokerAddr;
use aiot_actors::provision::Fleet;
use aiot_cluster::admin::{AdminRequest, AdminResponse};
use aiot_cluster::membership::Status;
use aiot_cluster::node::AppQuery;
use aiot_cluster::transport::admin::AdminClient;
use aiot_runtime::{ActorPath, ClusterClock};
use aiot_simulations::motor::{DefectParams, DegradationParams, MotorParams};
use serde_json::Value;

use super::setup::{Files, ADMIN, NODES};
use super::timeline::Timeline;
use super::Options;
use crate::motes::Plant;
use crate::node::Running;

const DAY: u64 = 24 * 3600;
/// The motes' reports: every 5 minutes, a raw window every fourth (72 a motor-day, the DSP
/// filter's and the trainer's input), instead of the default minute and tenth: at the demo's
/// warp the default would be 24 reports a wall second per mote. A canary cohort of 3 motes
/// then reports 18 windows in a canary period of 30 minutes, and 20 within two.
const CADENCE: (Duration, u32) = (Duration::from_secs(300), 4);
/// How often the timeline asks the application how the loop is doing.
const ASK_EVERY: Duration = Duration::from_secs(2);
/// The subtree the demo moves midway: every mote's proxy, with its state.
const MOVED: &str = "/proxies";
/// How long the cluster has to form before the demo gives up.
const FORM_MAX: Duration = Duration::from_secs(30);

/// The motors: two months old, bearings wearing fast (30 outer-race and 20 inner-race defects
/// a motor-year, about three failures a day among two dozen motors, where `aiot sim --scenario
/// fleet-pm` has 6 and 4), a routine inspection every 12 hours on average, and the base load dropping
/// from 0.75 to 0.5 at `shift` (motor time from the start): the features drift. A demo has
/// days, not months, to label enough windows.
fn motors(shift: Duration) -> (MotorParams, Duration) {
    let start = Duration::from_secs(60 * DAY);
    let d = DegradationParams::default();
    let degradation = DegradationParams {
        outer_race: DefectParams { rate_per_year: 30.0, ..d.outer_race },
        inner_race: DefectParams { rate_per_year: 20.0, ..d.inner_race },
        ..d
    };
    let mut params = MotorParams { degradation, ..MotorParams::default() };
    params.load.shift = Some((start + shift, 0.5));
    params.maintenance.inspection_interval = Some(Duration::from_secs(DAY / 2));
    (params, start)
}

pub fn run(options: &Options, files: &Files) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(demo(options, files))
}

async fn demo(options: &Options, files: &Files) -> Result<(), String> {
    let plant_span = options.duration.mul_f64(f64::from(options.warp));
    println!(
        "aiot demo: {} motes, 3 nodes, {:?} of wall time at warp {} ({:.1} plant days); files in {}",
        options.motes,
        options.duration,
        options.warp,
        plant_span.as_secs_f64() / DAY as f64,
        files.dir.display()
    );
    // One timeline for every node and the plant: cluster time runs from the Unix time now at
    // the warp rate, and each part starts at the time it reads when it starts.
    let clock = PlantClock::new(options.warp);
    let mut nodes: Vec<(&str, Running)> = Vec::new();
    for ((name, _), config) in NODES.iter().zip(&files.configs) {
        let (config, tls) = super::load(config)?;
        nodes.push((name, crate::node::start(config, tls, Some(clock.read())).await?));
    }
    let start = Instant::now();
    let mut timeline = Timeline::new(options.warp, options.motes);
    formed(&mut nodes, start, &mut timeline).await?;
    let ca = files.ca();
    println!(
        "\nshell:   aiot shell --connect {} --ca-dir {} --admin {ADMIN}",
        files.listen["platform-1"],
        ca.display()
    );
    for (name, running) in &nodes {
        if let Some(addr) = running.metrics {
            println!("metrics: http://{addr}/metrics ({name})");
        }
    }
    for (name, running) in &nodes {
        if let Some(addr) = running.dashboard {
            println!("dashboard: http://{addr}/ ({name})");
        }
    }
    println!();

    let fleet = load_fleet(files)?;
    let shift = plant_span.mul_f64(0.55);
    let (params, motor_start) = motors(shift);
    let plant_clock = clock.read();
    timeline.milestones.shift_ms = Some(plant_clock.1 + shift.as_millis() as u64);
    let plant = Plant {
        count: options.motes,
        warp: f64::from(options.warp),
        seed: options.seed,
        params,
        start: motor_start,
        duration: Some(options.duration.saturating_sub(start.elapsed())),
        cadence: CADENCE,
        clock: Some(plant_clock),
    };
    let broker = BrokerAddr { host: files.mqtt.ip().to_string(), port: files.mqtt.port() };
    let motes = tokio::spawn(async move { crate::motes::run_plant(&fleet, &broker, &plant).await });

    let migrate_at = options.duration.mul_f64(0.4);
    let mut migration = Migration::NotYet;
    let mut next_ask = Duration::ZERO;
    while !motes.is_finished() {
        let elapsed = start.elapsed();
        drain_events(&mut nodes, elapsed, &timeline);
        if elapsed >= next_ask {
            ask(&nodes[0].1, elapsed, &mut timeline).await;
            next_ask = elapsed + ASK_EVERY;
        }
        match &mut migration {
            Migration::NotYet if elapsed >= migrate_at => {
                let (root, to, from) = move_request(&nodes[0].1)?;
                timeline.say(elapsed, "operator", &format!("move {root} {to} (live, with its state)"));
                let (hosting, ca) = (files.listen[from.as_str()], ca.clone());
                migration =
                    Migration::Moving(tokio::spawn(
                        async move { move_subtree(&ca, hosting, root, to).await },
                    ));
            }
            Migration::Moving(task) if task.is_finished() => {
                finished(task, start.elapsed(), &mut timeline).await?;
                migration = Migration::Done;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A move still going when the motes stopped is waited for.
    if let Migration::Moving(task) = &mut migration {
        finished(task, start.elapsed(), &mut timeline).await?;
    }
    motes.await.map_err(|e| e.to_string())??;
    ask(&nodes[0].1, start.elapsed(), &mut timeline).await;
    drain_events(&mut nodes, start.elapsed(), &timeline);
    let summary = summary(&timeline);
    for (_, running) in &nodes {
        running.node.leave().await;
    }
    println!("{summary}");
    Ok(())
}

/// The demo's cluster clock: Unix ms at its start, then `warp` times faster than the wall.
struct PlantClock {
    started: Instant,
    clock: ClusterClock,
}

impl PlantClock {
    fn new(warp: u32) -> PlantClock {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let clock = ClusterClock { origin_ms: since.as_millis() as u64, warp: f64::from(warp) };
        PlantClock { started: Instant::now(), clock }
    }

    /// The wall instant now and the clock's reading at it (for a part that starts later and
    /// carries the clock on to its own start).
    fn read(&self) -> (Instant, u64) {
        let at = Instant::now();
        (at, self.clock.after(at.duration_since(self.started)).origin_ms)
    }
}

/// Puts a finished move in the timeline and the milestones.
async fn finished(
    task: &mut tokio::task::JoinHandle<Result<String, String>>,
    elapsed: Duration,
    timeline: &mut Timeline,
) -> Result<(), String> {
    let outcome = task.await.map_err(|e| e.to_string())?;
    timeline.say(elapsed, "migration", outcome.as_ref().unwrap_or_else(|why| why));
    timeline.milestones.migrated = Some(outcome);
    Ok(())
}

/// The move midway.
enum Migration {
    NotYet,
    Moving(tokio::task::JoinHandle<Result<String, String>>),
    Done,
}

/// Waits until every node is up as the platform node sees it and each subtree is placed.
async fn formed(
    nodes: &mut [(&str, Running)],
    start: Instant,
    timeline: &mut Timeline,
) -> Result<(), String> {
    loop {
        drain_events(nodes, start.elapsed(), timeline);
        let platform = &nodes[0].1.node;
        // The others as it sees them, and itself.
        let up = 1 + platform.members().values().filter(|s| **s == Status::Up).count();
        let placed = |path: &str| platform.node_of(&ActorPath::parse(path).expect("a valid path")).is_some();
        if up == NODES.len() && placed("/gateway") && placed(MOVED) && placed("/bridge") {
            for (name, hosts) in platform.directory() {
                let list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
                timeline.say(start.elapsed(), &name, &format!("runs {}", list.join(" ")));
            }
            return Ok(());
        }
        if start.elapsed() > FORM_MAX {
            return Err(format!(
                "the cluster did not form within {FORM_MAX:?}: {up} of {} nodes up",
                NODES.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn drain_events(nodes: &mut [(&str, Running)], elapsed: Duration, timeline: &Timeline) {
    for (name, running) in nodes.iter_mut() {
        while let Ok(event) = running.events.try_recv() {
            timeline.event(elapsed, name, &event);
        }
    }
}

/// Asks the platform node's application what the loop did and what the registry holds.
async fn ask(platform: &Running, elapsed: Duration, timeline: &mut Timeline) {
    let query = |command: &str| AppQuery { command: command.into(), args: Vec::new() };
    if let Some(value) = answer(platform.node.ask_app(query("loop")).await) {
        timeline.ml_loop(elapsed, value);
    }
    if let Some(value) = answer(platform.node.ask_app(query("models")).await) {
        timeline.models(elapsed, &value);
    }
}

fn answer(reply: Result<String, String>) -> Option<Value> {
    reply.ok().and_then(|json| serde_json::from_str(&json).ok())
}

/// Which subtree moves where, and the node it runs on: the proxies go to the other node
/// that is not the platform.
fn move_request(platform: &Running) -> Result<(String, String, String), String> {
    let root = ActorPath::parse(MOVED).expect("a valid path");
    let from = platform.node.node_of(&root).ok_or(format!("{MOVED} runs nowhere"))?;
    let to = if from == "things-1" { "inference-1" } else { "things-1" };
    Ok((MOVED.to_string(), to.to_string(), from))
}

/// Moves `root` to `to` as the shell does: asks the node running it, over an admin connection.
async fn move_subtree(
    ca: &std::path::Path,
    hosting: SocketAddr,
    root: String,
    to: String,
) -> Result<String, String> {
    let client = AdminClient::load(
        &ca.join("ca.pem"),
        &ca.join(format!("{ADMIN}.pem")),
        &ca.join(format!("{ADMIN}.key")),
    )
    .map_err(|e| e.to_string())?;
    let connection = client.connect(hosting).await.map_err(|e| e.to_string())?;
    let answer = connection.ask(&AdminRequest::Move { root, to }).await.map_err(|e| e.to_string());
    connection.close();
    match answer? {
        AdminResponse::Moved(m) => Ok(format!(
            "{} moved from {} to {} in {} ms: {} actors with their state, {} waiting messages carried ({} bytes)",
            m.root, m.from, m.to, m.took_ms, m.actors, m.messages, m.bytes
        )),
        AdminResponse::Refused(why) => Err(format!("the move failed: {why}")),
        other => Err(format!("an unexpected answer: {other:?}")),
    }
}

fn load_fleet(files: &Files) -> Result<Fleet, String> {
    let path = files.dir.join("motes/fleet.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Fleet::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The milestones, each reached or not.
fn summary(timeline: &Timeline) -> String {
    let m = &timeline.milestones;
    let check = |ok: bool| if ok { "yes" } else { "NOT YET" };
    let rollout =
        m.rollout.as_ref().map_or("none".into(), |(v, phase)| format!("last rollout: model {v} {phase}"));
    let installed = match m.installed_everywhere {
        Some(v) => format!("every mote runs model {v}; {rollout}"),
        None => rollout,
    };
    let models: Vec<String> = m.models.keys().map(ToString::to_string).collect();
    let (closed, drift_to_fleet) = timeline.drift_to_fleet();
    [
        "\nsummary".to_string(),
        format!("  alerts raised          {:<8} {} alerts", check(m.alerts > 0), m.alerts),
        format!("  drift detected         {:<8} {} drifts", check(m.drifts > 0), m.drifts),
        format!(
            "  models trained         {:<8} {} trainings; registry versions [{}]",
            check(m.trainings > 0),
            m.trainings,
            models.join(", ")
        ),
        format!("  OTA to every mote      {:<8} {installed}", check(m.installed_everywhere.is_some())),
        format!("  drift to fleet         {:<8} {drift_to_fleet}", check(closed)),
        match &m.migrated {
            Some(Ok(line)) => format!("  live migration         {:<8} {line}", check(true)),
            Some(Err(why)) => format!("  live migration         {:<8} {why}", check(false)),
            None => format!("  live migration         {:<8} not begun", check(false)),
        },
        format!("  capture to decision    {:<8} {}", "", timeline.latency()),
    ]
    .join("\n")
}
