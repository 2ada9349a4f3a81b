//! Commands to motes with delivery tracking: what the gateway knows of each command it sent
//! down, until the mote shows it accepted it.
//!
//! A mote answers every command it accepts at once with a down receipt naming the command's
//! mark, reports the last down mark it accepted in every features report, and accepts marks
//! only in increasing order (acks aside: they leave the mark alone). Both are "reports" here:
//! the mote's word on the last mark it accepted. So, per mote, one command is in flight at a
//! time (the rest wait in order) and a report whose mark is the command's says it arrived: the
//! receipt within a round trip, a features report by the next report period at the latest (a
//! receipt may be lost to a full resend ring, or come late behind a reconnection).
//!
//! A report whose mark is above the command's says the mote refused it (a gateway that
//! restarted learned the mote's mark from a stale report, resent from the mote's ring, and chose
//! a mark below the one an earlier gateway had used): the command goes out again under a new
//! mark, past the reported one. A report received more than `GRACE_MS` after the command went out
//! whose mark is below it says it did not (lost, or refused): the command goes out again under
//! the same mark, so a late copy of the first send and the resend cannot both act (the mote
//! refuses a mark it has seen). After `MAX_SENDS` sends the command is given up.
//!
//! A command has an id (its place in the `commands` stream): asked again while it is still
//! pending (its asker timed out and asks again), it is not queued twice; both askers are told.
//!
//! A gateway sends a mote commands only once it has seen a report of the mote's (since it
//! started): a new gateway does not know the mark the mote accepted last. If a restarted
//! gateway's new mark equalled the mark an earlier gateway used last (both jumped past the same
//! stale report), the mote would refuse the command as a replay and its reports would show
//! exactly that mark, which reads as delivered: so each gateway incarnation jumps a random
//! number of epochs (`gateway::EPOCH_JUMP_MAX`), which makes that a 1 in 65,536 event per
//! restart. (Receipts do not close it: a mote sends none for a refused frame, since a replay
//! must not make it talk, so the refused command's mark still reads as delivered.)

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use aiot_firmware::protocol::DownMark;
use serde::{Deserialize, Serialize};

/// How long after sending a command a report may still predate its arrival.
pub const GRACE_MS: u64 = 5_000;
/// Sends of one command at most.
pub const MAX_SENDS: u32 = 8;

/// A command for a mote: a down kind's code and its encoded payload (`protocol::Payload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoteCommand {
    pub kind: u8,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// What the gateway should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<R> {
    /// Send `command` to `mote` under `mark` (`None`: a new mark; then call `sent`).
    Send { mote: u32, command: MoteCommand, mark: Option<DownMark> },
    /// A command is settled: `delivered` or given up; tell everyone who asked.
    Settled { done: Vec<R>, delivered: bool },
    /// Asked about a command settled before: tell the asker how it went (nothing new happened).
    Recalled { done: R, delivered: bool },
}

struct Queued<R> {
    id: u64,
    command: MoteCommand,
    done: Vec<R>,
}

struct InFlight<R> {
    id: u64,
    command: MoteCommand,
    done: Vec<R>,
    /// `None` until `sent` names it.
    mark: Option<DownMark>,
    sent_ms: u64,
    sends: u32,
}

struct MoteCommands<R> {
    in_flight: Option<InFlight<R>>,
    waiting: VecDeque<Queued<R>>,
}

/// Every mote's commands; `R` is what settles one (a reply handle in the gateway).
pub struct CommandTracker<R> {
    motes: BTreeMap<u32, MoteCommands<R>>,
    /// Motes whose report this tracker has seen: their accepted mark is known.
    heard: BTreeSet<u32>,
    /// Outcomes of the latest `SETTLED_KEPT` settled commands by id: asked again about one (its
    /// asker restarted before the answer came), the gateway answers at once, not sends again.
    settled: BTreeMap<u64, bool>,
    settled_order: VecDeque<u64>,
}

/// Settled commands remembered.
pub const SETTLED_KEPT: usize = 4096;

impl<R> Default for CommandTracker<R> {
    fn default() -> Self {
        CommandTracker {
            motes: BTreeMap::new(),
            heard: BTreeSet::new(),
            settled: BTreeMap::new(),
            settled_order: VecDeque::new(),
        }
    }
}

