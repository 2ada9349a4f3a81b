//! `/proxies` and its children `/proxies/mote-{id}`: one `SensorProxy` per mote, the mote's twin.
//!
//! `/proxies` creates a mote's proxy from the provisioned list at start, or on the mote's first
//! valid frame, and passes each mote's frames and maintenance records to it by path. A proxy:
//! - de-duplicates by (mote, boot epoch, sequence) across resends, QoS 1 copies and reboots;
//! - asks the gateway to acknowledge every frame, duplicates included (the first ack may have
//!   been lost); for now once forwarded, later (the bridge) once durable in the event log;
//! - flags sensor faults, tracks health, and forwards new frames and maintenance records
//!   downstream.

use std::collections::BTreeMap;

use aiot_firmware::protocol::{Kind, MoteId, Payload};
use aiot_runtime::{Actor, ActorError, ActorRef, ActorSpec, Ctx, ReplyTo};
use serde::{Deserialize, Serialize};

use super::dedup::{FrameDedup, Seen};
use super::gateway::GatewayMsg;
use super::health::MoteHealth;
use super::sensor_faults::{self, SensorFaults};
use super::{Downlink, Onward, UpFrame};
use crate::maintenance::MaintenanceRecord;

/// What `/proxies` takes.
#[derive(Debug, Serialize, Deserialize)]
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
}

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
    dedup: FrameDedup,
    health: MoteHealth,
}

impl SensorProxy {
    pub fn new(mote: u32, gateway: ActorRef<GatewayMsg>, downstream: ActorRef<Onward>) -> Self {
        SensorProxy { gateway, downstream, dedup: FrameDedup::default(), health: MoteHealth::new(mote) }
    }

    /// A frame is recorded as seen, and acknowledged, only once downstream took it: if it could
    /// not be passed on (downstream not placed yet, or unreachable), the mote resends it later.
    fn on_frame(&mut self, frame: UpFrame, ctx: &mut Ctx<'_, ProxyMsg>) -> Result<(), ActorError> {
        self.health.heard(frame.boot_epoch, frame.received_ms);
        let (boot_epoch, seq) = (frame.boot_epoch, frame.seq);
        match self.dedup.check(boot_epoch, seq) {
            Seen::Duplicate => self.health.duplicates += 1,
            Seen::Stale => self.health.stale += 1,
            Seen::New => {
                let before = self.health.clone();
                let faults = self.inspect(&frame);
                if ctx.send(&self.downstream, Onward::Telemetry { frame, faults }).is_err() {
                    self.health = before;
                    self.health.downstream_refused += 1;
                    return Ok(());
                }
                self.dedup.observe(boot_epoch, seq);
            }
        }
        self.health.open_gaps = self.dedup.open_gaps();
        self.health.lost = self.dedup.lost();
        let ack = Downlink::Ack { boot_epoch, first_seq: seq, last_seq: seq };
        if ctx.send(&self.gateway, GatewayMsg::Down { mote: self.health.mote, downlink: ack }).is_err() {
            self.health.acks_refused += 1;
        }
        Ok(())
    }

    /// Updates health from a new frame and flags its sensor faults.
    fn inspect(&mut self, frame: &UpFrame) -> SensorFaults {
        let Some(kind) = Kind::from_code(frame.kind) else { return SensorFaults::default() };
        let faults = match Payload::decode(kind, &frame.payload) {
            Ok(Payload::RawWindow(window)) => sensor_faults::check_raw(&window),
            Ok(Payload::Features(report)) => {
                self.health.report(&report);
                sensor_faults::check_features(&report)
            }
            Ok(Payload::Stage1Event(event)) => {
                self.health.stage1(&event);
                SensorFaults::default()
            }
            Ok(Payload::OtaReceipt(receipt)) => {
                self.health.ota(&receipt);
                SensorFaults::default()
            }
            // The gateway decoded it before; nothing else reaches a proxy.
            _ => SensorFaults::default(),
        };
        self.health.new_frame(kind, frame.capture_ms, faults.any());
        faults
    }
}

impl Actor for SensorProxy {
    type Msg = ProxyMsg;

    fn handle(&mut self, msg: ProxyMsg, ctx: &mut Ctx<'_, ProxyMsg>) -> Result<(), ActorError> {
        match msg {
            ProxyMsg::Up(frame) => self.on_frame(frame, ctx),
            ProxyMsg::Maintenance(record) => {
                ctx.send(&self.downstream, Onward::Maintenance(record))?;
                Ok(())
            }
            ProxyMsg::Health(reply) => {
                ctx.reply(&reply, Some(self.health.clone()))?;
                Ok(())
            }
        }
    }
}
