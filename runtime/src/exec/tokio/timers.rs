//! The tokio executor's timers: one task per system sleeps until the earliest deadline and
//! fires what is due, instead of a task per timer.
//!
//! A task per timer cost a spawn, a first poll to register its sleep, a lock on a shared map
//! and, when cancelled, an abort that schedules the task once more to drop it. Every `ask` sets
//! a timer for its timeout and almost every one is cancelled by its reply, so on a busy path
//! (a proxy asks downstream for a receipt per frame) that was a large share of a message's
//! cost. Here setting a timer is an insert into an ordered map under a lock, cancelling one a
//! removal, and the timer task is woken only when a new timer is earlier than every pending one.
//! Timers due at the same instant fire in the order they were set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::cell::AnyCell;
use crate::host::{TimerFire, TimerToken};

/// How far off a deadline too large for the clock is put.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// A system's pending timers, and the wake-up for the task that fires them ([`Timers::run`]).
#[derive(Default)]
pub(super) struct Timers {
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    /// (deadline, token) -> what to fire.
    queue: BTreeMap<(Instant, u64), (Arc<dyn AnyCell>, TimerFire)>,
    /// token -> deadline, for cancelling.
    deadlines: BTreeMap<u64, Instant>,
    next_token: u64,
    stopped: bool,
}

impl Timers {
    /// Fires `fire` at `target` once `after` has passed.
    pub(super) fn set(&self, target: Arc<dyn AnyCell>, after: Duration, fire: TimerFire) -> TimerToken {
        let now = Instant::now();
        // As tokio's own sleep does, a deadline past what the clock holds is "never" (30 years).
        let at = now.checked_add(after).unwrap_or_else(|| now + FAR_FUTURE);
        let mut state = self.state.lock();
        let token = state.next_token;
        state.next_token += 1;
        if state.stopped {
            return TimerToken(token);
        }
        let earliest = state.queue.keys().next().map(|(deadline, _)| *deadline);
        state.queue.insert((at, token), (target, fire));
        state.deadlines.insert(token, at);
        drop(state);
        if earliest.is_none_or(|earliest| at < earliest) {
            self.wake.notify_one();
        }
        TimerToken(token)
    }

    /// Forgets a timer that has not fired (a fired or unknown one: nothing happens).
    pub(super) fn cancel(&self, token: TimerToken) {
        let mut state = self.state.lock();
        if let Some(at) = state.deadlines.remove(&token.0) {
            state.queue.remove(&(at, token.0));
        }
    }

    /// Drops every pending timer and ends [`Timers::run`]; later timers never fire (the system
    /// has stopped).
    pub(super) fn stop(&self) {
        let mut state = self.state.lock();
        state.stopped = true;
        state.queue.clear();
        state.deadlines.clear();
        drop(state);
        self.wake.notify_one();
    }

    /// The timer task: fires what is due, then sleeps until the earliest deadline or a wake-up
    /// (an earlier timer, or `stop`).
    pub(super) async fn run(self: Arc<Self>) {
        let mut due = Vec::new();
        loop {
            let next = {
                let mut state = self.state.lock();
                if state.stopped {
                    return;
                }
                let now = Instant::now();
                while let Some(entry) = state.queue.first_entry() {
                    if entry.key().0 > now {
                        break;
                    }
                    let ((_, token), fire) = entry.remove_entry();
                    state.deadlines.remove(&token);
                    due.push(fire);
                }
                state.queue.keys().next().map(|(deadline, _)| *deadline)
            };
            for (target, fire) in due.drain(..) {
                match fire {
                    TimerFire::Timer(key) => target.push_timer(key),
                    TimerFire::AskTimeout(corr) => target.push_ask_timeout(corr),
                };
            }
            match next {
                Some(at) => {
                    let _ = tokio::time::timeout_at(at, self.wake.notified()).await;
                }
                None => self.wake.notified().await,
            }
        }
    }
}
