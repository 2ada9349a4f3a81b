//! The MQTT gateway: the only actor that holds the motes' keys.
//!
//! Up: every message on `aiot/+/up` is checked in order: the topic names a mote, the size,
//! the codec and CRC (corruption), the frame's mote matches the topic's, the mote is known, the
//! HMAC under its key (authenticity: works on any broker, including rumqttd, which cannot
//! confine a client to its topics), an up kind, a payload that decodes. A frame failing any
//! check is refused, counted by reason and logged, rate-limited per reason; the gateway goes
//! on. Good frames go to `/proxies` as `UpFrame`s; maintenance records on `aiot/maintenance/+`
//! go there too. While `/proxies` cannot be reached (its node not yet known, or moving), the
//! gateway holds what it would send, in order, and offers it again `HOLD_RETRY` later: a frame
//! never overtakes an earlier one of its mote on the way to its proxy. Inspection requests
//! (the drift monitor's) go out to the crew on `aiot/maintenance/{mote}/request` at QoS 1.
//!
//! Down: proxies ask for acks; the gateway signs them under the mote's key with its down mark
//! (increasing: the mote refuses replayed commands; acks are exempt, they only name frames
//! already stored) and publishes them at QoS 1. A gateway that lost its counter learns the
//! mote's last accepted mark from its next features report. Commands (`commands`) go out one
//! at a time per mote, each settled by the mote's down receipt (or its next report).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_firmware::protocol::{
    self, Ack, Direction, DownMark, DownReceipt, Envelope, FeaturesReport, FrameError, Kind, MoteId, Payload,
    MAX_FRAME,
};
use aiot_runtime::{Actor, ActorError, ActorRef, Ctx, PortRef, ReplyTo};
use rand::Rng;

use super::commands::{CommandTracker, MoteCommand, Next};
use super::proxy::{ProxiesMsg, HOLD_RETRY};
use super::{Downlink, UpFrame};
use crate::maintenance::{self, InspectionRequest, MaintenanceRecord};
use crate::ports::mqtt::{Mqtt, MqttEvent, MqttRequest, Publish, QoS};
use crate::provision::KeyRing;

/// Why a message from the broker was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// A topic that names no mote.
    UnknownTopic,
    /// Larger than any frame.
    Oversized,
    /// Not a frame: too short, another protocol version, lengths that disagree, unknown kind.
    Malformed,
    /// The CRC does not match: corrupted on the way.
    BadCrc,
    /// The frame names another mote than its topic.
    WrongTopic,
    /// No key is provisioned for the mote.
    UnknownMote,
    /// The HMAC does not match the mote's key: forged, or signed with another mote's key.
    BadMac,
    /// A down kind on an up topic.
    WrongDirection,
    /// A well-formed frame whose payload does not decode.
    BadPayload,
    /// A maintenance record that does not parse, or names another mote than its topic.
    BadMaintenance,
    /// A command to send down that is not a down kind with a valid payload, or for an unknown
    /// mote.
    BadCommand,
}

impl Refusal {
    pub const ALL: [Refusal; 11] = [
        Refusal::UnknownTopic,
        Refusal::Oversized,
        Refusal::Malformed,
        Refusal::BadCrc,
        Refusal::WrongTopic,
        Refusal::UnknownMote,
        Refusal::BadMac,
        Refusal::WrongDirection,
        Refusal::BadPayload,
        Refusal::BadMaintenance,
        Refusal::BadCommand,
    ];
}

