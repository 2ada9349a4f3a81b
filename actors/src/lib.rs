//! aiot-actors: the AIoT concerns as actors (issues 5 to 7, in progress).
//!
//! - `ports`: the application's ports (MQTT, the event log), each with its message types, the
//!   trait real and simulated implementations share, the port's adapter actor (MQTT), and a
//!   conformance suite.
//! - `adapters`: the real implementations (rumqttc client, embedded rumqttd broker, embedded
//!   event log), behind features; hosts install them, actor code never calls them.
//! - `dsp`: the DSP filter's computation on raw windows (spectra, envelope, bearing bands,
//!   supply sidebands) as a pure feature extractor, and the bearing geometry.
//! - `inference`: the stream stages: the DSP filter (telemetry -> features) and stage 2
//!   (features -> alerts), the alert rule, the drift monitor's rule.
//! - `pipeline`: DAGs of step actors declared in code (retries per step, queryable status).
//! - `training`: the MLOps flow as such a pipeline (features and maintenance -> stage 2's
//!   model and the motes' int8 model, registered and deployed), and the drift monitor.
//! - `deploy`: the deployer (signed models to the motes over the air, canary first).
//! - `registry`: registered models as stored: lineage card, int8 image, ed25519 signatures,
//!   sealed with an AEAD, and the checks a model must pass to load.
//! - `ml`: the ML loop's pure parts: logistic regression, metrics, the int8 quantizer, drift
//!   statistics (no actors).
//!
//! Actors here never know where a peer lives: this crate never depends on `aiot-cluster`.

pub mod adapters;
pub mod deploy;
pub mod dsp;
pub mod inference;
pub mod maintenance;
pub mod ml;
pub mod pipeline;
pub mod ports;
pub mod provision;
pub mod registry;
pub mod streams;
pub mod things;
pub mod training;
