//! Motes on a host: the firmware core fed by the motor physics, over any `MqttConnection`.
//!
//! The same `MoteHost` runs in `aiot motes` (rumqttc, wall-clock time), in end-to-end tests and
//! benchmarks, and in the simulator (the simulated broker, virtual time). The host only moves
//! bytes: every decision (features, stage 1, actuation, duty cycle, what to resend, which down
//! frames to trust) is the firmware core's.
//!
//! `Crew` plays the maintenance crew: it publishes the motors' maintenance log on
//! `aiot/maintenance/{mote}` and answers inspection requests on `.../request` by asking the
//! motor model for an inspection (answered after the model's delay).

use std::sync::Arc;
use std::time::Duration;

use aiot_actors::maintenance::{
    self, Defect, Finding, InspectionRequest, MaintenanceEvent as Record, MaintenanceRecord,
};
use aiot_actors::ports::mqtt::{EventSink, MqttConnection, MqttEvent, Publish, QoS};
use aiot_actors::provision::MoteCredentials;
use aiot_firmware::mote::{DownApplied, Mote, MoteConfig, Persistent, WindowOutcome};
use aiot_firmware::protocol::MoteId;
use aiot_firmware::sampling::{Window, DEFAULT_SAMPLE_RATE_HZ, WINDOW};
use parking_lot::Mutex;

use crate::motor::{DefectKind, MaintenanceEvent, Motor};

/// Events a connection delivered, waiting for the host's next look.
pub type Inbox = Arc<Mutex<Vec<MqttEvent>>>;

/// A new inbox and the sink that fills it (connect with the sink, give the inbox to the host).
pub fn inbox() -> (Inbox, EventSink) {
    let inbox: Inbox = Arc::new(Mutex::new(Vec::new()));
    let filling = Arc::clone(&inbox);
    (inbox, Arc::new(move |event| filling.lock().push(event)))
}

/// What a host did for its mote, beyond the core's own counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    pub published: u64,
    /// Publishes the connection refused (the frame stays in the mote's ring and is resent).
    pub publish_refused: u64,
    pub down_frames: u64,
    /// Down frames the core refused (forged, replayed, malformed).
    pub down_refused: u64,
    /// Commands (configuration and OTA) the core accepted and applied (an OTA frame it took and
    /// refused counts: its mark was accepted).
    pub commands_applied: u64,
}

/// A mote's configuration from its credentials (defaults for the rest).
pub fn config(credentials: &MoteCredentials) -> Result<MoteConfig, String> {
    Ok(MoteConfig::new(
        credentials.id(),
        credentials.key().map_err(|e| e.0)?,
        credentials.signing_public().map_err(|e| e.0)?,
    ))
}

/// One mote, its motor and its connection.
pub struct MoteHost {
    mote: Box<Mote>,
    motor: Motor,
    connection: Arc<dyn MqttConnection>,
    inbox: Inbox,
    up_topic: String,
    down_topic: String,
    samples: Vec<[f32; 4]>,
    counters: HostCounters,
    /// The host has handled its connection's `Connected` and no `Disconnected` since. Until
    /// then it publishes nothing, even if the connection is already up: a frame kept from
    /// before (refused while disconnected) is resent when `Connected` is handled, and a new
    /// frame published ahead of that would overtake it.
    online: bool,
}

impl MoteHost {
    /// A freshly provisioned mote booting for the first time.
    pub fn new(
        credentials: &MoteCredentials,
        motor: Motor,
        connection: Arc<dyn MqttConnection>,
        inbox: Inbox,
    ) -> Result<Self, String> {
        Ok(Self::boot(config(credentials)?, Persistent::new(), motor, connection, inbox))
    }

    /// Boots a mote from what its flash kept.
    pub fn boot(
        config: MoteConfig,
        persistent: Persistent,
        motor: Motor,
        connection: Arc<dyn MqttConnection>,
        inbox: Inbox,
    ) -> Self {
        let id = config.id;
        let mote = Box::new(Mote::boot(config, persistent));
        MoteHost {
            mote,
            motor,
            connection,
            inbox,
            up_topic: id.up_topic().as_str().to_string(),
            down_topic: id.down_topic().as_str().to_string(),
            samples: vec![[0.0; 4]; WINDOW],
            counters: HostCounters::default(),
            online: false,
        }
    }

    pub fn id(&self) -> MoteId {
        self.mote.config().id
    }

    pub fn mote(&self) -> &Mote {
        &self.mote
    }

    pub fn motor(&mut self) -> &mut Motor {
        &mut self.motor
    }

    pub fn counters(&self) -> HostCounters {
        self.counters
    }

    /// When the core next wants a window (mote clock, ms).
    pub fn next_report_ms(&self) -> u64 {
        self.mote.next_report_ms()
    }

    /// When the host next has work of its own (mote clock, ms): a report, or a resend of a
    /// kept frame. What arrives on the connection is work too, at once.
    pub fn next_work_ms(&self) -> u64 {
        let report = self.mote.next_report_ms();
        self.mote.next_resend_ms().map_or(report, |resend| resend.min(report))
    }

    /// A wake-up: handle what arrived, capture a window at motor time `motor_t`, run the core,
    /// publish its frames.
    pub fn wake(&mut self, now_ms: u64, motor_t: Duration) -> WindowOutcome {
        self.poll(now_ms);
        self.motor.capture(motor_t, f64::from(DEFAULT_SAMPLE_RATE_HZ), &mut self.samples);
        let window =
            Window::from_physical(DEFAULT_SAMPLE_RATE_HZ, &self.samples).expect("a window of WINDOW samples");
        let up = Uplink { connection: self.connection.as_ref(), topic: &self.up_topic, online: self.online };
        let counters = &mut self.counters;
        self.mote.on_window(now_ms, &window, &mut |frame| up.publish(frame, counters))
    }

