//! aiot-actors: the AIoT concerns as actors (issues 5 to 7, not built yet).
//!
//! It will own the sensor proxies, gateway, DSP filter, stage-2 inference, bridge, drift
//! monitor, trainer, quantizer, registry, deployer and pipeline actors; the application's port
//! traits (`ports/`: MQTT, event log) and their real adapters (`adapters/`); and the pure `dsp/`
//! and `ml/` modules those actors call. Actors here never know where a peer lives: this crate
//! never depends on `aiot-cluster`.
//!
//! Today the crate is empty on purpose: nothing here is called by anything.
