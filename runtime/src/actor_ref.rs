//! Typed addresses. An `ActorRef<M>` names an actor by logical path and remembers the mailbox it
//! last resolved to, so a local send is one pointer check and a push. Serialized, it is just its
//! path: a ref inside a message travels as its path and resolves again where it lands.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cell::{AnyCell, Cell};
use crate::error::SendError;
use crate::message::Message;
use crate::path::{ActorPath, PathError};
use crate::system::SystemCore;

/// A typed, cheap-to-clone, `Send` address of an actor that takes `M`.
pub struct ActorRef<M> {
    inner: Arc<RefInner<M>>,
}

struct RefInner<M> {
    path: ActorPath,
    cache: OnceLock<Arc<Cell<M>>>,
}

impl<M: Message> ActorRef<M> {
    /// A ref to whatever actor lives (or will live) at `path`.
    pub fn new(path: ActorPath) -> Self {
        ActorRef { inner: Arc::new(RefInner { path, cache: OnceLock::new() }) }
    }

    /// Parses `path` and makes a ref to it.
    pub fn parse(path: &str) -> Result<Self, PathError> {
        Ok(Self::new(ActorPath::parse(path)?))
    }

    pub(crate) fn resolved(cell: Arc<Cell<M>>) -> Self {
        let path = crate::cell::AnyCell::path(&*cell).clone();
        ActorRef { inner: Arc::new(RefInner { path, cache: OnceLock::from(cell) }) }
    }

    pub fn path(&self) -> &ActorPath {
        &self.inner.path
    }

    /// Runs `f` on the live mailbox behind the path in `core`, handing it `value`; without a
    /// live local mailbox, `value` comes back with the error (a cluster may route it). The first
    /// resolution is cached for good: a mailbox outlives restarts, so only a path that stopped
    /// for good (and perhaps came back) takes the registry lookup again.
    pub(crate) fn with_cell<T, R>(
        &self,
        core: &SystemCore,
        value: T,
        f: impl FnOnce(&Arc<Cell<M>>, T) -> R,
    ) -> Result<R, (SendError, T)> {
        if let Some(cell) = self.inner.cache.get() {
            if cell.system() == core.id() && !cell.is_closed() {
                return Ok(f(cell, value));
            }
        }
        let path = &self.inner.path;
        let Some(any) = core.lookup(path) else { return Err((SendError::NoActor(path.clone()), value)) };
        let actual = any.msg_type();
        let cell = match any.into_any_arc().downcast::<Cell<M>>() {
            Ok(cell) => cell,
            Err(_) => {
                let expected = std::any::type_name::<M>().to_string();
                let error = SendError::WrongType { path: path.clone(), expected, actual: actual.to_string() };
                return Err((error, value));
            }
        };
        let _ = self.inner.cache.set(cell.clone());
        Ok(f(&cell, value))
    }
}

impl<M> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        ActorRef { inner: self.inner.clone() }
    }
}

impl<M> PartialEq for ActorRef<M> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.path == other.inner.path
    }
}

impl<M> Eq for ActorRef<M> {}

impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef({})", self.inner.path)
    }
}

impl<M> Serialize for ActorRef<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.path.serialize(s)
    }
}

impl<'de, M: Message> Deserialize<'de> for ActorRef<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ActorRef::new(ActorPath::deserialize(d)?))
    }
}

/// Where a reply of type `R` goes: the asker's path, the request's correlation id and, in a
/// cluster, the asker's node. Put one in a request message; the receiver answers with
/// `ctx.reply(reply_to, value)`.
pub struct ReplyTo<R> {
    pub(crate) path: ActorPath,
    pub(crate) corr: u64,
    pub(crate) cell: Option<Arc<dyn AnyCell>>,
    /// The asker's node (`SystemCore::node_name`), so a reply finds its way back without the
    /// directory (askers from outside any actor are not in it).
    pub(crate) origin: Option<Arc<str>>,
    _reply: PhantomData<fn(R)>,
}

impl<R> ReplyTo<R> {
    pub(crate) fn new(
        path: ActorPath,
        corr: u64,
        cell: Option<Arc<dyn AnyCell>>,
        origin: Option<Arc<str>>,
    ) -> Self {
        ReplyTo { path, corr, cell, origin, _reply: PhantomData }
    }

    /// The asker's node, when the asking system is part of a cluster.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// The asker's path.
    pub fn path(&self) -> &ActorPath {
        &self.path
    }

    /// The correlation id of the request.
    pub fn correlation(&self) -> u64 {
        self.corr
    }
}

impl<R> Clone for ReplyTo<R> {
    fn clone(&self) -> Self {
        ReplyTo::new(self.path.clone(), self.corr, self.cell.clone(), self.origin.clone())
    }
}

impl<R> fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyTo({}#{})", self.path, self.corr)
    }
}

impl<R> Serialize for ReplyTo<R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.path, self.corr, self.origin.as_deref()).serialize(s)
    }
}

impl<'de, R> Deserialize<'de> for ReplyTo<R> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (path, corr, origin) = <(ActorPath, u64, Option<String>)>::deserialize(d)?;
        Ok(ReplyTo::new(path, corr, None, origin.map(Arc::from)))
    }
}
