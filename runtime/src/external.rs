//! Sends and asks from outside any actor (tests, the CLI, adapters), shared by both executors.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::actor_ref::{ActorRef, ReplyTo};
use crate::cell::{AnyCell, Cell, Popped, PushError};
use crate::error::{AskError, SendError};
use crate::host::{Host, TimerFire};
use crate::mailbox::{ActorId, Envelope, MailboxSpec};
use crate::message::Message;
use crate::metrics::ActorMetrics;
use crate::path::ActorPath;
use crate::system::SystemCore;

/// Sends from outside: the sender is `ActorId::EXTERNAL`, and a full mailbox refuses with
/// `MailboxFull` whatever its policy (there is no outbox to park in).
pub(crate) fn tell<M: Message>(core: &SystemCore, to: &ActorRef<M>, msg: M) -> Result<(), SendError> {
    let cell = to.resolve(core).inspect_err(|e| {
        if matches!(e, SendError::NoActor(_)) {
            core.dead_letter(to.path(), 1);
        }
    })?;
    match cell.push_user(ActorId::EXTERNAL, msg) {
        Ok(()) => Ok(()),
        Err(PushError::Full(_) | PushError::Rejected) => Err(SendError::MailboxFull(to.path().clone())),
        Err(PushError::Closed(_)) => {
            core.dead_letter(to.path(), 1);
            Err(SendError::Stopped(to.path().clone()))
        }
    }
}

/// A reply awaited from outside the system.
pub struct PendingReply<R> {
    pub(crate) cell: Arc<Cell<()>>,
    _reply: PhantomData<fn() -> R>,
}

impl<R: Message> PendingReply<R> {
    /// The reply or the timeout, once either has arrived.
    pub fn try_take(&mut self) -> Option<Result<R, AskError>> {
        match self.cell.pop()? {
            Popped::Envelope(Envelope::Reply { value, .. }) => {
                Some(value.into_any().downcast::<R>().map(|r| *r).map_err(|_| AskError::WrongReplyType))
            }
            Popped::Envelope(Envelope::AskTimeout { .. }) => Some(Err(AskError::Timeout)),
            _ => None,
        }
    }
}

/// Sends a request from outside and returns where its reply will land.
pub(crate) fn ask<Q: Message, R: Message>(
    host: &mut dyn Host,
    to: &ActorRef<Q>,
    request: impl FnOnce(ReplyTo<R>) -> Q,
    timeout: Duration,
) -> Result<PendingReply<R>, AskError> {
    let core = host.core().clone();
    let id = core.next_actor_id();
    let path = ActorPath::parse(&format!("/ask-{}", id.0)).expect("valid path");
    let notifier = host.notifier(id);
    let metrics = Arc::new(ActorMetrics::default());
    let cell =
        Arc::new(Cell::<()>::new(id, path.clone(), core.id(), MailboxSpec::default(), notifier, metrics));
    let corr = core.next_corr();
    let any: Arc<dyn AnyCell> = cell.clone();
    tell(&core, to, request(ReplyTo::new(path, corr, Some(any.clone())))).map_err(AskError::Send)?;
    host.set_timer(any, timeout, TimerFire::AskTimeout(corr));
    Ok(PendingReply { cell, _reply: PhantomData })
}
