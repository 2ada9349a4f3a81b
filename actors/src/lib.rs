//! aiot-actors: the AIoT concerns as actors (issues 5 to 7, in progress).
//!
//! - `ports`: the application's ports (MQTT today; the event log comes with issue 6), each
//!   with its message types, the trait real and simulated implementations share, the port's
//!   adapter actor, and a conformance suite.
//! - `adapters`: the real implementations (rumqttc client, embedded rumqttd broker), behind
//!   features; hosts install them, actor code never calls them.
//!
//! Actors here never know where a peer lives: this crate never depends on `aiot-cluster`.

pub mod adapters;
pub mod maintenance;
pub mod ports;
pub mod provision;
pub mod things;
