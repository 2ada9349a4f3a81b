//! How to build an actor: its factory and the settings its supervisor and executor need.
//!
//! `ActorSpec<A>` is the typed builder (used by `ctx.spawn_child` and by the topology builder);
//! `Spec` is its erased, shareable form that a supervisor keeps to rebuild the child on restart.
//! A spec costs two allocations (the factory and the spec); what only declared actors have
//! (placement, links, declared children) sits behind one more, taken only when declared.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::actor_ref::ActorRef;
use crate::cell::{AnyCell, Cell};
use crate::error::SpawnError;
use crate::host::{Host, Runnable};
use crate::mailbox::{MailboxSpec, Overflow};
use crate::message::Message;
use crate::path::ActorPath;
use crate::placement::Placement;
use crate::runner::Runner;
use crate::supervision::{Restart, SupervisorSpec};

/// A message type's identity, checked when links are validated and refs resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgType {
    pub(crate) id: TypeId,
    pub name: &'static str,
}

impl MsgType {
    pub fn of<M: 'static>() -> Self {
        MsgType { id: TypeId::of::<M>(), name: std::any::type_name::<M>() }
    }
}

/// A declared link: a name an actor's factory uses to get a typed ref to a peer.
#[derive(Debug, Clone)]
pub struct Link {
    pub to: ActorPath,
    pub msg_type: MsgType,
}

/// What a factory gets: the actor's path, which incarnation this is, and its declared links.
pub struct Init<'a> {
    pub path: &'a ActorPath,
    /// 0 on first start, +1 on each restart.
    pub incarnation: u64,
    links: &'a BTreeMap<String, Link>,
}

impl<'a> Init<'a> {
    pub(crate) fn new(path: &'a ActorPath, incarnation: u64, links: &'a BTreeMap<String, Link>) -> Self {
        Init { path, incarnation, links }
    }

    /// The ref declared as link `name`. Panics (a start failure, reported with this message)
    /// if the topology declared no such link or declared it with another message type.
    pub fn link<M: Message>(&self, name: &str) -> ActorRef<M> {
        let link = self.links.get(name).unwrap_or_else(|| {
            panic!("{} has no link named {name:?} in its topology declaration", self.path)
        });
        assert!(
            link.msg_type.id == TypeId::of::<M>(),
            "link {name:?} of {} carries {}, not {}",
            self.path,
            link.msg_type.name,
            std::any::type_name::<M>()
        );
        ActorRef::new(link.to.clone())
    }
}

/// What only actors declared in a topology carry.
#[derive(Default)]
pub(crate) struct Declared {
    pub(crate) placement: Placement,
    pub(crate) links: BTreeMap<String, Link>,
    pub(crate) children: Vec<Arc<Spec>>,
    pub(crate) checkpoint_every: Option<Duration>,
}

/// Erased spec of one actor, shared by its supervisor across restarts.
pub struct Spec {
    pub(crate) path: ActorPath,
    pub(crate) settings: Settings,
    pub(crate) make: Arc<dyn MakeRunner>,
    declared: Option<Box<Declared>>,
}

static NO_LINKS: BTreeMap<String, Link> = BTreeMap::new();
static NO_PLACEMENT: Placement = Placement::none();

impl Spec {
    pub fn path(&self) -> &ActorPath {
        &self.path
    }
    pub fn restart(&self) -> Restart {
        self.settings.restart
    }
    pub fn placement(&self) -> &Placement {
        self.declared.as_ref().map_or(&NO_PLACEMENT, |d| &d.placement)
    }
    pub fn msg_type(&self) -> MsgType {
        self.make.msg_type()
    }
    /// Every path declared in the subtree under this spec, itself first.
    pub fn subtree_paths(&self) -> Vec<ActorPath> {
        let mut paths = vec![self.path().clone()];
        for child in self.children() {
            paths.extend(child.subtree_paths());
        }
        paths
    }

    pub fn children(&self) -> &[Arc<Spec>] {
        self.declared.as_ref().map_or(&[], |d| &d.children)
    }
    pub fn links(&self) -> &BTreeMap<String, Link> {
        self.declared.as_ref().map_or(&NO_LINKS, |d| &d.links)
    }
    pub fn mailbox(&self) -> MailboxSpec {
        self.settings.mailbox
    }
    pub fn supervision(&self) -> SupervisorSpec {
        self.settings.supervision
    }
    pub fn is_heavy(&self) -> bool {
        self.settings.heavy
    }
    /// How often the cluster checkpoints this top-level subtree (see `Decl::checkpoint_every`).
    pub fn checkpoint_every(&self) -> Option<Duration> {
        self.declared.as_ref().and_then(|d| d.checkpoint_every)
    }
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("path", &self.path)
            .field("msg_type", &self.msg_type().name)
            .field("children", &self.children().len())
            .finish()
    }
}

/// Settings every actor has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) restart: Restart,
    pub(crate) mailbox: MailboxSpec,
    pub(crate) supervision: SupervisorSpec,
    pub(crate) heavy: bool,
}

impl Default for Settings {
    /// OTP's default restart type (permanent), the default mailbox and supervision.
    fn default() -> Self {
        Settings {
            restart: Restart::Permanent,
            mailbox: MailboxSpec::default(),
            supervision: SupervisorSpec::default(),
            heavy: false,
        }
    }
}

