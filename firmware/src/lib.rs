//! aiot-firmware: the mote core.
//!
//! A mote is a microcontroller on an induction motor. It samples four channels (current,
//! vibration, sound, temperature), turns each window into the stage-1 feature vector, scores it
//! with an int8 logistic model, derates or trips the motor when the score stays high, and
//! reports to the cluster over MQTT in authenticated frames it keeps until they are
//! acknowledged. Models arrive over the air, signed, into A/B slots with rollback.
//!
//! The core is `#![no_std]` and heap-free: every buffer is a fixed-size array, time is passed
//! in (`now_ms`), and nothing does IO: the host (a real mote, `aiot motes`, or the simulator)
//! feeds windows and down frames in and carries frames out. The `std` feature (default) only
//! adds host conveniences (`std::error::Error` impls). `nostd-check/` proves the core links
//! without `std` or an allocator.
//!
//! Modules, in the order data flows:
//! - [`sampling`]: ADC-like quantisation into fixed rings ([`ring`]); [`sampling::Window`].
//! - [`features`]: the stage-1 feature vector (exact definitions in the module doc).
//! - [`model`]: the int8 logistic model and its byte format.
//! - [`actuation`]: Normal / Derate / Trip with k-of-k windows, hysteresis and a latch.
//! - [`duty`]: when to report, when to send a raw window.
//! - [`protocol`]: the mote protocol shared with the cluster (topics, frames, payloads).
//! - [`resend`]: the bounded ring of unacknowledged frames.
//! - [`ota`]: the over-the-air model receiver (hash, ed25519, A/B slots, trial, rollback).
//! - [`mote`]: the sans-IO mote that puts it all together.
//! - [`fuzz`]: the fuzz body, shared by the cargo-fuzz target and a bounded test.
#![cfg_attr(not(any(feature = "std", test)), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod actuation;
pub mod duty;
pub mod features;
pub mod fuzz;
pub mod model;
pub mod mote;
pub mod ota;
pub mod protocol;
pub mod resend;
pub mod ring;
pub mod sampling;
