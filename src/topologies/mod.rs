//! Built-in topologies that `aiot node` runs by name (`topology = "NAME"` in node.toml). Every
//! node of a cluster runs the same declaration; each starts only the subtrees placed on it.
//!
//! `ping`: a probe on the things tier asks an echo on the inference tier every 250 ms (a remote
//! ask) and tells a tally on the platform tier of each answer (a remote tell). The echo says
//! which node served it, so failover shows in the probe's lines. These example actors print
//! their lines to stdout themselves; application actors report through ports instead.
//!
//! `counter` (`counter.rs`): a stateful counter under load, for moving it between nodes.
//!
//! `things`: the things tier of BLUEPRINT section 5: the MQTT gateway on a things-tier node,
//! a proxy per mote, the protocol bridge into the event streams, two DSP filter replicas
//! from `telemetry` to `features`, two stage-2 replicas from `features` to `alerts` and the
//! trainer, which fits stage 2's model daily from `features` and `maintenance`, with the drift
//! monitor (on the platform tier, whose node opens the event log; stage 2 scores once a model
//! is installed). With the registry's keys (the platform node's `[models]` section) the
//! platform also runs the model registry and the deployer: each training is a signed release
//! rolled out to the motes, canary first. It needs
//! the `[mqtt]` section (the fleet's keys). Every node prints the counters of the gateway and
//! the bridge as hosted on it (zero where they are not placed) every 10 s.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::deploy::{self, deployer::DeployStats, deployer::DeployerConfig};
use aiot_actors::dsp::DspConfig;
use aiot_actors::inference::alerts::AlertRule;
use aiot_actors::inference::{self, InferenceConfig, InferenceStats};
use aiot_actors::provision::Fleet;
use aiot_actors::registry::service::{Registry, RegistryKeys, RegistryStats};
use aiot_actors::streams::bridge::{BridgeConfig, BridgeStats};
use aiot_actors::streams::command_relay::RelayStats;
use aiot_actors::things::gateway::GatewayStats;
use aiot_actors::things::{self, Downstream, ThingsConfig};
use aiot_actors::training::monitor::MonitorConfig;
use aiot_actors::training::TrainerConfig;
use aiot_actors::training::{self, TrainingStats};
use aiot_cluster::config::TrainingPace;
use aiot_cluster::node::AppQueries;
use aiot_runtime::prelude::*;
use serde::{Deserialize, Serialize};

mod counter;
mod things_metrics;
mod things_queries;

/// The names `by_name` knows.
pub const NAMES: &[&str] = &["ping", "counter", "things"];

/// A one-line summary of what this node's actors did, for the node's periodic status line.
pub type Status = Box<dyn Fn() -> String + Send>;

/// A topology as a node builds it, with what the node reports of it.
pub struct Built {
    pub topology: Topology,
    /// Its status line, if it has one.
    pub status: Option<Status>,
    /// Its metrics, added to the node's.
    pub metrics: Option<Box<dyn prometheus_client::collector::Collector>>,
    /// Its answers to the shell's application questions.
    pub queries: Option<AppQueries>,
}

impl Built {
    pub fn bare(topology: Topology) -> Built {
        Built { topology, status: None, metrics: None, queries: None }
    }
}

/// What a node builds its topology from.
pub struct Inputs<'a> {
    /// The node's name.
    pub node: &'a str,
    /// The motes' credentials (`[mqtt]`).
    pub fleet: Option<&'a Fleet>,
    /// The registry's keys (a platform node's `[models]`).
    pub models: Option<RegistryKeys>,
    pub training: &'a TrainingPace,
}

/// The topology `name`, as node `inputs.node` builds it.
pub fn by_name(name: &str, inputs: Inputs<'_>) -> Result<Built, String> {
    match name {
        "ping" => Ok(Built::bare(ping(inputs.node))),
        "counter" => Ok(Built::bare(counter::topology(inputs.node))),
        "things" => {
            if inputs.fleet.is_none() {
                return Err(
                    "the things topology needs the [mqtt] section with the fleet's credentials".into()
                );
            }
            Ok(things_tier(inputs))
        }
        other => Err(format!("unknown topology {other:?}; known: {}", NAMES.join(", "))),
    }
}