/// A new incarnation: its runner, and its mailbox (erased).
pub(crate) type Made = (Box<dyn Runnable>, Arc<dyn AnyCell>);

/// Builds the runner of one incarnation.
pub(crate) trait MakeRunner: Send + Sync {
    fn make(self: Arc<Self>, args: MakeArgs<'_>) -> Result<Made, SpawnError>;
    /// A fresh, registered mailbox of the right type for `spec`.
    fn new_cell(&self, host: &mut dyn Host, spec: &Spec) -> Result<Arc<dyn AnyCell>, SpawnError>;
    /// The type of the messages the actor takes.
    fn msg_type(&self) -> MsgType;
}

/// Builds the actor value itself (called on every start and restart).
pub(crate) trait BuildActor<A>: Send + Sync {
    fn build(&self, init: &Init<'_>) -> A;
}

pub(crate) struct MakeArgs<'a> {
    pub(crate) spec: Arc<Spec>,
    /// The mailbox to live in: the previous incarnation's across a restart, or one made ahead
    /// (so that sends succeed before the actor has started).
    pub(crate) reuse: Option<Arc<dyn AnyCell>>,
    pub(crate) parent: Option<Arc<dyn AnyCell>>,
    pub(crate) incarnation: u64,
    /// Its start-order key in the parent's child table (0 for the root).
    pub(crate) child_key: u64,
    pub(crate) host: &'a mut dyn Host,
}

struct Factory<A, F> {
    f: F,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor, F: Fn(&Init<'_>) -> A + Send + Sync + 'static> BuildActor<A> for Factory<A, F> {
    fn build(&self, init: &Init<'_>) -> A {
        (self.f)(init)
    }
}

impl<A: Actor, F: Fn(&Init<'_>) -> A + Send + Sync + 'static> MakeRunner for Factory<A, F> {
    fn make(self: Arc<Self>, args: MakeArgs<'_>) -> Result<Made, SpawnError> {
        let reused = args.reuse.and_then(|any| {
            any.clear_control();
            any.into_any_arc().downcast::<Cell<A::Msg>>().ok()
        });
        let cell = match reused {
            Some(cell) => cell,
            None => new_cell::<A::Msg>(args.host, &args.spec)?,
        };
        let any: Arc<dyn AnyCell> = cell.clone();
        let at = (args.incarnation, args.child_key);
        let runner = Runner::<A>::new(self, cell, args.spec, args.parent, at, args.host);
        Ok((Box::new(runner), any))
    }

    fn new_cell(&self, host: &mut dyn Host, spec: &Spec) -> Result<Arc<dyn AnyCell>, SpawnError> {
        Ok(new_cell::<A::Msg>(host, spec)?)
    }

    fn msg_type(&self) -> MsgType {
        MsgType::of::<A::Msg>()
    }
}

/// A fresh, registered mailbox for `spec`'s path.
pub(crate) fn new_cell<M: Message>(host: &mut dyn Host, spec: &Spec) -> Result<Arc<Cell<M>>, SpawnError> {
    let core = host.core().clone();
    let id = core.next_actor_id();
    let notifier = host.notifier();
    let cell = Arc::new(Cell::<M>::new(id, spec.path.clone(), core.id(), spec.settings.mailbox, notifier));
    core.register(cell.clone()).map_err(SpawnError::PathTaken)?;
    Ok(cell)
}

/// A typed actor spec: a factory (called on every start and restart) plus its settings.
pub struct ActorSpec<A: Actor> {
    pub(crate) make: Arc<dyn MakeRunner>,
    pub(crate) settings: Settings,
    _actor: PhantomData<fn() -> A>,
}

impl<A: Actor> ActorSpec<A> {
    pub fn new(factory: impl Fn(&Init<'_>) -> A + Send + Sync + 'static) -> Self {
        let make = Arc::new(Factory { f: factory, _actor: PhantomData });
        ActorSpec { make, settings: Settings::default(), _actor: PhantomData }
    }

    /// Its restart type (default permanent, as in OTP).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.settings.restart = restart;
        self
    }

    /// Its mailbox bound and overflow policy (default 1024, backpressure).
    pub fn mailbox(mut self, capacity: usize, overflow: Overflow) -> Self {
        self.settings.mailbox = MailboxSpec { capacity, overflow };
        self
    }

    /// How it supervises its own children.
    pub fn supervise(mut self, spec: SupervisorSpec) -> Self {
        self.settings.supervision = spec;
        self
    }

    /// Marks it compute-heavy: the tokio executor runs it off the async worker threads.
    pub fn heavy(mut self) -> Self {
        self.settings.heavy = true;
        self
    }

    /// The erased spec of a dynamically spawned actor at `path`.
    pub(crate) fn into_spec(self, path: ActorPath) -> Spec {
        self.into_declared_spec(path, None)
    }

    /// The erased spec of an actor at `path`, with what its declaration adds.
    pub(crate) fn into_declared_spec(self, path: ActorPath, declared: Option<Declared>) -> Spec {
        assert!(self.settings.mailbox.capacity > 0, "mailbox capacity of {path} must be positive");
        Spec { path, settings: self.settings, make: self.make, declared: declared.map(Box::new) }
    }
}
