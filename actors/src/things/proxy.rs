//! `/proxies` and its children `/proxies/mote-{id}`: one `SensorProxy` per mote, the mote's twin.
//!
//! `/proxies` creates a mote's proxy from the provisioned list at start, or on the mote's first
//! valid frame, and passes each mote's frames and maintenance records to it by path. A proxy:
//! - de-duplicates by (mote, boot epoch, sequence) across resends, QoS 1 copies and reboots;
//! - asks the gateway to acknowledge a frame once downstream says it stored it (a receipt, so
//!   a frame lost on its way downstream, to a node that crashed for example, is resent by the
//!   mote), and again for every later copy (the first ack may have been lost); acks go out in
//!   ranges (`acks`);
//! - flags sensor faults, tracks health, and forwards new frames and maintenance records
//!   downstream; while downstream cannot be reached (not placed yet, or the node has not yet
//!   heard where it runs) it holds new frames in the mote's order and retries, so a start-up
//!   does not reorder a mote's frames in the stream.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use aiot_firmware::protocol::{Kind, MoteId, Payload};
use aiot_runtime::{Actor, ActorError, ActorRef, ActorSpec, Ctx, ReplyTo};
use serde::{Deserialize, Serialize};

use super::acks::AckBatch;
use super::dedup::{FrameDedup, Seen};
use super::gateway::GatewayMsg;
use super::health::MoteHealth;
use super::sensor_faults::{self, SensorFaults};
use super::{Onward, UpFrame};
use crate::maintenance::MaintenanceRecord;

/// What `/proxies` takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ProxiesMsg {
    Up(UpFrame),
    Maintenance(MaintenanceRecord),
    /// The health of one mote's proxy (`None`: no proxy for it).
    Health {
        mote: u32,
        reply: ReplyTo<Option<MoteHealth>>,
    },
}

/// What a mote's proxy takes.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProxyMsg {
    Up(UpFrame),
    Maintenance(MaintenanceRecord),
    Health(ReplyTo<Option<MoteHealth>>),
    /// Downstream's receipt for a frame (an error: it timed out; the mote will resend).
    Stored {
        boot_epoch: u32,
        seq: u32,
        stored: bool,
    },
    /// Send the acks gathered so far (the proxy's own timer, `ACK_DELAY` after the first).
    FlushAcks,
    /// Try the held frames again (the proxy's own timer, `HOLD_RETRY` after a refusal).
    ForwardHeld,
}

/// How long a proxy gathers acks before sending them down: at a high frame rate a mote's
/// consecutive frames then go down as one range (one publish), not one each. Each ack costs
/// four MQTT packets (publish and PUBACK on both legs); at 100 ms instead of 20 ms the ingest
/// benchmark's raw windows went from 0.72 to 0.77-0.85 of the broker's raw rate. A mote
/// resends after 30 s, so 100 ms more before its ack changes nothing for it.
pub const ACK_DELAY: Duration = Duration::from_millis(100);

/// How long a proxy waits for downstream's receipt before letting the mote's resend try again.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a proxy waits before offering held frames to downstream again.
pub const HOLD_RETRY: Duration = Duration::from_millis(100);

/// How many frames a proxy holds while downstream cannot be reached: as many as a mote's
/// resend ring keeps by default; a newer frame beyond it is refused (the mote resends it).
pub const HELD_MAX: usize = 256;

/// The parent of every proxy on its node.
pub struct ProxyHost {
    gateway: ActorRef<GatewayMsg>,
    downstream: ActorRef<Onward>,
    provisioned: Vec<u32>,
    proxies: BTreeMap<u32, ActorRef<ProxyMsg>>,
}

impl ProxyHost {
    /// `provisioned` motes get their proxy at start; others on their first frame.
    pub fn new(gateway: ActorRef<GatewayMsg>, downstream: ActorRef<Onward>, provisioned: Vec<u32>) -> Self {
        ProxyHost { gateway, downstream, provisioned, proxies: BTreeMap::new() }
    }

