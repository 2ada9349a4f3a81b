//! Topologies declared in code: actors, their supervision tree (by path), links and placement.
//!
//! ```
//! use aiot_runtime::prelude::*;
//! # #[derive(Default)] struct Dsp; impl Actor for Dsp { type Msg = u32;
//! #   fn handle(&mut self, _: u32, _: &mut Ctx<'_, u32>) -> Result<(), ActorError> { Ok(()) } }
//! # #[derive(Default)] struct Proxy; impl Actor for Proxy { type Msg = u32;
//! #   fn handle(&mut self, _: u32, _: &mut Ctx<'_, u32>) -> Result<(), ActorError> { Ok(()) } }
//! let mut t = Topology::builder();
//! t.supervisor("/plant", SupervisorSpec::one_for_all());
//! t.actor("/plant/dsp", |_| Dsp).requires("tier=inference").mailbox(64, Overflow::DropOldest);
//! t.actor("/plant/proxy-1", |_| Proxy).link::<u32>("dsp", "/plant/dsp");
//! let topology = t.build().expect("valid");
//! assert_eq!(topology.len(), 3);
//! ```
//!
//! The parent of a path supervises it; top-level actors are supervised by the root guardian.
//! `validate` reports every problem at once, each naming the path it concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::actor::{Actor, ActorError};
use crate::ctx::Ctx;
use crate::mailbox::{MailboxSpec, Overflow};
use crate::path::ActorPath;
use crate::placement::Placement;
use crate::placement::{Requirement, TagError};
use crate::spec::{ActorSpec, Declared, Link, MsgType, Settings, Spec};
use crate::supervision::{Restart, SupervisorSpec};

/// A supervisor with no behaviour of its own: it only supervises its children.
#[derive(Debug, Default)]
pub struct Supervisor;

impl Actor for Supervisor {
    type Msg = ();
    fn handle(&mut self, _: (), _: &mut Ctx<'_, ()>) -> Result<(), ActorError> {
        Ok(())
    }
}

/// Turns a declaration's settings, path and declared parts into its spec.
type ToSpec = Box<dyn FnOnce(Settings, ActorPath, Declared) -> Spec>;

/// One declaration, as written.
pub struct Decl {
    path: String,
    settings: Settings,
    requires: String,
    prefers: String,
    links: Vec<(String, String, MsgType)>,
    checkpoint_every: Option<Duration>,
    msg_type: MsgType,
    to_spec: ToSpec,
}

impl Decl {
    /// Restart type (default permanent).
    pub fn restart(&mut self, restart: Restart) -> &mut Self {
        self.settings.restart = restart;
        self
    }

    /// Mailbox bound and overflow policy (default 1024, backpressure).
    pub fn mailbox(&mut self, capacity: usize, overflow: Overflow) -> &mut Self {
        self.settings.mailbox = MailboxSpec { capacity, overflow };
        self
    }

    /// How this actor supervises its children.
    pub fn supervise(&mut self, spec: SupervisorSpec) -> &mut Self {
        self.settings.supervision = spec;
        self
    }

    /// Compute-heavy: run where it cannot starve other actors.
    pub fn heavy(&mut self) -> &mut Self {
        self.settings.heavy = true;
        self
    }

    /// Placement requirement, e.g. `"accel=* | tier=platform"` (checked by `validate`).
    pub fn requires(&mut self, tags: &str) -> &mut Self {
        self.requires = tags.to_string();
        self
    }

    /// Placement preference (same grammar); ranks eligible nodes only.
    pub fn prefers(&mut self, tags: &str) -> &mut Self {
        self.prefers = tags.to_string();
        self
    }

    /// Checkpoints this top-level subtree this often while it runs: the cluster keeps its
    /// snapshots off its node, and starts it from the last one after a failover (see
    /// `checkpoint`). Without it, a subtree whose node fails starts afresh elsewhere.
    pub fn checkpoint_every(&mut self, period: Duration) -> &mut Self {
        self.checkpoint_every = Some(period);
        self
    }

    /// Declares a link `name` to the actor at `to`, which must take messages of type `M`.
    pub fn link<M: 'static>(&mut self, name: &str, to: &str) -> &mut Self {
        self.links.push((name.to_string(), to.to_string(), MsgType::of::<M>()));
        self
    }
}

/// Builds a `Topology`.
#[derive(Default)]
pub struct TopologyBuilder {
    decls: Vec<Decl>,
}

