//! Motes -> a real broker -> gateway -> proxies -> sink, in one process: the firmware core fed
//! by the motor physics publishes over rumqttc to the embedded rumqttd (the default) and to a
//! Mosquitto with per-mote logins and an ACL; the things tier (tokio executor) verifies,
//! de-duplicates and acknowledges. Every frame each mote sent arrives exactly once and every
//! mote's resend ring empties through the end-to-end acks. Bad input is refused by reason,
//! counted and logged with a rate limit, and the proxies keep running. The gateway publishes the
//! drift monitor's inspection requests to the crew.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::adapters::mosquitto::{Mosquitto, MosquittoOptions};
use aiot_actors::adapters::rumqttc::RumqttcConnection;
use aiot_actors::adapters::rumqttd::EmbeddedBroker;
use aiot_actors::maintenance::{InspectionRequest, MaintenanceEvent, MaintenanceRecord};
use aiot_actors::ports::mqtt::adapter::MqttLink;
use aiot_actors::ports::mqtt::{BrokerAddr, ConnectOptions, Mqtt, MqttConnection, Publish, QoS};
use aiot_actors::provision::{to_hex, Fleet, Login, MoteCredentials};
use aiot_actors::things::gateway::{GatewayMsg, GatewayStats, Refusal};
use aiot_actors::things::proxy::ProxiesMsg;
use aiot_actors::things::sink::SinkCounts;
use aiot_actors::things::{self, Downstream, ThingsConfig};
use aiot_firmware::mote::{Mote, MoteConfig, Persistent};
use aiot_firmware::protocol::{MoteId, MAX_FRAME};
use aiot_firmware::sampling::{Window, DEFAULT_SAMPLE_RATE_HZ};
use aiot_runtime::prelude::*;
use aiot_simulations::motes::{inbox, Crew, MoteHost};
use aiot_simulations::motor::{Fleet as Motors, MotorParams};
use parking_lot::Mutex;

const MOTES: u32 = 3;
const WINDOWS: u64 = 12;

fn fleet() -> Fleet {
    let login = |user: &str| Login { user: user.into(), password: format!("{user}-secret") };
    let motes = (1..=MOTES)
        .map(|id| MoteCredentials {
            mote: id,
            mqtt_user: format!("mote-{id}"),
            mqtt_password: format!("mote-{id}-secret"),
            hmac_key: to_hex(&[id as u8 * 17; 32]),
            model_signing_public: to_hex(&[7; 32]),
        })
        .collect();
    Fleet { gateway: login("aiot-gateway"), crew: login("aiot-crew"), motes }
}

/// The cluster side: a tokio actor system with the MQTT port and the things tier.
struct Cluster {
    runtime: tokio::runtime::Runtime,
    system: TokioSystem,
    stats: Arc<GatewayStats>,
    sink: Arc<Mutex<SinkCounts>>,
    _connection: Arc<RumqttcConnection>,
}

impl Cluster {
    fn start(broker: &BrokerAddr, fleet: &Fleet) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let link = MqttLink::new();
        let options = ConnectOptions::new("aiot-gateway")
            .with_credentials(&fleet.gateway.user, &fleet.gateway.password);
        let connection = RumqttcConnection::connect(runtime.handle(), broker, options, link.sink());
        link.attach(connection.clone());
        let stats = Arc::new(GatewayStats::default());
        let sink = Arc::new(Mutex::new(SinkCounts::default()));
        let mut t = Topology::builder();
        things::declare(
            &mut t,
            ThingsConfig {
                keys: fleet.keys(),
                gateway_stats: Arc::clone(&stats),
                downstream: Downstream::Sink(Arc::clone(&sink)),
                checkpoint_every: None,
            },
        );
        let topology = t.build().unwrap();
        let system = runtime.block_on(async {
            let system = TokioSystem::start(SystemConfig::with_seed(1));
            system.install_port::<Mqtt, _>(link.adapter()).unwrap();
            system.run(&topology).await.unwrap();
            system
        });
        assert!(wait_for(|| connection.is_connected()), "the gateway never connected to {broker}");
        Cluster { runtime, system, stats, sink, _connection: connection }
    }

    fn health(&self, mote: u32) -> Option<aiot_actors::things::health::MoteHealth> {
        let proxies = ActorRef::<ProxiesMsg>::parse("/proxies").unwrap();
        self.runtime
            .block_on(self.system.ask(
                &proxies,
                |reply| ProxiesMsg::Health { mote, reply },
                Duration::from_secs(5),
            ))
            .expect("the proxies answer")
    }
}

fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..2000 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

fn mote_login(fleet: &Fleet, id: u32) -> ConnectOptions {
    let m = fleet.get(MoteId(id)).unwrap();
    ConnectOptions::new(m.mqtt_user.clone()).with_credentials(&m.mqtt_user, &m.mqtt_password)
}

