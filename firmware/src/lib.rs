//! aiot-firmware: the mote core (issue 5, not built yet).
//!
//! It will be `#![no_std]` with no heap in its core: sampling ring buffers, stage-1 DSP
//! features, the int8 logistic model, the actuation rule, the mote frame codec shared with
//! `aiot-actors`, and the OTA receiver. The `std` feature is for host builds.
//!
//! Today the crate is empty on purpose: nothing here is called by anything.
#![cfg_attr(not(feature = "std"), no_std)]
