//! The plant in the simulated world: motes (the firmware core fed by the motor physics, through
//! `MoteHost`) on the simulated MQTT broker, and the MQTT port of every things-tier node
//! connected to it with the gateway's login. The cluster's things tier (gateway, proxies, sink)
//! runs on the simulated nodes like any topology.
//!
//! Faults of its own: mote reboots (RAM lost, flash kept, the old connection vanishes so its
//! will fires) and broker crashes (everyone disconnected, in-flight messages lost). The broker
//! itself is flaky by the seed: QoS 1 duplicates and jitter.
//!
//! Checks: nothing processed twice (the sink processes each (mote, boot epoch, sequence) once,
//! across reboots too; copies that reach it, after a proxy lost its memory in a crash or a
//! receipt was lost, are answered and counted apart); nothing lost beyond what the motes' rings dropped and counted (per mote, the
//! frames in the sink are at least the frames it originated minus its ring's drops); and, once
//! healed, every mote's ring empties through end-to-end acknowledgements. The closed loop: every
//! mote runs the signed factory model, a few motors develop a defect during the run, and each
//! mote's windows are held to the actuation rule (`closed_loop::LoopCheck`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::dsp::DspConfig;
use aiot_actors::inference::alerts::AlertRule;
use aiot_actors::inference::{self, InferenceConfig, InferenceStats};
use aiot_actors::ports::mqtt::adapter::MqttLink;
use aiot_actors::ports::mqtt::{ConnectOptions, EventSink, Mqtt};
use aiot_actors::provision::{to_hex, Fleet, Login, MoteCredentials};
use aiot_actors::streams::bridge::{BridgeConfig, BridgeStats};
use aiot_actors::streams::command_relay::RelayStats;
use aiot_actors::things::gateway::GatewayStats;
use aiot_actors::things::sink::SinkCounts;
use aiot_actors::things::{self, Downstream, ThingsConfig};
use aiot_firmware::mote::Persistent;
use aiot_firmware::protocol::MoteId;
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{Instant, TopologyBuilder};
use parking_lot::Mutex;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::closed_loop::{factory_flash, signing_key, LoopCheck};
use crate::motes::{self, inbox, Inbox, MoteHost};
use crate::motor::{DefectKind, Fleet as Motors, Motor, MotorParams};
use crate::mqtt::{MqttFaults, SimBroker, SimConnection};
use crate::ota::OtaShared;
use crate::streams::Streams;

/// What the things tier's actors share with the plant's checks.
#[derive(Debug, Clone, Default)]
pub struct ThingsShared {
    pub gateway: Arc<GatewayStats>,
    pub sink: Arc<Mutex<SinkCounts>>,
    pub bridge: Arc<BridgeStats>,
    pub relay: Arc<RelayStats>,
    /// The DSP filter's and stage 2's replicas.
    pub inference: InferenceStats,
    /// The registry's, the deployer's and the release plan's (the `ota` scenario).
    pub ota: OtaShared,
}

/// What the plant's proxies feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The counting sink (the `motes` scenario).
    Sink,
    /// The bridge into the event streams, and the DSP filters behind it (`bridge`).
    Bridge,
    /// The bridge, with the registry and the deployer rolling models out (`ota`).
    Ota,
}

impl Feed {
    pub fn streams(self) -> bool {
        self != Feed::Sink
    }
}

/// The fleet's credentials: keys derived from the mote ids (a simulation has no secrets).
pub fn fleet(motes: u32) -> Fleet {
    let login = |user: &str| Login { user: user.into(), password: format!("{user}-password") };
    let model_signing_public = to_hex(&signing_key().verifying_key().to_bytes());
    let motes = (1..=motes)
        .map(|id| {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&id.to_le_bytes());
            key[4] = 0xa5;
            MoteCredentials {
                mote: id,
                mqtt_user: MoteId(id).to_string(),
                mqtt_password: format!("pw-{id}"),
                hmac_key: to_hex(&key),
                model_signing_public: model_signing_public.clone(),
            }
        })
        .collect();
    Fleet { gateway: login("aiot-gateway"), crew: login("aiot-crew"), motes }
}

