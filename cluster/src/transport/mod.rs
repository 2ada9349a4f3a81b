//! Transports under the cluster's sans-IO state machines. Only `quic` exists so far: the
//! mutual-TLS QUIC adapter. The simulator will plug its own network in at the same seam.

pub mod quic;