impl<R> CommandTracker<R> {
    /// Queues command `id` (or joins it, if it is pending already; or answers at once, if it
    /// was settled lately); returns the send to make now if nothing of the mote's is in flight.
    pub fn push(&mut self, mote: u32, id: u64, command: MoteCommand, done: R) -> Option<Next<R>> {
        if let Some(&delivered) = self.settled.get(&id) {
            return Some(Next::Recalled { done, delivered });
        }
        let queue = self
            .motes
            .entry(mote)
            .or_insert_with(|| MoteCommands { in_flight: None, waiting: VecDeque::new() });
        if let Some(flight) = queue.in_flight.as_mut().filter(|f| f.id == id) {
            flight.done.push(done);
            return None;
        }
        if let Some(queued) = queue.waiting.iter_mut().find(|q| q.id == id) {
            queued.done.push(done);
            return None;
        }
        queue.waiting.push_back(Queued { id, command, done: vec![done] });
        if queue.in_flight.is_some() || !self.heard.contains(&mote) {
            return None;
        }
        Self::start_next(mote, queue)
    }

    fn start_next(mote: u32, queue: &mut MoteCommands<R>) -> Option<Next<R>> {
        let Queued { id, command, done } = queue.waiting.pop_front()?;
        queue.in_flight =
            Some(InFlight { id, command: command.clone(), done, mark: None, sent_ms: 0, sends: 0 });
        Some(Next::Send { mote, command, mark: None })
    }

    /// The in-flight command of `mote` went out under `mark` at `now_ms`.
    pub fn sent(&mut self, mote: u32, mark: DownMark, now_ms: u64) {
        if let Some(f) = self.motes.get_mut(&mote).and_then(|q| q.in_flight.as_mut()) {
            f.mark = Some(mark);
            f.sent_ms = now_ms;
            f.sends += 1;
        }
    }

    /// A features report or down receipt of `mote` received at `now_ms` says it accepted marks
    /// up to `accepted`: settles, resends or starts commands.
    pub fn on_report(&mut self, mote: u32, accepted: DownMark, now_ms: u64) -> Vec<Next<R>> {
        let mut next = Vec::new();
        self.heard.insert(mote);
        let Some(queue) = self.motes.get_mut(&mote) else { return next };
        let Some(flight) = queue.in_flight.as_ref() else {
            // Commands that waited for the mote's first report.
            next.extend(Self::start_next(mote, queue));
            return next;
        };
        let Some(mark) = flight.mark else {
            // Its send did not go out (the port refused it): again now.
            next.push(Next::Send { mote, command: flight.command.clone(), mark: None });
            return next;
        };
        let settled_id = flight.id;
        if accepted == mark {
            let done = queue.in_flight.take().expect("checked above").done;
            next.push(Next::Settled { done, delivered: true });
        } else if accepted > mark {
            // Not our send's doing: the mote refused our mark (it had accepted a higher one from
            // an earlier gateway, learned late from a stale report) or another mark passed it.
            // The gateway has learned past `accepted` by now: send again under a new mark.
            if flight.sends < MAX_SENDS {
                next.push(Next::Send { mote, command: flight.command.clone(), mark: None });
                return next;
            }
            let done = queue.in_flight.take().expect("checked above").done;
            next.push(Next::Settled { done, delivered: false });
        } else if now_ms >= flight.sent_ms + GRACE_MS {
            if flight.sends < MAX_SENDS {
                next.push(Next::Send { mote, command: flight.command.clone(), mark: Some(mark) });
                return next;
            }
            let done = queue.in_flight.take().expect("checked above").done;
            next.push(Next::Settled { done, delivered: false });
        } else {
            return next;
        }
        next.extend(Self::start_next(mote, queue));
        if queue.in_flight.is_none() {
            self.motes.remove(&mote);
        }
        let delivered = matches!(next.first(), Some(Next::Settled { delivered: true, .. }));
        self.remember(settled_id, delivered);
        next
    }

    fn remember(&mut self, id: u64, delivered: bool) {
        self.settled.insert(id, delivered);
        self.settled_order.push_back(id);
        while self.settled_order.len() > SETTLED_KEPT {
            if let Some(old) = self.settled_order.pop_front() {
                self.settled.remove(&old);
            }
        }
    }

