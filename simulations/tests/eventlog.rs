//! The simulated event log against the event-log conformance suite (the same suite the embedded
//! log and the Kafka adapter pass), perfect and flaky, over many seeds; plus what only the model
//! shows on demand: lost acknowledgements that store a retried record twice, outages, and
//! redelivery after a rebalance.

use std::sync::Arc;
use std::time::Duration;

use aiot_actors::ports::eventlog::conformance::{self, outcome_recorder, LabLog, LogLab, Outcomes};
use aiot_actors::ports::eventlog::{
    AppendOutcome, EventLog, LogError, Record, Start, Subscription, TopicPartition,
};
use aiot_simulations::eventlog::{LogFaults, SimLog};

/// Virtual time: `wait_until` steps 10 ms at a time for up to a simulated minute.
struct SimLab {
    log: SimLog,
    outcomes: Outcomes,
}

impl SimLab {
    fn new(seed: u64, faults: LogFaults) -> Self {
        let (outcomes, sink) = outcome_recorder();
        SimLab { log: SimLog::new(seed, faults, sink), outcomes }
    }

    fn step(&mut self) {
        let to = self.log.now() + Duration::from_millis(10);
        self.log.advance(to);
    }
}

impl LogLab for SimLab {
    fn log(&mut self) -> LabLog {
        LabLog { log: Arc::new(self.log.clone()), outcomes: Arc::clone(&self.outcomes) }
    }

    /// An outage and its end: what was stored and committed stays.
    fn restart(&mut self) -> bool {
        self.log.crash();
        self.log.restart();
        true
    }

    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> bool {
        for _ in 0..6000 {
            if done() {
                return true;
            }
            self.step();
        }
        done()
    }

    fn settle(&mut self) {
        for _ in 0..500 {
            self.step();
        }
    }
}

#[test]
fn a_perfect_simulated_log_passes_the_conformance_suite() {
    conformance::run_all(&mut SimLab::new(1, LogFaults::none()), "conf");
}

#[test]
fn a_jittery_simulated_log_passes_the_conformance_suite_for_many_seeds() {
    for seed in 0..20 {
        let faults = LogFaults { ack_loss: 0.0, ..LogFaults::flaky() };
        conformance::run_all(&mut SimLab::new(seed, faults), "conf");
    }
}

fn record(key: &str, n: u32) -> Record {
    Record::new("t", key.as_bytes().to_vec(), n.to_le_bytes().to_vec(), u64::from(n))
}

#[test]
fn a_lost_acknowledgement_reports_failure_for_a_stored_record() {
    let mut lab = SimLab::new(3, LogFaults { ack_loss: 0.3, ..LogFaults::none() });
    lab.log.create_topic("t", 1).unwrap();
    for n in 0..200 {
        lab.log.append(u64::from(n), record("mote-1", n)).unwrap();
    }
    let outcomes = Arc::clone(&lab.outcomes);
    assert!(lab.wait_until(&mut || outcomes.lock().len() == 200));
    let failed = outcomes.lock().iter().filter(|o| matches!(o, AppendOutcome::AppendFailed { .. })).count();
    assert!(failed > 20, "about 30% of acknowledgements should be lost, {failed} were");
    assert_eq!(
        lab.log.records(&TopicPartition::new("t", 0)).len(),
        200,
        "every record was stored all the same"
    );
    assert_eq!(lab.log.stats().acks_lost, failed as u64);
}

#[test]
fn an_outage_refuses_appends_and_keeps_what_was_acknowledged() {
    let mut lab = SimLab::new(4, LogFaults::none());
    lab.log.create_topic("t", 2).unwrap();
    let reader = conformance::subscribe(&lab.log(), Subscription::all(&["t"], "r", Start::Earliest)).unwrap();
    for n in 0..10 {
        lab.log.append(u64::from(n), record(&format!("mote-{n}"), n)).unwrap();
    }
    let outcomes = Arc::clone(&lab.outcomes);
    assert!(lab.wait_until(&mut || outcomes.lock().len() == 10));
    for n in 10..15 {
        lab.log.append(u64::from(n), record(&format!("mote-{n}"), n)).unwrap();
    }
    lab.log.crash();
    assert!(matches!(lab.log.append(99, record("mote-1", 99)), Err(LogError::Unavailable(_))));
    lab.settle();
    let acknowledged: Vec<(TopicPartition, u64)> = outcomes
        .lock()
        .iter()
        .filter_map(|o| match o {
            AppendOutcome::Appended { partition, offset, .. } => Some((partition.clone(), *offset)),
            _ => None,
        })
        .collect();
    assert_eq!(acknowledged.len(), 10, "appends in flight at the outage fail: {:?}", outcomes.lock());
    assert_eq!(outcomes.lock().len(), 15);
    assert!(reader
        .events
        .lock()
        .iter()
        .any(|e| matches!(e, aiot_actors::ports::eventlog::ConsumerEvent::Error(_))));
    lab.log.restart();
    let delivered = || reader.records().iter().map(|r| (r.partition.clone(), r.offset)).collect::<Vec<_>>();
    assert!(lab.wait_until(&mut || acknowledged.iter().all(|a| delivered().contains(a))));
}