/// Runs the motes for `WINDOWS` report intervals of their own clock (as fast as they go), then
/// until every acknowledgement is back; checks exactly-once delivery and empty rings.
fn motes_reach_the_proxies_exactly_once(broker: &BrokerAddr, fleet: &Fleet, cluster: &Cluster) {
    let motors = Motors::new(3, MOTES as usize, &MotorParams::default());
    let mut hosts: Vec<MoteHost> = (1..=MOTES)
        .map(|id| {
            let (inbox, sink) = inbox();
            let connection =
                RumqttcConnection::connect(cluster.runtime.handle(), broker, mote_login(fleet, id), sink);
            assert!(wait_for(|| connection.is_connected()), "mote-{id} never connected");
            MoteHost::new(
                fleet.get(MoteId(id)).unwrap(),
                motors.motor(id as usize - 1).clone(),
                connection,
                inbox,
            )
            .unwrap()
        })
        .collect();
    for host in &mut hosts {
        host.poll(0); // subscribes to its down topic
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut now_ms = 0;
    for _ in 0..WINDOWS {
        for host in &mut hosts {
            now_ms = now_ms.max(host.next_report_ms());
            host.wake(now_ms, Duration::from_millis(now_ms));
        }
    }
    let drained = wait_for(|| {
        now_ms += 1_000;
        hosts.iter_mut().for_each(|h| h.poll(now_ms));
        hosts.iter().all(|h| h.mote().persistent().ring().is_empty())
    });
    let rings: Vec<usize> = hosts.iter().map(|h| h.mote().persistent().ring().len()).collect();
    assert!(drained, "frames still unacknowledged per mote: {rings:?}");

    let counts = cluster.sink.lock().clone();
    for host in &hosts {
        let id = host.id().0;
        let sent = host.mote().counters().frames_sent;
        assert!(sent >= WINDOWS, "mote-{id} sent {sent} frames for {WINDOWS} windows");
        let keys: Vec<u32> = counts.keys.iter().filter(|k| k.0 == id).map(|k| k.2).collect();
        assert_eq!(keys, (0..sent as u32).collect::<Vec<_>>(), "mote-{id}: every frame exactly once");
        let health = cluster.health(id).expect("a proxy per provisioned mote");
        assert_eq!(health.frames.iter().sum::<u64>(), sent);
        assert_eq!(health.open_gaps, 0);
    }
    assert_eq!(counts.duplicates, 0);
    assert_eq!(cluster.stats.refused_total(), 0, "no good frame refused");
}

#[test]
fn motes_through_the_embedded_rumqttd_reach_the_proxies_exactly_once() {
    let fleet = fleet();
    let broker = EmbeddedBroker::start(0, Some(fleet.logins())).expect("embedded broker");
    let cluster = Cluster::start(broker.addr(), &fleet);
    motes_reach_the_proxies_exactly_once(broker.addr(), &fleet, &cluster);
}

#[test]
fn motes_through_mosquitto_with_acls_reach_the_proxies_exactly_once() {
    let fleet = fleet();
    let mosquitto = Mosquitto::start(&MosquittoOptions {
        logins: Some(fleet.logins()),
        acl: Some(fleet.mosquitto_acl()),
    })
    .expect("mosquitto");
    let cluster = Cluster::start(mosquitto.addr(), &fleet);
    motes_reach_the_proxies_exactly_once(mosquitto.addr(), &fleet, &cluster);

    // The ACL confines a mote to its topics: mote-1 publishing on mote-2's topic never arrives.
    let (_inbox, sink) = inbox();
    let intruder =
        RumqttcConnection::connect(cluster.runtime.handle(), mosquitto.addr(), mote_login(&fleet, 1), sink);
    assert!(wait_for(|| intruder.is_connected()));
    let before = cluster.stats.frames_in.load(Ordering::Relaxed);
    intruder.publish(Publish::new(MoteId(2).up_topic().as_str(), vec![0u8; 100], QoS::AtLeastOnce)).unwrap();
    intruder.publish(Publish::new(MoteId(1).up_topic().as_str(), vec![0u8; 100], QoS::AtLeastOnce)).unwrap();
    assert!(wait_for(|| cluster.stats.frames_in.load(Ordering::Relaxed) > before));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cluster.stats.frames_in.load(Ordering::Relaxed),
        before + 1,
        "only the publish on its own topic arrived"
    );
    assert_eq!(cluster.stats.refused(Refusal::Malformed), 1);
}

/// A valid features frame from a mote core configured as `claimed` but holding `key_of`'s key.
fn frame(fleet: &Fleet, claimed: u32, key_of: u32) -> Vec<u8> {
    let creds = fleet.get(MoteId(key_of)).unwrap();
    let config = MoteConfig::new(MoteId(claimed), creds.key().unwrap(), creds.signing_public().unwrap());
    let mut mote: Box<Mote> = Box::new(Mote::boot(config, Persistent::new()));
    let window = Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |i| {
        [10.0 * (i as f32 * 0.04).sin(), 0.1 * (i as f32 * 0.5).sin(), 0.2, 40.0]
    });
    let mut frames = Vec::new();
    mote.on_window(mote.next_report_ms(), &window, &mut |f| frames.push(f.to_vec()));
    frames.into_iter().next().expect("a window makes a frame")
}

