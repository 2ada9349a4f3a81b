//! The application's ports (BLUEPRINT section 10, "Ports"): each port's message types, the
//! trait its real adapter and its simulated model both implement, the adapter actor that the
//! host installs at `/port-{NAME}`, and the conformance suite run against every implementation.
//!
//! Actor code talks to a port only by message (`ctx.open_port` / `ctx.port_request`); it never
//! calls an adapter directly, so the same actors run on a real broker and in the simulator.

pub mod eventlog;
pub mod mqtt;