/// The gateway's counters, shared with the host.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub frames_in: AtomicU64,
    pub forwarded: AtomicU64,
    pub maintenance_forwarded: AtomicU64,
    /// Times `/proxies` could not take the oldest held message yet (not placed, or
    /// unreachable): it stays held and is offered again `HOLD_RETRY` later.
    pub held: AtomicU64,
    /// Good frames and records dropped because `HELD_MAX` were held already: nothing was
    /// acknowledged, so motes resend them (the crew's records are lost).
    pub undeliverable: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    pub acks_sent: AtomicU64,
    /// Commands sent down (resends included), delivered (a report showed the mote accepted
    /// them), and given up (never accepted after `commands::MAX_SENDS` sends, or no such mote).
    pub commands_sent: AtomicU64,
    pub commands_delivered: AtomicU64,
    pub commands_given_up: AtomicU64,
    /// Downlinks the port refused (the mote resends, and is acknowledged again).
    pub downlinks_refused: AtomicU64,
    /// Inspection requests published to the crew, and those the port refused.
    pub inspections_requested: AtomicU64,
    pub inspections_refused: AtomicU64,
    /// Subscriptions the broker acknowledged (both filters, and again after a reconnect).
    /// Until the up filter's first, the broker drops what motes publish (they resend it).
    pub subscriptions_acknowledged: AtomicU64,
    /// Log lines written about refusals, and those held back by the rate limit.
    pub log_lines: AtomicU64,
    pub log_suppressed: AtomicU64,
}

impl GatewayStats {
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }

    pub fn refused_total(&self) -> u64 {
        Refusal::ALL.iter().map(|r| self.refused(*r)).sum()
    }
}

/// At most one log line per reason per this much time; the next line says how many were held.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Messages the gateway takes.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum GatewayMsg {
    Mqtt(MqttEvent),
    Down {
        mote: u32,
        downlink: Downlink,
    },
    /// Send `command` to `mote` at QoS 1 and answer `delivered` once the mote's report shows it
    /// accepted it (`false`: given up). A mote's commands go one at a time, in order; `id` names
    /// the command, so asking again about a pending one joins it.
    Command {
        mote: u32,
        id: u64,
        command: MoteCommand,
        delivered: ReplyTo<bool>,
    },
    /// Ask the crew to inspect a motor.
    Inspect(InspectionRequest),
    /// Offer the held messages to `/proxies` again (the gateway's own timer).
    ForwardHeld,
}

/// How many messages the gateway holds while `/proxies` cannot be reached: a few seconds of a
/// large fleet's frames; beyond it a new one is dropped and counted (its mote resends it).
pub const HELD_MAX: usize = 4_096;

/// The largest epoch jump past a learned down mark (see `Gateway::epoch_jump`): 2^16, so two
/// gateway incarnations collide once in 65,536, and a mote's 32-bit epochs last 65,536 restarts.
pub const EPOCH_JUMP_MAX: u32 = 1 << 16;

pub struct Gateway {
    keys: KeyRing,
    proxies: ActorRef<ProxiesMsg>,
    stats: Arc<GatewayStats>,
    mqtt: Option<PortRef<Mqtt>>,
    down_marks: BTreeMap<u32, DownMark>,
    /// How many epochs this incarnation jumps past a mark it learns (drawn when it starts): two
    /// incarnations that learn from the same stale report (resent from a mote's ring) then pick
    /// different marks, so a command the mote refuses as a replay cannot look delivered.
    epoch_jump: u32,
    commands: CommandTracker<ReplyTo<bool>>,
    /// Frames and records for `/proxies` it could not take yet, oldest first.
    held: VecDeque<ProxiesMsg>,
    /// A `ForwardHeld` is scheduled.
    retry_scheduled: bool,
    /// Per reason: when it was last logged (ms), and refusals held back since.
    log: BTreeMap<Refusal, (u64, u64)>,
    buffer: Vec<u8>,
}

impl Gateway {
    pub fn new(keys: KeyRing, proxies: ActorRef<ProxiesMsg>, stats: Arc<GatewayStats>) -> Self {
        Gateway {
            keys,
            proxies,
            stats,
            mqtt: None,
            down_marks: BTreeMap::new(),
            epoch_jump: 1,
            commands: CommandTracker::default(),
            held: VecDeque::new(),
            retry_scheduled: false,
            log: BTreeMap::new(),
            buffer: vec![0; MAX_FRAME],
        }
    }

