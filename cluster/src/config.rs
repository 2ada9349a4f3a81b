//! A node's configuration file (`aiot node --config node.toml`).
//!
//! ```toml
//! listen = "127.0.0.1:7001"          # the QUIC endpoint
//! seeds = ["platform-1@127.0.0.1:7000"]  # name@address of nodes to join through (may be empty)
//! data_dir = "data/inference-1"      # platform nodes keep data at rest here
//! tags = { tier = "inference" }      # claims: only tags the certificate attests count
//! topology = "ping"                  # the topology every node runs (built into `aiot`)
//! metrics = "127.0.0.1:9100"         # the Prometheus endpoint, GET /metrics (optional)
//! dashboard = "127.0.0.1:8080"       # the web dashboard (optional; a platform node's)
//! warp = 1                           # cluster time per wall time (a demo's time warp)
//!
//! [mqtt]                             # the motes' broker (topologies with motes need it)
//! fleet = "motes/fleet.toml"         # credentials from `aiot motes provision`
//! url = "mqtt://127.0.0.1:1883"      # an external broker; without it the platform node
//! embedded_port = 1883               #   starts the embedded one on this port
//!
//! [stream]                           # the event log (BLUEPRINT section 6)
//! kafka.brokers = "10.0.0.5:9092,10.0.0.6:9092"  # Kafka instead of the embedded log
//! kafka.batch_records = 1            # optional: records per produce batch at most
//!
//! [models]                           # the platform node's model registry and deployer
//! signing_key = "ca/model-signing.key"  # from `aiot ca init`; its public half is on the motes
//!
//! [training]                         # the training pipeline's periods (cluster time)
//! first_after_hours = 24             # the first scheduled training after the start
//! every_hours = 24                   # then one this often
//! label_horizon_hours = 168          # a failure this soon after a window makes it positive
//!
//! [tls]
//! ca = "ca/ca.pem"
//! cert = "ca/inference-1.pem"
//! key = "ca/inference-1.key"
//! ```
//!
//! Relative paths are taken from the file's directory. Unknown fields are refused, and every
//! refusal names the field (and the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A node's settings, paths resolved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub listen: SocketAddr,
    #[serde(default)]
    pub seeds: Vec<Seed>,
    pub data_dir: PathBuf,
    /// Tags this node claims; see `tag_report`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The topology every node of the cluster runs, by the name the `aiot` binary knows it
    /// under (none: the node joins but hosts no actors).
    #[serde(default)]
    pub topology: Option<String>,
    /// Where to serve the node's Prometheus metrics (`GET /metrics`); none: not served.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Where to serve the web dashboard (`GET /`); none: not served.
    #[serde(default)]
    pub dashboard: Option<SocketAddr>,
    pub tls: TlsPaths,
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    #[serde(default)]
    pub stream: StreamConfig,
    #[serde(default)]
    pub models: Option<ModelsConfig>,
    /// Cluster time per wall time: under a warp of 1440 a cluster day passes in a wall minute
    /// (the pipeline's periods with it). For demos; every node of a cluster needs the same.
    #[serde(default = "default_warp")]
    pub warp: u32,
    #[serde(default)]
    pub training: TrainingPace,
}

fn default_warp() -> u32 {
    1
}

/// The longest `[training]` period accepted: ten years.
pub const TRAINING_HOURS_MAX: u64 = 24 * 365 * 10;

/// The training pipeline's periods (`[training]`), in hours of cluster time (1 to
/// [`TRAINING_HOURS_MAX`]); each left out keeps the pipeline's default (a day, a day, 7 days).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingPace {
    #[serde(default)]
    pub first_after_hours: Option<u64>,
    #[serde(default)]
    pub every_hours: Option<u64>,
    #[serde(default)]
    pub label_horizon_hours: Option<u64>,
}

/// The model registry's keys (`[models]`): the model-signing key; the key that seals models at
/// rest is made in `{data_dir}/models.key` on the first start.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub signing_key: PathBuf,
}

