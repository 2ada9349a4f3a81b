//! The MQTT port: how actors reach the motes' broker.
//!
//! - `Mqtt` is the port (`/port-mqtt`): requests subscribe, unsubscribe and publish; events are
//!   connection changes, received messages and refused requests.
//! - `MqttConnection` is what a broker connection offers. The real adapter (rumqttc,
//!   `adapters::rumqttc`) and the simulated model (`aiot-simulations`) implement it; incoming
//!   events go to the `EventSink` given when the connection was made.
//! - `adapter::MqttAdapter` is the port's actor: it turns port requests into calls on a
//!   connection and routes incoming messages to the actors whose filters match.
//! - `conformance` states the contract both implementations are tested against.
//!
//! The contract (MQTT 3.1.1 as this system relies on it): QoS 0 is at most once (it may be
//! lost); QoS 1 is at least once (duplicates possible, never lost while the session lives);
//! per publisher and topic, first deliveries keep publish order; a retained message is given to
//! each later subscriber (an empty retained payload clears it); a client that vanishes without
//! a clean disconnect has its last will published; a new subscriber gets no replay of earlier
//! non-retained messages.

pub mod adapter;
pub mod conformance;
pub mod topic;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aiot_runtime::Port;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Delivery guarantee of one publish or subscription (QoS 2 is not used by this system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QoS {
    /// At most once: may be lost.
    AtMostOnce,
    /// At least once: may be duplicated.
    AtLeastOnce,
}

/// One application message. The payload is shared, not copied, on its way from the client
/// through the gateway to a proxy (`Bytes`; encoded as a byte string, as before).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
}

impl Publish {
    /// A message; the payload is moved in, not copied (`Bytes::from` a `Vec`).
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>, qos: QoS) -> Self {
        Publish { topic: topic.into(), payload: Bytes::from(payload.into()), qos, retain: false }
    }

    pub fn retained(mut self) -> Self {
        self.retain = true;
        self
    }
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Publish({} {:?} {} bytes{})",
            self.topic,
            self.qos,
            self.payload.len(),
            if self.retain { " retained" } else { "" }
        )
    }
}

/// How to connect (credentials per mote; the last will is published if the client vanishes).
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub client_id: String,
    /// MQTT user name and password.
    pub credentials: Option<(String, String)>,
    pub will: Option<Publish>,
    pub keep_alive: Duration,
}

impl ConnectOptions {
    pub fn new(client_id: impl Into<String>) -> Self {
        ConnectOptions {
            client_id: client_id.into(),
            credentials: None,
            will: None,
            keep_alive: Duration::from_secs(30),
        }
    }

    pub fn with_credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    pub fn with_will(mut self, will: Publish) -> Self {
        self.will = Some(will);
        self
    }
}

/// What a connection reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttEvent {
    /// Connected (again): subscriptions made before a disconnect must be made again.
    Connected,
    /// The connection broke or was refused; the adapter keeps reconnecting.
    Disconnected { reason: String },
    /// The broker confirmed a subscription: from now on matching messages are delivered.
    Subscribed { filter: String },
    /// A message on a subscribed topic.
    Message(Publish),
    /// A publish, subscribe or unsubscribe on `topic` (a topic or a filter) was refused: the
    /// queue is full, the link is disconnected, or the topic is invalid.
    Refused { topic: String, error: MqttError },
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttError {
    /// The outgoing queue is full: retry later (backpressure).
    Full,
    /// Not connected now.
    Disconnected,
    /// The broker refused the connection (bad credentials, for example).
    Refused(String),
    /// A topic or filter the protocol does not allow.
    InvalidTopic(String),
}

impl fmt::Display for MqttError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MqttError::Full => write!(f, "the outgoing MQTT queue is full"),
            MqttError::Disconnected => write!(f, "not connected to the MQTT broker"),
            MqttError::Refused(why) => write!(f, "the MQTT broker refused the connection: {why}"),
            MqttError::InvalidTopic(t) => write!(f, "invalid MQTT topic or filter {t:?}"),
        }
    }
}

impl std::error::Error for MqttError {}

/// Where a connection delivers its events (called from the adapter's IO task, or by the
/// simulated broker at the event's virtual time).
pub type EventSink = Arc<dyn Fn(MqttEvent) + Send + Sync>;

/// One client's connection to a broker, real or simulated. Calls never block: a full queue is
/// `MqttError::Full`.
pub trait MqttConnection: Send + Sync {
    fn publish(&self, message: Publish) -> Result<(), MqttError>;
    fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError>;
    fn unsubscribe(&self, filter: &str) -> Result<(), MqttError>;
    /// A clean disconnect: the broker does not publish the last will.
    fn disconnect(&self);
}

/// Where a broker listens, from `mqtt://HOST:PORT` (the port defaults to 1883).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub host: String,
    pub port: u16,
}

impl BrokerAddr {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mqtt://")
            .ok_or_else(|| format!("broker URL {url:?} must start with mqtt://"))?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                (host, port.parse().map_err(|_| format!("broker URL {url:?} has a bad port {port:?}"))?)
            }
            None => (rest, 1883),
        };
        if host.is_empty() {
            return Err(format!("broker URL {url:?} has no host"));
        }
        Ok(BrokerAddr { host: host.to_string(), port })
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mqtt://{}:{}", self.host, self.port)
    }
}

/// The port.
pub struct Mqtt;

impl Port for Mqtt {
    const NAME: &'static str = "mqtt";
    type Request = MqttRequest;
    type Event = MqttEvent;
}

/// What an actor asks of the MQTT port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MqttRequest {
    /// Messages matching `filter` come back as `MqttEvent::Message`, also after reconnects.
    Subscribe {
        filter: String,
        qos: QoS,
    },
    Unsubscribe {
        filter: String,
    },
    Publish(Publish),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_or_say_what_is_wrong() {
        assert_eq!(
            BrokerAddr::parse("mqtt://127.0.0.1:1884").unwrap(),
            BrokerAddr { host: "127.0.0.1".into(), port: 1884 }
        );
        assert_eq!(BrokerAddr::parse("mqtt://broker").unwrap().port, 1883);
        assert!(BrokerAddr::parse("tcp://x:1").unwrap_err().contains("mqtt://"));
        assert!(BrokerAddr::parse("mqtt://x:port").unwrap_err().contains("bad port"));
        assert!(BrokerAddr::parse("mqtt://:1883").unwrap_err().contains("no host"));
    }
}