    fn on_message(&mut self, message: Publish, ctx: &mut Ctx<'_, GatewayMsg>) -> Result<(), ActorError> {
        let now_ms = ctx.now().since_start().as_millis() as u64;
        if let Some(mote) = maintenance::mote_of_topic(&message.topic) {
            if message.topic.ends_with("/request") {
                return Ok(()); // our own requests to the crew, if subscribed broadly
            }
            return match MaintenanceRecord::from_json(&message.payload) {
                Ok(record) if record.mote == mote.0 => {
                    self.send_to_proxies(ProxiesMsg::Maintenance(record), ctx);
                    Ok(())
                }
                Ok(record) => self.refuse(
                    Refusal::BadMaintenance,
                    &format!("record for mote-{} on {}", record.mote, message.topic),
                    now_ms,
                ),
                Err(e) => self.refuse(Refusal::BadMaintenance, &format!("{}: {e}", message.topic), now_ms),
            };
        }
        self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        match self.check(&message) {
            Ok((frame, reported_mark)) => {
                if let Some(accepted) = reported_mark {
                    let next = self.commands.on_report(frame.mote, accepted, now_ms);
                    self.follow(next, ctx)?;
                }
                let frame = UpFrame { received_ms: ctx.cluster_ms(), ..frame };
                self.send_to_proxies(ProxiesMsg::Up(frame), ctx);
                Ok(())
            }
            Err((why, detail)) => self.refuse(why, &format!("{}: {detail}", message.topic), now_ms),
        }
    }

