//! The event streams of the simulated plant (the `bridge` scenario): the simulated log the
//! bridge appends to, an independent consumer that reads the streams back and de-duplicates
//! them by (mote, boot epoch, sequence), and an observer of the acknowledgements the gateway
//! sends down to the motes.
//!
//! What it lets the plant check: every frame acknowledged to a mote is in the telemetry stream
//! (the bridge answers a proxy only once the record is durable), the stream holds nothing a mote
//! did not send, and after de-duplication each frame is there once; and every window (features
//! frame or raw window) in it reaches the `features` stream through the DSP filter's replicas.
//!
//! Downlink: every `COMMAND_EVERY` a configuration command for a mote drawn by the seed goes
//! into the `commands` stream (as an operator's tool would put it there); the command relay and
//! the gateway carry it down. The plant checks that the gateway never counts a command delivered
//! that no mote applied, and that the relay reads every command in the stream.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::inference::features::{FeatureRecord, FEATURES};
use aiot_actors::ports::eventlog::adapter::{Log, LogLink};
use aiot_actors::ports::eventlog::Record;
use aiot_actors::ports::eventlog::{ConsumerEvent, EventLog, LogConsumer, Start, Subscription};
use aiot_actors::ports::mqtt::{ConnectOptions, MqttConnection, MqttEvent, QoS};
use aiot_actors::provision::{Fleet, KeyRing};
use aiot_actors::registry::service::MODELS;
use aiot_actors::streams::{
    mote_key, CommandRecord, TelemetryRecord, COMMANDS, MAINTENANCE, PARTITIONS, TELEMETRY,
};
use aiot_firmware::protocol::{self, Command, Kind, Payload};
use aiot_runtime::exec::det::DetSystem;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::eventlog::{LogFaults, LogStats, SimLog};
use crate::motes::{inbox, Inbox};
use crate::mqtt::{SimBroker, SimConnection};

/// What the independent consumer read.
#[derive(Debug, Default)]
pub struct StreamView {
    /// Distinct frames: (mote, boot epoch, sequence).
    pub frames: BTreeSet<(u32, u32, u32)>,
    /// Distinct frames per mote.
    pub frames_by_mote: BTreeMap<u32, u64>,
    /// Copies of frames already read (the stream is at least once).
    pub copies: u64,
    /// Records that are not telemetry records.
    pub undecodable: Vec<String>,
    pub maintenance: u64,
    /// Command records in the `commands` stream.
    pub commands: u64,
    /// Distinct frames that carry a window (features frames, raw windows), and those with a
    /// record in the `features` stream (the DSP filter's output).
    pub windows: BTreeSet<(u32, u32, u32)>,
    pub featured: BTreeSet<(u32, u32, u32)>,
    /// Feature records of a frame that had one already.
    pub feature_copies: u64,
    /// Records read since credit was last granted.
    unpaid: u32,
}

impl StreamView {
    fn read(&mut self, event: ConsumerEvent) {
        let ConsumerEvent::Records(records) = event else { return };
        self.unpaid += records.len() as u32;
        for stored in records {
            if stored.partition.topic == MAINTENANCE {
                self.maintenance += 1;
                continue;
            }
            if stored.partition.topic == COMMANDS {
                self.commands += 1;
                continue;
            }
            if stored.partition.topic == FEATURES {
                match FeatureRecord::decode(&stored.record.payload) {
                    Ok(record) if self.featured.insert(record.frame_id()) => {}
                    Ok(_) => self.feature_copies += 1,
                    Err(why) => {
                        self.undecodable.push(format!("{}@{}: {why}", stored.partition, stored.offset))
                    }
                }
                continue;
            }
            match TelemetryRecord::decode(&stored.record.payload) {
                Ok(record) if self.frames.insert(record.frame_id()) => {
                    *self.frames_by_mote.entry(record.mote).or_default() += 1;
                    if [Kind::Features as u8, Kind::RawWindow as u8].contains(&record.kind) {
                        self.windows.insert(record.frame_id());
                    }
                }
                Ok(_) => self.copies += 1,
                Err(why) => self.undecodable.push(format!("{}@{}: {why}", stored.partition, stored.offset)),
            }
        }
    }
}

/// The streams and their observers.
pub struct Streams {
    log: SimLog,
    view: Arc<Mutex<StreamView>>,
    consumer: Box<dyn LogConsumer>,
    keys: KeyRing,
    observer: Arc<SimConnection>,
    acks: Inbox,
    /// Frames acknowledged to their motes: (mote, boot epoch, sequence).
    acked: BTreeSet<(u32, u32, u32)>,
    /// Commands: the generator of their motes, how many motes, when the next one goes in.
    rng: ChaCha8Rng,
    motes: u32,
    next_command: Duration,
    commands_appended: u64,
}

/// How often a command goes into the `commands` stream.
pub const COMMAND_EVERY: Duration = Duration::from_secs(20);

