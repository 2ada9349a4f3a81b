//! Live message tracing of chosen actors (the shell's `trace ACTOR`): while a path is traced,
//! each message its actor handles is recorded (when, what kind of delivery, the message's
//! variant name) for a reader that polls. Reading starts the trace; a trace nobody reads
//! stops by itself once [`UNREAD_MAX`] events wait. An actor that is not traced pays one
//! relaxed atomic load per message.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::path::ActorPath;

/// Events kept unread per traced path; one more stops its trace.
pub const UNREAD_MAX: usize = 1000;

/// One message a traced actor handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Numbered from 1 per trace, so a reader asks for what came after the last it saw.
    pub seq: u64,
    /// When it was handled: the executor's time since the system started, µs.
    pub at_us: u64,
    /// `tell`, `port`, `reply`, `ask-timeout`, `timer` or `down`.
    pub kind: String,
    /// The message's variant name (its type name if it is not an enum).
    pub message: String,
}

/// The traced paths and their unread events.
#[derive(Default)]
pub(crate) struct Traces {
    paths: BTreeMap<ActorPath, Trace>,
}

#[derive(Default)]
struct Trace {
    events: VecDeque<TraceEvent>,
    next_seq: u64,
}

impl Traces {
    /// Starts tracing `path` if it is not yet; returns its events after `after_seq`, and
    /// forgets those.
    pub(crate) fn read(&mut self, path: &ActorPath, after_seq: u64) -> Vec<TraceEvent> {
        let trace =
            self.paths.entry(path.clone()).or_insert_with(|| Trace { next_seq: 1, ..Trace::default() });
        trace.events.drain(..).filter(|e| e.seq > after_seq).collect()
    }

    /// Records an event of `path`; false once its trace stopped (not traced, or unread too long).
    pub(crate) fn record(&mut self, path: &ActorPath, at_us: u64, kind: &str, message: &str) -> bool {
        let Some(trace) = self.paths.get_mut(path) else { return false };
        if trace.events.len() >= UNREAD_MAX {
            self.paths.remove(path);
            return false;
        }
        let seq = trace.next_seq;
        trace.next_seq += 1;
        trace.events.push_back(TraceEvent { seq, at_us, kind: kind.into(), message: message.into() });
        true
    }

    /// Stops tracing `path`.
    pub(crate) fn stop(&mut self, path: &ActorPath) {
        self.paths.remove(path);
    }
}

/// The variant name of `msg` (an enum's), else its type's name without the module path.
pub(crate) fn message_name<M: Serialize>(msg: &M) -> String {
    match serde_variant::to_variant_name(msg) {
        Ok(name) => name.to_string(),
        Err(_) => {
            let full = std::any::type_name::<M>();
            full.rsplit("::").next().unwrap_or(full).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    enum Msg {
        Tick,
        Count(u64),
        Set { value: u32 },
    }

    #[test]
    fn a_trace_numbers_its_events_and_stops_when_nobody_reads_it() {
        let path = ActorPath::parse("/counter").unwrap();
        let mut traces = Traces::default();
        assert!(!traces.record(&path, 1, "tell", "Tick"), "not traced before a read");
        assert!(traces.read(&path, 0).is_empty());
        assert!(traces.record(&path, 5, "tell", "Count"));
        assert!(traces.record(&path, 7, "timer", "Tick"));
        let events = traces.read(&path, 0);
        assert_eq!(
            events.iter().map(|e| (e.seq, e.at_us, e.message.as_str())).collect::<Vec<_>>(),
            [(1, 5, "Count"), (2, 7, "Tick")]
        );
        assert!(traces.read(&path, 2).is_empty(), "read events are forgotten");
        for i in 0..UNREAD_MAX {
            assert!(traces.record(&path, i as u64, "tell", "Tick"));
        }
        assert!(!traces.record(&path, 0, "tell", "Tick"), "unread too long: stopped");
        assert!(!traces.record(&path, 0, "tell", "Tick"));
    }

    #[test]
    fn messages_are_named_by_their_variant() {
        assert_eq!(message_name(&Msg::Tick), "Tick");
        assert_eq!(message_name(&Msg::Count(3)), "Count");
        assert_eq!(message_name(&Msg::Set { value: 1 }), "Set");
        assert_eq!(message_name(&17u32), "u32");
    }
}