/// Declares the things tier for `fleet`, sharing its counters through `shared`; its proxies
/// feed the counting sink or the bridge into the event streams, as `feed` says.
pub fn declare(t: &mut TopologyBuilder, fleet: &Fleet, shared: &ThingsShared, feed: Feed) {
    let downstream = if feed.streams() {
        Downstream::Bridge {
            config: BridgeConfig::default(),
            stats: Arc::clone(&shared.bridge),
            relay: Arc::clone(&shared.relay),
        }
    } else {
        Downstream::Sink(Arc::clone(&shared.sink))
    };
    things::declare(
        t,
        // Not checkpointed: the plant runs up to 10 000 motes in the simulation benchmark,
        // whose proxies would not fit one checkpoint (`failover-state` sweeps checkpoints).
        ThingsConfig {
            keys: fleet.keys(),
            gateway_stats: Arc::clone(&shared.gateway),
            downstream,
            checkpoint_every: None,
        },
    );
    if feed.streams() {
        declare_stages(t, shared);
    }
    if feed == Feed::Ota {
        crate::ota::declare(t, &shared.ota);
    }
}

/// Declares the stream stages behind the bridge: two DSP filter replicas.
pub fn declare_stages(t: &mut TopologyBuilder, shared: &ThingsShared) {
    let config = InferenceConfig {
        dsp: DspConfig::default(),
        dsp_replicas: 2,
        stage2_replicas: 2,
        rule: AlertRule::default(),
        stats: shared.inference.clone(),
    };
    inference::declare(t, config);
}

struct SimMote {
    host: MoteHost,
    connection: Arc<SimConnection>,
    /// Frames originated in earlier boots (the core's counters are RAM).
    sent_before: u64,
    /// The mote's clock minus the world's (motes are switched on at different times, so their
    /// reports do not all fall on the same tick).
    clock_offset_ms: u64,
    closed_loop: LoopCheck,
    /// The world time (ms) of its next work of its own, as entered in `Schedule::due`.
    due_ms: u64,
}

/// Which motes have work at a tick, so that a tick costs the motes with work rather than the
/// whole fleet (a mote reports once a minute; a tick is 100 ms).
#[derive(Default)]
struct Schedule {
    /// (world ms of its next report or resend, mote index).
    due: BTreeSet<(u64, usize)>,
    /// Motes whose connection delivered something since they last looked (their inboxes'
    /// sinks add them).
    stirred: Arc<Mutex<BTreeSet<usize>>>,
}

impl Schedule {
    /// The motes with work at world time `now_ms`, in index order.
    fn take_work(&mut self, now_ms: u64) -> BTreeSet<usize> {
        let mut work = std::mem::take(&mut *self.stirred.lock());
        while let Some(&(at, i)) = self.due.first() {
            if at > now_ms {
                break;
            }
            self.due.pop_first();
            work.insert(i);
        }
        work
    }

    /// Enters mote `i`'s next work of its own (a report or a resend).
    fn enter(&mut self, i: usize, mote: &mut SimMote) {
        self.due.remove(&(mote.due_ms, i));
        mote.due_ms = mote.host.next_work_ms().saturating_sub(mote.clock_offset_ms);
        self.due.insert((mote.due_ms, i));
    }
}

/// What the per-tick checks read of a mote, kept in one compact row per mote so that a check
/// of a large fleet does not walk every mote's firmware state.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Frames originated over all its boots.
    originated: u64,
    commands_applied: u64,
}

impl Tally {
    fn of(mote: &SimMote) -> Tally {
        Tally {
            originated: mote.sent_before + mote.host.mote().counters().frames_sent,
            commands_applied: mote.host.counters().commands_applied,
        }
    }
}

/// The motes, the broker, and the things nodes' MQTT links.
pub struct Plant {
    broker: SimBroker,
    fleet: Fleet,
    motes: Vec<SimMote>,
    schedule: Schedule,
    /// Each mote's `Tally`, by index, as of its last handling.
    tallies: Vec<Tally>,
    shared: ThingsShared,
    /// With the bridge: the streams it fills, and their checks.
    streams: Option<Streams>,
    feed: Feed,
    rng: ChaCha8Rng,
    pub reboots: u64,
    /// The first window a mote handled against the actuation rule.
    loop_broken: Option<String>,
}