    fn proxy(&mut self, mote: u32, ctx: &mut Ctx<'_, ProxiesMsg>) -> Result<ActorRef<ProxyMsg>, ActorError> {
        if let Some(proxy) = self.proxies.get(&mote) {
            return Ok(proxy.clone());
        }
        let (gateway, downstream) = (self.gateway.clone(), self.downstream.clone());
        let spec = ActorSpec::new(move |_| SensorProxy::new(mote, gateway.clone(), downstream.clone()));
        let proxy = ctx.spawn_child(&MoteId(mote).to_string(), spec).map_err(ActorError::from)?;
        self.proxies.insert(mote, proxy.clone());
        Ok(proxy)
    }
}

impl Actor for ProxyHost {
    type Msg = ProxiesMsg;

    /// The motes with a proxy: on a move, every one is made again where the host lands (each
    /// child restores its own state).
    fn snapshot(&self) -> Option<Vec<u8>> {
        let motes: Vec<u32> = self.provisioned.iter().chain(self.proxies.keys()).copied().collect();
        Some(aiot_runtime::message::encode(&motes))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        let motes: BTreeSet<u32> = aiot_runtime::message::decode::<Vec<u32>>(snapshot)
            .map_err(ActorError::new)?
            .into_iter()
            .chain(self.provisioned.iter().copied())
            .collect();
        self.provisioned = motes.into_iter().collect();
        Ok(())
    }

    fn started(&mut self, ctx: &mut Ctx<'_, ProxiesMsg>) -> Result<(), ActorError> {
        for mote in std::mem::take(&mut self.provisioned) {
            self.proxy(mote, ctx)?;
        }
        Ok(())
    }

    fn handle(&mut self, msg: ProxiesMsg, ctx: &mut Ctx<'_, ProxiesMsg>) -> Result<(), ActorError> {
        match msg {
            ProxiesMsg::Up(frame) => {
                let proxy = self.proxy(frame.mote, ctx)?;
                ctx.send(&proxy, ProxyMsg::Up(frame))?;
            }
            ProxiesMsg::Maintenance(record) => {
                let proxy = self.proxy(record.mote, ctx)?;
                ctx.send(&proxy, ProxyMsg::Maintenance(record))?;
            }
            ProxiesMsg::Health { mote, reply } => match self.proxies.get(&mote) {
                Some(proxy) => ctx.send(proxy, ProxyMsg::Health(reply))?,
                None => ctx.reply(&reply, None)?,
            },
        }
        Ok(())
    }
}

/// One mote's twin.
pub struct SensorProxy {
    gateway: ActorRef<GatewayMsg>,
    downstream: ActorRef<Onward>,
    state: ProxyState,
}

/// What a proxy knows of its mote: all of it but the receipts it waits for moves with the
/// proxy (live migration).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProxyState {
    dedup: FrameDedup,
    health: MoteHealth,
    /// Frames held or sent downstream whose receipt has not come yet. Not moved: a receipt
    /// is the reply to this incarnation's ask, which ends with it; the mote sends an
    /// unacknowledged frame again and the moved proxy forwards it (at least once, never lost).
    #[serde(skip)]
    awaiting_receipt: BTreeSet<(u32, u32)>,
    /// New frames downstream could not take yet, oldest first (not moved, as above).
    #[serde(skip)]
    held: VecDeque<UpFrame>,
    /// A `ForwardHeld` is scheduled.
    #[serde(skip)]
    retry_scheduled: bool,
    acks: AckBatch,
}

impl SensorProxy {
    pub fn new(mote: u32, gateway: ActorRef<GatewayMsg>, downstream: ActorRef<Onward>) -> Self {
        let state = ProxyState {
            dedup: FrameDedup::default(),
            health: MoteHealth::new(mote),
            awaiting_receipt: BTreeSet::new(),
            held: VecDeque::new(),
            retry_scheduled: false,
            acks: AckBatch::default(),
        };
        SensorProxy { gateway, downstream, state }
    }

