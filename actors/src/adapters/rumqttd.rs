//! The embedded MQTT broker (rumqttd), started by the platform node by default.
//!
//! rumqttd has no ready signal and, when its port is taken, only logs `AddrInUse` (a client
//! may then talk to some other broker on that port). So `EmbeddedBroker::start` checks the port
//! is free, starts the broker on its own thread, and proves the listener is this broker's with
//! a round trip: a TCP client subscribes to a random topic and must receive what the broker's
//! in-process link publishes there. Per-mote logins are checked by the broker; rumqttd cannot
//! confine a client to its topics, so frames carry their own MAC (BLUEPRINT section 10).

// rumqttd's configuration takes `std::collections::HashMap`s; nothing here iterates them.
#![allow(clippy::disallowed_types)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use rumqttd::local::LinkTx;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use super::rumqttc::MAX_PACKET_BYTES;
use crate::ports::mqtt::BrokerAddr;

/// Logins the broker accepts (user name -> password); `None` lets anyone connect.
pub type Logins = Option<BTreeMap<String, String>>;

/// A running embedded broker. It lives until the process ends (rumqttd cannot be stopped).
pub struct EmbeddedBroker {
    addr: BrokerAddr,
    /// Kept so the router keeps this in-process link (and the broker's state) alive.
    _link: LinkTx,
}

/// Why the embedded broker did not start.
#[derive(Debug)]
pub enum BrokerError {
    /// The port is taken by another process.
    PortInUse(SocketAddr, std::io::Error),
    /// It did not answer, or something else answered on its port.
    NotServing(SocketAddr, String),
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::PortInUse(addr, e) => write!(f, "the embedded MQTT broker cannot listen on {addr}: {e} (choose another mqtt port, or mqtt.url for an external broker)"),
            BrokerError::NotServing(addr, why) => write!(f, "the embedded MQTT broker on {addr} is not serving: {why}"),
        }
    }
}

impl std::error::Error for BrokerError {}

impl EmbeddedBroker {
    /// Starts a broker on `127.0.0.1:port` (0: any free port) and returns once it serves.
    pub fn start(port: u16, logins: Logins) -> Result<Self, BrokerError> {
        let listen = free_addr(port)?;
        let probe_user = format!("aiot-probe-{}", nonce());
        let probe_password = nonce();
        let auth = logins.map(|mut users| {
            users.insert(probe_user.clone(), probe_password.clone());
            users.into_iter().collect::<HashMap<_, _>>()
        });
        let broker = Broker::new(config(listen, auth));
        let (link, _link_rx) =
            broker.link("aiot-embedded-probe").map_err(|e| BrokerError::NotServing(listen, e.to_string()))?;
        run_on_own_thread(broker);
        let mut embedded = EmbeddedBroker {
            addr: BrokerAddr { host: listen.ip().to_string(), port: listen.port() },
            _link: link,
        };
        embedded.prove_ours(listen, &probe_user, &probe_password)?;
        Ok(embedded)
    }

    pub fn addr(&self) -> &BrokerAddr {
        &self.addr
    }

    /// Subscribes over TCP to a random topic and waits for the in-process link's publish there.
    fn prove_ours(&mut self, listen: SocketAddr, user: &str, password: &str) -> Result<(), BrokerError> {
        let not_serving = |why: String| BrokerError::NotServing(listen, why);
        let topic = format!("aiot/embedded-probe/{}", nonce());
        let mut options = rumqttc::MqttOptions::new(
            format!("aiot-probe-{}", nonce()),
            listen.ip().to_string(),
            listen.port(),
        );
        options.set_credentials(user, password).set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = rumqttc::Client::new(options, 10);
        client.subscribe(&topic, rumqttc::QoS::AtMostOnce).map_err(|e| not_serving(e.to_string()))?;
        let mut published = false;
        for _ in 0..200 {
            match connection.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) if !published => {
                    self._link
                        .publish(topic.clone(), b"ours".to_vec())
                        .map_err(|e| not_serving(e.to_string()))?;
                    published = true;
                }
                Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)))) if p.topic == topic => {
                    let _ = client.disconnect();
                    return Ok(());
                }
                // Not listening yet: the broker thread is still binding; rumqttc retries.
                Ok(Err(_)) => std::thread::sleep(Duration::from_millis(20)),
                _ => {}
            }
        }
        Err(not_serving("no answer within 10 s, or another broker answered on its port".into()))
    }
}

fn free_addr(port: u16) -> Result<SocketAddr, BrokerError> {
    let wanted = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = TcpListener::bind(wanted).map_err(|e| BrokerError::PortInUse(wanted, e))?;
    let addr = listener.local_addr().map_err(|e| BrokerError::PortInUse(wanted, e))?;
    Ok(addr)
}

// The broker's own servers run on threads it spawns; starting it blocks, so it gets one too.
#[allow(clippy::disallowed_methods)]
fn run_on_own_thread(mut broker: Broker) {
    let _ = std::thread::Builder::new().name("aiot-rumqttd".into()).spawn(move || {
        if let Err(e) = broker.start() {
            eprintln!("embedded MQTT broker stopped: {e}");
        }
    });
}

/// An unguessable token for probe names and passwords (host code: not under simulation).
fn nonce() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(std::process::id() as u64);
    format!("{:016x}", hasher.finish())
}

fn config(listen: SocketAddr, auth: Option<HashMap<String, String>>) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: MAX_PACKET_BYTES,
        max_inflight_count: 500,
        auth,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "aiot-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 20_010,
            max_outgoing_packet_count: 1000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("aiot".to_string(), server)])),
        ..Config::default()
    }
}
