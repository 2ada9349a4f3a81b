//! The event streams between tiers (BLUEPRINT section 6) and the protocol bridge that fills them.
//!
//! ```text
//! /proxies/mote-N --Onward--> /bridge --LogRequest::Append--> /port-log --> telemetry, maintenance
//!        ^                      |
//!        +---- stored (receipt, only once the record is durable) ----+
//! ```
//!
//! - `bridge`: the uplink half of the protocol bridge (proxies -> streams).
//! - `command_relay`: the downlink half (the `commands` stream -> the gateway -> motes, at QoS
//!   1, each command tracked until its mote's report shows it arrived).
//! - `reader`: what the actors reading streams without a group share.
//! - The record formats below: what a consumer of the streams reads.
//!
//! Delivery: at least once end to end (a frame is acknowledged to its mote only once its record
//! is durable, and resent until then), so a stream may hold a frame twice; every telemetry
//! record carries (mote, boot epoch, sequence), and a consumer that keeps the first of each
//! gets every frame exactly once. Records of one mote share a key (`mote_key`), hence a
//! partition, and the bridge appends them one at a time, in the order it took them.

pub mod appender;
pub mod bridge;
pub mod command_relay;
pub mod progress;
pub mod reader;
pub mod stage;

use aiot_firmware::protocol::{MoteId, Payload};
use serde::{Deserialize, Serialize};

use crate::things::commands::MoteCommand;
use crate::things::sensor_faults::SensorFaults;
use crate::things::UpFrame;

/// Frames from the motes, as `TelemetryRecord`s (bincode), keyed by mote.
pub const TELEMETRY: &str = "telemetry";
/// The crew's maintenance log: `MaintenanceRecord`s as JSON (`maintenance::MaintenanceRecord`),
/// keyed by mote.
pub const MAINTENANCE: &str = "maintenance";
/// Commands for motes (OTA, configuration), as `CommandRecord`s (bincode), keyed by mote.
pub const COMMANDS: &str = "commands";
/// Partitions of each stream the bridge creates.
pub const PARTITIONS: u32 = 8;

/// The key of a mote's records: `mote-{id}`.
pub fn mote_key(mote: u32) -> Vec<u8> {
    MoteId(mote).to_string().into_bytes()
}

/// One frame in the telemetry stream. `(mote, boot_epoch, seq)` names the frame: copies of a
/// frame carry the same three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryRecord {
    pub mote: u32,
    pub boot_epoch: u32,
    pub seq: u32,
    /// The mote's clock when it captured the window, ms.
    pub capture_ms: u64,
    /// The gateway's clock when the frame arrived, ms (also the record's timestamp).
    pub received_ms: u64,
    /// `aiot_firmware::protocol::Kind` code; `payload` decodes by it.
    pub kind: u8,
    /// The proxy's verdict on the window's sensors.
    pub faults: SensorFaults,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

impl TelemetryRecord {
    pub fn new(frame: UpFrame, faults: SensorFaults) -> Self {
        let UpFrame { mote, boot_epoch, seq, capture_ms, received_ms, kind, payload } = frame;
        TelemetryRecord {
            mote,
            boot_epoch,
            seq,
            capture_ms,
            received_ms,
            kind,
            faults,
            payload: payload.to_vec(),
        }
    }

    /// The frame's name: what de-duplication keys on.
    pub fn frame_id(&self) -> (u32, u32, u32) {
        (self.mote, self.boot_epoch, self.seq)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode(bytes, "telemetry")
    }
}

/// One command in the `commands` stream: for `mote`, a down payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub mote: u32,
    pub command: MoteCommand,
}

impl CommandRecord {
    /// A command record from a down payload (configuration or OTA; not an ack).
    pub fn new(mote: u32, payload: &Payload<'_>) -> Result<Self, String> {
        let kind = payload.kind();
        if !kind.is_down() || matches!(payload, Payload::Ack(_)) {
            return Err(format!("{kind:?} is not a command"));
        }
        let mut bytes = vec![0; payload.encoded_len()];
        let len = payload.encode(&mut bytes).map_err(|e| e.to_string())?;
        bytes.truncate(len);
        Ok(CommandRecord { mote, command: MoteCommand { kind: kind as u8, payload: bytes } })
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode(bytes, "command")
    }
}

/// A record's bytes in the streams (bincode).
pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(record, bincode::config::standard()).expect("a record always encodes")
}

/// A record from its bytes, all of them (`what` names its kind in the error).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
    let (record, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| format!("not a {what} record: {e}"))?;
    if used != bytes.len() {
        return Err(format!("not a {what} record: {} bytes left over", bytes.len() - used));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telemetry_records_round_trip_and_refuse_garbage() {
        let frame = UpFrame {
            mote: 7,
            boot_epoch: 2,
            seq: 41,
            capture_ms: 1_000,
            received_ms: 1_020,
            kind: 1,
            payload: vec![1, 2, 3].into(),
        };
        let record = TelemetryRecord::new(frame, SensorFaults::default());
        let bytes = record.encode();
        assert_eq!(TelemetryRecord::decode(&bytes).unwrap(), record);
        assert_eq!(record.frame_id(), (7, 2, 41));
        assert!(TelemetryRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(TelemetryRecord::decode(&padded).is_err());
        assert_eq!(mote_key(7), b"mote-7");
    }

    #[test]
    fn command_records_carry_down_payloads_only() {
        use aiot_firmware::protocol::{Ack, Command};
        let record = CommandRecord::new(3, &Payload::Command(Command::SetRawEvery { reports: 5 })).unwrap();
        assert_eq!(CommandRecord::decode(&record.encode()).unwrap(), record);
        assert_eq!(record.command.kind, 0x82);
        let ack = Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 0 });
        assert!(CommandRecord::new(3, &ack).is_err());
        assert!(CommandRecord::decode(b"junk").is_err());
    }
}
