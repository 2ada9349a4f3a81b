//! The `features` stream: one [`FeatureRecord`] per window (bincode), keyed by mote.
//!
//! A record is named by its frame, `(mote, boot epoch, sequence)`, like the telemetry record it
//! came from; the stream is at least once, so readers keep the first record of each name (the
//! DSP filter processes a frame again after a crash or a rebalance). A window the proxy flagged
//! with sensor faults keeps its flags here: it may raise a sensor-fault alert, never a
//! machine-fault alert, and never enters training data (BLUEPRINT section 10, "Data quality").

use serde::{Deserialize, Serialize};

use crate::streams::{decode, encode};
use crate::things::sensor_faults::SensorFaults;

/// Feature vectors, as `FeatureRecord`s (bincode), keyed by mote.
pub const FEATURES: &str = "features";

/// Where a feature vector comes from, hence which names its values have.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum FeatureSource {
    /// The mote's stage-1 vector (`aiot_firmware::features::FEATURE_NAMES`), with the score its
    /// model gave it (`model_version` 0 and no score: the mote has no model).
    Stage1 { model_version: u32, score: Option<f32> },
    /// The DSP filter's vector (`crate::dsp::DspFeatures::NAMES`) of a raw window.
    Dsp,
}

/// One window's feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRecord {
    pub mote: u32,
    pub boot_epoch: u32,
    pub seq: u32,
    /// The mote's clock when it captured the window, ms.
    pub capture_ms: u64,
    /// The gateway's clock when the frame arrived, ms.
    pub received_ms: u64,
    pub source: FeatureSource,
    /// The proxy's verdict on the window's sensors.
    pub faults: SensorFaults,
    pub values: Vec<f64>,
}

impl FeatureRecord {
    /// The name of the frame it came from.
    pub fn frame_id(&self) -> (u32, u32, u32) {
        (self.mote, self.boot_epoch, self.seq)
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode(bytes, "features")
    }
}
