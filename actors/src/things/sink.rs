//! A downstream that counts what proxies forward (until the DSP filter and the bridge exist),
//! and notices anything forwarded twice: the proxies' de-duplication promises it never is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aiot_runtime::{Actor, ActorError, Ctx};
use parking_lot::Mutex;

use super::Onward;

/// What the sink has seen, shared with the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// New frames by kind code.
    pub frames_by_kind: BTreeMap<u8, u64>,
    /// New frames per mote.
    pub frames_by_mote: BTreeMap<u32, u64>,
    /// Frames flagged with a sensor fault.
    pub faulty: u64,
    pub maintenance: u64,
    /// Frames forwarded more than once (a broken de-duplication).
    pub duplicates: u64,
    /// Every (mote, boot epoch, sequence) forwarded.
    pub keys: BTreeSet<(u32, u32, u32)>,
    /// The gateway's receive time minus the mote's capture time, per frame, ms (meaningful when
    /// both clocks are the same one, as in benchmarks).
    pub capture_to_gateway_ms: Vec<u64>,
}

impl SinkCounts {
    pub fn frames(&self) -> u64 {
        self.frames_by_kind.values().sum()
    }
}

pub struct CountingSink {
    counts: Arc<Mutex<SinkCounts>>,
}

impl CountingSink {
    pub fn new(counts: Arc<Mutex<SinkCounts>>) -> Self {
        CountingSink { counts }
    }
}

impl Actor for CountingSink {
    type Msg = Onward;

    fn handle(&mut self, msg: Onward, _ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        let mut counts = self.counts.lock();
        match msg {
            Onward::Telemetry { frame, faults } => {
                if !counts.keys.insert((frame.mote, frame.boot_epoch, frame.seq)) {
                    counts.duplicates += 1;
                    return Ok(());
                }
                *counts.frames_by_kind.entry(frame.kind).or_default() += 1;
                *counts.frames_by_mote.entry(frame.mote).or_default() += 1;
                counts.faulty += u64::from(faults.any());
                counts.capture_to_gateway_ms.push(frame.received_ms.saturating_sub(frame.capture_ms));
            }
            Onward::Maintenance(_) => counts.maintenance += 1,
        }
        Ok(())
    }
}