    /// A frame is recorded as seen, and acknowledged, only once downstream sent its receipt:
    /// a frame that never got there (its node crashed with the frame in flight) is resent by
    /// the mote. Copies of a frame already stored are acknowledged again; copies of one held
    /// or awaiting its receipt wait for it.
    fn on_frame(&mut self, frame: UpFrame, ctx: &mut Ctx<'_, ProxyMsg>) -> Result<(), ActorError> {
        self.state.health.heard(frame.boot_epoch, frame.received_ms);
        let (boot_epoch, seq) = (frame.boot_epoch, frame.seq);
        match self.state.dedup.check(boot_epoch, seq) {
            Seen::Duplicate => {
                self.state.health.duplicates += 1;
                self.acknowledge(boot_epoch, seq, ctx);
            }
            Seen::Stale => {
                self.state.health.stale += 1;
                self.acknowledge(boot_epoch, seq, ctx);
            }
            Seen::New if self.state.awaiting_receipt.contains(&(boot_epoch, seq)) => {
                self.state.health.duplicates += 1
            }
            Seen::New if self.state.held.len() >= HELD_MAX => self.state.health.downstream_refused += 1,
            Seen::New => {
                self.state.awaiting_receipt.insert((boot_epoch, seq));
                self.state.held.push_back(frame);
                self.forward_held(ctx);
            }
        }
        Ok(())
    }

    /// Offers the held frames downstream in order; stops at the first it cannot take and
    /// tries again `HOLD_RETRY` later.
    fn forward_held(&mut self, ctx: &mut Ctx<'_, ProxyMsg>) {
        while let Some(frame) = self.state.held.pop_front() {
            let before = self.state.health.clone();
            let faults = self.inspect(&frame);
            let (boot_epoch, seq) = (frame.boot_epoch, frame.seq);
            // Kept until downstream takes it: a refused ask drops its message.
            let kept = frame.clone();
            let sent = ctx.ask(
                &self.downstream,
                |stored| Onward::Telemetry { frame, faults, stored },
                RECEIPT_TIMEOUT,
                move |receipt| ProxyMsg::Stored { boot_epoch, seq, stored: receipt.is_ok() },
            );
            if sent.is_err() {
                self.state.held.push_front(kept);
                self.state.health = before;
                self.state.health.downstream_held += 1;
                if !self.state.retry_scheduled {
                    self.state.retry_scheduled = true;
                    ctx.schedule_once(HOLD_RETRY, ProxyMsg::ForwardHeld);
                }
                return;
            }
        }
    }

    fn on_receipt(&mut self, boot_epoch: u32, seq: u32, stored: bool, ctx: &mut Ctx<'_, ProxyMsg>) {
        self.state.awaiting_receipt.remove(&(boot_epoch, seq));
        if !stored {
            self.state.health.receipts_missing += 1;
            return;
        }
        self.state.dedup.observe(boot_epoch, seq);
        self.state.health.open_gaps = self.state.dedup.open_gaps();
        self.state.health.lost = self.state.dedup.lost();
        self.acknowledge(boot_epoch, seq, ctx);
    }

    /// Gathers the ack; the first ack of a batch schedules the flush `ACK_DELAY` later, so a
    /// busy mote's consecutive frames go down as one range.
    fn acknowledge(&mut self, boot_epoch: u32, seq: u32, ctx: &mut Ctx<'_, ProxyMsg>) {
        if self.state.acks.add(boot_epoch, seq) {
            ctx.schedule_once(ACK_DELAY, ProxyMsg::FlushAcks);
        }
    }

    fn flush_acks(&mut self, ctx: &mut Ctx<'_, ProxyMsg>) {
        for ack in self.state.acks.drain() {
            if ctx
                .send(&self.gateway, GatewayMsg::Down { mote: self.state.health.mote, downlink: ack })
                .is_err()
            {
                self.state.health.acks_refused += 1;
            }
        }
    }

