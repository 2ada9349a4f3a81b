//! The MQTT contract as a test suite, run against every `MqttConnection`: the rumqttc adapter on
//! the embedded rumqttd and on Mosquitto (`actors/tests/mqtt.rs`), and the simulated broker
//! (`aiot-simulations`). A `MqttLab` supplies clients and lets time pass: wall time for a real
//! broker, virtual time for the model. Each check panics with what the contract says and what
//! happened instead.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{ConnectOptions, MqttConnection, MqttEvent, Publish, QoS};

/// A connected client whose events are recorded.
pub struct LabClient {
    pub connection: Arc<dyn MqttConnection>,
    pub events: Arc<Mutex<Vec<MqttEvent>>>,
}

impl LabClient {
    /// Payloads received on `topic`, in arrival order.
    pub fn received(&self, topic: &str) -> Vec<Vec<u8>> {
        self.messages().into_iter().filter(|m| m.topic == topic).map(|m| m.payload.to_vec()).collect()
    }

    pub fn messages(&self) -> Vec<Publish> {
        let events = self.events.lock();
        events
            .iter()
            .filter_map(|e| if let MqttEvent::Message(m) = e { Some(m.clone()) } else { None })
            .collect()
    }

    fn subscribed(&self, filter: &str) -> bool {
        self.events.lock().iter().any(|e| matches!(e, MqttEvent::Subscribed { filter: f } if f == filter))
    }
}

/// What an implementation under test provides.
pub trait MqttLab {
    /// Connects a client; returns once it is connected.
    fn connect(&mut self, options: ConnectOptions) -> LabClient;
    /// Lets time pass until `done()` holds or the lab's patience runs out; says whether it held.
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> bool;
    /// Lets a quiet period pass, to observe that something does not happen.
    fn settle(&mut self);
    /// Drops a client without a clean disconnect, so the broker publishes its last will.
    fn vanish(&mut self, client: LabClient);
    /// Whether QoS 0 messages may be lost (the model drops some; a loopback broker should not).
    fn qos0_may_drop(&self) -> bool;
}

/// Runs every check; `prefix` keeps this run's topics apart from any other's on a shared broker.
pub fn run_all(lab: &mut dyn MqttLab, prefix: &str) {
    qos1_is_at_least_once_in_order(lab, prefix);
    qos0_is_at_most_once_in_order(lab, prefix);
    retained_messages_reach_later_subscribers(lab, prefix);
    last_will_on_vanishing_only(lab, prefix);
    no_replay_for_new_subscribers(lab, prefix);
    wildcards_route_and_unsubscribe_stops(lab, prefix);
}

fn subscribe(lab: &mut dyn MqttLab, client: &LabClient, filter: &str, qos: QoS) {
    client.connection.subscribe(filter, qos).expect("subscribe");
    assert!(
        lab.wait_until(&mut || client.subscribed(filter)),
        "the broker never confirmed the subscription to {filter}"
    );
}

fn numbered(count: u32) -> impl Iterator<Item = Vec<u8>> {
    (0..count).map(|i| i.to_be_bytes().to_vec())
}

/// First occurrences, in arrival order.
fn first_occurrences(received: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut seen = std::collections::BTreeSet::new();
    received.iter().filter(|p| seen.insert(p.to_vec())).cloned().collect()
}

/// QoS 1: every message arrives at least once, and first arrivals keep publish order.
pub fn qos1_is_at_least_once_in_order(lab: &mut dyn MqttLab, prefix: &str) {
    let topic = format!("{prefix}/qos1");
    let subscriber = lab.connect(ConnectOptions::new(format!("{prefix}-q1-sub")));
    let publisher = lab.connect(ConnectOptions::new(format!("{prefix}-q1-pub")));
    subscribe(lab, &subscriber, &topic, QoS::AtLeastOnce);
    let sent: Vec<Vec<u8>> = numbered(200).collect();
    for payload in &sent {
        publish_retrying(lab, &publisher, Publish::new(&topic, payload.clone(), QoS::AtLeastOnce));
    }
    let complete =
        lab.wait_until(&mut || first_occurrences(&subscriber.received(&topic)).len() == sent.len());
    let firsts = first_occurrences(&subscriber.received(&topic));
    assert!(complete, "QoS 1 lost messages: {} of {} arrived", firsts.len(), sent.len());
    assert_in_order(&firsts, &sent, "QoS 1 first arrivals");
}

