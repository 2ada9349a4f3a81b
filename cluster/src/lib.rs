//! aiot-cluster: the cluster layer (issue 3, in progress).
//!
//! It will own node identity and the cluster CA (capability tags inside certificates), the
//! mutual-TLS QUIC transport and its versioned wire codec, membership and failure detection, the
//! replicated directory (path -> node), placement by tags, migration and the shell's protocol.
//! Membership, directory, placement and migration will be sans-IO state machines generic over a
//! transport seam, so the simulator runs the same code over a simulated network.
//!
//! # Layout
//! - `identity`: the cluster CA, node and admin certificates with their capability tags, and
//!   the model-signing key pair (`aiot ca`).
//! - `placement`: where each top-level subtree goes, by attested tags, preference and load.
//! - `wire`: length-prefixed, versioned bincode frames, and a sans-IO decoder.
//! - `transport::quic`: the mutual-TLS QUIC adapter and its first authenticated exchange.
//! - `membership`: join, heartbeats, failure detection, up/down/left events (sans-IO).
//! - `config`: a node's configuration file, and which claimed tags its certificate attests.

pub mod config;
pub mod control;
pub mod coordinator;
pub mod directory;
pub mod identity;
pub mod lanes;
pub mod membership;
pub mod node;
pub mod placement;
pub mod transport;
pub mod wire;

/// The cluster's fault points (`aiot_runtime::fault`), for simulators to enable.
pub const FAULT_POINTS: [&str; 3] =
    [lanes::FAULT_IGNORE_ACK, membership::FAULT_SKIP_HEARTBEAT, coordinator::FAULT_SKIP_HOSTING];