impl Plant {
    /// The plant; feeding the bridge, also the event log it appends to (`declare` with the
    /// same `feed`).
    pub fn new(seed: u64, fleet: Fleet, shared: ThingsShared, feed: Feed) -> Plant {
        let mut rng = <ChaCha8Rng as rand::SeedableRng>::seed_from_u64(seed);
        let broker = SimBroker::new(rng.random(), MqttFaults::flaky());
        broker.require_logins(fleet.logins());
        let motors = Motors::new(rng.random(), fleet.motes.len(), &MotorParams::default());
        // Every mote leaves the factory with the same flash: flashed (signed and checked) once.
        let mut factory = Persistent::new();
        factory_flash(&mut factory);
        assert!(
            fleet.motes.iter().enumerate().all(|(i, m)| m.id().0 as usize == i + 1),
            "the plant's fleet numbers its motes 1..=n"
        );
        let schedule = Schedule::default();
        let motes = fleet
            .motes
            .iter()
            .enumerate()
            .map(|(i, credentials)| {
                let (connection, inbox) = connect(&broker, credentials, &schedule, i);
                let mut motor = motors.motor(i).clone();
                maybe_wear(&mut motor, &mut rng);
                let flash = factory.clone();
                let config = motes::config(credentials).expect("valid credentials");
                let host = MoteHost::boot(config, flash, motor, connection.clone(), inbox);
                SimMote {
                    host,
                    connection,
                    sent_before: 0,
                    clock_offset_ms: 0,
                    closed_loop: LoopCheck::default(),
                    due_ms: 0,
                }
            })
            .collect::<Vec<_>>();
        let streams = feed.streams().then(|| Streams::new(rng.random(), &fleet, &broker, feed == Feed::Ota));
        let tallies = vec![Tally::default(); motes.len()];
        let mut plant = Plant {
            broker,
            fleet,
            motes,
            schedule,
            tallies,
            shared,
            streams,
            feed,
            rng,
            reboots: 0,
            loop_broken: None,
        };
        for (i, mote) in plant.motes.iter_mut().enumerate() {
            mote.clock_offset_ms = plant.rng.random_range(0..60_000);
            plant.schedule.enter(i, mote);
        }
        plant
    }

    /// Installs a node's ports (at its start and at every restart): a things node's MQTT port
    /// connects to the broker; a platform node gets the log port when the plant has streams.
    pub fn install(&self, node: &str, tier: &str, system: &mut DetSystem) {
        match (tier, &self.streams) {
            ("things", _) => self.install_mqtt(node, system),
            ("platform", Some(streams)) => streams.install(system),
            _ => {}
        }
    }

    /// Each node has its own client id: two connections with one id would take each other over.
    fn install_mqtt(&self, node: &str, system: &mut DetSystem) {
        let link = MqttLink::new();
        let gateway = &self.fleet.gateway;
        let options = ConnectOptions::new(format!("{}-{node}", gateway.user))
            .with_credentials(&gateway.user, &gateway.password);
        link.attach(self.broker.connect(options, link.sink()));
        // A node's system is new at each start, so the port is never there yet.
        system.install_port::<Mqtt, _>(link.adapter()).expect("a fresh system has no MQTT port");
    }

    /// Runs the broker and the motes up to `now`: each mote wakes when its report is due (by
    /// its own clock) and otherwise handles what arrived and resends what is due. Only the
    /// motes with work are visited, in index order.
    pub fn step(&mut self, now: Instant) {
        let now_d = now.since_start();
        self.broker.advance(now_d);
        if let Some(streams) = self.streams.as_mut() {
            streams.step(now_d);
        }
        let world_ms = now_d.as_millis() as u64;
        for i in self.schedule.take_work(world_ms) {
            let mote = &mut self.motes[i];
            let now_ms = world_ms + mote.clock_offset_ms;
            if now_ms >= mote.host.next_report_ms() {
                let outcome = mote.host.wake(now_ms, now_d);
                let model = mote.host.mote().persistent().ota().active_model();
                if let Err(why) = mote.closed_loop.on_window(&outcome, model.as_ref()) {
                    let id = mote.host.id();
                    self.loop_broken.get_or_insert_with(|| format!("{id}, window at {now_ms} ms: {why}"));
                }
            } else if !mote.host.is_idle() {
                mote.host.poll(now_ms);
            }
            self.schedule.enter(i, mote);
            self.tallies[i] = Tally::of(mote);
        }
    }

