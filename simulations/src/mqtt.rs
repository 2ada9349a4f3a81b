//! The simulated MQTT broker: the MQTT contract as a deterministic model in virtual time.
//!
//! It implements the same `MqttConnection` trait as the rumqttc adapter and passes the same
//! conformance suite (`aiot_actors::ports::mqtt::conformance`), with the freedoms the contract
//! allows taken on purpose, by seeded choice: QoS 0 messages may be dropped; QoS 1 messages may
//! be delivered twice, the copy arriving later than messages sent after it (as a redelivery after
//! a reconnect does). Also modelled: latency with jitter (first deliveries stay FIFO per
//! publisher and subscriber), logins, retained messages (kept until a broker crash: the
//! embedded broker keeps them in memory only), last wills (published when a client vanishes or
//! is taken over by a new connection with its client id; never after a clean disconnect), no
//! replay for new subscribers, and broker crashes: every client is disconnected, in-flight
//! messages are lost, and clients reconnect when the broker is back (clean sessions: they must
//! subscribe again).
//!
//! Nothing happens until `advance(to)` is called with a later virtual time; events go to each
//! connection's sink at their virtual time, in (time, sequence) order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::ports::mqtt::topic::{check_filter, check_topic, matches};
use aiot_actors::ports::mqtt::{
    ConnectOptions, EventSink, MqttConnection, MqttError, MqttEvent, Publish, QoS,
};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How unkind the broker is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MqttFaults {
    /// Probability that a QoS 0 delivery is lost.
    pub qos0_drop: f64,
    /// Probability that a QoS 1 delivery is also delivered again later.
    pub qos1_duplicate: f64,
    /// How much later a duplicate may arrive, at most.
    pub duplicate_delay_max: Duration,
    /// One-way latency between a client and the broker, plus up to `jitter`.
    pub latency: Duration,
    pub jitter: Duration,
}

impl MqttFaults {
    /// A perfect broker (latency only).
    pub fn none() -> Self {
        MqttFaults {
            qos0_drop: 0.0,
            qos1_duplicate: 0.0,
            duplicate_delay_max: Duration::ZERO,
            latency: Duration::from_millis(2),
            jitter: Duration::ZERO,
        }
    }

    /// A flaky broker: some QoS 0 loss, some QoS 1 duplicates, jittery latency.
    pub fn flaky() -> Self {
        MqttFaults {
            qos0_drop: 0.1,
            qos1_duplicate: 0.1,
            duplicate_delay_max: Duration::from_secs(5),
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(40),
        }
    }
}

/// What the broker did, for summaries and invariants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttStats {
    pub published: u64,
    pub delivered: u64,
    pub qos0_dropped: u64,
    pub qos1_duplicated: u64,
    pub refused_logins: u64,
    pub wills_published: u64,
    pub crashes: u64,
    /// Messages lost in flight by a broker crash.
    pub lost_in_crash: u64,
}

/// A simulated broker; clones share it.
#[derive(Clone)]
pub struct SimBroker {
    state: Arc<Mutex<BrokerState>>,
}

type SessionId = u64;

struct Session {
    client_id: String,
    sink: EventSink,
    will: Option<Publish>,
    subscriptions: Vec<(String, QoS)>,
    /// Set when the broker accepted the CONNECT; cleared by a crash until the client reconnects.
    connected: bool,
    /// Ended for good (clean disconnect, vanished, taken over, refused): never reconnects.
    closed: bool,
}

enum Pending {
    /// A client's request reaches the broker.
    Arrive { from: SessionId, request: Request },
    /// An event reaches a client.
    Deliver { to: SessionId, event: MqttEvent },
    /// A client reconnects after a broker restart.
    Reconnect { session: SessionId },
}

enum Request {
    Publish(Publish),
    Subscribe(String, QoS),
    Unsubscribe(String),
}

struct BrokerState {
    now: Duration,
    rng: ChaCha8Rng,
    faults: MqttFaults,
    logins: Option<BTreeMap<String, String>>,
    up: bool,
    next_session: SessionId,
    sessions: BTreeMap<SessionId, Session>,
    /// The open (not closed) session of each client id: there is at most one, as a new
    /// connection takes an open one over.
    open_by_client: BTreeMap<String, SessionId>,
    retained: BTreeMap<String, Publish>,
    queue: BTreeMap<(Duration, u64), Pending>,
    next_seq: u64,
    /// Latest first-delivery time per (publisher, subscriber): keeps first deliveries FIFO.
    last_delivery: BTreeMap<(SessionId, SessionId), Duration>,
    /// Latest arrival time of each client's requests: one TCP stream keeps them in order.
    last_arrival: BTreeMap<SessionId, Duration>,
    /// Which sessions hold each filter: routing looks up exact topics and scans only the
    /// wildcard filters, so a message costs the same with 100 or 10 000 motes connected.
    exact: BTreeMap<String, BTreeSet<SessionId>>,
    wildcard: BTreeMap<String, BTreeSet<SessionId>>,
    stats: MqttStats,
}

