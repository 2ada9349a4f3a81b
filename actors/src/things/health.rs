//! A mote's health as its proxy sees it: when it was last heard, what it sent, gaps,
//! duplicates, boots, its model and OTA state, its actuation state, sensor faults.

use aiot_firmware::protocol::{FeaturesReport, Kind, OtaReceipt, Stage1Event};
use serde::{Deserialize, Serialize};

/// Frames per hour are counted over windows this long.
const RATE_WINDOW_MS: u64 = 3_600_000;

/// The proxy's record of its mote (answers `ProxyMsg::Health`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MoteHealth {
    pub mote: u32,
    /// Gateway clock (ms) of the last frame, new or not.
    pub last_received_ms: Option<u64>,
    /// Mote clock (ms) of the newest capture.
    pub last_capture_ms: Option<u64>,
    pub boot_epoch: u32,
    /// Boot epochs seen after the first.
    pub reboots: u32,
    /// New frames by kind: features, raw windows, stage-1 events, OTA receipts, down receipts.
    pub frames: [u64; 5],
    pub duplicates: u64,
    /// Frames of epochs too old to tell apart (refused, acknowledged).
    pub stale: u64,
    /// Sequence numbers missing below the newest (may still come as resends).
    pub open_gaps: u64,
    /// Sequence numbers given up as lost.
    pub lost: u64,
    /// Frames the mote says its resend ring dropped (from its reports).
    pub ring_dropped: u32,
    /// Frames per hour over the last complete hour of gateway time.
    pub rate_per_hour: u64,
    pub model_version: u32,
    /// Actuation state code (`aiot_firmware::actuation::ActuationState`).
    pub actuation: u8,
    /// Stage-1 transitions reported.
    pub stage1_events: u64,
    /// Latest OTA receipt: (status code, model version, active version).
    pub ota: Option<(String, u32, u32)>,
    /// Windows with a sensor fault flagged.
    pub sensor_fault_windows: u64,
    /// Times downstream could not take the oldest held frame yet (held and retried).
    pub downstream_held: u64,
    /// New frames refused because the proxy already held as many as it may (not
    /// acknowledged: the mote resends them).
    pub downstream_refused: u64,
    /// Acknowledgements the gateway could not be asked for.
    pub acks_refused: u64,
    /// Frames whose receipt from downstream never came (the mote resends them).
    pub receipts_missing: u64,
    hour_start_ms: u64,
    this_hour: u64,
}

impl MoteHealth {
    pub fn new(mote: u32) -> Self {
        MoteHealth { mote, ..MoteHealth::default() }
    }

    /// Records any frame's arrival (also duplicates: the mote is alive).
    pub fn heard(&mut self, boot_epoch: u32, received_ms: u64) {
        self.last_received_ms = Some(received_ms);
        if boot_epoch > self.boot_epoch {
            if self.frames.iter().sum::<u64>() > 0 {
                self.reboots += 1;
            }
            self.boot_epoch = boot_epoch;
        }
        if received_ms >= self.hour_start_ms + RATE_WINDOW_MS {
            let full_hour = received_ms < self.hour_start_ms + 2 * RATE_WINDOW_MS;
            self.rate_per_hour = if full_hour { self.this_hour } else { 0 };
            self.hour_start_ms = received_ms - received_ms % RATE_WINDOW_MS;
            self.this_hour = 0;
        }
        self.this_hour += 1;
    }

    /// Records a new (not duplicate) frame.
    pub fn new_frame(&mut self, kind: Kind, capture_ms: u64, faulty: bool) {
        let slot = match kind {
            Kind::Features => 0,
            Kind::RawWindow => 1,
            Kind::Stage1Event => 2,
            Kind::OtaReceipt => 3,
            _ => 4,
        };
        self.frames[slot] += 1;
        self.last_capture_ms = Some(self.last_capture_ms.map_or(capture_ms, |c| c.max(capture_ms)));
        if faulty {
            self.sensor_fault_windows += 1;
        }
    }

    pub fn report(&mut self, report: &FeaturesReport) {
        self.model_version = report.model_version;
        self.actuation = report.state as u8;
        self.ring_dropped = report.ring_dropped;
    }

    pub fn stage1(&mut self, event: &Stage1Event) {
        self.stage1_events += 1;
        self.actuation = event.transition.to as u8;
        self.model_version = event.model_version;
    }

    pub fn ota(&mut self, receipt: &OtaReceipt) {
        self.ota = Some((format!("{:?}", receipt.status), receipt.model_version, receipt.active_version));
        self.model_version = receipt.active_version;
    }
}
