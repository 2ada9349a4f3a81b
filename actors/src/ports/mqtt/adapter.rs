//! The MQTT port's actor: requests to a connection, incoming messages to subscribed actors.
//!
//! The host builds an `MqttLink`, connects (real or simulated) with `link.sink()` as the event
//! sink, `attach`es the connection, and installs `link.adapter()` at `/port-mqtt`. Incoming
//! messages go straight from the sink to each actor whose filter matches (once per actor, even
//! when several of its filters match); after a reconnect the link subscribes every filter again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use aiot_runtime::{Actor, ActorError, ActorPath, ActorSpec, Ctx, PortCall, PortClient};
use parking_lot::Mutex;

use super::topic::{check_filter, check_topic, matches};
use super::{EventSink, Mqtt, MqttConnection, MqttError, MqttEvent, MqttRequest, QoS};

/// Counters of one link.
#[derive(Debug, Default)]
pub struct MqttLinkStats {
    /// Messages that arrived from the broker.
    pub received: AtomicU64,
    /// Deliveries into subscribed actors' mailboxes.
    pub delivered: AtomicU64,
    /// Messages no subscribed actor could take (mailbox full, or actor gone).
    pub undeliverable: AtomicU64,
    /// Messages that matched no subscription (late after an unsubscribe).
    pub unmatched: AtomicU64,
    pub published: AtomicU64,
    pub publish_refused: AtomicU64,
}

struct Subscription {
    filter: String,
    qos: QoS,
    client: PortClient<Mqtt>,
}

/// One broker connection shared by the port's actor and the connection's event sink.
pub struct MqttLink {
    connection: OnceLock<Arc<dyn MqttConnection>>,
    subscriptions: Mutex<Vec<Subscription>>,
    stats: MqttLinkStats,
}

impl MqttLink {
    pub fn new() -> Arc<Self> {
        Arc::new(MqttLink {
            connection: OnceLock::new(),
            subscriptions: Mutex::new(Vec::new()),
            stats: MqttLinkStats::default(),
        })
    }

    /// The sink to connect with: it routes the connection's events to subscribed actors.
    pub fn sink(self: &Arc<Self>) -> EventSink {
        let link = Arc::clone(self);
        Arc::new(move |event| link.dispatch(event))
    }

    /// Attaches the connection made with `sink()`; only the first call counts.
    pub fn attach(&self, connection: Arc<dyn MqttConnection>) {
        let _ = self.connection.set(connection);
    }

    /// The port's actor, to install at `/port-mqtt`.
    pub fn adapter(self: &Arc<Self>) -> ActorSpec<MqttAdapter> {
        let link = Arc::clone(self);
        ActorSpec::new(move |_| MqttAdapter { link: Arc::clone(&link) })
    }

    pub fn stats(&self) -> &MqttLinkStats {
        &self.stats
    }

    fn connection(&self) -> Result<&Arc<dyn MqttConnection>, MqttError> {
        self.connection.get().ok_or(MqttError::Disconnected)
    }

    fn dispatch(&self, event: MqttEvent) {
        match event {
            MqttEvent::Message(message) => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
                let subscriptions = self.subscriptions.lock();
                let mut targets: Vec<&PortClient<Mqtt>> = Vec::new();
                for s in subscriptions.iter().filter(|s| matches(&s.filter, &message.topic)) {
                    if !targets.iter().any(|t| t.path() == s.client.path()) {
                        targets.push(&s.client);
                    }
                }
                if targets.is_empty() {
                    self.stats.unmatched.fetch_add(1, Ordering::Relaxed);
                }
                for client in targets {
                    let counter = match client.emit(MqttEvent::Message(message.clone())) {
                        Ok(()) => &self.stats.delivered,
                        Err(_) => &self.stats.undeliverable,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
            MqttEvent::Subscribed { filter } => {
                for s in self.subscriptions.lock().iter().filter(|s| s.filter == filter) {
                    let _ = s.client.emit(MqttEvent::Subscribed { filter: filter.clone() });
                }
            }
            MqttEvent::Connected => {
                self.resubscribe();
                self.tell_everyone(MqttEvent::Connected);
            }
            other => self.tell_everyone(other),
        }
    }

    /// After a reconnect the broker may have forgotten the session: subscribe every filter again.
    fn resubscribe(&self) {
        let Ok(connection) = self.connection() else { return };
        let mut wanted: BTreeMap<String, QoS> = BTreeMap::new();
        for s in self.subscriptions.lock().iter() {
            let qos = wanted.entry(s.filter.clone()).or_insert(s.qos);
            *qos = (*qos).max(s.qos);
        }
        for (filter, qos) in &wanted {
            // A full queue right after connecting is retried at the next reconnect; the
            // connection reports it through its own events.
            let _ = connection.subscribe(filter, *qos);
        }
    }

    fn tell_everyone(&self, event: MqttEvent) {
        let subscriptions = self.subscriptions.lock();
        let mut told: Vec<&ActorPath> = Vec::new();
        for s in subscriptions.iter() {
            if !told.contains(&s.client.path()) {
                told.push(s.client.path());
                let _ = s.client.emit(event.clone());
            }
        }
    }

    fn subscribe(&self, client: PortClient<Mqtt>, filter: String, qos: QoS) -> Result<(), MqttError> {
        check_filter(&filter)?;
        let connection = self.connection()?;
        let mut subscriptions = self.subscriptions.lock();
        subscriptions.retain(|s| !(s.filter == filter && s.client.path() == client.path()));
        subscriptions.push(Subscription { filter: filter.clone(), qos, client });
        drop(subscriptions);
        connection.subscribe(&filter, qos)
    }

    fn unsubscribe(&self, client: &PortClient<Mqtt>, filter: &str) -> Result<(), MqttError> {
        let mut subscriptions = self.subscriptions.lock();
        subscriptions.retain(|s| !(s.filter == filter && s.client.path() == client.path()));
        let still_wanted = subscriptions.iter().any(|s| s.filter == filter);
        drop(subscriptions);
        if still_wanted {
            return Ok(());
        }
        self.connection()?.unsubscribe(filter)
    }
}

/// The actor at `/port-mqtt`.
pub struct MqttAdapter {
    link: Arc<MqttLink>,
}

impl Actor for MqttAdapter {
    type Msg = PortCall<Mqtt>;

    fn handle(&mut self, call: PortCall<Mqtt>, _ctx: &mut Ctx<'_, Self::Msg>) -> Result<(), ActorError> {
        let PortCall { client, request } = call;
        let link = &self.link;
        match request {
            MqttRequest::Subscribe { filter, qos } => {
                if let Err(error) = link.subscribe(client.clone(), filter.clone(), qos) {
                    let _ = client.emit(MqttEvent::Refused { topic: filter, error });
                }
            }
            MqttRequest::Unsubscribe { filter } => {
                if let Err(error) = link.unsubscribe(&client, &filter) {
                    let _ = client.emit(MqttEvent::Refused { topic: filter, error });
                }
            }
            MqttRequest::Publish(message) => {
                let topic = message.topic.clone();
                let sent = check_topic(&topic).and_then(|()| link.connection()?.publish(message));
                match sent {
                    Ok(()) => link.stats.published.fetch_add(1, Ordering::Relaxed),
                    Err(error) => {
                        let _ = client.emit(MqttEvent::Refused { topic, error });
                        link.stats.publish_refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }
        Ok(())
    }
}
