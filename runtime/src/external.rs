//! Sends and asks from outside any actor (tests, the CLI, adapters), shared by both executors.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::actor_ref::{ActorRef, ReplyTo};
use crate::cell::{AnyCell, Cell, Popped, PushError};
use crate::checkpoint::{CheckpointError, PendingCheckpoint};
use crate::error::SpawnError;
use crate::error::{AskError, SendError};
use crate::host::Runnable;
use crate::host::{Host, TimerFire};
use crate::mailbox::Control;
use crate::mailbox::{ActorId, Envelope, MailboxSpec};
use crate::message::Message;
use crate::migration::{Handoff, MigrateError, MigrationSink, PendingHandoff};
use crate::path::ActorPath;
use crate::spec::{new_cell, ActorSpec, MakeArgs, Spec};
use crate::supervision::SupervisorSpec;
use crate::system::SystemCore;
use crate::topology::{Supervisor, Topology};

/// Sends from outside: the sender is `ActorId::EXTERNAL`, and a full mailbox refuses with
/// `MailboxFull` whatever its policy (there is no outbox to park in).
pub(crate) fn tell<M: Message>(core: &SystemCore, to: &ActorRef<M>, msg: M) -> Result<(), SendError> {
    // `Err(msg)`: the mailbox closed as the message arrived: it is routed anew (see `Ctx::send`).
    let outcome = to.with_cell(core, msg, |cell, msg| match cell.push_user(ActorId::EXTERNAL, msg) {
        Ok(()) => Ok(Ok(())),
        Err(PushError::Full(_) | PushError::Rejected) => Ok(Err(SendError::MailboxFull(to.path().clone()))),
        Err(PushError::Closed(msg)) => Err(msg),
    });
    let result = match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(msg)) | Err((SendError::NoActor(_), msg)) => core.send_remote(to.path(), &msg),
        Err((error, _)) => Err(error),
    };
    if let Err(SendError::NoActor(_) | SendError::Stopped(_)) = &result {
        core.dead_letter(to.path(), 1);
    }
    result
}

/// A reply awaited from outside the system.
pub struct PendingReply<R> {
    pub(crate) cell: Arc<Cell<()>>,
    /// The registry the reply cell is in while the ask is pending (so a reply from another
    /// node finds it by path).
    core: Arc<SystemCore>,
    _reply: PhantomData<fn() -> R>,
}

impl<R> Drop for PendingReply<R> {
    fn drop(&mut self) {
        self.core.unregister(AnyCell::path(&*self.cell), AnyCell::id(&*self.cell));
    }
}

