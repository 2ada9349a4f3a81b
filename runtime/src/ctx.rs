//! `Ctx`: everything an actor may touch while it handles a message.
//!
//! Its own ref, sends, request/reply, timers, the clock, a seeded rng, children, stopping,
//! watching, ports and its metrics. Nothing here blocks or reads the wall clock, so a handler
//! behaves the same under tokio and under the deterministic executor.

use std::sync::Arc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;

use crate::actor::{Actor, Down, ExitReason};
use crate::actor_ref::{ActorRef, ReplyTo};
use crate::error::{AskError, SendError, SpawnError};
use crate::host::{Host, TimerFire};
use crate::mailbox::ActorId;
use crate::message::Message;
use crate::metrics::MetricsSnapshot;
use crate::path::ActorPath;
use crate::port::{Port, PortCall, PortClient, PortRef};
use crate::runner::{erase_reply, PendingAsk, RunnerCore, TimerEntry, TimerMsg};
use crate::spec::{new_cell, ActorSpec};
use crate::time::Instant;

/// The seeded random generator every actor gets (`ctx.rng()`): ChaCha8, seeded from the
/// system seed, the actor's path, its incarnation and when it was made (so a path started
/// afresh, incarnation 0 again, does not repeat its draws).
pub type ActorRng = ChaCha8Rng;

/// A timer an actor set, for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerId(u64);

/// An ask in flight (its correlation id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct AskId(pub u64);

/// The actor's view of the system during one handler call.
pub struct Ctx<'a, M: Message> {
    core: &'a mut RunnerCore<M>,
    host: &'a mut dyn Host,
    sender: ActorId,
}

impl<'a, M: Message> Ctx<'a, M> {
    pub(crate) fn new(core: &'a mut RunnerCore<M>, host: &'a mut dyn Host, sender: ActorId) -> Self {
        Ctx { core, host, sender }
    }

    /// This actor's own ref.
    pub fn me(&self) -> &ActorRef<M> {
        self.core.me()
    }

    pub fn path(&self) -> &ActorPath {
        &self.core.spec.path
    }

    /// 0 on first start, +1 on each restart.
    pub fn incarnation(&self) -> u64 {
        self.core.incarnation
    }

    /// The sender of the message being handled (`ActorId::EXTERNAL` for timers and outside sends).
    pub fn sender(&self) -> ActorId {
        self.sender
    }

    /// The executor's clock (virtual under simulation).
    pub fn now(&self) -> Instant {
        self.host.now()
    }

    /// The cluster time now, Unix ms ([`crate::time::ClusterClock`]): what records are stamped
    /// with. Timers and timeouts use [`Ctx::now`].
    pub fn cluster_ms(&self) -> u64 {
        self.host.core().config().clock.at(self.now())
    }

    /// How long on the executor's clock `cluster` of cluster time lasts (shorter under a
    /// warp): for timers that wait for a cluster time.
    pub fn executor_duration(&self, cluster: Duration) -> Duration {
        self.host.core().config().clock.executor_duration(cluster)
    }

    /// This actor's seeded random generator.
    pub fn rng(&mut self) -> &mut ActorRng {
        let seed = self.host.core().config().seed;
        self.core.rng(seed)
    }

