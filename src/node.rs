//! `aiot node --config node.toml`: a cluster node. It loads and checks its configuration and
//! certificate, then runs `aiot_cluster::node::Node` with the topology the configuration names:
//! membership, leases, placement, the directory and remote messages over mutual-TLS QUIC.
//! Each event is one line on stdout; refusals say why. Ctrl-C leaves the cluster gracefully.
//!
//! With an `[mqtt]` section: a platform node starts the embedded broker (unless `url` names an
//! external one) with the fleet's logins; a things node connects the MQTT port, with the
//! gateway's login, before any actor is placed on it. With the `things` topology, a platform
//! node also opens the event log the bridge appends to (`crate::streams`), and with a
//! `[models]` section runs the model registry and the deployer: it reads the model-signing key
//! (PKCS#8 PEM, `aiot ca init`) and seals models under `{data_dir}/models.key`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aiot_actors::adapters::rumqttc::RumqttcConnection;
use aiot_actors::adapters::rumqttd::EmbeddedBroker;
use aiot_actors::ports::mqtt::adapter::MqttLink;
use aiot_actors::ports::mqtt::{BrokerAddr, ConnectOptions, Mqtt};
use aiot_actors::provision::Fleet;
use aiot_actors::registry::service::RegistryKeys;
use aiot_cluster::config::{tag_report, MqttConfig, NodeConfig};
use aiot_cluster::membership::MembershipConfig;
use aiot_cluster::node::{tag_list, Node, NodeEvent, NodeSetup, Prepare};
use aiot_cluster::transport::quic::NodeTls;
use aiot_runtime::{ClusterClock, Topology};
use ed25519_dalek::SigningKey;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::checkpoint_disk::SealedCheckpoints;
use crate::topologies::{Built, Status};

/// How often a topology's status line is printed.
const STATUS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Options {
    pub config: PathBuf,
    /// Check the configuration and certificate, print the identity, and exit.
    pub check: bool,
}

pub fn run(options: Options) -> Result<(), String> {
    let config = NodeConfig::load(&options.config).map_err(|e| e.to_string())?;
    let tls = NodeTls::load(&config.tls.ca, &config.tls.cert, &config.tls.key).map_err(|e| e.to_string())?;
    println!("node {} with attested tags [{}]", tls.me.name, tag_list(&tls.me.tags));
    if options.check {
        let (fleet, models) = topology_inputs(&config, &tls)?;
        if let Some(topology) = &config.topology {
            build_topology(&config, topology, &tls, fleet.as_ref(), models)
                .map_err(|e| format!("{}: topology: {e}", options.config.display()))?;
        }
        for (key, value) in tag_report(&config.tags, &tls.me.tags).unattested {
            println!(
                "ignored tag {key}={value}: claimed in the configuration but not attested by the certificate"
            );
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    let config_path = options.config.display().to_string();
    runtime.block_on(async {
        let mut running = start(config, tls, None).await.map_err(|e| format!("{config_path}: {e}"))?;
        let mut status_every = tokio::time::interval(STATUS_EVERY);
        loop {
            tokio::select! {
                _ = status_every.tick(), if running.status.is_some() => {
                    if let Some(status) = &running.status {
                        println!("{}", status());
                    }
                }
                event = running.events.recv() => match event {
                    Some(event) => println!("{event}"),
                    None => return Ok(()),
                },
                _ = tokio::signal::ctrl_c() => {
                    running.node.leave().await;
                    println!("left the cluster");
                    return Ok(());
                }
            }
        }
    })
}

/// A node started by [`start`]: its events, its status line, and what serves beside it (the
/// embedded broker, while this value lives).
pub struct Running {
    pub node: Arc<Node>,
    pub events: UnboundedReceiver<NodeEvent>,
    pub status: Option<Status>,
    pub metrics: Option<SocketAddr>,
    pub dashboard: Option<SocketAddr>,
    _broker: Option<EmbeddedBroker>,
}

/// What a topology is built from, loaded whatever the topology: the motes' credentials
/// (`[mqtt]`) and, on a platform node, the registry's keys (`[models]`).
fn topology_inputs(
    config: &NodeConfig,
    tls: &NodeTls,
) -> Result<(Option<Fleet>, Option<RegistryKeys>), String> {
    let fleet = config.mqtt.as_ref().map(load_fleet).transpose()?;
    let models = match &config.models {
        Some(models) if tier_of(tls) == "platform" => {
            Some(registry_keys(&models.signing_key, &config.data_dir)?)
        }
        _ => None,
    };
    Ok((fleet, models))
}

/// The topology `name` as this node builds it.
fn build_topology(
    config: &NodeConfig,
    name: &str,
    tls: &NodeTls,
    fleet: Option<&Fleet>,
    models: Option<RegistryKeys>,
) -> Result<Built, String> {
    let inputs = crate::topologies::Inputs { node: &tls.me.name, fleet, models, training: &config.training };
    crate::topologies::by_name(name, inputs).map_err(|e| format!("topology: {e}"))
}

fn tier_of(tls: &NodeTls) -> String {
    tls.me.tags.get("tier").cloned().unwrap_or_default()
}

/// Starts a node from its configuration on the current tokio runtime: the embedded broker
/// (a platform node with `[mqtt]` and no `url`), the MQTT port (a things node), the event log
/// (a platform node with the `things` topology), the node itself, then its metrics endpoint and
/// dashboard.
/// Its cluster time is `clock`'s (the wall instant a cluster clock was read at, and what it
/// read, Unix ms; the node carries it on to its own start at its warp). None: the wall clock
/// at its start, which nodes started apart agree on only without a time warp.
pub async fn start(
    config: NodeConfig,
    tls: NodeTls,
    clock: Option<(std::time::Instant, u64)>,
) -> Result<Running, String> {
    let (name, tier) = (tls.me.name.clone(), tier_of(&tls));
    let (fleet, models) = topology_inputs(&config, &tls)?;
    let Built { topology, mut status, metrics, queries } = match &config.topology {
        Some(topology) => build_topology(&config, topology, &tls, fleet.as_ref(), models)?,
        None => Built::bare(Topology::builder().build().map_err(|e| e.to_string())?),
    };
    let (broker, mut prepare) = match (&config.mqtt, fleet) {
        (Some(settings), Some(fleet)) => mqtt_for(&name, &tier, settings, fleet).await?,
        _ => (None, None),
    };
    if tier == "platform" && config.topology.as_deref() == Some("things") {
        let (log_prepare, log_status) = crate::streams::prepare(&config)?;
        prepare = Some(log_prepare);
        status = Some(match status {
            Some(topology) => Box::new(move || format!("{}\n{}", topology(), log_status())),
            None => log_status,
        });
    }
    let incarnation = incarnation();
    let setup = NodeSetup {
        tls,
        listen: config.listen,
        seeds: config.seeds.clone(),
        membership: MembershipConfig::default(),
        topology,
        seed: incarnation,
        incarnation,
        claimed_tags: config.tags.clone(),
        prepare,
        clock: ClusterClock {
            origin_ms: clock.map_or(incarnation, |(_, ms)| ms),
            warp: f64::from(config.warp),
        },
        clock_read_at: clock.map(|(at, _)| at),
        checkpoint_disk: match tier.as_str() {
            "platform" => Some(Box::new(SealedCheckpoints::open(&config.data_dir)?)),
            _ => None,
        },
    };
    let (node, events) = Node::start(setup)?;
    println!("listening on {}", node.addr());
    let node = Arc::new(node);
    if let Some(collector) = metrics {
        node.register_metrics(collector);
    }
    if let Some(queries) = queries {
        node.set_app(queries);
    }
    let metrics = match config.metrics {
        Some(addr) => {
            let bound = crate::metrics::serve(addr, Arc::clone(&node)).await?;
            println!("metrics on http://{bound}/metrics");
            Some(bound)
        }
        None => None,
    };
    let dashboard = match config.dashboard {
        Some(addr) => {
            let bound = crate::dashboard::serve(addr, Arc::clone(&node)).await?;
            println!("dashboard on http://{bound}/");
            Some(bound)
        }
        None => None,
    };
    Ok(Running { node, events, status, metrics, dashboard, _broker: broker })
}

/// The registry's keys: the model-signing key from its PEM file, the storage key from the
/// data directory (made on the first start).
fn registry_keys(signing_key: &Path, data_dir: &Path) -> Result<RegistryKeys, String> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let pem = std::fs::read_to_string(signing_key).map_err(|e| format!("{}: {e}", signing_key.display()))?;
    let signing = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| format!("{}: not an ed25519 PKCS#8 key: {e}", signing_key.display()))?;
    let storage = crate::streams::secret_key(data_dir, "models.key")?;
    Ok(RegistryKeys { storage, signing })
}

