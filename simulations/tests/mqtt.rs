//! The simulated broker against the MQTT conformance suite (the same suite the rumqttc adapter
//! passes on rumqttd and Mosquitto), perfect and flaky, over many seeds; plus what only the
//! model can show on demand: QoS 0 loss, QoS 1 duplicates, logins, takeovers and crashes.

use std::sync::Arc;
use std::time::Duration;

use aiot_actors::ports::mqtt::conformance::{self, LabClient, MqttLab};
use aiot_actors::ports::mqtt::{ConnectOptions, EventSink, MqttConnection, MqttEvent, Publish, QoS};
use aiot_simulations::mqtt::{MqttFaults, SimBroker, SimConnection};
use parking_lot::Mutex;

type Events = Arc<Mutex<Vec<MqttEvent>>>;

/// Virtual time: `wait_until` steps 10 ms at a time for up to a simulated minute.
struct SimLab {
    broker: SimBroker,
    faults: MqttFaults,
    connections: Vec<(Arc<SimConnection>, Events)>,
}

impl SimLab {
    fn new(seed: u64, faults: MqttFaults) -> Self {
        SimLab { broker: SimBroker::new(seed, faults), faults, connections: Vec::new() }
    }

    fn step(&mut self) {
        let to = self.broker.now() + Duration::from_millis(10);
        self.broker.advance(to);
    }
}

fn recorder() -> (Events, EventSink) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = Arc::clone(&events);
    (events, Arc::new(move |e| sink_events.lock().push(e)))
}

impl MqttLab for SimLab {
    fn connect(&mut self, options: ConnectOptions) -> LabClient {
        let (events, sink) = recorder();
        let connection = self.broker.connect(options, sink);
        let connected = Arc::clone(&events);
        assert!(self.wait_until(&mut || connected.lock().contains(&MqttEvent::Connected)), "never connected");
        self.connections.push((Arc::clone(&connection), Arc::clone(&events)));
        LabClient { connection, events }
    }

    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> bool {
        for _ in 0..6000 {
            if done() {
                return true;
            }
            self.step();
        }
        done()
    }

    fn settle(&mut self) {
        for _ in 0..500 {
            self.step();
        }
    }

    fn vanish(&mut self, client: LabClient) {
        let index = self
            .connections
            .iter()
            .position(|(_, e)| Arc::ptr_eq(e, &client.events))
            .expect("a client of this lab");
        self.connections[index].0.vanish();
    }

    fn qos0_may_drop(&self) -> bool {
        self.faults.qos0_drop > 0.0
    }
}

#[test]
fn a_perfect_simulated_broker_passes_the_conformance_suite() {
    conformance::run_all(&mut SimLab::new(1, MqttFaults::none()), "conf");
}

#[test]
fn a_flaky_simulated_broker_passes_the_conformance_suite_for_many_seeds() {
    for seed in 0..20 {
        conformance::run_all(&mut SimLab::new(seed, MqttFaults::flaky()), "conf");
    }
}

fn client(broker: &SimBroker, id: &str) -> (Arc<SimConnection>, Events) {
    let (events, sink) = recorder();
    (broker.connect(ConnectOptions::new(id), sink), events)
}

fn run_for(broker: &SimBroker, span: Duration) {
    broker.advance(broker.now() + span);
}

fn messages(events: &Mutex<Vec<MqttEvent>>) -> Vec<Vec<u8>> {
    events
        .lock()
        .iter()
        .filter_map(|e| if let MqttEvent::Message(m) = e { Some(m.payload.to_vec()) } else { None })
        .collect()
}

#[test]
fn the_flaky_model_really_drops_qos0_and_duplicates_qos1() {
    let broker = SimBroker::new(7, MqttFaults::flaky());
    let (sub, sub_events) = client(&broker, "sub");
    let (publisher, _) = client(&broker, "pub");
    run_for(&broker, Duration::from_millis(200));
    sub.subscribe("t/0", QoS::AtMostOnce).unwrap();
    sub.subscribe("t/1", QoS::AtLeastOnce).unwrap();
    run_for(&broker, Duration::from_millis(200));
    for i in 0..1000u32 {
        publisher.publish(Publish::new("t/0", i.to_be_bytes(), QoS::AtMostOnce)).unwrap();
        publisher.publish(Publish::new("t/1", i.to_be_bytes(), QoS::AtLeastOnce)).unwrap();
    }
    run_for(&broker, Duration::from_secs(10));
    let stats = broker.stats();
    assert!(stats.qos0_dropped > 50 && stats.qos0_dropped < 150, "{stats:?}");
    assert!(stats.qos1_duplicated > 50 && stats.qos1_duplicated < 150, "{stats:?}");
    assert_eq!(messages(&sub_events).len() as u64, 2000 - stats.qos0_dropped + stats.qos1_duplicated);
}

