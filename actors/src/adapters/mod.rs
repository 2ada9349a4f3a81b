//! Real adapters for the application's ports, behind cargo features (BLUEPRINT section 10).
//! Hosts (the `aiot` binary, tests, benchmarks) use them; actor code never does.

#[cfg(feature = "log-embedded")]
pub mod embedded_log;
#[cfg(feature = "log-kafka")]
pub mod kafka;
pub mod mosquitto;
#[cfg(feature = "mqtt-rumqttc")]
pub mod rumqttc;
#[cfg(feature = "mqtt-rumqttd")]
pub mod rumqttd;
pub mod tansu;