fn things_tier(inputs: Inputs<'_>) -> Built {
    let Inputs { node, fleet, models, training: pace } = inputs;
    let fleet = fleet.expect("checked by by_name");
    let gateway_stats = Arc::new(GatewayStats::default());
    let bridge = Arc::new(BridgeStats::default());
    let relay = Arc::new(RelayStats::default());
    let inference_stats = InferenceStats::default();
    let mut t = Topology::builder();
    let config = InferenceConfig {
        dsp: DspConfig::default(),
        dsp_replicas: 2,
        stage2_replicas: 2,
        rule: AlertRule::default(),
        stats: inference_stats.clone(),
    };
    let replicas = (1..=config.stage2_replicas).map(|r| format!("/stage2-{r}")).collect();
    inference::declare(&mut t, config);
    let training_stats = TrainingStats::default();
    let mut trainer = paced(TrainerConfig { replicas, ..TrainerConfig::default() }, pace);
    let release = models.map(|keys| {
        let (registry, deploy) = (Arc::new(RegistryStats::default()), Arc::new(DeployStats::default()));
        let stats = Arc::clone(&registry);
        t.actor("/registry", move |_| Registry::new(keys.clone(), Arc::clone(&stats)))
            .requires("tier=platform")
            .mailbox(4096, Overflow::Backpressure);
        deploy::declare(&mut t, DeployerConfig::default(), Arc::clone(&deploy));
        trainer.registry = Some("/registry".into());
        trainer.deployer = Some("/deployer".into());
        (registry, deploy)
    });
    training::declare(&mut t, trainer, MonitorConfig::default(), training_stats.clone());
    things::declare(
        &mut t,
        ThingsConfig {
            keys: fleet.keys(),
            gateway_stats: Arc::clone(&gateway_stats),
            downstream: Downstream::Bridge {
                config: BridgeConfig::default(),
                stats: Arc::clone(&bridge),
                relay: Arc::clone(&relay),
            },
            checkpoint_every: Some(PROXIES_CHECKPOINT_EVERY),
        },
    );
    let metrics = things_metrics::ThingsMetrics {
        node: node.to_string(),
        gateway: Arc::clone(&gateway_stats),
        bridge: Arc::clone(&bridge),
        relay: Arc::clone(&relay),
        deploy: release.as_ref().map(|(_, deploy)| Arc::clone(deploy)),
    };
    let queries = things_queries::queries(inference_stats.clone(), training_stats.clone());
    let status: Status = Box::new(move || {
        let s = &gateway_stats;
        let line = format!(
            "things: gateway in {} forwarded {} refused {} acks {} | {} | commands read {} delivered {} given up {} pending {} | {} | {}",
            s.frames_in.load(Ordering::Relaxed),
            s.forwarded.load(Ordering::Relaxed),
            s.refused_total(),
            s.acks_sent.load(Ordering::Relaxed),
            bridge.status(),
            relay.read.load(Ordering::Relaxed),
            relay.delivered.load(Ordering::Relaxed),
            relay.given_up.load(Ordering::Relaxed),
            relay.in_flight.load(Ordering::Relaxed),
            inference_stats.status(),
            training_stats.status()
        );
        match &release {
            Some((registry, deploy)) => format!("{line} | {} | {}", registry.status(), deploy.status()),
            None => line,
        }
    });
    Built {
        topology: t.build().expect("the things topology is valid"),
        status: Some(status),
        metrics: Some(Box::new(metrics)),
        queries: Some(queries),
    }
}

/// The trainer's periods as `[training]` sets them.
fn paced(mut trainer: TrainerConfig, pace: &TrainingPace) -> TrainerConfig {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    if let Some(h) = pace.first_after_hours {
        trainer.first_after = hours(h);
    }
    if let Some(h) = pace.every_hours {
        trainer.every = hours(h);
    }
    if let Some(h) = pace.label_horizon_hours {
        trainer.labels.horizon = hours(h);
    }
    trainer
}