impl<R: Message> PendingReply<R> {
    /// The reply or the timeout, once either has arrived.
    pub fn try_take(&mut self) -> Option<Result<R, AskError>> {
        match self.cell.pop(false)?.0 {
            Popped::Envelope(Envelope::Reply { value, .. }) => {
                Some(crate::remote::reply_value::<R>(value.into_any()))
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
    core.register(any.clone()).expect("ask paths are unique");
    let origin = core.node_name().cloned();
    // Made first, so that the registration is undone (on drop) if the send fails.
    let pending = PendingReply { cell, core: core.clone(), _reply: PhantomData };
    tell(&core, to, request(ReplyTo::new(path, corr, Some(any.clone()), origin))).map_err(AskError::Send)?;
    host.set_timer(any, timeout, TimerFire::AskTimeout(corr));
    Ok(pending)
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
    start_subtrees(host, root, topology.roots())
}

/// Starts top-level subtrees (declared in a topology) under the root, all or none; their
/// mailboxes exist at once. A cluster node starts the ones placed on it this way.
pub(crate) fn start_subtrees(
    host: &mut dyn Host,
    root: &Arc<dyn AnyCell>,
    subtrees: &[Arc<Spec>],
) -> Result<(), SpawnError> {
    let mut cells = Vec::with_capacity(subtrees.len());
    for spec in subtrees {
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
    for (spec, cell) in subtrees.iter().zip(cells) {
        root.push_control(Control::Adopt(spec.clone(), Some(cell)));
    }
    Ok(())
}

/// Stops the top-level subtree at `path` for good (its actors' mailboxes close; later sends
/// to it are routed elsewhere or dead letters).
pub(crate) fn stop_subtree(root: &Arc<dyn AnyCell>, path: &ActorPath) -> bool {
    root.push_control(Control::StopChild(path.clone()))
}

/// Moves the top-level subtree at `path` out of the system (see `migration`): it stops with
/// its state and waiting messages, which the returned future yields.
pub(crate) fn migrate_subtree(
    core: &SystemCore,
    root: &Arc<dyn AnyCell>,
    path: &ActorPath,
) -> Result<PendingHandoff, MigrateError> {
    if path.parent().is_none_or(|parent| !parent.is_root()) {
        return Err(MigrateError::NotTopLevel(path.clone()));
    }
    if core.lookup(path).is_none() {
        return Err(MigrateError::NotHosted(path.clone()));
    }
    let sink = MigrationSink::new(path.clone());
    if !root.push_control(Control::MigrateChild(path.clone(), sink.clone())) {
        return Err(MigrateError::NotHosted(path.clone()));
    }
    Ok(PendingHandoff { sink })
}

/// Asks every running actor of the top-level subtree at `path` for its snapshot (see
/// `checkpoint`).
pub(crate) fn checkpoint_subtree(
    core: &SystemCore,
    path: &ActorPath,
) -> Result<PendingCheckpoint, CheckpointError> {
    if path.parent().is_none_or(|parent| !parent.is_root()) || core.lookup(path).is_none() {
        return Err(CheckpointError::NotHosted(path.clone()));
    }
    let paths = core.paths().into_iter().filter(|p| p.is_within(path)).collect();
    Ok(PendingCheckpoint::ask(path.clone(), paths, |request| {
        // Not delivered (the actor is gone or its mailbox closed): dropped, the checkpoint fails.
        if let Some(cell) = core.lookup(request.path()) {
            cell.push_control(Control::Snapshot(request));
        }
    }))
}

/// Starts the declared subtree `spec` from a handoff taken out of another system: each actor
/// restores its snapshot before `started` and handles the messages it had waiting first.
pub(crate) fn start_subtree_from(
    host: &mut dyn Host,
    root: &Arc<dyn AnyCell>,
    spec: &Arc<Spec>,
    handoff: Handoff,
) -> Result<(), SpawnError> {
    if handoff.root != *spec.path() {
        return Err(SpawnError::BadName(format!(
            "a handoff of {} cannot start {}",
            handoff.root,
            spec.path()
        )));
    }
    // Only the actors declared in this subtree take parts; the rest (dynamic children no one
    // starts again) are dead letters.
    let declared = spec.subtree_paths();
    let (kept, stray): (Vec<_>, Vec<_>) =
        handoff.actors.into_iter().partition(|a| declared.contains(&a.path));
    for part in stray {
        host.core().dead_letter(&part.path, part.pending.len() as u64);
    }
    let paths: Vec<ActorPath> = kept.iter().map(|a| a.path.clone()).collect();
    host.core().stash_handoff(Handoff { root: handoff.root, actors: kept });
    start_subtrees(host, root, std::slice::from_ref(spec)).inspect_err(|_| {
        for path in &paths {
            host.core().take_restoring(path);
        }
    })
}

/// The path of a top-level actor named `name`.
pub(crate) fn top_level_path(name: &str) -> Result<ActorPath, SpawnError> {
    ActorPath::root().child(name).map_err(|e| SpawnError::BadName(e.to_string()))
}

/// Every path a topology declares (what must be up once it has started).
pub(crate) fn declared_paths(topology: &Topology) -> Vec<ActorPath> {
    topology.specs().map(|s: &Arc<Spec>| s.path().clone()).collect()
}