/// The event log's backend: the embedded log unless `kafka` is given (`[stream]` with
/// `kafka.brokers`, or a `[stream.kafka]` table with `brokers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
}

/// Kafka as the event log.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    #[serde(deserialize_with = "broker_list")]
    pub brokers: String,
    /// At most this many records per produce batch (librdkafka's `batch.num.messages`); unset:
    /// librdkafka's default. `1` for tansu, whose high watermark ignores all but a batch's first
    /// record (STACK-NOTES).
    #[serde(default)]
    pub batch_records: Option<u32>,
}

fn broker_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let brokers = String::deserialize(deserializer)?;
    let bad = |why: String| serde::de::Error::custom(format!("kafka brokers {brokers:?}: {why}"));
    if brokers.trim().is_empty() {
        return Err(bad("no broker given".into()));
    }
    for broker in brokers.split(',') {
        match broker.trim().rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(bad(format!("{broker:?} is not host:port"))),
        }
    }
    Ok(brokers)
}

/// The motes' broker. Platform nodes start the embedded broker unless `url` names an external
/// one; things nodes connect their MQTT port to `url`, or else to the embedded broker's port on
/// this host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The motes' credentials (`aiot motes provision`): frame keys and broker logins.
    pub fleet: PathBuf,
    /// An external broker, `mqtt://HOST:PORT`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_embedded_port")]
    pub embedded_port: u16,
}

fn default_embedded_port() -> u16 {
    1883
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A node to join through: its name (checked against its certificate) and its address.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Seed {
    pub name: String,
    pub addr: SocketAddr,
}

impl TryFrom<String> for Seed {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (name, addr) =
            text.split_once('@').ok_or_else(|| format!("seed {text:?} is not name@host:port"))?;
        crate::identity::check_name(name).map_err(|e| format!("seed {text:?}: {e}"))?;
        let addr = addr.parse().map_err(|e| format!("seed {text:?}: bad address: {e}"))?;
        Ok(Seed { name: name.to_string(), addr })
    }
}

/// A configuration that could not be used, naming the file and what is wrong in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl NodeConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses a configuration whose relative paths are relative to `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let mut config: NodeConfig =
            toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim().to_string()))?;
        if config.warp == 0 {
            return Err(ConfigError("warp: 0 stops time; it must be at least 1".into()));
        }
        let pace = &config.training;
        for (name, hours) in [
            ("first_after_hours", pace.first_after_hours),
            ("every_hours", pace.every_hours),
            ("label_horizon_hours", pace.label_horizon_hours),
        ] {
            if let Some(h) = hours.filter(|h| !(1..=TRAINING_HOURS_MAX).contains(h)) {
                return Err(ConfigError(format!(
                    "[training] {name} = {h}: expected 1 to {TRAINING_HOURS_MAX} hours"
                )));
            }
        }
        let fleet = config.mqtt.as_mut().map(|m| &mut m.fleet);
        let signing = config.models.as_mut().map(|m| &mut m.signing_key);
        for path in [&mut config.data_dir, &mut config.tls.ca, &mut config.tls.cert, &mut config.tls.key]
            .into_iter()
            .chain(fleet)
            .chain(signing)
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
        Ok(config)
    }
}

/// Which claimed tags the certificate attests, and which claims it does not (those are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagReport {
    /// The tags that count: exactly the certificate's.
    pub attested: BTreeMap<String, String>,
    /// Claims the certificate does not back: `(key, claimed value)`.
    pub unattested: Vec<(String, String)>,
}

/// Compares claimed tags with the certificate's. Only the certificate's tags are ever used.
pub fn tag_report(claimed: &BTreeMap<String, String>, attested: &BTreeMap<String, String>) -> TagReport {
    let unattested = claimed
        .iter()
        .filter(|(k, v)| attested.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    TagReport { attested: attested.clone(), unattested }
}