    /// Commands in flight or waiting.
    pub fn pending(&self) -> usize {
        self.motes.values().map(|q| q.waiting.len() + usize::from(q.in_flight.is_some())).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(n: u8) -> MoteCommand {
        MoteCommand { kind: 0x82, payload: vec![n] }
    }

    fn mark(seq: u32) -> DownMark {
        DownMark { epoch: 1, seq }
    }

    #[test]
    fn commands_wait_for_the_motes_first_report() {
        let mut t = CommandTracker::default();
        assert_eq!(t.push(7, 1, cmd(1), "a"), None, "the mote's accepted mark is not known yet");
        assert_eq!(t.on_report(7, mark(40), 0), [Next::Send { mote: 7, command: cmd(1), mark: None }]);
        t.sent(7, mark(41), 0);
        assert_eq!(t.on_report(7, mark(41), 1), [Next::Settled { done: vec!["a"], delivered: true }]);
    }

    #[test]
    fn one_command_in_flight_per_mote_settled_by_the_reported_mark() {
        let mut t = CommandTracker::default();
        assert!(t.on_report(7, mark(0), 0).is_empty());
        assert_eq!(t.push(7, 1, cmd(1), "a"), Some(Next::Send { mote: 7, command: cmd(1), mark: None }));
        assert_eq!(t.push(7, 2, cmd(2), "b"), None, "waits behind the first");
        assert_eq!(t.push(7, 1, cmd(1), "a again"), None, "asked again: joins the one in flight");
        assert_eq!(t.push(7, 2, cmd(2), "b again"), None, "asked again: joins the waiting one");
        t.sent(7, mark(5), 1_000);
        assert!(t.on_report(7, mark(4), 2_000).is_empty(), "a report within the grace proves nothing");
        let next = t.on_report(7, mark(5), 3_000);
        assert_eq!(
            next,
            [
                Next::Settled { done: vec!["a", "a again"], delivered: true },
                Next::Send { mote: 7, command: cmd(2), mark: None }
            ]
        );
        t.sent(7, mark(9), 3_000);
        assert_eq!(
            t.on_report(7, mark(9), 4_000),
            [Next::Settled { done: vec!["b", "b again"], delivered: true }]
        );
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_reported_mark_above_the_commands_means_refused_so_it_goes_again_under_a_new_mark() {
        let mut t = CommandTracker::default();
        t.on_report(7, mark(3), 0);
        t.push(7, 1, cmd(1), "a");
        t.sent(7, mark(4), 0);
        // The mote had accepted 6 from an earlier gateway: 4 was refused as a replay.
        assert_eq!(t.on_report(7, mark(6), 10), [Next::Send { mote: 7, command: cmd(1), mark: None }]);
        t.sent(7, mark(7), 10);
        assert_eq!(t.on_report(7, mark(7), 20), [Next::Settled { done: vec!["a"], delivered: true }]);
    }

    #[test]
    fn a_settled_command_asked_again_is_answered_not_sent_again() {
        let mut t = CommandTracker::default();
        t.on_report(7, mark(0), 0);
        t.push(7, 1, cmd(1), "a");
        t.sent(7, mark(1), 0);
        assert_eq!(t.on_report(7, mark(1), 1), [Next::Settled { done: vec!["a"], delivered: true }]);
        assert_eq!(
            t.push(7, 1, cmd(1), "a, restarted"),
            Some(Next::Recalled { done: "a, restarted", delivered: true })
        );
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_report_after_the_grace_without_the_mark_resends_under_the_same_mark_then_gives_up() {
        let mut t = CommandTracker::default();
        t.on_report(3, mark(1), 0);
        t.push(3, 1, cmd(1), "a");
        t.sent(3, mark(2), 0);
        let mut now = 0;
        for _ in 1..MAX_SENDS {
            now += GRACE_MS;
            assert_eq!(
                t.on_report(3, mark(1), now),
                [Next::Send { mote: 3, command: cmd(1), mark: Some(mark(2)) }]
            );
            t.sent(3, mark(2), now);
        }
        now += GRACE_MS;
        assert_eq!(t.on_report(3, mark(1), now), [Next::Settled { done: vec!["a"], delivered: false }]);
        assert_eq!(t.pending(), 0);
        assert!(t.on_report(9, mark(1), now).is_empty(), "an unknown mote has nothing pending");
    }
}