    /// This actor's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.core.any_cell.metrics()
    }

    /// Sends `msg` to `to`; never blocks. A full mailbox follows the receiver's policy:
    /// backpressure parks the message here (this actor runs again once it is delivered),
    /// drop-oldest drops the receiver's oldest message, reject returns `MailboxFull`.
    /// `NoActor` and `Stopped` are counted as dead letters.
    pub fn send<N: Message>(&mut self, to: &ActorRef<N>, msg: N) -> Result<(), SendError> {
        self.core.send(self.host, to, msg)
    }

    /// Sends a request built around a fresh `ReplyTo`; the reply (or `AskError::Timeout` after
    /// `timeout`) comes back to this actor as the message `on_reply` makes of it.
    pub fn ask<Q: Message, R: Message>(
        &mut self,
        to: &ActorRef<Q>,
        request: impl FnOnce(ReplyTo<R>) -> Q,
        timeout: Duration,
        on_reply: impl FnOnce(Result<R, AskError>) -> M + Send + 'static,
    ) -> Result<AskId, SendError> {
        let corr = self.host.core().next_corr();
        let origin = self.host.core().node_name().cloned();
        let reply_to =
            ReplyTo::new(self.core.spec.path.clone(), corr, Some(self.core.any_cell.clone()), origin);
        self.core.send(self.host, to, request(reply_to))?;
        let token = self.host.set_timer(self.core.any_cell.clone(), timeout, TimerFire::AskTimeout(corr));
        let on_reply = erase_reply(on_reply);
        self.core.extras().asks.insert(corr, PendingAsk { token, on_reply });
        Ok(AskId(corr))
    }

    /// Answers a request. A reply to an asker that has stopped is a dead letter.
    pub fn reply<R: Message>(&mut self, to: &ReplyTo<R>, value: R) -> Result<(), SendError> {
        let core = self.host.core();
        let cell = match &to.cell {
            Some(cell) if !cell.is_closed() => Some(cell.clone()),
            _ => core.lookup(&to.path),
        };
        let result = match cell {
            Some(cell) => {
                if cell.push_reply(self.core.id, to.corr, Box::new(value)) {
                    return Ok(());
                }
                Err(SendError::NoActor(to.path.clone()))
            }
            // Not here: the asker may be on another node.
            None => core.reply_remote(to.origin(), &to.path, to.corr, &value),
        };
        if result.is_err() {
            core.dead_letter(&to.path, 1);
        }
        result
    }

    /// Delivers `msg` to this actor after `after`.
    pub fn schedule_once(&mut self, after: Duration, msg: M) -> TimerId {
        self.add_timer(after, None, TimerMsg::Once(Some(msg)))
    }

    /// Delivers a clone of `msg` to this actor every `every`, first after `every`.
    pub fn schedule_every(&mut self, every: Duration, msg: M) -> TimerId
    where
        M: Clone + Sync,
    {
        assert!(!every.is_zero(), "an interval timer needs a positive period");
        self.add_timer(every, Some(every), TimerMsg::Every(Box::new(move || msg.clone())))
    }

    fn add_timer(&mut self, after: Duration, every: Option<Duration>, msg: TimerMsg<M>) -> TimerId {
        // Keys are unique across incarnations, so a timer that fired just before a restart
        // cannot be mistaken for one the new incarnation set.
        let key = self.host.core().next_corr();
        let token = self.host.set_timer(self.core.any_cell.clone(), after, TimerFire::Timer(key));
        self.core.extras().timers.insert(key, TimerEntry { token, every, msg });
        TimerId(key)
    }

    /// Cancels a timer; false if it had already fired (once) or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        match self.core.extras().timers.remove(&id.0) {
            Some(entry) => {
                self.host.cancel_timer(entry.token);
                true
            }
            None => false,
        }
    }

    /// Spawns a child `name` under this actor, supervised by this actor's strategy.
    pub fn spawn_child<C: Actor>(
        &mut self,
        name: &str,
        spec: ActorSpec<C>,
    ) -> Result<ActorRef<C::Msg>, SpawnError> {
        if self.core.stop_request.is_some() {
            return Err(SpawnError::Stopping(self.core.spec.path.clone()));
        }
        let path = self.core.spec.path.child(name).map_err(|e| SpawnError::BadName(e.to_string()))?;
        let spec = Arc::new(spec.into_spec(path.clone()));
        let cell = new_cell::<C::Msg>(self.host, &spec)?;
        let key = self.core.add_child(spec, true);
        self.core.extras().children.get_mut(&key).expect("just added").cell = Some(cell.clone());
        self.core.start_child(key, self.host);
        Ok(ActorRef::resolved(cell))
    }

    /// Stops this actor after the current handler (a normal exit).
    pub fn stop(&mut self) {
        self.core.stop_request.get_or_insert(ExitReason::Normal);
    }

    /// Stops child `path` (exit reason shutdown); it is not restarted. False if no such child runs.
    pub fn stop_child(&mut self, path: &ActorPath) -> bool {
        self.core.stop_child(path, crate::mailbox::Control::Terminate)
    }

    /// Paths of this actor's running children, in start order.
    pub fn children(&self) -> Vec<ActorPath> {
        let Some(extras) = self.core.extras_if_any() else { return Vec::new() };
        extras.children.values().filter(|c| c.running).map(|c| c.spec.path.clone()).collect()
    }

    /// Asks for a `Down` notice (as the message `on_down` makes) when `target` stops. Watching
    /// an actor that does not exist gives a notice at once, with reason `NoActor`.
    pub fn watch<N: Message>(
        &mut self,
        target: &ActorRef<N>,
        on_down: impl FnOnce(Down) -> M + Send + 'static,
    ) {
        let path = target.path().clone();
        self.core.extras().watching.insert(path.clone(), Box::new(on_down));
        let me = self.core.any_cell.clone();
        let registered = self.host.core().lookup(&path).is_some_and(|cell| cell.add_watcher(me));
        if !registered {
            let down = Down { path, reason: ExitReason::NoActor };
            self.core.any_cell.push_down(ActorId::EXTERNAL, down);
        }
    }

    /// Cancels a watch.
    pub fn unwatch<N: Message>(&mut self, target: &ActorRef<N>) {
        self.core.extras().watching.remove(target.path());
        if let Some(cell) = self.host.core().lookup(target.path()) {
            cell.remove_watcher(self.core.id);
        }
    }

    /// Opens port `P`: its events arrive as the messages `on_event` makes of them.
    pub fn open_port<P: Port>(&mut self, on_event: impl Fn(P::Event) -> M + Send + 'static) -> PortRef<P> {
        let convert =
            move |any: Box<dyn std::any::Any + Send>| any.downcast::<P::Event>().ok().map(|e| on_event(*e));
        self.core.extras().ports.insert(P::NAME, Box::new(convert));
        PortRef::new()
    }

    /// Sends a request to port `P`'s adapter.
    pub fn port_request<P: Port>(&mut self, port: &PortRef<P>, request: P::Request) -> Result<(), SendError> {
        let client = PortClient::new(self.core.spec.path.clone(), Some(self.core.any_cell.clone()));
        self.core.send(self.host, port.adapter(), PortCall { client, request })
    }
}
