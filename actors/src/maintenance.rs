//! Maintenance records: what technicians report (BLUEPRINT section 10, "Outcomes and labels").
//!
//! The crew publishes them as JSON on `aiot/maintenance/{mote}` (a technicians' app would; in
//! `aiot motes`, the simulator and the demo the runner plays the crew) and answers inspection
//! requests that the cluster publishes on `aiot/maintenance/{mote}/request`. Labels for
//! training come only from these records; no actor ever sees a motor's ground truth.

use aiot_firmware::protocol::MoteId;
use serde::{Deserialize, Serialize};

/// Filter for the records the crew publishes.
pub const RECORD_FILTER: &str = "aiot/maintenance/+";
/// Filter for the inspection requests the crew answers.
pub const REQUEST_FILTER: &str = "aiot/maintenance/+/request";

/// A defect a technician can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Defect {
    OuterRace,
    InnerRace,
    Imbalance,
    BrokenRotorBar,
    Overheating,
}

/// A defect an inspector saw, with the severity they estimated in (0, 1] (1 is failure).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub defect: Defect,
    pub severity: f32,
}

/// One entry of the maintenance log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MaintenanceEvent {
    /// The motor failed; `defect` is what the repair found had failed.
    Failure { defect: Defect },
    /// The motor runs again, repaired and healthy.
    Repaired,
    /// An inspection, at the crew's initiative or answering a request; no findings: healthy.
    Inspection { findings: Vec<Finding>, requested: bool },
}

/// A record as published on `aiot/maintenance/{mote}`: JSON with the event's fields beside
/// the mote and the time. In actor messages (bincode, which has no self-describing maps for
/// the flattened, tagged event) it travels as those JSON bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct MaintenanceRecord {
    pub mote: u32,
    /// When it happened, in ms of the plant's clock (the motor model's time).
    pub time_ms: u64,
    pub event: MaintenanceEvent,
}

/// The JSON shape of a record.
#[derive(Serialize, Deserialize)]
struct Json<E> {
    mote: u32,
    time_ms: u64,
    #[serde(flatten)]
    event: E,
}

impl Serialize for MaintenanceRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            Json { mote: self.mote, time_ms: self.time_ms, event: &self.event }.serialize(serializer)
        } else {
            serializer.serialize_bytes(&self.to_json())
        }
    }
}

impl<'de> Deserialize<'de> for MaintenanceRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let Json { mote, time_ms, event } = Json::<MaintenanceEvent>::deserialize(deserializer)?;
            Ok(MaintenanceRecord { mote, time_ms, event })
        } else {
            let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
            MaintenanceRecord::from_json(&bytes).map_err(serde::de::Error::custom)
        }
    }
}

/// A request for an inspection, as published on `aiot/maintenance/{mote}/request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionRequest {
    pub mote: u32,
    /// Why, for the crew (the drift monitor's evidence, for example).
    pub reason: String,
}

/// The topic a mote's records go to.
pub fn record_topic(mote: MoteId) -> String {
    format!("aiot/maintenance/{mote}")
}

/// The topic a mote's inspection requests go to.
pub fn request_topic(mote: MoteId) -> String {
    format!("aiot/maintenance/{mote}/request")
}

/// The mote a record or request topic names.
pub fn mote_of_topic(topic: &str) -> Option<MoteId> {
    let rest = topic.strip_prefix("aiot/maintenance/")?;
    let name = rest.strip_suffix("/request").unwrap_or(rest);
    name.parse().ok()
}

impl MaintenanceRecord {
    pub fn to_json(&self) -> Vec<u8> {
        let json = Json { mote: self.mote, time_ms: self.time_ms, event: &self.event };
        serde_json::to_vec(&json).expect("records serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let Json { mote, time_ms, event } =
            serde_json::from_slice(bytes).map_err(|e| format!("bad maintenance record: {e}"))?;
        Ok(MaintenanceRecord { mote, time_ms, event })
    }
}

impl InspectionRequest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("requests serialize")
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("bad inspection request: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_readable_json_and_round_trip() {
        let record = MaintenanceRecord {
            mote: 17,
            time_ms: 1_000,
            event: MaintenanceEvent::Inspection {
                findings: vec![Finding { defect: Defect::OuterRace, severity: 0.5 }],
                requested: true,
            },
        };
        let json = String::from_utf8(record.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"mote":17,"time_ms":1000,"event":"inspection","findings":[{"defect":"outer_race","severity":0.5}],"requested":true}"#
        );
        assert_eq!(MaintenanceRecord::from_json(json.as_bytes()).unwrap(), record);
        let failure = MaintenanceRecord {
            mote: 3,
            time_ms: 5,
            event: MaintenanceEvent::Failure { defect: Defect::InnerRace },
        };
        assert_eq!(MaintenanceRecord::from_json(&failure.to_json()).unwrap(), failure);
        assert!(MaintenanceRecord::from_json(b"{\"mote\":1}")
            .unwrap_err()
            .contains("bad maintenance record"));
    }

    #[test]
    fn records_cross_nodes_in_actor_messages() {
        // bincode (the network's encoding) cannot write the JSON shape's flattened, tagged
        // event: a record goes as its JSON bytes, and comes back whole.
        let record = MaintenanceRecord {
            mote: 4,
            time_ms: 9,
            event: MaintenanceEvent::Inspection { findings: Vec::new(), requested: false },
        };
        let bytes = aiot_runtime::message::encode(&vec![record.clone(), record.clone()]);
        let back: Vec<MaintenanceRecord> = aiot_runtime::message::decode(&bytes).unwrap();
        assert_eq!(back, [record.clone(), record.clone()]);
        assert_eq!(serde_json::to_vec(&record).unwrap(), record.to_json());
    }

    #[test]
    fn topics_name_their_mote() {
        assert_eq!(record_topic(MoteId(4)), "aiot/maintenance/mote-4");
        assert_eq!(mote_of_topic("aiot/maintenance/mote-4"), Some(MoteId(4)));
        assert_eq!(mote_of_topic("aiot/maintenance/mote-4/request"), Some(MoteId(4)));
        assert_eq!(mote_of_topic("aiot/maintenance/pump"), None);
    }
}
