//! The seam through which a cluster routes sends whose receiver does not live here.
//!
//! The runtime knows no network. A host that is part of a cluster installs a `Remote` on the
//! system (`SystemCore::set_remote`): a send to a path with no local actor is then encoded with
//! bincode and handed to it, and a reply to an asker on another node goes to that node. What
//! arrives from the network comes back in through `SystemCore::deliver_remote` and
//! `deliver_remote_reply`, which decode the bytes into the type the local actor at that path
//! takes (the registry keyed by path is the message registry: nothing executable travels).

use std::fmt;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::cell::AnyCell;
use crate::error::SendError;
use crate::path::ActorPath;

/// Why a remote send did not go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSendError {
    /// No node is known to host the path (the caller counts a dead letter).
    NoRoute,
    /// The way to that node is full: the bytes come back. An actor's send parks them in its
    /// outbox (backpressure) and waits for room (`wait_for_room`); a send from outside any
    /// actor is refused with `MailboxFull`.
    Full(Vec<u8>),
    /// The message is longer (`len` bytes) than a message between nodes may be (`max`).
    TooLarge { len: usize, max: usize },
}

/// Where remote sends go. Implemented by the cluster's node; never called by actor code.
pub trait Remote: Send + Sync + 'static {
    /// Sends the encoded message `bytes` to the actor at `to` on whichever node hosts it.
    fn send(&self, to: &ActorPath, bytes: Vec<u8>) -> Result<(), RemoteSendError>;

    /// Registers `waiter` to be notified (`AnyCell::notify`) once a send to `to` may succeed
    /// again; false if it may already.
    fn wait_for_room(&self, to: &ActorPath, waiter: Arc<dyn AnyCell>) -> bool;

    /// Sends the encoded reply `bytes` for ask `corr` to the asker `to` on node `origin`.
    fn reply(&self, origin: &str, to: &ActorPath, corr: u64, bytes: Vec<u8>) -> Result<(), SendError>;
}

/// A reply that came over the network, still encoded: the asker's runner, which knows the type
/// it expects, decodes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EncodedReply(pub(crate) Vec<u8>);

/// Why a message from the network was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// No live actor at the path on this node (counted as a dead letter).
    NoActor(ActorPath),
    /// The bytes are not a message of the type the actor at the path takes.
    Decode { path: ActorPath, expected: &'static str, reason: String },
    /// The mailbox is full under backpressure: the caller keeps the bytes and retries later
    /// (a network lane stops reading meanwhile, so the sender is slowed down by flow control).
    Full(ActorPath),
    /// The mailbox is full under the reject policy (counted at the receiver).
    Rejected(ActorPath),
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::NoActor(p) => write!(f, "no actor at {p} on this node (dead letter)"),
            DeliveryError::Decode { path, expected, reason } => {
                write!(f, "bytes for {path} are not a {expected}: {reason}")
            }
            DeliveryError::Full(p) => write!(f, "mailbox of {p} is full (retry later)"),
            DeliveryError::Rejected(p) => write!(f, "mailbox of {p} is full (rejected)"),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// Takes a reply value as `R`: either the value itself (a local reply) or its encoding (a reply
/// from another node).
pub(crate) fn reply_value<R: crate::message::Message>(
    value: Box<dyn std::any::Any + Send>,
) -> Result<R, crate::error::AskError> {
    match value.downcast::<R>() {
        Ok(r) => Ok(*r),
        Err(value) => match value.downcast::<EncodedReply>() {
            Ok(encoded) => {
                crate::message::decode(&encoded.0).map_err(|_| crate::error::AskError::WrongReplyType)
            }
            Err(_) => Err(crate::error::AskError::WrongReplyType),
        },
    }
}
