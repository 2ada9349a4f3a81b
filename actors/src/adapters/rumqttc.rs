//! The real MQTT connection: rumqttc, driven by a task on the host's tokio runtime.
//!
//! Requests go through rumqttc's bounded request queue without waiting (a full queue is
//! `MqttError::Full`). The event loop task turns what the broker sends into `MqttEvent`s for
//! the sink, reconnects with backoff after a failure (reporting the disconnect once, not once
//! per attempt), and pairs each SUBACK with the filter it confirms.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rumqttc::{
    AsyncClient, ClientError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing, Packet,
    SubscribeReasonCode,
};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::ports::mqtt::{
    BrokerAddr, ConnectOptions, EventSink, MqttConnection, MqttError, MqttEvent, Publish, QoS,
};

/// The largest MQTT packet either way: room for a raw window frame with margin.
pub const MAX_PACKET_BYTES: usize = 256 * 1024;

/// How many requests may wait in rumqttc's queue before `publish` says `Full`.
const REQUEST_QUEUE: usize = 4096;
/// QoS 1 publishes in flight (unacknowledged by the broker) per connection.
const IN_FLIGHT: u16 = 1000;

/// A rumqttc client connection.
pub struct RumqttcConnection {
    client: AsyncClient,
    /// Filters subscribed but not yet sent, in request order (rumqttc sends them in that order).
    unsent_subscriptions: Arc<Mutex<VecDeque<String>>>,
    connected: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl RumqttcConnection {
    /// Starts connecting to `broker` on `runtime`; events (the first is `Connected`, or
    /// `Disconnected` with the reason) go to `sink`.
    pub fn connect(
        runtime: &Handle,
        broker: &BrokerAddr,
        options: ConnectOptions,
        sink: EventSink,
    ) -> Arc<Self> {
        let mut mqtt = MqttOptions::new(options.client_id, broker.host.clone(), broker.port);
        mqtt.set_keep_alive(options.keep_alive)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_clean_session(true)
            .set_inflight(IN_FLIGHT);
        if let Some((user, password)) = options.credentials {
            mqtt.set_credentials(user, password);
        }
        if let Some(will) = options.will {
            mqtt.set_last_will(LastWill::new(will.topic, will.payload, qos_to(will.qos), will.retain));
        }
        let (client, mut events) = AsyncClient::new(mqtt, REQUEST_QUEUE);
        // Small QoS 1 publishes (acks, features) must not wait for Nagle's algorithm: the ingest
        // benchmark measured acks stalling without it.
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        let unsent_subscriptions = Arc::new(Mutex::new(VecDeque::new()));
        let connected = Arc::new(AtomicBool::new(false));
        let pump = EventPump {
            sink,
            unsent_subscriptions: Arc::clone(&unsent_subscriptions),
            connected: Arc::clone(&connected),
            awaiting_ack: BTreeMap::new(),
        };
        let task = runtime.spawn(pump.run(events));
        Arc::new(RumqttcConnection { client, unsent_subscriptions, connected, task })
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Drops the socket without a DISCONNECT packet, as a crashed client would (the broker then
    /// publishes the last will).
    pub fn abort(&self) {
        self.task.abort();
        self.connected.store(false, Ordering::Relaxed);
    }
}

impl Drop for RumqttcConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MqttConnection for RumqttcConnection {
    fn publish(&self, message: Publish) -> Result<(), MqttError> {
        if !self.is_connected() {
            return Err(MqttError::Disconnected);
        }
        self.client
            .try_publish(message.topic, qos_to(message.qos), message.retain, message.payload)
            .map_err(refusal)
    }

    fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        // Queued before the request so the pump always finds it when rumqttc sends it.
        self.unsent_subscriptions.lock().push_back(filter.to_string());
        self.client.try_subscribe(filter, qos_to(qos)).map_err(|e| {
            self.unsent_subscriptions.lock().pop_back();
            refusal(e)
        })
    }

    fn unsubscribe(&self, filter: &str) -> Result<(), MqttError> {
        self.client.try_unsubscribe(filter).map_err(refusal)
    }

    fn disconnect(&self) {
        let _ = self.client.try_disconnect();
    }
}

fn refusal(error: ClientError) -> MqttError {
    match error {
        ClientError::TryRequest(_) => MqttError::Full,
        ClientError::Request(_) => MqttError::Disconnected,
    }
}

fn qos_to(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

fn qos_from(qos: rumqttc::QoS) -> QoS {
    match qos {
        rumqttc::QoS::AtMostOnce => QoS::AtMostOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// The task that polls rumqttc's event loop.
struct EventPump {
    sink: EventSink,
    unsent_subscriptions: Arc<Mutex<VecDeque<String>>>,
    connected: Arc<AtomicBool>,
    /// Sent SUBSCRIBE packets by packet id, waiting for their SUBACK.
    awaiting_ack: BTreeMap<u16, String>,
}

impl EventPump {
    async fn run(mut self, mut events: EventLoop) {
        let mut backoff = Duration::from_millis(50);
        let mut reported_down = false;
        loop {
            match events.poll().await {
                Ok(event) => {
                    backoff = Duration::from_millis(50);
                    if matches!(event, Event::Incoming(Packet::ConnAck(_))) {
                        reported_down = false;
                    }
                    self.on_event(event);
                }
                Err(rumqttc::ConnectionError::RequestsDone) => return,
                Err(error) => {
                    self.connected.store(false, Ordering::Relaxed);
                    self.awaiting_ack.clear();
                    if !reported_down {
                        reported_down = true;
                        (self.sink)(MqttEvent::Disconnected { reason: error.to_string() });
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.connected.store(true, Ordering::Relaxed);
                (self.sink)(MqttEvent::Connected);
            }
            Event::Incoming(Packet::Publish(p)) => {
                let topic = p.topic;
                (self.sink)(MqttEvent::Message(Publish {
                    topic,
                    payload: p.payload,
                    qos: qos_from(p.qos),
                    retain: p.retain,
                }));
            }
            Event::Outgoing(Outgoing::Subscribe(pkid)) => {
                if let Some(filter) = self.unsent_subscriptions.lock().pop_front() {
                    self.awaiting_ack.insert(pkid, filter);
                }
            }
            Event::Incoming(Packet::SubAck(ack)) => {
                if let Some(filter) = self.awaiting_ack.remove(&ack.pkid) {
                    let refused = ack.return_codes.iter().any(|c| matches!(c, SubscribeReasonCode::Failure));
                    let event = if refused {
                        MqttEvent::Refused {
                            topic: filter,
                            error: MqttError::Refused("the broker refused the subscription".into()),
                        }
                    } else {
                        MqttEvent::Subscribed { filter }
                    };
                    (self.sink)(event);
                }
            }
            _ => {}
        }
    }
}