/// QoS 0: nothing arrives twice, arrivals keep publish order, and a loopback broker loses nothing.
pub fn qos0_is_at_most_once_in_order(lab: &mut dyn MqttLab, prefix: &str) {
    let topic = format!("{prefix}/qos0");
    let subscriber = lab.connect(ConnectOptions::new(format!("{prefix}-q0-sub")));
    let publisher = lab.connect(ConnectOptions::new(format!("{prefix}-q0-pub")));
    subscribe(lab, &subscriber, &topic, QoS::AtMostOnce);
    let sent: Vec<Vec<u8>> = numbered(200).collect();
    for payload in &sent {
        publish_retrying(lab, &publisher, Publish::new(&topic, payload.clone(), QoS::AtMostOnce));
    }
    if lab.qos0_may_drop() {
        lab.settle();
    } else {
        lab.wait_until(&mut || subscriber.received(&topic).len() >= sent.len());
    }
    let received = subscriber.received(&topic);
    assert_eq!(first_occurrences(&received).len(), received.len(), "QoS 0 delivered a message twice");
    let expected: Vec<Vec<u8>> = sent.iter().filter(|s| received.contains(s)).cloned().collect();
    assert_in_order(&received, &expected, "QoS 0 arrivals");
    if !lab.qos0_may_drop() {
        assert_eq!(received.len(), sent.len(), "QoS 0 on a loopback broker lost messages");
    }
}

/// A retained message is given to each later subscriber (the latest one only); an empty
/// retained payload clears it.
pub fn retained_messages_reach_later_subscribers(lab: &mut dyn MqttLab, prefix: &str) {
    let topic = format!("{prefix}/retained");
    let publisher = lab.connect(ConnectOptions::new(format!("{prefix}-ret-pub")));
    // A subscriber of our own proves each retained publish reached the broker before the next.
    let witness = lab.connect(ConnectOptions::new(format!("{prefix}-ret-witness")));
    subscribe(lab, &witness, &topic, QoS::AtLeastOnce);
    for payload in [&b"first"[..], b"second"] {
        publish_retrying(lab, &publisher, Publish::new(&topic, payload, QoS::AtLeastOnce).retained());
        assert!(
            lab.wait_until(&mut || witness.received(&topic).iter().any(|p| p == payload)),
            "a retained publish never arrived"
        );
    }
    let late = lab.connect(ConnectOptions::new(format!("{prefix}-ret-late")));
    subscribe(lab, &late, &topic, QoS::AtLeastOnce);
    assert!(
        lab.wait_until(&mut || !late.messages().is_empty()),
        "a later subscriber did not get the retained message"
    );
    lab.settle();
    let got = late.messages();
    assert!(
        got.iter().all(|m| m.payload == b"second"[..]),
        "a later subscriber got {got:?}, not only the latest retained message"
    );
    assert!(got[0].retain, "a retained message arrived without its retain flag");

    publish_retrying(lab, &publisher, Publish::new(&topic, Vec::new(), QoS::AtLeastOnce).retained());
    assert!(
        lab.wait_until(&mut || witness.received(&topic).iter().any(|p| p.is_empty())),
        "the clearing publish never arrived"
    );
    let later = lab.connect(ConnectOptions::new(format!("{prefix}-ret-later")));
    subscribe(lab, &later, &topic, QoS::AtLeastOnce);
    lab.settle();
    assert!(
        later.messages().is_empty(),
        "a cleared retained message was still given: {:?}",
        later.messages()
    );
}

/// A client that vanishes has its will published; one that disconnects cleanly does not.
pub fn last_will_on_vanishing_only(lab: &mut dyn MqttLab, prefix: &str) {
    let will_topic = format!("{prefix}/will");
    let watcher = lab.connect(ConnectOptions::new(format!("{prefix}-will-watch")));
    subscribe(lab, &watcher, &will_topic, QoS::AtLeastOnce);

    let polite = lab.connect(ConnectOptions::new(format!("{prefix}-will-polite")).with_will(Publish::new(
        &will_topic,
        &b"polite"[..],
        QoS::AtLeastOnce,
    )));
    polite.connection.disconnect();
    let vanishing = lab.connect(ConnectOptions::new(format!("{prefix}-will-gone")).with_will(Publish::new(
        &will_topic,
        &b"gone"[..],
        QoS::AtLeastOnce,
    )));
    lab.vanish(vanishing);
    assert!(
        lab.wait_until(&mut || watcher.received(&will_topic).iter().any(|p| p == b"gone")),
        "the last will of a vanished client was not published"
    );
    lab.settle();
    let wills = watcher.received(&will_topic);
    assert!(!wills.iter().any(|p| p == b"polite"), "a cleanly disconnected client's will was published");
}