    /// Reboots a mote chosen by the plant's generator: its connection vanishes (the will
    /// fires), it boots from flash over a new connection.
    pub fn reboot_one(&mut self) {
        let i = self.rng.random_range(0..self.motes.len());
        let credentials = self.fleet.motes[i].clone();
        let mote = &mut self.motes[i];
        mote.connection.vanish();
        mote.sent_before += mote.host.mote().counters().frames_sent;
        let (connection, inbox) = connect(&self.broker, &credentials, &self.schedule, i);
        mote.host.reboot(connection.clone(), inbox);
        mote.closed_loop.on_boot();
        mote.connection = connection;
        self.schedule.enter(i, mote);
        self.tallies[i] = Tally::of(mote);
        self.reboots += 1;
    }

    pub fn broker(&self) -> &SimBroker {
        &self.broker
    }

    pub fn streams(&self) -> Option<&Streams> {
        self.streams.as_ref()
    }

    /// New frames per mote downstream: distinct frames in the telemetry stream, or frames the
    /// sink processed.
    fn with_processed<R>(&self, f: impl FnOnce(&BTreeMap<u32, u64>) -> R) -> R {
        match &self.streams {
            Some(streams) => f(&streams.view().frames_by_mote),
            None => f(&self.shared.sink.lock().frames_by_mote),
        }
    }

    pub fn motes(&self) -> usize {
        self.motes.len()
    }

    /// The index of mote `id` (the fleet numbers its motes 1..=n, checked in `new`).
    fn fleet_index(&self, id: u32) -> Option<usize> {
        (id as usize).checked_sub(1).filter(|&i| i < self.tallies.len())
    }

    /// Every mote's active model version (0: none).
    fn running_models(&self) -> BTreeMap<u32, u32> {
        self.motes
            .iter()
            .map(|m| (m.host.id().0, m.host.mote().persistent().ota().active_version()))
            .collect()
    }