#[test]
fn bad_input_is_refused_by_reason_counted_logged_with_a_limit_and_the_proxies_keep_running() {
    let fleet = fleet();
    let broker = EmbeddedBroker::start(0, Some(fleet.logins())).expect("embedded broker");
    let cluster = Cluster::start(broker.addr(), &fleet);
    let (_inbox, sink) = inbox();
    // rumqttd cannot confine a client to its topics: a mote's login may publish anywhere.
    let attacker =
        RumqttcConnection::connect(cluster.runtime.handle(), broker.addr(), mote_login(&fleet, 1), sink);
    assert!(wait_for(|| attacker.is_connected()));
    let send = |topic: &str, payload: Vec<u8>| {
        attacker.publish(Publish::new(topic, payload, QoS::AtLeastOnce)).unwrap()
    };
    let up = |id: u32| MoteId(id).up_topic().as_str().to_string();

    let good = frame(&fleet, 1, 1);
    let mut corrupted = good.clone();
    corrupted[40] ^= 0x01;
    for _ in 0..50 {
        send(&up(1), b"not a frame".to_vec());
    }
    send(&up(1), corrupted);
    send(&up(99), frame(&fleet, 99, 1));
    send(&up(1), vec![0; MAX_FRAME + 1]);
    send(&up(2), frame(&fleet, 2, 1)); // mote-1's key under mote-2's id
    send(&up(2), good.clone()); // mote-1's frame on mote-2's topic
    send("aiot/mote-x/up", good.clone());
    send("aiot/maintenance/mote-1", b"{\"broken\":".to_vec());
    let expected = [
        (Refusal::Malformed, 50),
        (Refusal::BadCrc, 1),
        (Refusal::UnknownMote, 1),
        (Refusal::Oversized, 1),
        (Refusal::BadMac, 1),
        (Refusal::WrongTopic, 1),
        (Refusal::UnknownTopic, 1),
        (Refusal::BadMaintenance, 1),
    ];
    let total: u64 = expected.iter().map(|(_, n)| n).sum();
    assert!(
        wait_for(|| cluster.stats.refused_total() >= total),
        "refused {} of {total}",
        cluster.stats.refused_total()
    );
    for (why, n) in expected {
        assert_eq!(cluster.stats.refused(why), n, "{why:?}");
    }
    let (lines, held) = (
        cluster.stats.log_lines.load(Ordering::Relaxed),
        cluster.stats.log_suppressed.load(Ordering::Relaxed),
    );
    assert_eq!(lines, 8, "one line per reason within the rate limit");
    assert_eq!(held, 49, "the other malformed frames were counted, not logged");

    // Still running: a good frame and a maintenance record go through.
    send(&up(1), good);
    let record = MaintenanceRecord { mote: 1, time_ms: 5, event: MaintenanceEvent::Repaired };
    send("aiot/maintenance/mote-1", record.to_json());
    assert!(wait_for(|| cluster.sink.lock().frames() == 1 && cluster.sink.lock().maintenance == 1));
    assert_eq!(cluster.health(1).unwrap().frames[0], 1);
    assert_eq!(cluster.stats.refused_total(), total);
}

/// The drift monitor's inspection requests: the gateway publishes each on the mote's request
/// topic, where the crew (subscribed with its own login) receives it, and counts it.
#[test]
fn the_gateway_publishes_inspection_requests_to_the_crew() {
    let fleet = fleet();
    let broker = EmbeddedBroker::start(0, Some(fleet.logins())).expect("embedded broker");
    let cluster = Cluster::start(broker.addr(), &fleet);
    let (inbox, sink) = inbox();
    let login =
        ConnectOptions::new(fleet.crew.user.clone()).with_credentials(&fleet.crew.user, &fleet.crew.password);
    let connection = RumqttcConnection::connect(cluster.runtime.handle(), broker.addr(), login, sink);
    assert!(wait_for(|| connection.is_connected()), "the crew never connected");
    let mut crew = Crew::new(connection, inbox);
    let gateway = ActorRef::<GatewayMsg>::parse("/gateway").unwrap();
    // The crew subscribes once it sees its connection; a request published before its
    // subscription holds is not replayed to it, so the gateway is asked until one arrives.
    let mut asked = Vec::new();
    let arrived = wait_for(|| {
        let request = InspectionRequest { mote: 2, reason: "drift on cur_rms".into() };
        cluster.system.tell(&gateway, GatewayMsg::Inspect(request)).unwrap();
        asked.extend(crew.requests());
        !asked.is_empty()
    });
    assert!(arrived, "no inspection request reached the crew");
    assert!(asked.iter().all(|m| *m == MoteId(2)), "{asked:?}");
    let stats = &cluster.stats;
    assert!(stats.inspections_requested.load(Ordering::Relaxed) >= 1);
    assert_eq!(stats.inspections_refused.load(Ordering::Relaxed), 0);
}
