//! Errors a sender, asker or spawner can get back. Every one names the actor involved.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::path::ActorPath;

/// Why a send did not enqueue. A send never blocks and never panics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendError {
    /// No actor is registered under the path (counted as a dead letter).
    NoActor(ActorPath),
    /// The actor stopped (counted as a dead letter).
    Stopped(ActorPath),
    /// The mailbox is full and its policy is reject (counted at the receiver).
    MailboxFull(ActorPath),
    /// The actor under the path takes another message type.
    WrongType { path: ActorPath, expected: String, actual: String },
    /// The actor is on another node, and the message (`len` bytes encoded) is longer than a
    /// message between nodes may be (`max`).
    TooLarge { path: ActorPath, len: usize, max: usize },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NoActor(p) => write!(f, "no actor at {p} (dead letter)"),
            SendError::Stopped(p) => write!(f, "actor {p} has stopped (dead letter)"),
            SendError::MailboxFull(p) => write!(f, "mailbox of {p} is full (rejected)"),
            SendError::WrongType { path, expected, actual } => {
                write!(f, "actor {path} takes {actual}, not {expected}")
            }
            SendError::TooLarge { path, len, max } => {
                write!(f, "a message of {len} bytes for {path}, on another node, is over the {max} bytes allowed between nodes")
            }
        }
    }
}

impl std::error::Error for SendError {}

/// Why an ask got no reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AskError {
    /// No reply within the timeout.
    Timeout,
    /// The request could not be sent.
    Send(SendError),
    /// The reply was not of the type the asker expected.
    WrongReplyType,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Timeout => f.write_str("no reply before the timeout"),
            AskError::Send(e) => write!(f, "request not sent: {e}"),
            AskError::WrongReplyType => f.write_str("the reply had an unexpected type"),
        }
    }
}

impl std::error::Error for AskError {}

/// Why a child could not be spawned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpawnError {
    /// Another live actor already has the path.
    PathTaken(ActorPath),
    /// The name does not make a valid path.
    BadName(String),
    /// The spawner is stopping and takes no new children.
    Stopping(ActorPath),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::PathTaken(p) => write!(f, "an actor already lives at {p}"),
            SpawnError::BadName(why) => write!(f, "bad child name: {why}"),
            SpawnError::Stopping(p) => write!(f, "{p} is stopping and spawns no children"),
        }
    }
}

impl std::error::Error for SpawnError {}