fn load_fleet(mqtt: &MqttConfig) -> Result<Fleet, String> {
    let text = std::fs::read_to_string(&mqtt.fleet)
        .map_err(|e| format!("{}: {e} (run `aiot motes provision`)", mqtt.fleet.display()))?;
    Fleet::from_toml(&text).map_err(|e| format!("{}: {e}", mqtt.fleet.display()))
}

/// Starts the embedded broker on a platform node (it serves while the returned value lives);
/// on a things node, returns the preparation that connects and installs the MQTT port.
async fn mqtt_for(
    node: &str,
    tier: &str,
    settings: &MqttConfig,
    fleet: Fleet,
) -> Result<(Option<EmbeddedBroker>, Option<Prepare>), String> {
    let broker = match &settings.url {
        Some(url) => BrokerAddr::parse(url)?,
        None => BrokerAddr { host: "127.0.0.1".into(), port: settings.embedded_port },
    };
    let mut embedded = None;
    if tier == "platform" && settings.url.is_none() {
        // Its start proves the broker is ours with a blocking client: off the runtime's workers.
        let (port, logins) = (settings.embedded_port, fleet.logins());
        let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::start(port, Some(logins)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        println!("embedded MQTT broker on {} ({} logins)", broker.addr(), fleet.logins().len());
        embedded = Some(broker);
    }
    if tier != "things" {
        return Ok((embedded, None));
    }
    let (runtime, node) = (tokio::runtime::Handle::current(), node.to_string());
    let prepare: Prepare = Box::new(move |system| {
        let link = MqttLink::new();
        let options = ConnectOptions::new(format!("{}-{node}", fleet.gateway.user))
            .with_credentials(&fleet.gateway.user, &fleet.gateway.password);
        link.attach(RumqttcConnection::connect(&runtime, &broker, options, link.sink()));
        system.install_port::<Mqtt, _>(link.adapter()).map_err(|e| e.to_string())?;
        println!("MQTT port connecting to {broker}");
        Ok(())
    });
    Ok((embedded, Some(prepare)))
}

/// This process's incarnation: later starts get higher numbers (milliseconds since the epoch;
/// host code, so reading the wall clock is right here).
fn incarnation() -> u64 {
    #[allow(clippy::disallowed_methods)]
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
