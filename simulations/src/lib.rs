//! aiot-simulations: the simulated world (issue 4, not built yet).
//!
//! It will own the virtual clock and per-node seeded RNG streams, the simulated node-to-node
//! channel with its faults, the simulated MQTT broker and event log, the induction-motor physics,
//! swarm fault profiles, fault points, invariant checkers and the named scenarios of `aiot sim`.
//! Actors run under the deterministic executor of `aiot-runtime` (`aiot_runtime::exec::det`).
//!
//! Today the crate is empty on purpose: nothing here is called by anything.
