//! `aiot demo --supervision`: a small plant whose actors fail, restart and escalate under OTP
//! supervision, with timers, a port and a readable timeline. The same actor code runs under
//! tokio (default, real time) or the deterministic executor (`--deterministic`, virtual time,
//! with the run's trace hash).
//!
//! ```text
//! /plant     one-for-one, 3 restarts in 10 s
//!   monitor    counts readings, reports every second through the console port
//!   sensor-1   a reading every 250 ms
//!   sensor-2   the same, but glitches (panics) every 12th reading: restarted fresh
//! /fragile   one-for-all, 2 restarts in 1 s
//!   plc-link   loses its connection 300 ms after each start, 3 times: intensity exceeded,
//!              /fragile escalates and the root guardian restarts the whole subtree
//!   sensor-3   a sibling: restarted with plc-link each time (one-for-all)
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::prelude::*;
use aiot_runtime::{EventKind, Port, PortCall, PortRef, SystemCore, SystemEvent, TopologyBuilder};
use rand::Rng;
use serde::{Deserialize, Serialize};

pub struct Options {
    pub duration: Duration,
    pub deterministic: bool,
    pub seed: u64,
}

const SAMPLE_PERIOD: Duration = Duration::from_millis(250);
const REPORT_PERIOD: Duration = Duration::from_secs(1);
const GLITCH_EVERY: u64 = 12;
const PLC_CRASHES: u32 = 3;
const PLC_CRASH_AFTER: Duration = Duration::from_millis(300);

/// The console: actors ask the host to print a line on the timeline.
struct Console;

impl Port for Console {
    const NAME: &'static str = "console";
    type Request = String;
    type Event = ();
}

/// The host's console adapter: prints each line with the time and the asking actor.
struct ConsoleAdapter;