impl Streams {
    /// A flaky log with the streams the bridge makes, read from the start by a consumer of
    /// our own, and an observer on the motes' down topics (with the crew's login); with
    /// `models`, the registry's stream holds the plant's models (`crate::ota`).
    pub fn new(seed: u64, fleet: &Fleet, broker: &SimBroker, models: bool) -> Streams {
        let log = SimLog::new(seed, LogFaults::flaky(), Arc::new(|_| {}));
        for topic in [TELEMETRY, MAINTENANCE, COMMANDS, FEATURES] {
            log.create_topic(topic, PARTITIONS).expect("a new log takes the streams");
        }
        if models {
            log.create_topic(MODELS, 1).expect("a new log takes the models stream");
            for (id, payload) in crate::ota::model_records().into_iter().enumerate() {
                let record = Record::new(MODELS, b"models".to_vec(), payload, 0);
                log.append(u64::MAX - id as u64, record).expect("a new log is up");
            }
        }
        let view = Arc::new(Mutex::new(StreamView::default()));
        let reading = Arc::clone(&view);
        let consumer = log
            .subscribe(
                Subscription::all(&[TELEMETRY, MAINTENANCE, COMMANDS, FEATURES], "checker", Start::Earliest),
                Arc::new(move |event| reading.lock().read(event)),
            )
            .expect("the streams exist");
        let (acks, sink) = inbox();
        let crew = &fleet.crew;
        let options = ConnectOptions::new("aiot-ack-observer").with_credentials(&crew.user, &crew.password);
        let observer = broker.connect(options, sink);
        let streams = Streams {
            log,
            view,
            consumer,
            keys: fleet.keys(),
            observer,
            acks,
            acked: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xc0de),
            motes: fleet.motes.len() as u32,
            next_command: COMMAND_EVERY,
            commands_appended: 0,
        };
        streams.subscribe_observer();
        streams
    }

    fn subscribe_observer(&self) {
        // Refused while the broker is down: the next `Connected` subscribes again.
        let _ = self.observer.subscribe("aiot/+/down", QoS::AtLeastOnce);
    }

    /// Installs the log port on a platform node (at its start and every restart): its own
    /// client of the shared log, as a node has its own producer.
    pub fn install(&self, system: &mut DetSystem) {
        let link = LogLink::new();
        link.attach(Arc::new(self.log.client(link.sink())));
        system.install_port::<Log, _>(link.adapter()).expect("a fresh system has no log port");
    }

    pub fn log(&self) -> &SimLog {
        &self.log
    }

    pub fn stats(&self) -> LogStats {
        self.log.stats()
    }

    pub fn view(&self) -> parking_lot::MutexGuard<'_, StreamView> {
        self.view.lock()
    }

    /// Runs the log to `now`, pays the consumer for what it read, and notes the acks sent down.
    pub fn step(&mut self, now: Duration) {
        if now >= self.next_command && self.motes > 0 {
            self.next_command += COMMAND_EVERY;
            self.append_command(now);
        }
        self.log.advance(now);
        let unpaid = std::mem::take(&mut self.view.lock().unpaid);
        if unpaid > 0 {
            self.consumer.grant(unpaid);
        }
        let events = std::mem::take(&mut *self.acks.lock());
        for event in events {
            match event {
                MqttEvent::Message(message) => self.note_ack(&message.payload),
                MqttEvent::Connected => self.subscribe_observer(),
                _ => {}
            }
        }
    }

    /// A command for a mote drawn by the seed: report every 60 s (its default, so the plant's
    /// timing stays as it was; the mote applies it all the same). Refused while the log is
    /// down: the next one is due later.
    fn append_command(&mut self, now: Duration) {
        let mote = self.rng.random_range(1..=self.motes);
        let command = Payload::Command(Command::SetReportInterval { seconds: 60 });
        let record = CommandRecord::new(mote, &command).expect("a command payload");
        let record = Record::new(COMMANDS, mote_key(mote), record.encode(), now.as_millis() as u64);
        if self.log.append(self.commands_appended, record).is_ok() {
            self.commands_appended += 1;
        }
    }

    fn note_ack(&mut self, bytes: &[u8]) {
        let Ok(unverified) = protocol::decode_frame(bytes) else { return };
        let Some(key) = self.keys.get(unverified.envelope.mote) else { return };
        let mote = unverified.envelope.mote.0;
        let Ok(frame) = unverified.verify(key) else { return };
        if let Ok(Payload::Ack(ack)) = frame.decode_payload() {
            for seq in ack.first_seq..=ack.last_seq {
                self.acked.insert((mote, ack.boot_epoch, seq));
            }
        }
    }

    /// Every frame acknowledged to its mote is in the telemetry stream, and every record in it
    /// is a telemetry record. (Called once the consumer has caught up: it reads behind the log.)
    pub fn acked_frames_stored(&self) -> Result<(), String> {
        let view = self.view.lock();
        if let Some(bad) = view.undecodable.first() {
            return Err(format!("the telemetry stream holds a record that is not one: {bad}"));
        }
        match self.acked.iter().find(|f| !view.frames.contains(f)) {
            Some((mote, epoch, seq)) => Err(format!(
                "mote-{mote}'s frame {seq} of boot {epoch} was acknowledged to the mote but is not in the telemetry stream ({} acknowledged, {} in the stream)",
                self.acked.len(),
                view.frames.len()
            )),
            None => Ok(()),
        }
    }

    /// Every window in the telemetry stream has its feature record: the DSP filter read it.
    pub fn windows_featured(&self) -> Result<(), String> {
        let view = self.view.lock();
        match view.windows.iter().find(|f| !view.featured.contains(f)) {
            Some((mote, epoch, seq)) => Err(format!(
                "mote-{mote}'s window {seq} of boot {epoch} is in the telemetry stream but has no feature record ({} of {} windows have one)",
                view.windows.iter().filter(|f| view.featured.contains(f)).count(),
                view.windows.len()
            )),
            None => Ok(()),
        }
    }

    /// Frames acknowledged to their motes, as seen on the down topics.
    pub fn acked(&self) -> usize {
        self.acked.len()
    }
}