    /// Sends `msg` to `/proxies` behind any held ones; holds it if they cannot be sent yet.
    fn send_to_proxies(&mut self, msg: ProxiesMsg, ctx: &mut Ctx<'_, GatewayMsg>) {
        if self.held.len() >= HELD_MAX {
            self.stats.undeliverable.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.held.push_back(msg);
        self.forward_held(ctx);
    }

    /// Offers the held messages to `/proxies` in order; stops at the first it cannot take and
    /// tries again `HOLD_RETRY` later.
    fn forward_held(&mut self, ctx: &mut Ctx<'_, GatewayMsg>) {
        while let Some(msg) = self.held.pop_front() {
            let counter = match &msg {
                ProxiesMsg::Maintenance(_) => &self.stats.maintenance_forwarded,
                _ => &self.stats.forwarded,
            };
            // Kept until `/proxies` takes it: a refused send drops its message.
            let kept = msg.clone();
            if ctx.send(&self.proxies, msg).is_err() {
                self.held.push_front(kept);
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                if !self.retry_scheduled {
                    self.retry_scheduled = true;
                    ctx.schedule_once(HOLD_RETRY, GatewayMsg::ForwardHeld);
                }
                return;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every check of a message on an up topic, in order.
    /// Returns the frame, and the down mark its mote reported (features reports and down
    /// receipts carry it).
    fn check(&mut self, message: &Publish) -> Result<(UpFrame, Option<DownMark>), (Refusal, String)> {
        let Some((mote, Direction::Up)) = protocol::parse_topic(&message.topic) else {
            return Err((Refusal::UnknownTopic, "not a mote's up topic".into()));
        };
        if message.payload.len() > MAX_FRAME {
            return Err((
                Refusal::Oversized,
                format!("{} bytes, at most {MAX_FRAME}", message.payload.len()),
            ));
        }
        let unverified = protocol::decode_frame(&message.payload).map_err(|e| {
            let why = match e {
                FrameError::BadCrc => Refusal::BadCrc,
                FrameError::Oversized { .. } => Refusal::Oversized,
                _ => Refusal::Malformed,
            };
            (why, e.to_string())
        })?;
        let envelope = unverified.envelope;
        if envelope.mote != mote {
            return Err((Refusal::WrongTopic, format!("frame of {} on the topic of {mote}", envelope.mote)));
        }
        let key = self
            .keys
            .get(mote)
            .ok_or_else(|| (Refusal::UnknownMote, format!("{mote} is not provisioned")))?;
        let frame = unverified.verify(key).map_err(|e| (Refusal::BadMac, e.to_string()))?;
        let kind = frame.kind;
        if kind.is_down() {
            return Err((Refusal::WrongDirection, format!("{kind:?} is a down kind")));
        }
        let payload = frame.decode_payload().map_err(|e| (Refusal::BadPayload, e.to_string()))?;
        let reported_mark = match payload {
            Payload::Features(FeaturesReport { down_mark: mark, .. })
            | Payload::DownReceipt(DownReceipt { mark, .. }) => {
                self.learn_down_mark(mote, mark);
                Some(mark)
            }
            _ => None,
        };
        let up = UpFrame {
            mote: mote.0,
            boot_epoch: envelope.boot_epoch,
            seq: envelope.seq,
            capture_ms: envelope.capture_ms,
            received_ms: 0,
            kind: kind as u8,
            payload: message.payload.slice_ref(frame.payload),
        };
        Ok((up, reported_mark))
    }

    /// A mote that accepted a mark at or above ours means our counter was lost: jump past it.
    fn learn_down_mark(&mut self, mote: MoteId, accepted: DownMark) {
        let ours = self.down_marks.entry(mote.0).or_default();
        if accepted >= *ours {
            *ours = DownMark { epoch: accepted.epoch.saturating_add(self.epoch_jump), seq: 0 };
        }
    }

    fn refuse(&mut self, why: Refusal, detail: &str, now_ms: u64) -> Result<(), ActorError> {
        self.stats.refused[why as usize].fetch_add(1, Ordering::Relaxed);
        let (last, held) = self.log.entry(why).or_insert((0, 0));
        if *last == 0 || now_ms >= *last + LOG_EVERY.as_millis() as u64 {
            let also = if *held > 0 { format!(" ({held} more since the last line)") } else { String::new() };
            tracing::warn!("gateway refused a message ({why:?}): {detail}{also}");
            self.stats.log_lines.fetch_add(1, Ordering::Relaxed);
            *last = now_ms.max(1);
            *held = 0;
        } else {
            *held += 1;
            self.stats.log_suppressed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn send_down(
        &mut self,
        mote: u32,
        downlink: Downlink,
        ctx: &mut Ctx<'_, GatewayMsg>,
    ) -> Result<(), ActorError> {
        let Downlink::Ack { boot_epoch, first_seq, last_seq } = downlink;
        let ack = Payload::Ack(Ack { boot_epoch, first_seq, last_seq });
        if self.publish_down(mote, &ack, None, ctx)?.is_some() {
            self.stats.acks_sent.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Signs `payload` for `mote` under `mark` (`None`: the mote's next mark) and publishes it
    /// at QoS 1; returns the mark used, or `None` if it could not go out (no key, no port, the
    /// port refused: counted).
    fn publish_down(
        &mut self,
        mote: u32,
        payload: &Payload<'_>,
        mark: Option<DownMark>,
        ctx: &mut Ctx<'_, GatewayMsg>,
    ) -> Result<Option<DownMark>, ActorError> {
        let id = MoteId(mote);
        let Some(key) = self.keys.get(id) else { return Ok(None) };
        let mark = match mark {
            Some(mark) => mark,
            None => {
                let next = self.down_marks.entry(mote).or_insert(DownMark { epoch: 1, seq: 0 });
                next.seq += 1;
                *next
            }
        };
        let envelope =
            Envelope { mote: id, boot_epoch: mark.epoch, seq: mark.seq, capture_ms: ctx.cluster_ms() };
        let len = protocol::encode_frame(&envelope, payload, key, &mut self.buffer)
            .map_err(|e| ActorError::new(format!("encoding a downlink: {e}")))?;
        let Some(mqtt) = &self.mqtt else { return Ok(None) };
        let publish = Publish::new(id.down_topic().as_str(), self.buffer[..len].to_vec(), QoS::AtLeastOnce);
        if ctx.port_request(mqtt, MqttRequest::Publish(publish)).is_err() {
            self.stats.downlinks_refused.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        Ok(Some(mark))
    }

    fn on_command(
        &mut self,
        mote: u32,
        id: u64,
        command: MoteCommand,
        delivered: ReplyTo<bool>,
        ctx: &mut Ctx<'_, GatewayMsg>,
    ) -> Result<(), ActorError> {
        let down = Kind::from_code(command.kind).filter(|k| k.is_receipted());
        let valid = down.is_some_and(|kind| Payload::decode(kind, &command.payload).is_ok());
        if !valid || self.keys.get(MoteId(mote)).is_none() {
            self.stats.commands_given_up.fetch_add(1, Ordering::Relaxed);
            let now_ms = ctx.now().since_start().as_millis() as u64;
            self.refuse(
                Refusal::BadCommand,
                &format!("command kind {:#x} for mote-{mote}", command.kind),
                now_ms,
            )?;
            let _ = ctx.reply(&delivered, false);
            return Ok(());
        }
        let next = self.commands.push(mote, id, command, delivered);
        self.follow(next, ctx)
    }

    fn request_inspection(&mut self, request: &InspectionRequest, ctx: &mut Ctx<'_, GatewayMsg>) {
        let topic = maintenance::request_topic(MoteId(request.mote));
        let publish = Publish::new(topic.as_str(), request.to_json(), QoS::AtLeastOnce);
        let sent = self
            .mqtt
            .as_ref()
            .is_some_and(|mqtt| ctx.port_request(mqtt, MqttRequest::Publish(publish)).is_ok());
        let counter = if sent { &self.stats.inspections_requested } else { &self.stats.inspections_refused };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Carries out what the command tracker says: sends (new or again) and settlements.
    fn follow(
        &mut self,
        next: impl IntoIterator<Item = Next<ReplyTo<bool>>>,
        ctx: &mut Ctx<'_, GatewayMsg>,
    ) -> Result<(), ActorError> {
        for step in next {
            match step {
                Next::Send { mote, command, mark } => {
                    let kind = Kind::from_code(command.kind).expect("checked when queued");
                    let payload = Payload::decode(kind, &command.payload).expect("checked when queued");
                    let now_ms = ctx.now().since_start().as_millis() as u64;
                    if let Some(used) = self.publish_down(mote, &payload, mark, ctx)? {
                        self.stats.commands_sent.fetch_add(1, Ordering::Relaxed);
                        self.commands.sent(mote, used, now_ms);
                    }
                }
                Next::Settled { done, delivered } => {
                    let counter = if delivered {
                        &self.stats.commands_delivered
                    } else {
                        &self.stats.commands_given_up
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    for asker in done {
                        // An asker that has gone (a timed-out ask, a restarted relay) is no
                        // failure of ours: it asks again.
                        let _ = ctx.reply(&asker, delivered);
                    }
                }
                Next::Recalled { done, delivered } => {
                    // Settled before (the asker restarted before the answer reached it).
                    let _ = ctx.reply(&done, delivered);
                }
            }
        }
        Ok(())
    }
}

impl Actor for Gateway {
    type Msg = GatewayMsg;

    fn started(&mut self, ctx: &mut Ctx<'_, GatewayMsg>) -> Result<(), ActorError> {
        self.epoch_jump = ctx.rng().random_range(1..=EPOCH_JUMP_MAX);
        let mqtt = ctx.open_port::<Mqtt>(GatewayMsg::Mqtt);
        ctx.port_request(
            &mqtt,
            MqttRequest::Subscribe { filter: protocol::UP_TOPIC_FILTER.into(), qos: QoS::AtLeastOnce },
        )?;
        ctx.port_request(
            &mqtt,
            MqttRequest::Subscribe { filter: maintenance::RECORD_FILTER.into(), qos: QoS::AtLeastOnce },
        )?;
        self.mqtt = Some(mqtt);
        Ok(())
    }

    fn handle(&mut self, msg: GatewayMsg, ctx: &mut Ctx<'_, GatewayMsg>) -> Result<(), ActorError> {
        match msg {
            GatewayMsg::Mqtt(MqttEvent::Message(message)) => self.on_message(message, ctx),
            GatewayMsg::Mqtt(MqttEvent::Refused { .. }) => {
                self.stats.downlinks_refused.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            GatewayMsg::Mqtt(MqttEvent::Subscribed { filter }) => {
                self.stats.subscriptions_acknowledged.fetch_add(1, Ordering::Relaxed);
                tracing::info!("gateway: the broker acknowledged the subscription to {filter}");
                Ok(())
            }
            GatewayMsg::Mqtt(_) => Ok(()),
            GatewayMsg::Down { mote, downlink } => self.send_down(mote, downlink, ctx),
            GatewayMsg::Command { mote, id, command, delivered } => {
                self.on_command(mote, id, command, delivered, ctx)
            }
            GatewayMsg::Inspect(request) => {
                self.request_inspection(&request, ctx);
                Ok(())
            }
            GatewayMsg::ForwardHeld => {
                self.retry_scheduled = false;
                self.forward_held(ctx);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiot_firmware::actuation::{ActuationState, Transition, TransitionCause};
    use aiot_firmware::protocol::{MoteKey, Stage1Event};
    use aiot_runtime::port::PortCall;
    use aiot_runtime::prelude::DetSystem;
    use aiot_runtime::spec::ActorSpec;
    use parking_lot::Mutex;

    /// Takes the gateway's port requests and answers none (no broker in this test).
    struct NoBroker;

    impl Actor for NoBroker {
        type Msg = PortCall<Mqtt>;
        fn handle(&mut self, _: PortCall<Mqtt>, _: &mut Ctx<'_, Self::Msg>) -> Result<(), ActorError> {
            Ok(())
        }
    }

    /// Keeps the sequence numbers of the frames that reach `/proxies`.
    struct Proxies(Arc<Mutex<Vec<u32>>>);

    impl Actor for Proxies {
        type Msg = ProxiesMsg;
        fn handle(&mut self, msg: ProxiesMsg, _: &mut Ctx<'_, ProxiesMsg>) -> Result<(), ActorError> {
            if let ProxiesMsg::Up(frame) = msg {
                self.0.lock().push(frame.seq);
            }
            Ok(())
        }
    }

    /// Frame `seq` of mote 7, signed with `key`, as the broker delivers it.
    fn published(key: &MoteKey, seq: u32) -> GatewayMsg {
        let transition = Transition {
            from: ActuationState::Normal,
            to: ActuationState::Derate,
            score: 0.9,
            cause: TransitionCause::Score,
        };
        let payload = Payload::Stage1Event(Stage1Event { transition, model_version: 0 });
        let envelope = Envelope { mote: MoteId(7), boot_epoch: 1, seq, capture_ms: seq as u64 };
        let mut buffer = vec![0; MAX_FRAME];
        let len = protocol::encode_frame(&envelope, &payload, key, &mut buffer).unwrap();
        let topic = MoteId(7).up_topic();
        GatewayMsg::Mqtt(MqttEvent::Message(Publish::new(topic.as_str(), &buffer[..len], QoS::AtLeastOnce)))
    }

    /// `/proxies` is not there yet (as on a node that has not yet heard where it runs): the
    /// gateway holds the verified frames and, once `/proxies` appears, sends them all in order,
    /// ahead of the frames that came after.
    #[test]
    fn frames_wait_in_order_until_the_proxies_can_be_reached() {
        let key = MoteKey([7; 32]);
        let mut keys = KeyRing::default();
        keys.insert(MoteId(7), key.clone());
        let stats = Arc::new(GatewayStats::default());
        let mut system = DetSystem::with_seed(5);
        system.spawn("port-mqtt", ActorSpec::new(|_| NoBroker)).unwrap();
        let proxies = ActorRef::parse("/proxies").unwrap();
        let kept = Arc::clone(&stats);
        let gateway = system
            .spawn(
                "gateway",
                ActorSpec::new(move |_| Gateway::new(keys.clone(), proxies.clone(), Arc::clone(&kept))),
            )
            .unwrap();
        for seq in 0..3 {
            system.tell(&gateway, published(&key, seq)).unwrap();
        }
        system.run_for(Duration::from_millis(350));
        assert_eq!(stats.forwarded.load(Ordering::Relaxed), 0);
        assert!(stats.held.load(Ordering::Relaxed) >= 3, "held and retried");

        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen_kept = Arc::clone(&seen);
        system.spawn("proxies", ActorSpec::new(move |_| Proxies(Arc::clone(&seen_kept)))).unwrap();
        system.tell(&gateway, published(&key, 3)).unwrap();
        system.run_for(Duration::from_millis(500));
        assert_eq!(*seen.lock(), [0, 1, 2, 3], "each frame once, in the mote's order");
        assert_eq!(stats.forwarded.load(Ordering::Relaxed), 4);
        assert_eq!(stats.undeliverable.load(Ordering::Relaxed), 0);
    }
}