impl SimBroker {
    pub fn new(seed: u64, faults: MqttFaults) -> Self {
        let state = BrokerState {
            now: Duration::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults,
            logins: None,
            up: true,
            next_session: 0,
            sessions: BTreeMap::new(),
            open_by_client: BTreeMap::new(),
            retained: BTreeMap::new(),
            queue: BTreeMap::new(),
            next_seq: 0,
            last_delivery: BTreeMap::new(),
            last_arrival: BTreeMap::new(),
            exact: BTreeMap::new(),
            wildcard: BTreeMap::new(),
            stats: MqttStats::default(),
        };
        SimBroker { state: Arc::new(Mutex::new(state)) }
    }

    /// Only these logins may connect from now on (user name -> password).
    pub fn require_logins(&self, logins: BTreeMap<String, String>) {
        self.state.lock().logins = Some(logins);
    }

    pub fn set_faults(&self, faults: MqttFaults) {
        self.state.lock().faults = faults;
    }

    pub fn now(&self) -> Duration {
        self.state.lock().now
    }

    pub fn stats(&self) -> MqttStats {
        self.state.lock().stats
    }

    pub fn is_up(&self) -> bool {
        self.state.lock().up
    }

    /// Connects a client: `Connected` (or `Disconnected` with the refusal) reaches `sink` one
    /// latency later. A connection with a client id already connected takes that session over.
    pub fn connect(&self, options: ConnectOptions, sink: EventSink) -> Arc<SimConnection> {
        let mut state = self.state.lock();
        let id = state.next_session;
        state.next_session += 1;
        let refused = match (&state.logins, &options.credentials) {
            (None, _) => None,
            (Some(logins), Some((user, password))) if logins.get(user) == Some(password) => None,
            (Some(_), _) => Some("bad user name or password"),
        };
        let delay = state.latency();
        if let Some(why) = refused {
            state.stats.refused_logins += 1;
            state.schedule(
                delay,
                Pending::Deliver { to: id, event: MqttEvent::Disconnected { reason: why.into() } },
            );
            state.sessions.insert(
                id,
                Session {
                    client_id: options.client_id,
                    sink,
                    will: None,
                    subscriptions: Vec::new(),
                    connected: false,
                    closed: true,
                },
            );
        } else {
            if let Some(&old) = state.open_by_client.get(&options.client_id) {
                state.close(old, true, Some("taken over by a new connection with the same client id"));
            }
            let connected = state.up;
            state.open_by_client.insert(options.client_id.clone(), id);
            state.sessions.insert(
                id,
                Session {
                    client_id: options.client_id,
                    sink,
                    will: options.will,
                    subscriptions: Vec::new(),
                    connected,
                    closed: false,
                },
            );
            let event = if connected {
                MqttEvent::Connected
            } else {
                MqttEvent::Disconnected { reason: "the broker is down".into() }
            };
            state.schedule(delay, Pending::Deliver { to: id, event });
        }
        Arc::new(SimConnection { broker: self.clone(), session: id })
    }

    /// Crashes the broker: every client is disconnected, in-flight messages and retained
    /// messages are lost; nothing connects until `restart`.
    pub fn crash(&self) {
        let mut state = self.state.lock();
        if !state.up {
            return;
        }
        state.up = false;
        state.stats.crashes += 1;
        state.retained.clear();
        let lost = state.queue.values().filter(|p| !matches!(p, Pending::Reconnect { .. })).count() as u64;
        state.stats.lost_in_crash += lost;
        state.queue.clear();
        state.last_delivery.clear();
        state.last_arrival.clear();
        let ids: Vec<SessionId> = state.sessions.keys().copied().collect();
        for id in ids {
            let session = state.sessions.get_mut(&id).expect("listed");
            if session.connected {
                session.connected = false;
                session.subscriptions.clear();
                let sink = Arc::clone(&session.sink);
                state.exact.clear();
                state.wildcard.clear();
                drop(state);
                sink(MqttEvent::Disconnected { reason: "the broker crashed".into() });
                state = self.state.lock();
            }
        }
    }

