//! The `Actor` trait: a state machine with synchronous handlers.
//!
//! Handlers never `.await`: input and output go through messages (to other actors and to ports),
//! which is what lets the same actor run under tokio and under the deterministic simulator.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;
use crate::message::Message;
use crate::path::ActorPath;

/// An actor. `Msg` is the one type its mailbox holds (usually an enum).
///
/// Life cycle: built by its factory, `started`, then `handle` once per message, then `stopped`.
/// A handler that returns `Err` or panics *fails* the actor: it is stopped and its supervisor
/// decides, by its strategy and the child's restart type, whether a fresh instance is built from
/// the factory. State that must survive a restart or a move lives in `snapshot` / `restore`.
pub trait Actor: Send + 'static {
    type Msg: Message;

    /// Runs once before the first message; children declared in the topology start after it.
    fn started(&mut self, _ctx: &mut Ctx<'_, Self::Msg>) -> Result<(), ActorError> {
        Ok(())
    }

    /// Handles one message. Must not block and must not read the wall clock (use `ctx.now()`).
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Ctx<'_, Self::Msg>) -> Result<(), ActorError>;

    /// Runs once when the actor stops for any reason (normal stop, shutdown or failure).
    fn stopped(&mut self, _ctx: &mut Ctx<'_, Self::Msg>) {}

    /// The actor's state as bytes, for migration and failover (`None`: stateless or unsupported).
    fn snapshot(&self) -> Option<Vec<u8>> {
        None
    }

    /// Restores state taken by `snapshot` into a freshly built instance.
    fn restore(&mut self, _snapshot: &[u8]) -> Result<(), ActorError> {
        Err(ActorError::new("this actor does not support restore"))
    }
}

/// A handler failure, with a reason a person can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorError(pub String);

impl ActorError {
    pub fn new(reason: impl Into<String>) -> Self {
        ActorError(reason.into())
    }
}

impl fmt::Display for ActorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// `ActorError` deliberately does not implement `std::error::Error`, so that any error converts
// into it with `?` (the blanket `From` below would otherwise overlap with `From<T> for T`).
impl<E: std::error::Error> From<E> for ActorError {
    fn from(e: E) -> Self {
        ActorError(e.to_string())
    }
}

/// Why an actor stopped (OTP's exit reasons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// It stopped itself (`ctx.stop()`): a normal exit.
    Normal,
    /// Its supervisor or the system stopped it.
    Shutdown,
    /// A handler returned an error or panicked, or it escalated a restart-intensity breach.
    Failed(String),
    /// Only in a `Down` notice: there was no actor at the path when the watch began.
    NoActor,
}

impl ExitReason {
    /// OTP: only `Failed` is abnormal (transient children restart only on it).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, ExitReason::Failed(_))
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::Failed(why) => write!(f, "failed: {why}"),
            ExitReason::NoActor => f.write_str("no actor at the path"),
        }
    }
}

/// The death notice a watcher receives (`ctx.watch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Down {
    pub path: ActorPath,
    pub reason: ExitReason,
}
