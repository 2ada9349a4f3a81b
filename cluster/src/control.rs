//! What a node pair's control stream carries: membership, the directory's announcements and
//! the data lanes' acknowledgements. Plain messages; the QUIC adapter and the simulator carry
//! them alike.

use aiot_runtime::ActorPath;
use serde::{Deserialize, Serialize};

use crate::membership::MemberMsg;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMsg {
    Member(MemberMsg),
    /// "At this incarnation I host these top-level subtrees" (the directory's replication).
    Hosting {
        incarnation: u64,
        roots: Vec<ActorPath>,
    },
    /// "I have every frame up to `seq` that your incarnation `incarnation` sent on `lane`."
    Ack {
        incarnation: u64,
        lane: u16,
        seq: u64,
    },
}