    /// Brings a crashed broker back; its clients reconnect (each after its own short delay).
    pub fn restart(&self) {
        let mut state = self.state.lock();
        if state.up {
            return;
        }
        state.up = true;
        let ids: Vec<SessionId> =
            state.sessions.iter().filter(|(_, s)| !s.closed).map(|(id, _)| *id).collect();
        for session in ids {
            let delay = state.latency() + Duration::from_millis(state.rng.random_range(50..500));
            state.schedule(delay, Pending::Reconnect { session });
        }
    }

    /// Runs the broker up to virtual time `to`, handing each due event to its sink.
    pub fn advance(&self, to: Duration) {
        loop {
            let mut state = self.state.lock();
            let Some(entry) = state.queue.first_entry() else { break };
            if entry.key().0 > to {
                break;
            }
            let ((at, _), pending) = entry.remove_entry();
            state.now = at;
            let deliveries = state.process(pending);
            drop(state);
            for (sink, event) in deliveries {
                sink(event);
            }
        }
        let mut state = self.state.lock();
        state.now = state.now.max(to);
    }

    /// The time of the next scheduled event, if any.
    pub fn next_event_at(&self) -> Option<Duration> {
        self.state.lock().queue.keys().next().map(|(at, _)| *at)
    }

    fn request(&self, session: SessionId, request: Request) -> Result<(), MqttError> {
        let mut state = self.state.lock();
        let connected = state.sessions.get(&session).is_some_and(|s| s.connected) && state.up;
        if !connected {
            return Err(MqttError::Disconnected);
        }
        let candidate = state.now + state.latency();
        let last = state.last_arrival.entry(session).or_insert(Duration::ZERO);
        let at = candidate.max(*last);
        *last = at;
        state.queue_at(at, Pending::Arrive { from: session, request });
        Ok(())
    }
}

impl BrokerState {
    fn latency(&mut self) -> Duration {
        let jitter = self.faults.jitter.as_micros() as u64;
        self.faults.latency
            + Duration::from_micros(if jitter == 0 { 0 } else { self.rng.random_range(0..=jitter) })
    }

