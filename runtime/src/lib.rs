//! aiot-runtime: the actor core of aiot.
//!
//! Actors are state machines with synchronous handlers (`Actor`); everything they may touch is
//! in `Ctx`. They are addressed by logical path (`ActorRef<M>`), supervised the OTP way, declared
//! in code (`Topology`), and driven by one of two executors that share every semantic:
//! `exec::tokio` for production and `exec::det` for deterministic simulation.
//!
//! What it is not: it knows no network (the cluster crate routes remote sends), no MQTT or event
//! log (those are ports the host installs), and outside `exec::tokio` it imports no tokio.
//!
//! # Layout
//! - `actor`: the `Actor` trait, exit reasons, death notices.
//! - `ctx`: `Ctx`, the actor's handle on the system during a handler.
//! - `actor_ref`: `ActorRef<M>` and `ReplyTo<R>`: typed, serde-encodable addresses.
//! - `mailbox`, `cell`: bounded mailboxes and their overflow policies.
//! - `runner`: one incarnation's private state; delivery, failure, supervision, backpressure.
//! - `supervision`: OTP strategies, restart types and intensity, as pure decisions.
//! - `spec`, `topology`: how actors are built and declared; validation.
//! - `placement`: capability-tag requirements (the cluster decides placement).
//! - `port`: how actors talk to host adapters (MQTT, event log, clock, disk).
//! - `fault`: fault points a simulation may enable (inert in production).
//! - `remote`: the seam a cluster routes sends to other nodes through.
//! - `migration`: a subtree taken out with its state and waiting messages, and started
//!   elsewhere from them (live migration's runtime half).
//! - `host`: the executor seam; `exec::det` and `exec::tokio` implement it.
//! - `system`, `external`, `metrics`, `time`, `path`, `message`, `error`: shared pieces.

pub mod actor;
pub mod actor_ref;
mod cell;
pub mod checkpoint;
pub mod ctx;
pub mod error;
pub mod exec;
mod external;
pub mod fault;
pub mod host;
pub mod mailbox;
pub mod message;
pub mod metrics;
pub mod migration;
pub mod path;
pub mod placement;
pub mod port;
pub mod remote;
mod runner;
pub mod spec;
pub mod supervision;
pub mod system;
pub mod time;
pub mod topology;
pub mod trace;

pub use actor::{Actor, ActorError, Down, ExitReason};
pub use actor_ref::{ActorRef, ReplyTo};
pub use cell::{AnyCell, Notify};
pub use ctx::{ActorRng, AskId, Ctx, TimerId};
pub use error::{AskError, SendError, SpawnError};
pub use external::PendingReply;
pub use mailbox::{ActorId, MailboxSpec, Overflow};
pub use message::Message;
pub use metrics::MetricsSnapshot;
pub use path::ActorPath;
pub use placement::{Placement, Requirement};
pub use port::{Port, PortCall, PortClient, PortRef};
pub use remote::{DeliveryError, Remote, RemoteSendError};
pub use spec::{ActorSpec, Init};
pub use supervision::{Restart, Strategy, SupervisorSpec};
pub use system::{EventKind, SystemConfig, SystemCore, SystemEvent};
pub use time::{ClusterClock, Instant};
pub use topology::{Supervisor, Topology, TopologyBuilder, TopologyError, TopologyErrors};

/// Everything an actor author usually needs.
pub mod prelude {
    pub use crate::exec::det::DetSystem;
    #[cfg(feature = "tokio")]
    pub use crate::exec::tokio::TokioSystem;
    pub use crate::{
        Actor, ActorError, ActorPath, ActorRef, ActorSpec, AskError, Ctx, Down, ExitReason, Init, Overflow,
        ReplyTo, Restart, SendError, Strategy, SupervisorSpec, SystemConfig, Topology,
    };
}
