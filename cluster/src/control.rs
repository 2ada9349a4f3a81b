//! What a node pair's control stream carries: membership, the directory's announcements and
//! the data lanes' acknowledgements. Plain messages; the QUIC adapter and the simulator carry
//! them alike.

use aiot_runtime::ActorPath;
use serde::{Deserialize, Serialize};

use crate::directory::Away;
use crate::membership::MemberMsg;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMsg {
    Member(MemberMsg),
    /// "At this incarnation I host these top-level subtrees, and am moving (or have moved)
    /// these of them to these nodes; place nothing new on me if `cordoned`" (the directory's
    /// replication).
    Hosting {
        incarnation: u64,
        roots: Vec<ActorPath>,
        moving: Vec<(ActorPath, Away)>,
        cordoned: bool,
    },
    /// "I have every frame up to `seq` that your incarnation `incarnation` sent on `lane`."
    Ack {
        incarnation: u64,
        lane: u16,
        seq: u64,
    },
    /// "My incarnation `incarnation` wants to host `root`": a node starts a subtree only once a
    /// majority granted its claim.
    Claim {
        root: ActorPath,
        incarnation: u64,
    },
    /// "I grant your incarnation `incarnation` the subtree `root`" (and no one else, while it
    /// holds it).
    Grant {
        root: ActorPath,
        incarnation: u64,
    },
    /// "I will not host `root`, which you are moving to me, and why": the mover takes it back.
    MoveRefused {
        root: ActorPath,
        why: String,
    },
    /// "Keep this checkpoint of `root` (an encoded `Handoff`), of generation `generation`": a
    /// host to the platform-tier nodes (failover with state; the node's `checkpoints`).
    Checkpoint {
        root: ActorPath,
        generation: u64,
        handoff: Vec<u8>,
    },
    /// "I keep a checkpoint of `root` as new as yours or newer, of generation `kept`": the
    /// host's next one goes above it.
    CheckpointStale {
        root: ActorPath,
        kept: u64,
    },
    /// "Which checkpoint of `root` do you keep?" (before a start).
    CheckpointWanted {
        root: ActorPath,
    },
    /// The answer: the generation and the encoded handoff, if any.
    CheckpointKept {
        root: ActorPath,
        kept: Option<(u64, Vec<u8>)>,
    },
}

impl ControlMsg {
    /// Whether the node's checkpoints handle it (not the coordinator).
    pub fn is_checkpoint(&self) -> bool {
        matches!(
            self,
            ControlMsg::Checkpoint { .. }
                | ControlMsg::CheckpointStale { .. }
                | ControlMsg::CheckpointWanted { .. }
                | ControlMsg::CheckpointKept { .. }
        )
    }
}