    fn schedule(&mut self, after: Duration, pending: Pending) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.insert((self.now + after, seq), pending);
    }

    /// Handles one due item; returns the sink calls to make once the lock is released.
    fn process(&mut self, pending: Pending) -> Vec<(EventSink, MqttEvent)> {
        match pending {
            Pending::Deliver { to, event } => {
                let Some(session) = self.sessions.get(&to) else { return Vec::new() };
                if (!session.connected || session.closed)
                    && matches!(
                        event,
                        MqttEvent::Message(_) | MqttEvent::Subscribed { .. } | MqttEvent::Connected
                    )
                {
                    return Vec::new();
                }
                if matches!(event, MqttEvent::Message(_)) {
                    self.stats.delivered += 1;
                }
                vec![(Arc::clone(&session.sink), event)]
            }
            Pending::Arrive { from, request } => {
                if !self.sessions.get(&from).is_some_and(|s| s.connected) {
                    return Vec::new();
                }
                match request {
                    Request::Publish(message) => self.route(from, message),
                    Request::Subscribe(filter, qos) => self.subscribe(from, filter, qos),
                    Request::Unsubscribe(filter) => {
                        if let Some(s) = self.sessions.get_mut(&from) {
                            s.subscriptions.retain(|(f, _)| *f != filter);
                        }
                        self.unindex(from, &filter);
                    }
                }
                Vec::new()
            }
            Pending::Reconnect { session } => {
                let up = self.up;
                let Some(s) = self.sessions.get_mut(&session) else { return Vec::new() };
                if !up || s.connected || s.closed {
                    return Vec::new();
                }
                s.connected = true;
                vec![(Arc::clone(&s.sink), MqttEvent::Connected)]
            }
        }
    }

    fn route(&mut self, from: SessionId, message: Publish) {
        self.stats.published += 1;
        if message.retain {
            if message.payload.is_empty() {
                self.retained.remove(&message.topic);
            } else {
                self.retained.insert(message.topic.clone(), message.clone());
            }
        }
        // Delivered copies carry the retain flag only when sent because of a new subscription.
        let live = Publish { retain: false, ..message };
        let mut candidates: BTreeSet<SessionId> = self.exact.get(&live.topic).cloned().unwrap_or_default();
        for (filter, ids) in &self.wildcard {
            if matches(filter, &live.topic) {
                candidates.extend(ids);
            }
        }
        let targets: Vec<(SessionId, QoS)> = candidates
            .into_iter()
            .filter_map(|id| self.sessions.get(&id).filter(|s| s.connected).map(|s| (id, s)))
            .filter_map(|(id, s)| {
                s.subscriptions
                    .iter()
                    .filter(|(f, _)| matches(f, &live.topic))
                    .map(|(_, q)| *q)
                    .max()
                    .map(|q| (id, q))
            })
            .collect();
        for (to, sub_qos) in targets {
            let qos = sub_qos.min(live.qos);
            if qos == QoS::AtMostOnce && self.rng.random_bool(self.faults.qos0_drop) {
                self.stats.qos0_dropped += 1;
                continue;
            }
            let candidate = self.now + self.latency();
            let last = self.last_delivery.entry((from, to)).or_insert(Duration::ZERO);
            let at = candidate.max(*last);
            *last = at;
            let copy = Publish { qos, ..live.clone() };
            self.queue_at(at, Pending::Deliver { to, event: MqttEvent::Message(copy.clone()) });
            if qos == QoS::AtLeastOnce && self.rng.random_bool(self.faults.qos1_duplicate) {
                self.stats.qos1_duplicated += 1;
                let extra = self.faults.duplicate_delay_max.as_micros() as u64;
                let later = at + Duration::from_micros(self.rng.random_range(0..=extra));
                self.queue_at(later, Pending::Deliver { to, event: MqttEvent::Message(copy) });
            }
        }
    }

    fn subscribe(&mut self, from: SessionId, filter: String, qos: QoS) {
        let Some(session) = self.sessions.get_mut(&from) else { return };
        session.subscriptions.retain(|(f, _)| *f != filter);
        session.subscriptions.push((filter.clone(), qos));
        let index = if filter.contains(['+', '#']) { &mut self.wildcard } else { &mut self.exact };
        index.entry(filter.clone()).or_default().insert(from);
        let delay = self.latency();
        self.schedule(
            delay,
            Pending::Deliver { to: from, event: MqttEvent::Subscribed { filter: filter.clone() } },
        );
        let retained: Vec<Publish> =
            self.retained.values().filter(|m| matches(&filter, &m.topic)).cloned().collect();
        for message in retained {
            let qos = qos.min(message.qos);
            self.schedule(
                delay,
                Pending::Deliver { to: from, event: MqttEvent::Message(Publish { qos, ..message }) },
            );
        }
    }

    fn unindex(&mut self, id: SessionId, filter: &str) {
        for index in [&mut self.exact, &mut self.wildcard] {
            if let Some(ids) = index.get_mut(filter) {
                ids.remove(&id);
                if ids.is_empty() {
                    index.remove(filter);
                }
            }
        }
    }

    fn queue_at(&mut self, at: Duration, pending: Pending) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.insert((at, seq), pending);
    }

    /// Ends a session for good; its will is published unless the client said goodbye, and
    /// `notify` tells the client why (a takeover) when it is still there to hear it.
    fn close(&mut self, id: SessionId, publish_will: bool, notify: Option<&str>) {
        let up = self.up;
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if session.closed {
            return;
        }
        let was_connected = session.connected;
        session.connected = false;
        session.closed = true;
        if self.open_by_client.get(&session.client_id) == Some(&id) {
            self.open_by_client.remove(&session.client_id);
        }
        let filters: Vec<String> = session.subscriptions.drain(..).map(|(f, _)| f).collect();
        for filter in filters {
            self.unindex(id, &filter);
        }
        let Some(session) = self.sessions.get_mut(&id) else { return };
        let will = session.will.take();
        if let Some(reason) = notify {
            let delay = self.latency();
            self.schedule(
                delay,
                Pending::Deliver { to: id, event: MqttEvent::Disconnected { reason: reason.into() } },
            );
        }
        if let (true, true, Some(will)) = (publish_will, was_connected && up, will) {
            self.stats.wills_published += 1;
            self.route(id, will);
        }
    }
}

/// One client's connection to a `SimBroker`.
pub struct SimConnection {
    broker: SimBroker,
    session: SessionId,
}

impl SimConnection {
    /// The client vanishes without a DISCONNECT (a crash or a lost network): its will goes out.
    pub fn vanish(&self) {
        self.broker.state.lock().close(self.session, true, None);
    }
}

impl MqttConnection for SimConnection {
    fn publish(&self, message: Publish) -> Result<(), MqttError> {
        check_topic(&message.topic)?;
        self.broker.request(self.session, Request::Publish(message))
    }

    fn subscribe(&self, filter: &str, qos: QoS) -> Result<(), MqttError> {
        check_filter(filter)?;
        self.broker.request(self.session, Request::Subscribe(filter.to_string(), qos))
    }

    fn unsubscribe(&self, filter: &str) -> Result<(), MqttError> {
        self.broker.request(self.session, Request::Unsubscribe(filter.to_string()))
    }

    fn disconnect(&self) {
        self.broker.state.lock().close(self.session, false, None);
    }
}