    /// Updates health from a new frame and flags its sensor faults.
    fn inspect(&mut self, frame: &UpFrame) -> SensorFaults {
        let Some(kind) = Kind::from_code(frame.kind) else { return SensorFaults::default() };
        let faults = match Payload::decode(kind, &frame.payload) {
            Ok(Payload::RawWindow(window)) => sensor_faults::check_raw(&window),
            Ok(Payload::Features(report)) => {
                self.state.health.report(&report);
                sensor_faults::check_features(&report)
            }
            Ok(Payload::Stage1Event(event)) => {
                self.state.health.stage1(&event);
                SensorFaults::default()
            }
            Ok(Payload::OtaReceipt(receipt)) => {
                self.state.health.ota(&receipt);
                SensorFaults::default()
            }
            // The gateway decoded it before; nothing else reaches a proxy.
            _ => SensorFaults::default(),
        };
        self.state.health.new_frame(kind, frame.capture_ms, faults.any());
        faults
    }
}

impl Actor for SensorProxy {
    type Msg = ProxyMsg;

    /// Acks restored from a move are flushed (the timer that would have did not move).
    fn started(&mut self, ctx: &mut Ctx<'_, ProxyMsg>) -> Result<(), ActorError> {
        if !self.state.acks.is_empty() {
            ctx.schedule_once(ACK_DELAY, ProxyMsg::FlushAcks);
        }
        Ok(())
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        Some(aiot_runtime::message::encode(&self.state))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), ActorError> {
        self.state = aiot_runtime::message::decode(snapshot).map_err(ActorError::new)?;
        Ok(())
    }