/// A problem in a topology declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyError {
    InvalidPath {
        path: String,
        reason: &'static str,
    },
    RootDeclared,
    DuplicatePath(String),
    /// An impossible tree: the parent that would supervise `path` is not declared.
    MissingParent {
        path: String,
        parent: String,
    },
    UnknownLink {
        from: String,
        name: String,
        to: String,
    },
    DuplicateLink {
        from: String,
        name: String,
    },
    LinkTypeMismatch {
        from: String,
        name: String,
        to: String,
        expected: &'static str,
        actual: &'static str,
    },
    BadPlacement {
        path: String,
        error: TagError,
    },
    EmptyMailbox {
        path: String,
    },
    ZeroIntensityPeriod {
        path: String,
    },
    /// Checkpoints are taken of whole top-level subtrees, at a positive period.
    BadCheckpoint {
        path: String,
        reason: &'static str,
    },
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TopologyError::*;
        match self {
            InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason}"),
            RootDeclared => f.write_str("\"/\" is the root guardian and cannot be declared"),
            DuplicatePath(p) => write!(f, "{p} is declared twice"),
            MissingParent { path, parent } => {
                write!(f, "{path} has no supervisor: its parent {parent} is not declared")
            }
            UnknownLink { from, name, to } => {
                write!(f, "{from}: link {name:?} names {to}, which is not declared")
            }
            DuplicateLink { from, name } => write!(f, "{from}: link {name:?} is declared twice"),
            LinkTypeMismatch { from, name, to, expected, actual } => {
                write!(f, "{from}: link {name:?} expects {to} to take {expected}, but it takes {actual}")
            }
            BadPlacement { path, error } => write!(f, "{path}: {error}"),
            EmptyMailbox { path } => write!(f, "{path}: mailbox capacity must be at least 1"),
            ZeroIntensityPeriod { path } => write!(f, "{path}: restart intensity period must be positive"),
            BadCheckpoint { path, reason } => write!(f, "{path}: checkpoint_every {reason}"),
        }
    }
}

/// Every problem found, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyErrors(pub Vec<TopologyError>);

impl fmt::Display for TopologyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid topology ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TopologyErrors {}

impl TopologyBuilder {
    /// Declares an actor at `path`, built by `factory` on every start and restart.
    pub fn actor<A: Actor>(
        &mut self,
        path: &str,
        factory: impl Fn(&crate::spec::Init<'_>) -> A + Send + Sync + 'static,
    ) -> &mut Decl {
        self.push(path, ActorSpec::new(factory))
    }

    /// Declares an actor from a prepared `ActorSpec`.
    pub fn push<A: Actor>(&mut self, path: &str, spec: ActorSpec<A>) -> &mut Decl {
        let settings = spec.settings;
        self.decls.push(Decl {
            path: path.to_string(),
            settings,
            requires: String::new(),
            prefers: String::new(),
            links: Vec::new(),
            checkpoint_every: None,
            msg_type: MsgType::of::<A::Msg>(),
            to_spec: Box::new(move |settings, path, declared| {
                let mut spec = spec;
                spec.settings = settings;
                spec.into_declared_spec(path, Some(declared))
            }),
        });
        self.decls.last_mut().expect("just pushed")
    }

    /// Declares a pure supervisor at `path`.
    pub fn supervisor(&mut self, path: &str, spec: SupervisorSpec) -> &mut Decl {
        self.actor(path, |_| Supervisor).supervise(spec)
    }

    /// Checks the declaration: paths, tree, links, placement grammar, mailbox and intensity.
    pub fn validate(&self) -> Result<(), TopologyErrors> {
        let mut errors = Vec::new();
        let mut types: BTreeMap<String, MsgType> = BTreeMap::new();
        for d in &self.decls {
            match ActorPath::parse(&d.path) {
                Err(e) => errors.push(TopologyError::InvalidPath { path: d.path.clone(), reason: e.reason }),
                Ok(p) if p.is_root() => errors.push(TopologyError::RootDeclared),
                Ok(_) if types.contains_key(&d.path) => {
                    errors.push(TopologyError::DuplicatePath(d.path.clone()))
                }
                Ok(_) => {
                    types.insert(d.path.clone(), d.msg_type);
                }
            }
        }
        for d in &self.decls {
            let Ok(path) = ActorPath::parse(&d.path) else { continue };
            if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
                if !types.contains_key(parent.as_str()) {
                    errors.push(TopologyError::MissingParent {
                        path: d.path.clone(),
                        parent: parent.to_string(),
                    });
                }
            }
            let mut names = BTreeSet::new();
            for (name, to, expected) in &d.links {
                if !names.insert(name) {
                    errors.push(TopologyError::DuplicateLink { from: d.path.clone(), name: name.clone() });
                }
                match types.get(to) {
                    None => errors.push(TopologyError::UnknownLink {
                        from: d.path.clone(),
                        name: name.clone(),
                        to: to.clone(),
                    }),
                    Some(actual) if actual != expected => errors.push(TopologyError::LinkTypeMismatch {
                        from: d.path.clone(),
                        name: name.clone(),
                        to: to.clone(),
                        expected: expected.name,
                        actual: actual.name,
                    }),
                    Some(_) => {}
                }
            }
            for text in [&d.requires, &d.prefers] {
                if let Err(error) = Requirement::parse(text) {
                    errors.push(TopologyError::BadPlacement { path: d.path.clone(), error });
                }
            }
            if d.settings.mailbox.capacity == 0 {
                errors.push(TopologyError::EmptyMailbox { path: d.path.clone() });
            }
            let sup = d.settings.supervision;
            if sup.max_restarts > 0 && sup.within.is_zero() {
                errors.push(TopologyError::ZeroIntensityPeriod { path: d.path.clone() });
            }
            let bad_checkpoint = match d.checkpoint_every {
                Some(period) if period.is_zero() => Some("must be positive"),
                Some(_) if path.parent().is_some_and(|p| !p.is_root()) => {
                    Some("applies to top-level subtrees only (a checkpoint covers the whole subtree)")
                }
                _ => None,
            };
            if let Some(reason) = bad_checkpoint {
                errors.push(TopologyError::BadCheckpoint { path: d.path.clone(), reason });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TopologyErrors(errors))
        }
    }