    /// Nothing arrived and nothing awaits an acknowledgement: `poll` would do nothing.
    pub fn is_idle(&self) -> bool {
        self.mote.persistent().ring().is_empty() && self.inbox.lock().is_empty()
    }

    /// Handles what the connection delivered (on connecting: subscribe and resend everything
    /// kept; down frames: to the core), then resends frames due again.
    pub fn poll(&mut self, now_ms: u64) {
        let events = std::mem::take(&mut *self.inbox.lock());
        let counters = &mut self.counters;
        for event in events {
            match event {
                MqttEvent::Connected => {
                    let _ = self.connection.subscribe(&self.down_topic, QoS::AtLeastOnce);
                    self.online = true;
                    self.mote.on_connected();
                }
                MqttEvent::Disconnected { .. } => self.online = false,
                MqttEvent::Message(message) if message.topic == self.down_topic => {
                    counters.down_frames += 1;
                    let up = Uplink {
                        connection: self.connection.as_ref(),
                        topic: &self.up_topic,
                        online: self.online,
                    };
                    let applied =
                        self.mote.on_down(&message.payload, now_ms, &mut |frame| up.publish(frame, counters));
                    counters.down_refused += u64::from(applied.is_err());
                    counters.commands_applied +=
                        u64::from(matches!(applied, Ok(DownApplied::Command(_) | DownApplied::Ota(_))));
                }
                _ => {}
            }
        }
        let up = Uplink { connection: self.connection.as_ref(), topic: &self.up_topic, online: self.online };
        self.mote.resend(now_ms, &mut |frame| up.publish(frame, counters));
    }

    /// Reboots the mote in place over a new connection (RAM lost, flash kept).
    pub fn reboot(&mut self, connection: Arc<dyn MqttConnection>, inbox: Inbox) {
        self.mote.reboot();
        self.connection = connection;
        self.inbox = inbox;
        self.online = false;
    }
}

/// Where a host's frames go up, and whether it may publish yet.
struct Uplink<'a> {
    connection: &'a dyn MqttConnection,
    topic: &'a str,
    online: bool,
}

impl Uplink<'_> {
    /// Publishes `frame` at QoS 1; refused while offline (the core keeps it to resend).
    fn publish(&self, frame: &[u8], counters: &mut HostCounters) {
        let published =
            self.online && self.connection.publish(Publish::new(self.topic, frame, QoS::AtLeastOnce)).is_ok();
        match published {
            true => counters.published += 1,
            false => counters.publish_refused += 1,
        }
    }
}

/// The maintenance crew of a plant.
pub struct Crew {
    connection: Arc<dyn MqttConnection>,
    inbox: Inbox,
    /// Records the connection refused, kept to publish again.
    backlog: Vec<MaintenanceRecord>,
    pub published: u64,
    pub requests_answered: u64,
}

impl Crew {
    pub fn new(connection: Arc<dyn MqttConnection>, inbox: Inbox) -> Self {
        Crew { connection, inbox, backlog: Vec::new(), published: 0, requests_answered: 0 }
    }

    /// Publishes a motor's maintenance events; `to_ms` gives each event's plant-clock time.
    pub fn report(&mut self, mote: MoteId, events: Vec<MaintenanceEvent>, to_ms: impl Fn(Duration) -> u64) {
        self.backlog.extend(events.into_iter().map(|e| record(mote, &e, &to_ms)));
        self.flush();
    }

    /// Motes whose inspection was requested since the last call (subscribing on connect).
    pub fn requests(&mut self) -> Vec<MoteId> {
        let mut motes = Vec::new();
        for event in std::mem::take(&mut *self.inbox.lock()) {
            match event {
                MqttEvent::Connected => {
                    let _ = self.connection.subscribe(maintenance::REQUEST_FILTER, QoS::AtLeastOnce);
                }
                MqttEvent::Message(m) => {
                    if let Ok(request) = InspectionRequest::from_json(&m.payload) {
                        motes.push(MoteId(request.mote));
                        self.requests_answered += 1;
                    }
                }
                _ => {}
            }
        }
        self.flush();
        motes
    }

    fn flush(&mut self) {
        while let Some(record) = self.backlog.first() {
            let message = Publish::new(
                maintenance::record_topic(MoteId(record.mote)),
                record.to_json(),
                QoS::AtLeastOnce,
            );
            if self.connection.publish(message).is_err() {
                return;
            }
            self.backlog.remove(0);
            self.published += 1;
        }
    }
}

fn defect(kind: DefectKind) -> Defect {
    match kind {
        DefectKind::OuterRace => Defect::OuterRace,
        DefectKind::InnerRace => Defect::InnerRace,
        DefectKind::Imbalance => Defect::Imbalance,
        DefectKind::BrokenRotorBar => Defect::BrokenRotorBar,
        DefectKind::Overheating => Defect::Overheating,
    }
}

/// The crew's record of a motor model event.
pub fn record(mote: MoteId, event: &MaintenanceEvent, to_ms: impl Fn(Duration) -> u64) -> MaintenanceRecord {
    let entry = match event {
        MaintenanceEvent::Failure { cause, .. } => Record::Failure { defect: defect(*cause) },
        MaintenanceEvent::Repaired { .. } => Record::Repaired,
        MaintenanceEvent::Inspection(inspection) => Record::Inspection {
            findings: inspection
                .findings
                .iter()
                .map(|f| Finding { defect: defect(f.kind), severity: f.severity as f32 })
                .collect(),
            requested: inspection.requested_at.is_some(),
        },
    };
    MaintenanceRecord { mote: mote.0, time_ms: to_ms(event.at()), event: entry }
}
