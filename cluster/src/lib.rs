//! aiot-cluster: the cluster layer.
//!
//! Node identity and the cluster CA (capability tags inside certificates), the mutual-TLS QUIC
//! transport and its versioned wire codec, membership with failure detection and leases, the
//! replicated directory (path -> node), placement by tags with majority-granted claims, and
//! data lanes for remote messages. Everything but `transport::quic` and `node` is sans-IO (no
//! clock read, no IO), so the simulator runs the same code over its simulated network.
//! Live migration moves a subtree between nodes with its state (`coordinator` decides,
//! `node::migrate` executes, the runtime's `migration` takes it out and starts it).
//!
//! # Layout
//! - `identity`: the cluster CA, node and admin certificates with their capability tags, and
//!   the model-signing key pair (`aiot ca`).
//! - `config`: a node's configuration file, and which claimed tags its certificate attests.
//! - `wire`: length-prefixed, versioned bincode frames, and a sans-IO decoder.
//! - `membership`: join, heartbeats, failure detection, up/down/left events, leases.
//! - `directory`: which node hosts each placed subtree, replicated by announcement.
//! - `placement`: where each top-level subtree goes, by attested tags, preference and load.
//! - `lanes`: data lanes: numbered frames, the retry buffer, de-duplication.
//! - `checkpoints`: failover with state: the checkpoints a node takes, keeps and starts from.
//! - `relay`: per-sender order across a move (forwarded frames, fences at the sender).
//! - `control`: what a node pair's control stream carries.
//! - `coordinator`: a node's decisions (membership, leases, directory, claims, placement) as
//!   one state machine.
//! - `transport::quic`: the mutual-TLS QUIC adapter and its first authenticated exchange.
//! - `transport::admin`: the shell's connection to a node (an admin certificate).
//! - `admin`: the shell's protocol: requests and a node's answers.
//! - `node`: a node on tokio and QUIC, executing the coordinator's decisions and answering
//!   admins.

pub mod admin;
pub mod checkpoints;
pub mod config;
pub mod control;
pub mod coordinator;
pub mod directory;
pub mod identity;
pub mod lanes;
pub mod membership;
pub mod node;
pub mod placement;
pub mod relay;
pub mod transport;
pub mod wire;

/// The cluster's fault points (`aiot_runtime::fault`), for simulators to enable.
pub const FAULT_POINTS: [&str; 3] =
    [lanes::FAULT_IGNORE_ACK, membership::FAULT_SKIP_HEARTBEAT, coordinator::FAULT_SKIP_HOSTING];
