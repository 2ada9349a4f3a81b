//! aiot-simulations: the simulated world (issue 4, in progress).
//!
//! One seed reproduces a whole run, faults included. The cluster's own sans-IO code (the
//! coordinator: membership, leases, directory, placement) runs on simulated nodes over a
//! simulated network (`net`, the channel of BLUEPRINT section 10) with crashes, restarts and
//! clock drift (`world`); each seed draws its own fault profile (`faults`, swarm testing);
//! scenarios state invariants checked after every tick and a liveness condition checked once
//! the world has healed (`scenario`, `scenarios`). `aiot sim` runs them.
//!
//! Not built yet (issue 4 goes on): actors under the deterministic executor inside the world
//! (request/reply across connection resets), fault points, the MQTT and event-log models, and
//! motor physics.
//!
//! # Writing a simulation test
//! ```
//! use aiot_simulations::{scenario, scenarios};
//! let failover = scenarios::by_name("failover").unwrap();
//! for seed in 0..3 {
//!     let outcome = scenario::run(failover, seed, std::time::Duration::from_secs(30), |_| {});
//!     assert_eq!(outcome.failure, None, "replay: aiot sim --scenario failover --seed {seed}");
//! }
//! ```

pub mod faults;
pub mod net;
pub mod scenario;
pub mod scenarios;
pub mod world;
