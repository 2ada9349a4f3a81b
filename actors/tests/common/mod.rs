//! Test support: an MQTT lab over real brokers for the conformance suite.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use aiot_actors::adapters::rumqttc::RumqttcConnection;
use aiot_actors::ports::mqtt::conformance::{LabClient, MqttLab};
use aiot_actors::ports::mqtt::{BrokerAddr, ConnectOptions, EventSink, MqttEvent};
use parking_lot::Mutex;

/// Records a connection's events.
pub type Events = Arc<Mutex<Vec<MqttEvent>>>;

pub fn recorder() -> (Events, EventSink) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = Arc::clone(&events);
    (events, Arc::new(move |e| sink_events.lock().push(e)))
}

/// Polls `done` every 5 ms for up to 10 s (wall time: a real broker).
pub fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..2000 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// The rumqttc adapter on a real broker.
pub struct RealLab {
    pub runtime: tokio::runtime::Runtime,
    pub broker: BrokerAddr,
    connections: Vec<(Arc<RumqttcConnection>, Events)>,
}

impl RealLab {
    pub fn new(broker: BrokerAddr) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        RealLab { runtime, broker, connections: Vec::new() }
    }
}

impl MqttLab for RealLab {
    fn connect(&mut self, options: ConnectOptions) -> LabClient {
        let (events, sink) = recorder();
        let connection = RumqttcConnection::connect(self.runtime.handle(), &self.broker, options, sink);
        assert!(
            wait_for(|| connection.is_connected()),
            "never connected to {}: {:?}",
            self.broker,
            events.lock()
        );
        self.connections.push((Arc::clone(&connection), Arc::clone(&events)));
        LabClient { connection, events }
    }

    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> bool {
        wait_for(done)
    }

    fn settle(&mut self) {
        std::thread::sleep(Duration::from_millis(300));
    }

    fn vanish(&mut self, client: LabClient) {
        let index = self
            .connections
            .iter()
            .position(|(_, e)| Arc::ptr_eq(e, &client.events))
            .expect("a client of this lab");
        self.connections[index].0.abort();
    }

    fn qos0_may_drop(&self) -> bool {
        false
    }
}