    /// Validates and builds the tree of specs.
    pub fn build(self) -> Result<Topology, TopologyErrors> {
        self.validate()?;
        // Build children before parents: deepest paths first.
        let mut decls: Vec<(ActorPath, Decl)> =
            self.decls.into_iter().map(|d| (ActorPath::parse(&d.path).expect("validated"), d)).collect();
        let order: Vec<ActorPath> = decls.iter().map(|(p, _)| p.clone()).collect();
        decls.sort_by_key(|(p, _)| std::cmp::Reverse(p.as_str().matches('/').count()));
        let mut built: BTreeMap<ActorPath, Arc<Spec>> = BTreeMap::new();
        for (path, d) in decls {
            // Children in declaration order (their start order).
            let children: Vec<Arc<Spec>> = order
                .iter()
                .filter(|p| p.parent().as_ref() == Some(&path))
                .map(|p| built[p].clone())
                .collect();
            let links = d
                .links
                .iter()
                .map(|(name, to, msg_type)| {
                    (name.clone(), Link { to: ActorPath::parse(to).expect("validated"), msg_type: *msg_type })
                })
                .collect();
            let placement = Placement {
                requires: Requirement::parse(&d.requires).expect("validated"),
                prefers: Requirement::parse(&d.prefers).expect("validated"),
            };
            let declared = Declared { placement, links, children, checkpoint_every: d.checkpoint_every };
            let spec = (d.to_spec)(d.settings, path.clone(), declared);
            built.insert(path, Arc::new(spec));
        }
        let roots = order
            .iter()
            .filter(|p| p.parent().is_some_and(|pp| pp.is_root()))
            .map(|p| built[p].clone())
            .collect();
        Ok(Topology { roots, all: built })
    }
}

/// A validated topology: top-level subtrees in declaration order, and every spec by path.
#[derive(Clone)]
pub struct Topology {
    roots: Vec<Arc<Spec>>,
    all: BTreeMap<ActorPath, Arc<Spec>>,
}

impl Topology {
    pub fn builder() -> TopologyBuilder {
        TopologyBuilder::default()
    }

    /// The top-level specs, started under the root guardian.
    pub fn roots(&self) -> &[Arc<Spec>] {
        &self.roots
    }

    /// A spec by path (the cluster's factory registry).
    pub fn get(&self, path: &ActorPath) -> Option<&Arc<Spec>> {
        self.all.get(path)
    }

    /// Every spec, in path order.
    pub fn specs(&self) -> impl Iterator<Item = &Arc<Spec>> {
        self.all.values()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}