    fn handle(&mut self, msg: ProxyMsg, ctx: &mut Ctx<'_, ProxyMsg>) -> Result<(), ActorError> {
        match msg {
            ProxyMsg::Up(frame) => self.on_frame(frame, ctx),
            ProxyMsg::Maintenance(record) => {
                ctx.send(&self.downstream, Onward::Maintenance(record))?;
                Ok(())
            }
            ProxyMsg::Health(reply) => {
                ctx.reply(&reply, Some(self.state.health.clone()))?;
                Ok(())
            }
            ProxyMsg::Stored { boot_epoch, seq, stored } => {
                self.on_receipt(boot_epoch, seq, stored, ctx);
                Ok(())
            }
            ProxyMsg::FlushAcks => {
                self.flush_acks(ctx);
                Ok(())
            }
            ProxyMsg::ForwardHeld => {
                self.state.retry_scheduled = false;
                self.forward_held(ctx);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::things::Downlink;
    use aiot_runtime::prelude::DetSystem;
    use parking_lot::Mutex;
    use std::sync::Arc;

    fn refs() -> (ActorRef<GatewayMsg>, ActorRef<Onward>) {
        (ActorRef::parse("/gateway").unwrap(), ActorRef::parse("/bridge").unwrap())
    }

    #[test]
    fn a_proxy_moves_with_everything_it_knows_of_its_mote() {
        let (gateway, downstream) = refs();
        let mut proxy = SensorProxy::new(7, gateway.clone(), downstream.clone());
        proxy.state.health.heard(2, 1_000);
        proxy.state.awaiting_receipt.insert((2, 41));
        proxy.state.acks.add(2, 40);
        let snapshot = proxy.snapshot().expect("a proxy is stateful");
        let mut moved = SensorProxy::new(7, gateway, downstream);
        moved.restore(&snapshot).unwrap();
        assert_eq!(moved.state.health, proxy.state.health);
        assert!(moved.state.awaiting_receipt.is_empty(), "receipts end with the incarnation that asked");
        assert!(!moved.state.acks.is_empty(), "the acks not yet sent moved too");
        proxy.state.awaiting_receipt.clear();
        assert_eq!(moved.snapshot(), proxy.snapshot());
        assert!(moved.restore(b"not a proxy").is_err());
    }

    /// Stores each frame's sequence number and sends its receipt.
    struct Downstream(Arc<Mutex<Vec<u32>>>);

    impl Actor for Downstream {
        type Msg = Onward;
        fn handle(&mut self, msg: Onward, ctx: &mut Ctx<'_, Onward>) -> Result<(), ActorError> {
            if let Onward::Telemetry { frame, stored, .. } = msg {
                self.0.lock().push(frame.seq);
                ctx.reply(&stored, ())?;
            }
            Ok(())
        }
    }

    /// Keeps the acks a proxy asks it to send.
    struct Gateway(Arc<Mutex<Vec<Downlink>>>);

    impl Actor for Gateway {
        type Msg = GatewayMsg;
        fn handle(&mut self, msg: GatewayMsg, _: &mut Ctx<'_, GatewayMsg>) -> Result<(), ActorError> {
            if let GatewayMsg::Down { downlink, .. } = msg {
                self.0.lock().push(downlink);
            }
            Ok(())
        }
    }

    fn up(seq: u32) -> ProxyMsg {
        let frame = UpFrame {
            mote: 7,
            boot_epoch: 1,
            seq,
            capture_ms: seq as u64,
            received_ms: 0,
            kind: 0,
            payload: Default::default(),
        };
        ProxyMsg::Up(frame)
    }

    /// Downstream is not there yet (as on a node that has not yet heard where it runs): the
    /// proxy holds the frames, acknowledges none, takes a resend as a copy, and forwards them
    /// all in the mote's order once downstream appears.
    #[test]
    fn frames_wait_in_order_until_downstream_can_be_reached() {
        let (stored, acks) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let mut system = DetSystem::with_seed(3);
        let acks_kept = Arc::clone(&acks);
        system.spawn("gateway", ActorSpec::new(move |_| Gateway(Arc::clone(&acks_kept)))).unwrap();
        let (gateway, downstream) = refs();
        let proxy = system.spawn(
            "proxy",
            ActorSpec::new(move |_| SensorProxy::new(7, gateway.clone(), downstream.clone())),
        );
        let proxy = proxy.unwrap();
        for seq in [0, 1, 2, 1] {
            system.tell(&proxy, up(seq)).unwrap();
        }
        system.run_for(Duration::from_millis(350));
        assert!(acks.lock().is_empty(), "nothing stored, nothing acknowledged");

        let stored_kept = Arc::clone(&stored);
        system.spawn("bridge", ActorSpec::new(move |_| Downstream(Arc::clone(&stored_kept)))).unwrap();
        system.tell(&proxy, up(3)).unwrap();
        system.run_for(Duration::from_millis(500));
        assert_eq!(*stored.lock(), [0, 1, 2, 3], "each frame once, in the mote's order");
        assert_eq!(*acks.lock(), [Downlink::Ack { boot_epoch: 1, first_seq: 0, last_seq: 3 }]);
        let mut health = system.ask(&proxy, ProxyMsg::Health, Duration::from_secs(1)).unwrap();
        system.run_for(Duration::from_millis(10));
        let health = health.try_take().expect("answered").unwrap().unwrap();
        assert!(health.downstream_held >= 3, "held and retried: {health:?}");
        assert_eq!((health.duplicates, health.downstream_refused), (1, 0));
    }

    #[test]
    fn the_proxy_host_makes_again_every_proxy_it_had() {
        let (gateway, downstream) = refs();
        let mut host = ProxyHost::new(gateway.clone(), downstream.clone(), vec![1, 2]);
        // Proxies made at start and on a first frame (3) are all in the snapshot.
        host.provisioned.clear();
        for mote in [1, 2, 3] {
            host.proxies.insert(mote, ActorRef::parse(&format!("/proxies/mote-{mote}")).unwrap());
        }
        let snapshot = host.snapshot().unwrap();
        let mut moved = ProxyHost::new(gateway, downstream, vec![1, 2, 4]);
        moved.restore(&snapshot).unwrap();
        assert_eq!(moved.provisioned, [1, 2, 3, 4]);
    }
}
