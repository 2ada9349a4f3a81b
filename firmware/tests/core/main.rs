//! Integration tests of the firmware core, in one binary (one link).

mod actuation;
mod codec;
mod common;
mod duty;
mod features_reference;
mod fuzz;
mod mote;
mod ota;
mod resend;
