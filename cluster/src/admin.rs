//! The shell's protocol (BLUEPRINT section 4): what an admin asks a node and what it answers.
//!
//! An admin connects to any node with an admin certificate (`transport::admin`); each request
//! goes on a stream of its own, one frame each way. A node answers from its own view: the
//! members it knows, the subtrees and where they run, the actors it runs, its counters. What
//! only a node knows (its actors, its counters) the shell asks each node for.

use std::collections::BTreeMap;

use aiot_runtime::trace::TraceEvent;
use serde::{Deserialize, Serialize};

use crate::membership::Status;
use crate::node::NodeStatsSnapshot;

/// What an admin asks a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// The members as this node sees them, itself included, with the subtrees each hosts.
    Nodes,
    /// The actors running on this node whose path starts with `prefix` (`/` for all).
    Actors { prefix: String },
    /// This node's counters.
    Stats,
    /// Every top-level subtree of the topology: where it runs, what it needs, which nodes fit.
    Placement,
    /// Moves the subtree at `root`, running on the asked node, to node `to` with its state
    /// (live migration); answered once it runs there, or the move failed.
    Move { root: String, to: String },
    /// A question for the application the cluster runs (the shell's `models`, `loop`,
    /// `deploy`...), answered by what the node's topology registered (`Node::set_app`).
    App { command: String, args: Vec<String> },
    /// The messages the actor at `path` (running on the asked node) handled after event
    /// `after` (0: from now on); the first ask starts tracing it, and a trace nobody reads
    /// stops after `aiot_runtime::trace::UNREAD_MAX` events.
    Trace { path: String, after: u64 },
    /// Cordon the asked node (true: nothing new is placed or moved there; `drain` asks this
    /// before moving its subtrees away) or lift its cordon (false).
    Cordon(bool),
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AdminResponse {
    Nodes(Vec<NodeRow>),
    Actors(Vec<ActorRow>),
    Stats(Box<NodeReport>),
    Placement(Vec<SubtreeRow>),
    Moved(MoveReport),
    /// The request could not be answered, and why.
    Refused(String),
    /// The application's answer, JSON text.
    App(String),
    /// What a traced actor handled since the reader's last event.
    Trace(Vec<TraceEvent>),
    /// The node's topology answers no application questions (`App`): a shell asking every
    /// node leaves it out.
    NoQueries,
    /// The answering node is now cordoned (true) or not.
    Cordoned(bool),
}

/// A member, as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub name: String,
    /// Where its endpoint listens (as it announced it).
    pub addr: String,
    pub status: Status,
    pub incarnation: u64,
    /// CA-attested capability tags.
    pub tags: BTreeMap<String, String>,
    /// Top-level subtrees it announced hosting.
    pub hosts: Vec<String>,
    /// Drained: nothing new is placed or moved there.
    pub cordoned: bool,
    /// The node that answered.
    pub answering: bool,
}

/// One running actor and its mailbox counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorRow {
    pub path: String,
    pub node: String,
    /// Messages in its mailbox now, and the deepest it has been.
    pub depth: u64,
    pub depth_max: u64,
    pub handled: u64,
    pub failures: u64,
    pub restarts: u64,
    /// Messages dropped (drop-oldest) or refused (reject) at its full mailbox.
    pub dropped: u64,
}

/// A node's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub node: String,
    pub incarnation: u64,
    pub tags: BTreeMap<String, String>,
    /// Whether it holds its lease (a majority acknowledges it; without it, it runs nothing).
    pub lease: bool,
    pub uptime_ms: u64,
    pub actors: u64,
    pub dead_letters: u64,
    pub remote: NodeStatsSnapshot,
    pub connections_accepted: u64,
    pub admin_connections: u64,
    /// Connections refused, by reason.
    pub refused: BTreeMap<String, u64>,
}

/// A completed move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveReport {
    pub root: String,
    pub from: String,
    pub to: String,
    /// From the request until the target announced the subtree.
    pub took_ms: u64,
    pub actors: usize,
    /// Messages that were waiting in the subtree's mailboxes and moved with it.
    pub messages: usize,
    /// Snapshot and message bytes moved.
    pub bytes: usize,
}

/// A top-level subtree of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtreeRow {
    pub root: String,
    /// The node hosting it, as the answering node's directory has it.
    pub node: Option<String>,
    /// Every requirement declared inside it, as `path: requirement`.
    pub requires: Vec<String>,
    /// The root's preference, if any.
    pub prefers: Option<String>,
    /// Nodes that are up and meet every requirement.
    pub fits: Vec<String>,
    /// Actors in the subtree.
    pub actors: usize,
}
