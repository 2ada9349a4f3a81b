//! aiot-actors: the AIoT concerns as actors (issues 5 to 7, in progress).
//!
//! - `ports`: the application's ports (MQTT, the event log), each with its message types, the
//!   trait real and simulated implementations share, the port's adapter actor (MQTT), and a
//!   conformance suite.
//! - `adapters`: the real implementations (rumqttc client, embedded rumqttd broker, embedded
//!   event log), behind features; hosts install them, actor code never calls them.
//! - `ml`: the ML loop's pure parts: logistic regression, metrics, the int8 quantizer, drift
//!   statistics (no actors).
//!
//! Actors here never know where a peer lives: this crate never depends on `aiot-cluster`.

pub mod adapters;
pub mod maintenance;
pub mod ml;
pub mod ports;
pub mod provision;
pub mod streams;
pub mod things;
