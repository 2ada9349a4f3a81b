//! Sends and asks from outside any actor (tests, the CLI, adapters), shared by both executors.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::actor_ref::{ActorRef, ReplyTo};
use crate::cell::{AnyCell, Cell, Popped, PushError};
use crate::error::SpawnError;
use crate::error::{AskError, SendError};
use crate::host::Runnable;
use crate::host::{Host, TimerFire};
use crate::mailbox::Control;
use crate::mailbox::{ActorId, Envelope, MailboxSpec};
use crate::message::Message;
use crate::path::ActorPath;
use crate::spec::{new_cell, ActorSpec, MakeArgs, Spec};
use crate::supervision::SupervisorSpec;
use crate::system::SystemCore;
use crate::topology::{Supervisor, Topology};

/// Sends from outside: the sender is `ActorId::EXTERNAL`, and a full mailbox refuses with
/// `MailboxFull` whatever its policy (there is no outbox to park in).
pub(crate) fn tell<M: Message>(core: &SystemCore, to: &ActorRef<M>, msg: M) -> Result<(), SendError> {
    let result = to
        .with_cell(core, |cell| match cell.push_user(ActorId::EXTERNAL, msg) {
            Ok(()) => Ok(()),
            Err(PushError::Full(_) | PushError::Rejected) => Err(SendError::MailboxFull(to.path().clone())),
            Err(PushError::Closed(_)) => Err(SendError::Stopped(to.path().clone())),
        })
        .and_then(|r| r);
    if let Err(SendError::NoActor(_) | SendError::Stopped(_)) = &result {
        core.dead_letter(to.path(), 1);
    }
    result
}

/// A reply awaited from outside the system.
pub struct PendingReply<R> {
    pub(crate) cell: Arc<Cell<()>>,
    _reply: PhantomData<fn() -> R>,
}

impl<R: Message> PendingReply<R> {
    /// The reply or the timeout, once either has arrived.
    pub fn try_take(&mut self) -> Option<Result<R, AskError>> {
        match self.cell.pop(false)?.0 {
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
    let notifier = host.notifier();
    let cell = Arc::new(Cell::<()>::new(id, path.clone(), core.id(), MailboxSpec::default(), notifier));
    let corr = core.next_corr();
    let any: Arc<dyn AnyCell> = cell.clone();
    tell(&core, to, request(ReplyTo::new(path, corr, Some(any.clone())))).map_err(AskError::Send)?;
    host.set_timer(any, timeout, TimerFire::AskTimeout(corr));
    Ok(PendingReply { cell, _reply: PhantomData })
}

/// The root guardian of a new system: its runner and its mailbox.
pub(crate) fn make_root(host: &mut dyn Host, root: SupervisorSpec) -> (Box<dyn Runnable>, Arc<dyn AnyCell>) {
    let spec = Arc::new(ActorSpec::new(|_| Supervisor).supervise(root).into_spec(ActorPath::root()));
    let args = MakeArgs { spec: spec.clone(), reuse: None, parent: None, incarnation: 0, child_key: 0, host };
    spec.make.clone().make(args).expect("a new system has a free root")
}

/// Starts `spec` at `path` under the root. Its mailbox exists (and takes messages) at once;
/// the actor starts when the root handles the request.
pub(crate) fn spawn_top_level<A: Actor>(
    host: &mut dyn Host,
    root: &Arc<dyn AnyCell>,
    path: ActorPath,
    spec: ActorSpec<A>,
) -> Result<ActorRef<A::Msg>, SpawnError> {
    let spec = Arc::new(spec.into_spec(path));
    let cell = new_cell::<A::Msg>(host, &spec)?;
    root.push_control(Control::Adopt(spec, Some(cell.clone())));
    Ok(ActorRef::resolved(cell))
}

/// Starts a topology's top-level subtrees under the root; their mailboxes exist at once.
pub(crate) fn start_topology(
    host: &mut dyn Host,
    root: &Arc<dyn AnyCell>,
    topology: &Topology,
) -> Result<(), SpawnError> {
    let mut cells = Vec::with_capacity(topology.roots().len());
    for spec in topology.roots() {
        match spec.make.new_cell(host, spec) {
            Ok(cell) => cells.push(cell),
            Err(e) => {
                // All or nothing: release the paths taken so far.
                for cell in cells {
                    crate::runner::close_for_good(&cell, &crate::actor::ExitReason::Shutdown, host);
                }
                return Err(e);
            }
        }
    }
    for (spec, cell) in topology.roots().iter().zip(cells) {
        root.push_control(Control::Adopt(spec.clone(), Some(cell)));
    }
    Ok(())
}

/// The path of a top-level actor named `name`.
pub(crate) fn top_level_path(name: &str) -> Result<ActorPath, SpawnError> {
    ActorPath::root().child(name).map_err(|e| SpawnError::BadName(e.to_string()))
}

/// Every path a topology declares (what must be up once it has started).
pub(crate) fn declared_paths(topology: &Topology) -> Vec<ActorPath> {
    topology.specs().map(|s: &Arc<Spec>| s.path().clone()).collect()
}