#[test]
fn logins_are_checked() {
    let broker = SimBroker::new(3, MqttFaults::none());
    broker.require_logins([("mote-1".to_string(), "secret".to_string())].into());
    let (events, sink) = recorder();
    let good = broker.connect(ConnectOptions::new("mote-1").with_credentials("mote-1", "secret"), sink);
    let (bad_events, bad_sink) = recorder();
    let bad = broker.connect(ConnectOptions::new("mote-2").with_credentials("mote-1", "guess"), bad_sink);
    run_for(&broker, Duration::from_millis(100));
    assert_eq!(events.lock()[0], MqttEvent::Connected);
    assert!(
        matches!(&bad_events.lock()[0], MqttEvent::Disconnected { reason } if reason.contains("password"))
    );
    assert!(good.publish(Publish::new("x", &b"1"[..], QoS::AtLeastOnce)).is_ok());
    assert!(bad.publish(Publish::new("x", &b"1"[..], QoS::AtLeastOnce)).is_err());
    assert_eq!(broker.stats().refused_logins, 1);
}

#[test]
fn a_second_connection_with_a_client_id_takes_over_and_fires_the_will() {
    let broker = SimBroker::new(4, MqttFaults::none());
    let (watch, watch_events) = client(&broker, "watch");
    run_for(&broker, Duration::from_millis(50));
    watch.subscribe("status/#", QoS::AtLeastOnce).unwrap();
    let (events, sink) = recorder();
    let first = broker.connect(
        ConnectOptions::new("mote-9").with_will(Publish::new(
            "status/mote-9",
            &b"offline"[..],
            QoS::AtLeastOnce,
        )),
        sink,
    );
    run_for(&broker, Duration::from_millis(50));
    let (second, _) = client(&broker, "mote-9");
    run_for(&broker, Duration::from_millis(50));
    assert_eq!(messages(&watch_events), vec![b"offline".to_vec()]);
    assert!(events
        .lock()
        .iter()
        .any(|e| matches!(e, MqttEvent::Disconnected { reason } if reason.contains("taken over"))));
    assert!(first.publish(Publish::new("x", &b"1"[..], QoS::AtLeastOnce)).is_err());
    assert!(second.publish(Publish::new("x", &b"1"[..], QoS::AtLeastOnce)).is_ok());
}

#[test]
fn a_broker_crash_disconnects_everyone_loses_in_flight_and_clients_reconnect_after_restart() {
    let broker = SimBroker::new(5, MqttFaults::none());
    let (sub, sub_events) = client(&broker, "sub");
    let (publisher, _) = client(&broker, "pub");
    run_for(&broker, Duration::from_millis(50));
    sub.subscribe("t", QoS::AtLeastOnce).unwrap();
    run_for(&broker, Duration::from_millis(50));
    publisher.publish(Publish::new("t", &b"in flight"[..], QoS::AtLeastOnce)).unwrap();
    broker.crash();
    assert!(publisher.publish(Publish::new("t", &b"while down"[..], QoS::AtLeastOnce)).is_err());
    run_for(&broker, Duration::from_secs(1));
    assert!(messages(&sub_events).is_empty());
    assert_eq!(broker.stats().lost_in_crash, 1);
    broker.restart();
    run_for(&broker, Duration::from_secs(1));
    let connects = sub_events.lock().iter().filter(|e| **e == MqttEvent::Connected).count();
    assert_eq!(connects, 2, "the subscriber reconnected after the restart");
    // Clean sessions: the old subscription is gone until the client subscribes again.
    publisher.publish(Publish::new("t", &b"before resubscribing"[..], QoS::AtLeastOnce)).unwrap();
    run_for(&broker, Duration::from_millis(100));
    sub.subscribe("t", QoS::AtLeastOnce).unwrap();
    run_for(&broker, Duration::from_millis(100));
    publisher.publish(Publish::new("t", &b"after"[..], QoS::AtLeastOnce)).unwrap();
    run_for(&broker, Duration::from_millis(100));
    assert_eq!(messages(&sub_events), vec![b"after".to_vec()]);
}

#[test]
fn the_same_seed_gives_the_same_deliveries() {
    let run = |seed| {
        let broker = SimBroker::new(seed, MqttFaults::flaky());
        let (sub, events) = client(&broker, "sub");
        let (publisher, _) = client(&broker, "pub");
        run_for(&broker, Duration::from_millis(200));
        sub.subscribe("t", QoS::AtLeastOnce).unwrap();
        run_for(&broker, Duration::from_millis(200));
        for i in 0..300u32 {
            publisher.publish(Publish::new("t", i.to_be_bytes(), QoS::AtLeastOnce)).unwrap();
            run_for(&broker, Duration::from_millis(3));
        }
        run_for(&broker, Duration::from_secs(10));
        messages(&events)
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}
