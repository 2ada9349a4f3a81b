//! The things tier: the MQTT gateway, one `SensorProxy` per mote, and a counting sink.
//!
//! ```text
//! mote --aiot/mote-N/up--> /port-mqtt --> Gateway --UpFrame--> /proxies --> /proxies/mote-N
//!                                            ^                                 |
//!      mote <--aiot/mote-N/down-- (acks) ----+------------ Downlink -----------+--> downstream
//! ```
//!
//! - `gateway`: verifies frames (codec, CRC, the mote's HMAC, topic against frame), counts and
//!   logs (rate-limited) every refusal, routes good frames to proxies by path, signs downlink.
//! - `proxy`: the mote's twin: de-duplicates by (mote, boot epoch, sequence), flags sensor
//!   faults, tracks health, forwards telemetry and maintenance records downstream, and asks the
//!   gateway to acknowledge each frame to its mote once downstream has stored it.
//! - `acks`, `dedup`, `health`, `sensor_faults`: the proxy's pure parts.
//! - `sink`: a downstream that stores by key and counts, for the things tier on its own;
//!   the system's downstream is the protocol bridge (`crate::streams::bridge`).

pub mod acks;
pub mod commands;
pub mod dedup;
pub mod gateway;
pub mod health;
pub mod proxy;
pub mod sensor_faults;
pub mod sink;

use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::{Overflow, ReplyTo, TopologyBuilder};
use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::maintenance::MaintenanceRecord;
use crate::ports::eventlog::adapter::LogEvent;
use crate::provision::KeyRing;
use crate::streams::bridge::{Bridge, BridgeConfig, BridgeStats};
use crate::streams::command_relay::{CommandRelay, RelayStats};
use gateway::{Gateway, GatewayMsg, GatewayStats};
use proxy::{ProxiesMsg, ProxyHost};
use sensor_faults::SensorFaults;
use sink::{CountingSink, SinkCounts};

/// A frame the gateway verified, on its way to its mote's proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpFrame {
    pub mote: u32,
    pub boot_epoch: u32,
    pub seq: u32,
    /// The mote's clock when it captured the window, ms.
    pub capture_ms: u64,
    /// The gateway's clock when the frame arrived, ms.
    pub received_ms: u64,
    /// `aiot_firmware::protocol::Kind` code.
    pub kind: u8,
    /// A slice of the MQTT message it came in (shared, not copied).
    pub payload: Bytes,
}

/// What proxies send downstream.
#[derive(Debug, Serialize, Deserialize)]
pub enum Onward {
    /// A frame not yet stored, with the proxy's verdict on its sensors. Downstream answers
    /// `stored` once the frame is safe (and again for a copy it already has): only then does the
    /// proxy acknowledge it to the mote.
    Telemetry {
        frame: UpFrame,
        faults: SensorFaults,
        stored: ReplyTo<()>,
    },
    Maintenance(MaintenanceRecord),
    /// For the bridge from its log port (other downstreams ignore it).
    Log(LogEvent),
    /// The bridge's retry timer.
    RetryDue,
}

/// What a proxy asks the gateway to send down to its mote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Downlink {
    /// Frames `first_seq..=last_seq` of `boot_epoch` are safe: the mote may forget them.
    Ack { boot_epoch: u32, first_seq: u32, last_seq: u32 },
}

/// Mailbox of the gateway and of `/proxies`: room for a burst from the whole fleet. When full,
/// the MQTT link counts the message undeliverable and the mote resends it (it was never acked).
pub const MAILBOX: usize = 65_536;

/// What the things tier needs from its host.
pub struct ThingsConfig {
    /// Frame keys of the provisioned motes.
    pub keys: KeyRing,
    pub gateway_stats: Arc<GatewayStats>,
    pub downstream: Downstream,
    /// Checkpoints of `/proxies` and its proxies at this period, so a failover restores each
    /// mote's de-duplication, health, model and OTA state (none: a failover starts them
    /// afresh). A checkpoint travels as one frame (1 MiB) and a proxy takes about 130 bytes
    /// of it: some 8 000 motes at most; a larger one is refused and counted.
    pub checkpoint_every: Option<Duration>,
}

/// Where the proxies send frames and maintenance records.
pub enum Downstream {
    /// The counting sink at `/sink`, storing in memory (the things tier alone: its tests and the
    /// ingest benchmark).
    Sink(Arc<Mutex<SinkCounts>>),
    /// The protocol bridge, on the platform tier (it needs the log port `/port-log` on its
    /// node): `/bridge` into the event streams, and `/command-relay` from the `commands` stream
    /// down to the motes through the gateway.
    Bridge { config: BridgeConfig, stats: Arc<BridgeStats>, relay: Arc<RelayStats> },
}

/// Declares the downstream (`/sink` or `/bridge`), `/proxies` (a proxy per provisioned mote at
/// start) and `/gateway` (on a things-tier node; it needs the MQTT port `/port-mqtt` on its node).
pub fn declare(t: &mut TopologyBuilder, config: ThingsConfig) {
    let ThingsConfig { keys, gateway_stats, downstream, checkpoint_every } = config;
    let downstream_path = match downstream {
        Downstream::Sink(counts) => {
            t.actor("/sink", move |_| CountingSink::new(Arc::clone(&counts)));
            "/sink"
        }
        Downstream::Bridge { config, stats, relay } => {
            t.actor("/bridge", move |_| Bridge::new(config, Arc::clone(&stats)))
                .requires("tier=platform")
                .mailbox(MAILBOX, Overflow::Backpressure);
            t.actor("/command-relay", move |init| {
                CommandRelay::new(init.link("gateway"), Arc::clone(&relay))
            })
            .requires("tier=platform")
            .link::<GatewayMsg>("gateway", "/gateway");
            "/bridge"
        }
    };
    let provisioned: Vec<u32> = keys.motes().map(|m| m.0).collect();
    let proxies = t
        .actor("/proxies", move |init| {
            ProxyHost::new(init.link("gateway"), init.link("downstream"), provisioned.clone())
        })
        .mailbox(MAILBOX, Overflow::Backpressure)
        .link::<GatewayMsg>("gateway", "/gateway")
        .link::<Onward>("downstream", downstream_path);
    if let Some(every) = checkpoint_every {
        proxies.checkpoint_every(every);
    }
    t.actor("/gateway", move |init| {
        Gateway::new(keys.clone(), init.link("proxies"), Arc::clone(&gateway_stats))
    })
    .requires("tier=things")
    .mailbox(MAILBOX, Overflow::Backpressure)
    .link::<ProxiesMsg>("proxies", "/proxies");
}
