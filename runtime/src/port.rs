//! Ports: how an actor talks, by message, to an adapter the host provides.
//!
//! A port is declared by a type implementing `Port` (its name, request and event types; the
//! application's ports, MQTT and the event log, live in `aiot-actors`). The host installs an
//! adapter for it: an actor taking `PortCall<P>` at `/port-{NAME}` (`port_path`), supervised by
//! the root like any actor. Real adapters do IO on the host's side (tokio tasks, sockets); the
//! simulator installs its own adapters instead. Actors never see which one they talk to:
//!
//! ```text
//! actor --ctx.port_request(req)--> /port-NAME adapter --client.emit(event)--> actor
//! ```
//!
//! Port calls are node-local: a `PortClient` that crossed the network cannot emit.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::actor_ref::ActorRef;
use crate::cell::AnyCell;
use crate::error::SendError;
use crate::mailbox::ActorId;
use crate::message::Message;
use crate::path::ActorPath;

/// A port's contract.
pub trait Port: Send + 'static {
    /// Its adapter lives at `/port-{NAME}`.
    const NAME: &'static str;
    type Request: Message;
    type Event: Message;
}

/// Where port `P`'s adapter lives.
pub fn port_path<P: Port>() -> ActorPath {
    ActorPath::parse(&format!("/port-{}", P::NAME)).expect("port names are path segments")
}

/// The message an adapter receives: who asked, and what.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct PortCall<P: Port> {
    pub client: PortClient<P>,
    pub request: P::Request,
}

/// The actor that made a port request; the adapter emits events back through it, now or later.
pub struct PortClient<P: Port> {
    path: ActorPath,
    cell: Option<Arc<dyn AnyCell>>,
    _port: PhantomData<fn(P)>,
}

impl<P: Port> PortClient<P> {
    pub(crate) fn new(path: ActorPath, cell: Option<Arc<dyn AnyCell>>) -> Self {
        PortClient { path, cell, _port: PhantomData }
    }

    /// The client actor's path.
    pub fn path(&self) -> &ActorPath {
        &self.path
    }

    /// Delivers `event` to the client under its mailbox policy (a full backpressure or reject
    /// mailbox refuses with `MailboxFull`: the adapter keeps the event and retries, or counts it).
    pub fn emit(&self, event: P::Event) -> Result<(), SendError> {
        match &self.cell {
            Some(cell) => cell.push_port_event(ActorId::EXTERNAL, P::NAME, Box::new(event)),
            None => Err(SendError::NoActor(self.path.clone())),
        }
    }
}

impl<P: Port> Clone for PortClient<P> {
    fn clone(&self) -> Self {
        PortClient::new(self.path.clone(), self.cell.clone())
    }
}

impl<P: Port> fmt::Debug for PortClient<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortClient<{}>({})", P::NAME, self.path)
    }
}

impl<P: Port> Serialize for PortClient<P> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.path.serialize(s)
    }
}

impl<'de, P: Port> Deserialize<'de> for PortClient<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PortClient::new(ActorPath::deserialize(d)?, None))
    }
}

/// An actor's handle on an open port (`ctx.open_port`).
pub struct PortRef<P: Port> {
    adapter: ActorRef<PortCall<P>>,
}

impl<P: Port> PortRef<P> {
    pub(crate) fn new() -> Self {
        PortRef { adapter: ActorRef::new(port_path::<P>()) }
    }

    pub(crate) fn adapter(&self) -> &ActorRef<PortCall<P>> {
        &self.adapter
    }
}

impl<P: Port> Clone for PortRef<P> {
    fn clone(&self) -> Self {
        PortRef { adapter: self.adapter.clone() }
    }
}
