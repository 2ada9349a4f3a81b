//! The rumqttc adapter against real brokers: the MQTT conformance suite on the embedded rumqttd
//! and on Mosquitto; logins; the port's adapter actor routing messages to subscribed actors.

mod common;

use std::collections::BTreeMap;

use aiot_actors::adapters::mosquitto::{Mosquitto, MosquittoOptions};
use aiot_actors::adapters::rumqttc::RumqttcConnection;
use aiot_actors::adapters::rumqttd::{BrokerError, EmbeddedBroker};
use aiot_actors::ports::mqtt::conformance;
use aiot_actors::ports::mqtt::{ConnectOptions, MqttEvent};
use common::{recorder, wait_for, RealLab};

#[test]
fn rumqttc_on_the_embedded_rumqttd_passes_the_conformance_suite() {
    let broker = EmbeddedBroker::start(0, None).expect("embedded broker");
    conformance::run_all(&mut RealLab::new(broker.addr().clone()), "conf-rumqttd");
}

#[test]
fn rumqttc_on_mosquitto_passes_the_conformance_suite() {
    let mosquitto = Mosquitto::start(&MosquittoOptions::default()).expect("mosquitto");
    conformance::run_all(&mut RealLab::new(mosquitto.addr().clone()), "conf-mosquitto");
}

#[test]
fn the_embedded_broker_refuses_a_taken_port_by_name() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    match EmbeddedBroker::start(port, None) {
        Err(e @ BrokerError::PortInUse(..)) => assert!(e.to_string().contains(&port.to_string()), "{e}"),
        Err(e) => panic!("wrong refusal: {e}"),
        Ok(_) => panic!("started on a taken port"),
    }
}

#[test]
fn the_embedded_broker_checks_logins() {
    let logins = BTreeMap::from([("mote-1".to_string(), "secret-1".to_string())]);
    let broker = EmbeddedBroker::start(0, Some(logins)).expect("embedded broker");
    let lab = RealLab::new(broker.addr().clone());
    let (good_events, sink) = recorder();
    let good = RumqttcConnection::connect(
        lab.runtime.handle(),
        broker.addr(),
        ConnectOptions::new("mote-1").with_credentials("mote-1", "secret-1"),
        sink,
    );
    let (bad_events, sink) = recorder();
    let bad = RumqttcConnection::connect(
        lab.runtime.handle(),
        broker.addr(),
        ConnectOptions::new("mote-2").with_credentials("mote-1", "guess"),
        sink,
    );
    assert!(wait_for(|| good.is_connected()), "{:?}", good_events.lock());
    assert!(
        wait_for(|| bad_events.lock().iter().any(|e| matches!(e, MqttEvent::Disconnected { .. }))),
        "a bad password was not refused"
    );
    assert!(!bad.is_connected());
}