    /// Nothing processed twice: per mote, the frames the sink processed are as many as the
    /// distinct (boot epoch, sequence) keys it holds (the stream is at least once and is
    /// de-duplicated by its reader instead); and per mote no more new frames downstream than
    /// the mote originated. Linear in the motes each tick: the first part is checked on the
    /// totals (each key counts once, so equal totals mean equal counts per mote) and only
    /// searched per mote on failure; the second reads the motes' compact tallies.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = &self.loop_broken {
            return Err(format!("closed loop: {why}"));
        }
        if self.feed == Feed::Ota {
            crate::ota::check(&self.shared.ota, &self.running_models())?;
        }
        let applied: u64 = self.tallies.iter().map(|t| t.commands_applied).sum();
        let delivered = self.shared.gateway.commands_delivered.load(Relaxed);
        if delivered > applied {
            return Err(format!(
                "the gateway counts {delivered} commands delivered, the motes applied {applied}"
            ));
        }
        if self.streams.is_none() {
            let sink = self.shared.sink.lock();
            if sink.frames() != sink.keys.len() as u64 {
                for (&id, &processed) in &sink.frames_by_mote {
                    let keys = sink.keys.range((id, 0, 0)..=(id, u32::MAX, u32::MAX)).count() as u64;
                    if processed != keys {
                        return Err(format!(
                            "{} had {processed} frames processed for {keys} distinct frames",
                            MoteId(id)
                        ));
                    }
                }
            }
        }
        self.with_processed(|processed| {
            for (&id, &processed) in processed {
                let Some(tally) = self.fleet_index(id).map(|i| self.tallies[i]) else {
                    return Err(format!(
                        "frames of {} went downstream, which is not in the plant",
                        MoteId(id)
                    ));
                };
                let originated = tally.originated;
                if processed > originated {
                    return Err(format!(
                        "{} has {processed} frames processed but originated {originated}",
                        MoteId(id)
                    ));
                }
            }
            Ok(())
        })
    }

    /// Every mote's ring is empty (all acknowledged), every frame not dropped by a ring reached
    /// downstream, and with streams every frame acknowledged to a mote is in the stream.
    pub fn settled(&self) -> Result<(), String> {
        self.with_processed(|processed| {
            for (mote, tally) in self.motes.iter().zip(&self.tallies) {
                let id = mote.host.id();
                let kept = mote.host.mote().persistent().ring().len();
                if kept > 0 {
                    return Err(format!("{id} still keeps {kept} unacknowledged frames"));
                }
                let processed = processed.get(&id.0).copied().unwrap_or(0);
                let dropped = mote.host.mote().counters().ring.total();
                let originated = tally.originated;
                if processed + dropped < originated {
                    return Err(format!("{id} originated {originated} frames, {processed} reached downstream, its ring dropped {dropped}: {} lost", originated - processed - dropped));
                }
            }
            Ok(())
        })?;
        if self.feed == Feed::Ota {
            crate::ota::settled(&self.shared.ota, &self.running_models())?;
        }
        let Some(streams) = &self.streams else { return Ok(()) };
        streams.acked_frames_stored()?;
        streams.windows_featured()?;
        let (in_stream, read) = (streams.view().commands, self.shared.relay.read.load(Relaxed));
        if read < in_stream {
            return Err(format!("the command relay read {read} of the {in_stream} commands in the stream"));
        }
        Ok(())
    }

    /// Totals for a summary: frames originated, processed, dropped by rings.
    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        let mut totals = BTreeMap::new();
        totals.insert("frames originated", self.tallies.iter().map(|t| t.originated).sum());
        totals.insert("frames processed", self.with_processed(|p| p.values().sum()));
        match &self.streams {
            Some(streams) => {
                totals.insert("frame copies in the stream", streams.view().copies);
                totals.insert("frames acknowledged (seen going down)", streams.acked() as u64);
                totals.insert("log crashes", streams.stats().crashes);
                totals.insert("log acknowledgements lost", streams.stats().acks_lost);
                totals.insert("bridge append failures", self.shared.bridge.appends.failures.load(Relaxed));
                totals.insert("feature records (distinct)", streams.view().featured.len() as u64);
                totals.insert("feature record copies", streams.view().feature_copies);
                totals.insert("DSP filter inputs refused", self.shared.inference.dsp.refused.load(Relaxed));
                totals.insert("commands in the stream", streams.view().commands);
                totals.insert("commands delivered", self.shared.relay.delivered.load(Relaxed));
                totals.insert("commands given up", self.shared.relay.given_up.load(Relaxed));
                totals.insert(
                    "commands applied by motes",
                    self.tallies.iter().map(|t| t.commands_applied).sum(),
                );
            }
            None => {
                totals.insert("copies refused by the sink", self.shared.sink.lock().duplicates);
            }
        }
        if self.feed == Feed::Ota {
            let deploy = &self.shared.ota.deploy;
            totals.insert("OTA rollouts", deploy.rollouts.load(Relaxed));
            totals.insert("OTA transfers", deploy.transfers.load(Relaxed));
            totals.insert("OTA receipts", deploy.receipts.load(Relaxed));
            totals.insert(
                "motes that ran the regression",
                self.shared.ota.regression_cohort.lock().len() as u64,
            );
            totals.extend(self.shared.ota.good_rollout_times());
        }
        totals.insert("ring drops", self.motes.iter().map(|m| m.host.mote().counters().ring.total()).sum());
        totals.insert("mote reboots", self.reboots);
        totals.insert("gateway refusals", self.shared.gateway.refused_total());
        totals.insert("stage-1 trips", self.motes.iter().map(|m| m.closed_loop.trips).sum());
        totals
    }
}

/// Connects mote `index`; what its connection delivers also marks it stirred in `schedule`.
fn connect(
    broker: &SimBroker,
    credentials: &MoteCredentials,
    schedule: &Schedule,
    index: usize,
) -> (Arc<SimConnection>, Inbox) {
    let (inbox, fill) = inbox();
    let stirred = Arc::clone(&schedule.stirred);
    let sink: EventSink = Arc::new(move |event| {
        fill(event);
        stirred.lock().insert(index);
    });
    let options = ConnectOptions::new(credentials.mqtt_user.clone())
        .with_credentials(&credentials.mqtt_user, &credentials.mqtt_password);
    (broker.connect(options, sink), inbox)
}

/// One motor in ten develops a defect during the run (bearing races or imbalance, onset within
/// ten minutes, failure 15 to 45 minutes later), so trips happen within a short run.
fn maybe_wear(motor: &mut Motor, rng: &mut ChaCha8Rng) {
    if !rng.random_bool(0.1) {
        return;
    }
    let kind = [DefectKind::OuterRace, DefectKind::InnerRace, DefectKind::Imbalance][rng.random_range(0..3)];
    let onset = Duration::from_secs(rng.random_range(0..600));
    let life = Duration::from_secs(rng.random_range(900..2700));
    // The motor may be down for repair at the onset; it then simply stays healthy.
    let _ = motor.inject_defect(kind, onset, life);
}
