//! The event log on a platform node (`aiot node` with the `things` topology): the embedded
//! durable log in `{data_dir}/log` (its encryption key in `{data_dir}/log.key`, made on the first
//! start, readable by its owner only, never overwritten), or Kafka when `[stream]` names brokers.
//! Either way the node installs the log port (`/port-log`) the bridge appends through, and
//! its status line says how the log is: Kafka unreachable shows at once (appends wait in the
//! client meanwhile, so the bridge itself sees nothing fail until they time out).

use std::path::Path;
use std::sync::Arc;

use aiot_actors::adapters::embedded_log::{EmbeddedLog, LogConfig, LogKey};
use aiot_actors::adapters::kafka::{KafkaLog, KafkaSettings};
use aiot_actors::ports::eventlog::adapter::{Log, LogLink};
use aiot_actors::ports::eventlog::EventLog;
use aiot_actors::provision::{hex32, to_hex};
use aiot_cluster::config::NodeConfig;
use aiot_cluster::node::Prepare;

use crate::topologies::Status;

/// The preparation that opens the node's log and installs the log port, and the log's status.
pub fn prepare(config: &NodeConfig) -> Result<(Prepare, Status), String> {
    let link = LogLink::new();
    let (log, status): (Arc<dyn EventLog>, Status) = match &config.stream.kafka {
        Some(kafka) => {
            println!("event log on Kafka at {}", kafka.brokers);
            let settings = KafkaSettings {
                max_batch_records: kafka.batch_records,
                ..KafkaSettings::new(kafka.brokers.clone())
            };
            let kafka = Arc::new(KafkaLog::new(settings, link.sink()).map_err(|e| e.to_string())?);
            let watched = Arc::clone(&kafka);
            let status: Status = Box::new(move || match watched.status() {
                Ok(()) => format!("log: kafka ok, {} appends in flight", watched.in_flight()),
                Err(e) => format!("log: kafka UNAVAILABLE ({e}), {} appends in flight", watched.in_flight()),
            });
            (kafka, status)
        }
        None => {
            let key = log_key(&config.data_dir)?;
            let dir = config.data_dir.join("log");
            let log = EmbeddedLog::open(&dir, LogConfig::new(key), link.sink())
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            println!("embedded event log in {}", dir.display());
            let log = Arc::new(log);
            let watched = Arc::clone(&log);
            let status: Status = Box::new(move || {
                let s = watched.stats();
                format!(
                    "log: embedded, {} appended, {} failed, {} I/O errors, {} corrupt found",
                    s.appended, s.append_failed, s.io_errors, s.corrupt
                )
            });
            (log, status)
        }
    };
    link.attach(log);
    let prepare: Prepare =
        Box::new(move |system| system.install_port::<Log, _>(link.adapter()).map_err(|e| e.to_string()));
    Ok((prepare, status))
}

/// The log's key from `{data_dir}/log.key`, made there on the first start.
fn log_key(data_dir: &Path) -> Result<LogKey, String> {
    secret_key(data_dir, "log.key").map(LogKey)
}

/// A 32-byte key from `{data_dir}/{file}` (hex, written 0600), made there on the first start.
pub fn secret_key(data_dir: &Path, file: &str) -> Result<[u8; 32], String> {
    let path = data_dir.join(file);
    if !path.exists() {
        std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness for {file}: {e}"))?;
        crate::motes::write_secret(&path, &to_hex(&key))?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    hex32(&text).map_err(|e| format!("{}: the key {e}", path.display()))
}
