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
}