impl Actor for ConsoleAdapter {
    type Msg = PortCall<Console>;
    fn handle(&mut self, call: PortCall<Console>, ctx: &mut Ctx<'_, Self::Msg>) -> Result<(), ActorError> {
        println!("{}", timeline_line(ctx.now(), call.client.path().as_str(), &call.request));
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SensorMsg {
    Tick,
}

struct Sensor {
    name: String,
    monitor: ActorRef<MonitorMsg>,
    glitch_every: Option<u64>,
    readings: u64,
}

impl Actor for Sensor {
    type Msg = SensorMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, SensorMsg>) -> Result<(), ActorError> {
        ctx.schedule_every(SAMPLE_PERIOD, SensorMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, _tick: SensorMsg, ctx: &mut Ctx<'_, SensorMsg>) -> Result<(), ActorError> {
        self.readings += 1;
        if self.glitch_every.is_some_and(|every| self.readings.is_multiple_of(every)) {
            panic!("sensor glitch at reading {}", self.readings);
        }
        let value = 40.0 + ctx.rng().random_range(-2.0..2.0);
        ctx.send(&self.monitor, MonitorMsg::Reading { sensor: self.name.clone(), value })?;
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum MonitorMsg {
    Reading { sensor: String, value: f64 },
    Report,
    Printed,
}

#[derive(Default)]
struct Monitor {
    window: BTreeMap<String, (u64, f64)>,
    console: Option<PortRef<Console>>,
}

impl Actor for Monitor {
    type Msg = MonitorMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, MonitorMsg>) -> Result<(), ActorError> {
        self.console = Some(ctx.open_port::<Console>(|()| MonitorMsg::Printed));
        ctx.schedule_every(REPORT_PERIOD, MonitorMsg::Report);
        Ok(())
    }

    fn handle(&mut self, msg: MonitorMsg, ctx: &mut Ctx<'_, MonitorMsg>) -> Result<(), ActorError> {
        match msg {
            MonitorMsg::Reading { sensor, value } => {
                let entry = self.window.entry(sensor).or_default();
                entry.0 += 1;
                entry.1 += value;
            }
            MonitorMsg::Report => {
                let parts: Vec<String> = std::mem::take(&mut self.window)
                    .into_iter()
                    .map(|(sensor, (n, sum))| format!("{sensor}={n} (avg {:.1})", sum / n as f64))
                    .collect();
                let line = format!("readings in the last second: {}", parts.join(", "));
                let console = self.console.as_ref().expect("opened in started");
                ctx.port_request(console, line)?;
            }
            MonitorMsg::Printed => {}
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum PlcMsg {
    Crash,
}

/// A link to a PLC that drops `crashes_left` times (shared across incarnations), then holds.
struct PlcLink {
    crashes_left: Arc<AtomicU32>,
}

impl Actor for PlcLink {
    type Msg = PlcMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, PlcMsg>) -> Result<(), ActorError> {
        if self.crashes_left.load(Ordering::Relaxed) > 0 {
            ctx.schedule_once(PLC_CRASH_AFTER, PlcMsg::Crash);
        }
        Ok(())
    }

    fn handle(&mut self, _crash: PlcMsg, _ctx: &mut Ctx<'_, PlcMsg>) -> Result<(), ActorError> {
        self.crashes_left.fetch_sub(1, Ordering::Relaxed);
        Err(ActorError::new("lost the connection to the PLC"))
    }
}

fn sensor(t: &mut TopologyBuilder, path: &str, glitch_every: Option<u64>) {
    let name = path.rsplit('/').next().expect("a path").to_string();
    t.actor(path, move |init| Sensor {
        name: name.clone(),
        monitor: init.link("monitor"),
        glitch_every,
        readings: 0,
    })
    .link::<MonitorMsg>("monitor", "/plant/monitor");
}

fn topology() -> Topology {
    let mut t = Topology::builder();
    t.supervisor("/plant", SupervisorSpec::one_for_one().intensity(3, Duration::from_secs(10)));
    t.actor("/plant/monitor", |_| Monitor::default());
    sensor(&mut t, "/plant/sensor-1", None);
    sensor(&mut t, "/plant/sensor-2", Some(GLITCH_EVERY));
    t.supervisor("/fragile", SupervisorSpec::one_for_all().intensity(2, Duration::from_secs(1)));
    let crashes_left = Arc::new(AtomicU32::new(PLC_CRASHES));
    t.actor("/fragile/plc-link", move |_| PlcLink { crashes_left: crashes_left.clone() });
    sensor(&mut t, "/fragile/sensor-3", None);
    t.build().expect("the demo topology is valid")
}

fn timeline_line(at: aiot_runtime::Instant, path: &str, text: &str) -> String {
    format!("{:>9}  {path:<20} {text}", at.to_string())
}

/// Prints supervision events worth a person's attention.
fn print_event(event: &SystemEvent) {
    let text = match &event.kind {
        EventKind::Started { .. } => "started".to_string(),
        EventKind::Failed { reason } => format!("FAILED: {reason}"),
        EventKind::Restarted { incarnation } => format!("restarted (incarnation {incarnation})"),
        EventKind::Stopped { reason: ExitReason::Failed(_) } => return,
        EventKind::Stopped { reason } => format!("stopped ({reason})"),
        EventKind::Escalated { reason } => format!("ESCALATED: {reason}"),
    };
    println!("{}", timeline_line(event.at, event.path.as_str(), &text));
}

fn config(seed: u64) -> SystemConfig {
    let mut config = SystemConfig::with_seed(seed);
    config.root = SupervisorSpec::one_for_one().intensity(3, Duration::from_secs(30));
    config
}

/// Handler panics are failures the timeline reports; keep the default hook's noise off stderr.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

pub fn run(options: Options) -> Result<(), String> {
    quiet_panics();
    let topology = topology();
    let executor = if options.deterministic { "deterministic (virtual time)" } else { "tokio (real time)" };
    println!(
        "aiot demo: supervision at work for {:?} on the {executor} executor, seed {}",
        options.duration, options.seed
    );
    println!("     time  actor                what happened");
    let core = if options.deterministic {
        let mut system = DetSystem::new(config(options.seed));
        system.install_port::<Console, _>(ActorSpec::new(|_| ConsoleAdapter)).map_err(|e| e.to_string())?;
        system.start(&topology).map_err(|e| e.to_string())?;
        // The listener comes after start-up: the timeline shows what happens once all are up.
        system.core().on_event(print_event);
        system.run_for(options.duration);
        let core = system.core().clone();
        let live = summary_before_shutdown(&core);
        system.shutdown();
        println!(
            "trace hash {:016x} over {} deliveries (same seed, same hash)",
            system.trace_hash(),
            system.deliveries()
        );
        (core, live)
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start tokio: {e}"))?;
        runtime.block_on(async {
            let system = TokioSystem::start(config(options.seed));
            system
                .install_port::<Console, _>(ActorSpec::new(|_| ConsoleAdapter))
                .map_err(|e| e.to_string())?;
            system.run(&topology).await.map_err(|e| e.to_string())?;
            system.core().on_event(print_event);
            tokio::time::sleep(options.duration).await;
            let core = system.core().clone();
            let live = summary_before_shutdown(&core);
            system.shutdown().await;
            Ok::<_, String>((core, live))
        })?
    };
    print_summary(&core.0, core.1);
    Ok(())
}

/// Counters of the live actors, taken before shutdown closes them.
fn summary_before_shutdown(core: &SystemCore) -> Vec<(String, aiot_runtime::MetricsSnapshot)> {
    core.metrics().into_iter().map(|(p, m)| (p.to_string(), m)).collect()
}

fn print_summary(core: &SystemCore, live: Vec<(String, aiot_runtime::MetricsSnapshot)>) {
    let events = core.events();
    let count = |f: fn(&EventKind) -> bool| events.iter().filter(|e| f(&e.kind)).count();
    println!("\nsummary");
    println!(
        "  failures {}, restarts {}, escalations {}, dead letters {}",
        count(|k| matches!(k, EventKind::Failed { .. })),
        count(|k| matches!(k, EventKind::Restarted { .. })),
        count(|k| matches!(k, EventKind::Escalated { .. })),
        core.dead_letters()
    );
    println!("  {:<20} {:>8} {:>8} {:>9}", "actor", "handled", "restarts", "max depth");
    for (path, m) in live.iter().filter(|(p, _)| p != "/") {
        println!("  {path:<20} {:>8} {:>8} {:>9}", m.handled, m.restarts, m.depth_max);
    }
    println!("  exit: {}", core.exit_reason().map_or("still running".into(), |r| r.to_string()));
}