/// A new subscriber gets no replay of earlier non-retained messages.
pub fn no_replay_for_new_subscribers(lab: &mut dyn MqttLab, prefix: &str) {
    let topic = format!("{prefix}/replay");
    let publisher = lab.connect(ConnectOptions::new(format!("{prefix}-rp-pub")));
    let witness = lab.connect(ConnectOptions::new(format!("{prefix}-rp-witness")));
    subscribe(lab, &witness, &topic, QoS::AtLeastOnce);
    for payload in numbered(5) {
        publish_retrying(lab, &publisher, Publish::new(&topic, payload, QoS::AtLeastOnce));
    }
    assert!(
        lab.wait_until(&mut || first_occurrences(&witness.received(&topic)).len() == 5),
        "earlier messages never arrived"
    );
    let newcomer = lab.connect(ConnectOptions::new(format!("{prefix}-rp-new")));
    subscribe(lab, &newcomer, &topic, QoS::AtLeastOnce);
    publish_retrying(lab, &publisher, Publish::new(&topic, &b"after"[..], QoS::AtLeastOnce));
    assert!(
        lab.wait_until(&mut || !newcomer.received(&topic).is_empty()),
        "a message after subscribing never arrived"
    );
    lab.settle();
    let got = first_occurrences(&newcomer.received(&topic));
    assert_eq!(got, vec![b"after".to_vec()], "a new subscriber was given earlier messages");
}

/// `+` matches one level; after an unsubscribe nothing more arrives.
pub fn wildcards_route_and_unsubscribe_stops(lab: &mut dyn MqttLab, prefix: &str) {
    let filter = format!("{prefix}/wild/+/up");
    let subscriber = lab.connect(ConnectOptions::new(format!("{prefix}-wc-sub")));
    let publisher = lab.connect(ConnectOptions::new(format!("{prefix}-wc-pub")));
    subscribe(lab, &subscriber, &filter, QoS::AtLeastOnce);
    let up = format!("{prefix}/wild/mote-1/up");
    let down = format!("{prefix}/wild/mote-1/down");
    publish_retrying(lab, &publisher, Publish::new(&down, &b"down"[..], QoS::AtLeastOnce));
    publish_retrying(lab, &publisher, Publish::new(&up, &b"up"[..], QoS::AtLeastOnce));
    assert!(
        lab.wait_until(&mut || !subscriber.received(&up).is_empty()),
        "a message matching {filter} never arrived"
    );
    lab.settle();
    assert!(subscriber.received(&down).is_empty(), "{down} was delivered to {filter}");

    subscriber.connection.unsubscribe(&filter).expect("unsubscribe");
    lab.settle();
    let before = subscriber.messages().len();
    publish_retrying(lab, &publisher, Publish::new(&up, &b"late"[..], QoS::AtLeastOnce));
    lab.settle();
    assert_eq!(subscriber.messages().len(), before, "messages arrived after unsubscribing");
}

/// Fails at the first position where `got` departs from `expected`, showing only that spot.
fn assert_in_order(got: &[Vec<u8>], expected: &[Vec<u8>], what: &str) {
    if let Some(i) = got.iter().zip(expected).position(|(g, e)| g != e) {
        panic!(
            "{what} are out of publish order: position {i} holds {:?} where {:?} was published",
            got[i], expected[i]
        );
    }
    assert_eq!(got.len(), expected.len(), "{what}: wrong count");
}

/// Publishes, letting time pass while the client's queue is full (backpressure, not loss).
fn publish_retrying(lab: &mut dyn MqttLab, client: &LabClient, message: Publish) {
    loop {
        match client.connection.publish(message.clone()) {
            Ok(()) => return,
            Err(super::MqttError::Full) => {
                let mut waited = false;
                lab.wait_until(&mut || std::mem::replace(&mut waited, true));
            }
            Err(e) => panic!("publish to {} failed: {e}", message.topic),
        }
    }
}
