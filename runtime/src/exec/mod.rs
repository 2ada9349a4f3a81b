//! The two executors that drive runners: `det` (deterministic, virtual time, trace hash) and
//! `tokio` (production, behind the default-on `tokio` feature). Both share every actor
//! semantic through `runner.rs`; they differ only in scheduling, clock and timers.

pub mod det;
#[cfg(feature = "tokio")]
pub mod tokio;