/// How often the `things` topology checkpoints `/proxies` (failover with each mote's state).
const PROXIES_CHECKPOINT_EVERY: Duration = Duration::from_secs(5);
const PROBE_EVERY: Duration = Duration::from_millis(250);
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// The tally prints a line every this many answers.
const TALLY_EVERY: u64 = 10;

fn ping(node: &str) -> Topology {
    let mut t = Topology::builder();
    t.actor("/probe", |_| Probe {
        echo: ActorRef::parse("/echo").expect("valid path"),
        tally: ActorRef::parse("/tally").expect("valid path"),
        seq: 0,
        last_server: None,
    })
    .requires("tier=things");
    let here = node.to_string();
    t.actor("/echo", move |_| Echo { node: here.clone() }).requires("tier=inference");
    t.actor("/tally", |_| Tally { counted: 0 }).requires("tier=platform");
    t.build().expect("the ping topology is valid")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ProbeMsg {
    Tick,
    Answer(Result<Pong, AskError>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    pub seq: u64,
    pub node: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum EchoMsg {
    Ping { seq: u64, reply: ReplyTo<Pong> },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum TallyMsg {
    Count { seq: u64, node: String },
}

struct Probe {
    echo: ActorRef<EchoMsg>,
    tally: ActorRef<TallyMsg>,
    seq: u64,
    last_server: Option<String>,
}

impl Actor for Probe {
    type Msg = ProbeMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, ProbeMsg>) -> Result<(), ActorError> {
        ctx.schedule_every(PROBE_EVERY, ProbeMsg::Tick);
        Ok(())
    }

    fn handle(&mut self, msg: ProbeMsg, ctx: &mut Ctx<'_, ProbeMsg>) -> Result<(), ActorError> {
        match msg {
            ProbeMsg::Tick => {
                self.seq += 1;
                let seq = self.seq;
                if let Err(e) =
                    ctx.ask(&self.echo, |reply| EchoMsg::Ping { seq, reply }, ASK_TIMEOUT, ProbeMsg::Answer)
                {
                    println!("probe: ask {seq} not sent: {e}");
                }
            }
            ProbeMsg::Answer(Ok(pong)) => {
                if self.last_server.as_deref() != Some(pong.node.as_str()) {
                    println!("probe: answers from {}", pong.node);
                    self.last_server = Some(pong.node.clone());
                }
                // A tally that is not up yet (or moving) is a dead letter, not a failure.
                let _ = ctx.send(&self.tally, TallyMsg::Count { seq: pong.seq, node: pong.node });
            }
            ProbeMsg::Answer(Err(e)) => {
                println!("probe: no answer: {e}");
                self.last_server = None;
            }
        }
        Ok(())
    }
}

struct Echo {
    node: String,
}

impl Actor for Echo {
    type Msg = EchoMsg;

    fn handle(&mut self, msg: EchoMsg, ctx: &mut Ctx<'_, EchoMsg>) -> Result<(), ActorError> {
        match msg {
            EchoMsg::Ping { seq, reply } => {
                // An asker that has gone away is a dead letter, not a failure of the echo.
                let _ = ctx.reply(&reply, Pong { seq, node: self.node.clone() });
            }
        }
        Ok(())
    }
}

struct Tally {
    counted: u64,
}

impl Actor for Tally {
    type Msg = TallyMsg;

    fn handle(&mut self, msg: TallyMsg, _ctx: &mut Ctx<'_, TallyMsg>) -> Result<(), ActorError> {
        match msg {
            TallyMsg::Count { seq, node } => {
                self.counted += 1;
                if self.counted.is_multiple_of(TALLY_EVERY) {
                    println!("tally: {} answers counted, answer {seq} served by {node}", self.counted);
                }
            }
        }
        Ok(())
    }
}
