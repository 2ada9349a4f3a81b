//! The reader thread: feeds every consumer. Under the lock it takes each consumer's pending
//! events (rebalances) and plans reads within its credit from its positions; outside the lock
//! it delivers the events, reads and decrypts the frames, and, if no rebalance came in between,
//! advances the positions, spends the credit and delivers the records. One thread delivers
//! everything, so a consumer's events arrive in the order they were decided.

use std::sync::Arc;
use std::time::Duration;

use crate::ports::eventlog::{ConsumerEvent, ConsumerSink, LogError, StoredRecord, TopicPartition};

use super::frame;
use super::partition::ReadPlan;
use super::state::{Counters, Shared, State};

/// Records read per partition per round (also bounded by the consumer's credit).
const READ_MAX: usize = 512;
/// The pause after a failed read before trying again.
const READ_RETRY: Duration = Duration::from_millis(100);

struct Work {
    consumer: u64,
    generation: u64,
    sink: ConsumerSink,
    events: Vec<ConsumerEvent>,
    plans: Vec<(TopicPartition, ReadPlan)>,
}

/// Runs until the log closes.
pub fn run(shared: Arc<Shared>) {
    loop {
        let work = {
            let mut state = shared.state.lock();
            loop {
                if state.closed {
                    return;
                }
                let work = collect(&mut state);
                if !work.is_empty() {
                    break work;
                }
                shared.wake.wait(&mut state);
            }
        };
        let mut failed = false;
        for item in work {
            failed |= !deliver(&shared, item);
        }
        if failed {
            let mut state = shared.state.lock();
            if !state.closed {
                shared.wake.wait_for(&mut state, READ_RETRY);
            }
        }
    }
}

/// Takes pending events and plans reads for every consumer that has something to do.
fn collect(state: &mut State) -> Vec<Work> {
    let mut work = Vec::new();
    let State { consumers, topics, .. } = state;
    for (&id, consumer) in consumers.iter_mut() {
        let events = std::mem::take(&mut consumer.pending);
        let mut plans = Vec::new();
        let mut credit = consumer.credit as usize;
        for (place, position) in consumer.positions.iter_mut() {
            let Some(partition) = topics.get(&place.topic).and_then(|t| t.get(place.partition as usize))
            else {
                continue;
            };
            // Retention may have removed what this consumer had not read yet.
            *position = (*position).max(partition.earliest());
            if credit == 0 {
                break;
            }
            if let Some(plan) = partition.plan(*position, credit.min(READ_MAX)) {
                credit -= plan.frames.len();
                plans.push((place.clone(), plan));
            }
        }
        if !events.is_empty() || !plans.is_empty() {
            let sink = Arc::clone(&consumer.sink);
            work.push(Work { consumer: id, generation: consumer.generation, sink, events, plans });
        }
    }
    work
}

/// Delivers one consumer's events and records; false if a read failed (to be tried again).
fn deliver(shared: &Shared, work: Work) -> bool {
    for event in work.events {
        (work.sink)(event);
    }
    let mut all_read = true;
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut advanced = Vec::new();
    for (place, plan) in &work.plans {
        let (at, len) = plan.range();
        let bytes = match shared.storage.read(&plan.file, at, len) {
            Ok(bytes) if bytes.len() == len => bytes,
            // Removed by retention meanwhile (the next round starts after it), or a failing disk.
            result => {
                all_read = false;
                let why = result.map_or_else(|e| e.to_string(), |b| format!("{} of {len} bytes", b.len()));
                errors.push(LogError::Io(format!("reading {} at byte {at}: {why}", plan.file)));
                continue;
            }
        };
        for info in &plan.frames {
            let start = (info.pos - at) as usize;
            match frame::decode(&shared.sealer, place, &bytes[start..start + info.len as usize]) {
                Ok((offset, record)) => {
                    records.push(StoredRecord { partition: place.clone(), offset, record })
                }
                Err(why) => {
                    Counters::add(&shared.counters.corrupt, 1);
                    errors.push(LogError::Corrupt(format!(
                        "{} at byte {}: {why}; record skipped",
                        plan.file, info.pos
                    )));
                }
            }
        }
        let last = plan.frames.last().expect("plans are not empty");
        advanced.push((place.clone(), last.offset + 1, plan.frames.len() as u64));
    }
    {
        let mut state = shared.state.lock();
        let Some(consumer) = state.consumers.get_mut(&work.consumer) else { return all_read };
        if consumer.generation != work.generation {
            return all_read;
        }
        for (place, next, count) in advanced {
            consumer.positions.insert(place, next);
            consumer.credit = consumer.credit.saturating_sub(count);
        }
    }
    for error in errors {
        (work.sink)(ConsumerEvent::Error(error));
    }
    if !records.is_empty() {
        (work.sink)(ConsumerEvent::Records(records));
    }
    all_read
}
