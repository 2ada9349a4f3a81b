//! A downstream that stores frames by (mote, boot epoch, sequence) and counts them (until the
//! DSP filter and the bridge exist). It answers every frame with a receipt, a copy of one it
//! already has too (counted in `duplicates`: a receipt lost on the way back makes the proxy
//! send the frame again), so each frame is counted once.

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
    /// Copies of frames already stored (each answered with a receipt again, counted once).
    pub duplicates: u64,
    /// Every (mote, boot epoch, sequence) forwarded.
    pub keys: BTreeSet<(u32, u32, u32)>,
    /// The gateway's receive time minus the mote's capture time, per frame, ms (meaningful when
    /// both clocks are the same one, as in benchmarks).
    pub capture_to_gateway_ms: Vec<u64>,
    /// Per new frame, its key and the sink's clock (`ctx.now()`) when it arrived, us: the
    /// ingest benchmark's capture-to-proxy latency, at a finer grain than the frame's ms.
    pub arrived_us: Vec<((u32, u32, u32), u64)>,
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

    fn handle(&mut self, msg: Onward, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
        let now_us = ctx.now().since_start().as_micros() as u64;
        let mut counts = self.counts.lock();
        match msg {
            Onward::Telemetry { frame, faults, stored } => {
                // A receipt to a proxy that has gone is a dead letter; the mote resends.
                let _ = ctx.reply(&stored, ());
                if !counts.keys.insert((frame.mote, frame.boot_epoch, frame.seq)) {
                    counts.duplicates += 1;
                    return Ok(());
                }
                *counts.frames_by_kind.entry(frame.kind).or_default() += 1;
                *counts.frames_by_mote.entry(frame.mote).or_default() += 1;
                counts.faulty += u64::from(faults.any());
                counts.capture_to_gateway_ms.push(frame.received_ms.saturating_sub(frame.capture_ms));
                counts.arrived_us.push(((frame.mote, frame.boot_epoch, frame.seq), now_us));
            }
            Onward::Maintenance(_) => counts.maintenance += 1,
            Onward::Log(_) | Onward::RetryDue => {}
        }
        Ok(())
    }
}
