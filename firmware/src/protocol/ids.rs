//! Mote identity, per-mote keys, MQTT topics and the de-duplication key.

use core::fmt::{self, Write as _};
use core::str::FromStr;

/// A mote's id, displayed and parsed as `mote-{id}` (decimal, no leading zeros).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MoteId(pub u32);

impl fmt::Display for MoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mote-{}", self.0)
    }
}

/// A string that is not `mote-{id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadMoteId;

impl fmt::Display for BadMoteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a mote id (expected mote-N, N a u32 without leading zeros)")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BadMoteId {}

impl FromStr for MoteId {
    type Err = BadMoteId;

    fn from_str(s: &str) -> Result<Self, BadMoteId> {
        let digits = s.strip_prefix("mote-").ok_or(BadMoteId)?;
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !canonical {
            return Err(BadMoteId);
        }
        digits.parse().map(MoteId).map_err(|_| BadMoteId)
    }
}

/// Which way a topic carries frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Mote to cluster: `aiot/mote-{id}/up` (features, raw windows, events, OTA receipts).
    Up,
    /// Cluster to mote: `aiot/mote-{id}/down` (acks, commands, OTA).
    Down,
}

impl Direction {
    fn suffix(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Subscription filter for every mote's up topic.
pub const UP_TOPIC_FILTER: &str = "aiot/+/up";
/// Subscription filter for every mote's down topic.
pub const DOWN_TOPIC_FILTER: &str = "aiot/+/down";
/// Longest topic: `aiot/mote-4294967295/down` is 25 bytes.
pub const TOPIC_MAX: usize = 32;

/// A topic name built without a heap.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicName {
    buf: [u8; TOPIC_MAX],
    len: usize,
}

impl TopicName {
    /// The topic as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written (see `topic`).
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for TopicName {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl MoteId {
    /// The mote's topic in `dir`: `aiot/mote-{id}/up` or `aiot/mote-{id}/down`.
    pub fn topic(self, dir: Direction) -> TopicName {
        let mut t = TopicName { buf: [0; TOPIC_MAX], len: 0 };
        // At most 25 bytes: always fits.
        let _ = write!(t, "aiot/{self}/{}", dir.suffix());
        t
    }

    /// `aiot/mote-{id}/up`.
    pub fn up_topic(self) -> TopicName {
        self.topic(Direction::Up)
    }

    /// `aiot/mote-{id}/down`.
    pub fn down_topic(self) -> TopicName {
        self.topic(Direction::Down)
    }
}

/// Parses `aiot/mote-{id}/up` or `aiot/mote-{id}/down`; anything else is `None`.
pub fn parse_topic(topic: &str) -> Option<(MoteId, Direction)> {
    let rest = topic.strip_prefix("aiot/")?;
    let (mote, dir) = rest.split_once('/')?;
    let dir = match dir {
        "up" => Direction::Up,
        "down" => Direction::Down,
        _ => return None,
    };
    Some((mote.parse().ok()?, dir))
}

/// A mote's 32-byte HMAC-SHA256 key, provisioned with the mote and known to the cluster.
/// `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct MoteKey(pub [u8; 32]);

impl fmt::Debug for MoteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MoteKey(..)")
    }
}

/// The de-duplication key of an up frame: a mote's sequence numbers restart at each boot, and
/// the boot epoch (persisted, incremented at every boot) keeps them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DedupKey {
    /// The mote.
    pub mote: MoteId,
    /// Its boot epoch when it sent the frame.
    pub boot_epoch: u32,
    /// The frame's sequence number within that boot.
    pub seq: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_build_and_parse() {
        let id = MoteId(u32::MAX);
        assert_eq!(id.up_topic().as_str(), "aiot/mote-4294967295/up");
        assert_eq!(id.down_topic().to_string(), "aiot/mote-4294967295/down");
        assert_eq!(parse_topic("aiot/mote-17/up"), Some((MoteId(17), Direction::Up)));
        assert_eq!(parse_topic("aiot/mote-0/down"), Some((MoteId(0), Direction::Down)));
        for bad in [
            "aiot/mote-17/sideways",
            "aiot/mote-017/up",
            "aiot/mote-/up",
            "aiot/mote-+1/up",
            "aiot/mote-4294967296/up",
            "aiot/motor-1/up",
            "aiot/mote-1/up/x",
            "x/mote-1/up",
            "aiot/maintenance/mote-1",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
        assert_eq!("mote-5".parse(), Ok(MoteId(5)));
        assert_eq!(MoteId(5).to_string(), "mote-5");
        assert_eq!(format!("{:?}", MoteKey([7; 32])), "MoteKey(..)");
    }
}
