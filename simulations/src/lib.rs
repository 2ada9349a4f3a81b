//! aiot-simulations: the simulated world (issue 4, in progress).
//!
//! One seed reproduces a whole run, faults included. The cluster's own sans-IO code (the
//! coordinator: membership, leases, directory, placement) runs on simulated nodes over a
//! simulated network (`net`, the channel of BLUEPRINT section 10) with crashes, restarts and
//! clock drift (`world`); each seed draws its own fault profile (`faults`, swarm testing);
//! scenarios state invariants checked after every tick and a liveness condition checked once
//! the world has healed (`scenario`, `scenarios`). `aiot sim` runs them.
//!
//! Each simulated node runs its subtrees under the deterministic executor (`actors`), with
//! remote sends over the cluster's data lanes on the simulated network.
//!
//! Subtrees declared with `checkpoint_every` are checkpointed to the platform-tier nodes and
//! start from their newest checkpoint after a failover (`checkpoints`), as on QUIC nodes.
//!
//! Each seed also enables a random set of the cluster's fault points (`aiot_runtime::fault`).
//!
//! Motor physics (`motor`): induction motors whose speed, load, temperature, bearing defects,
//! imbalance, broken rotor bars and sensor faults follow one seed; defects grow to failure and
//! the crew's maintenance log (failures, repairs, inspection findings) gives the labels; raw
//! four-channel windows are synthesised on demand for motes in the simulator, `aiot motes` and
//! the demo.
//!
//! The plant (`plant`): motes running the firmware core on the motor physics (`motes`), over
//! the simulated MQTT broker (`mqtt`), with the closed loop checked window by window
//! (`closed_loop`). The event log's model (`eventlog`): the Kafka contract in virtual time.
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

pub mod actors;
pub mod checkpoints;
pub mod closed_loop;
pub mod efficacy;
pub mod eventlog;
pub mod faults;
pub mod fleet_ota;
pub mod fleet_pm;
pub mod motes;
pub mod motor;
pub mod moves;
pub mod mqtt;
pub mod net;
pub mod ota;
pub mod plant;
pub mod scenario;
pub mod scenarios;
pub mod streams;
pub mod world;
