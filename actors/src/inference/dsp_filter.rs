//! The DSP filter (BLUEPRINT section 5): a stream stage (`crate::streams::stage`) from
//! `telemetry` to `features`, in the consumer group `aiot-dsp-filter`, so replicas share the
//! motes' partitions and each frame is processed by one of them.
//!
//! - A raw window becomes the DSP vector ([`crate::dsp`]; one fleet-wide `DspConfig`, so every
//!   motor is taken to have the configured line frequency, poles and bearing).
//! - A features frame's stage-1 vector passes through unchanged, with its model's score, so
//!   every consumer of features reads one stream.
//! - Other frames (stage-1 events, OTA receipts) make nothing. A record that does not decode,
//!   or a window the extractor refuses (another sample rate or length), is refused: counted,
//!   logged, skipped.

use aiot_firmware::protocol::{Kind, Payload};

use super::features::{FeatureRecord, FeatureSource, FEATURES};
use crate::dsp::{DspConfig, DspError, Extractor};
use crate::ports::eventlog::{Record, StoredRecord};
use crate::streams::stage::{NoControl, Output, Process, StageTime};
use crate::streams::{mote_key, TelemetryRecord};

/// The DSP filters' consumer group.
pub const GROUP: &str = "aiot-dsp-filter";

/// The DSP filter's processing: telemetry records in, feature records out.
pub struct DspFilter {
    extractor: Extractor,
}

impl DspFilter {
    pub fn new(config: DspConfig) -> Result<Self, DspError> {
        Ok(DspFilter { extractor: Extractor::new(config)? })
    }

    /// The feature record of one telemetry record, if its kind has one.
    pub fn features_of(&mut self, frame: &TelemetryRecord) -> Result<Option<FeatureRecord>, String> {
        let Some(kind) = Kind::from_code(frame.kind) else {
            return Err(format!("unknown frame kind {}", frame.kind));
        };
        let (source, values) = match Payload::decode(kind, &frame.payload).map_err(|e| e.to_string())? {
            Payload::RawWindow(window) => {
                let features = self.extractor.extract_raw(&window).map_err(|e| e.to_string())?;
                (FeatureSource::Dsp, features.to_vec())
            }
            Payload::Features(report) => (
                FeatureSource::Stage1 { model_version: report.model_version, score: report.score },
                report.features.iter().map(|v| f64::from(*v)).collect(),
            ),
            _ => return Ok(None),
        };
        Ok(Some(FeatureRecord {
            mote: frame.mote,
            boot_epoch: frame.boot_epoch,
            seq: frame.seq,
            capture_ms: frame.capture_ms,
            received_ms: frame.received_ms,
            source,
            faults: frame.faults,
            values,
        }))
    }
}

impl Process for DspFilter {
    type Control = NoControl;

    fn outputs(&self) -> Vec<&'static str> {
        vec![FEATURES]
    }

    fn control(&mut self, control: NoControl) -> Result<(), String> {
        match control {}
    }

    fn process(&mut self, input: &StoredRecord, _at: StageTime, out: &mut Vec<Output>) -> Result<(), String> {
        let frame = TelemetryRecord::decode(&input.record.payload)?;
        if let Some(features) = self.features_of(&frame)? {
            let record = Record::new(FEATURES, mote_key(frame.mote), features.encode(), frame.received_ms);
            out.push(Output { mote: frame.mote, record });
        }
        Ok(())
    }
}
