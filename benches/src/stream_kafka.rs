//! The Kafka half of `aiot-bench stream`: our Kafka backend, through the `EventLog` trait as
//! actors use it, against raw rdkafka, both on a tansu broker this benchmark starts.
//!
//! Both sides get the same of everything but our layer:
//!
//! - **Configuration:** the raw clients are built from the very librdkafka configurations our
//!   backend builds its own from (`KafkaSettings::producer_config` / `consumer_config`):
//!   idempotent producer, acks=all, the consistent partitioner, the same queue bounds,
//!   librdkafka's default batching (`linger.ms` 5, `batch.num.messages` 10 000, no
//!   compression) and fetch settings, no auto-commit.
//! - **Records:** the same count, payload size (256 B and 4 KiB), keys (100 motes), timestamps
//!   and topic (4 partitions, created before either side's clients start), built before the
//!   clock starts. Ours receives them owned (`append` takes a `Record`), raw borrows them.
//! - **Append** (records acknowledged per second): each side first appends `WARM_UP` records and
//!   waits for their acknowledgements (connections, the idempotent producer's id, the topic's
//!   metadata), then the clock runs from the first timed append to the acknowledgement of the
//!   last; appends go as fast as the client queue takes them (`Full` / `QueueFull`: back off
//!   1 ms, retry). Ours counts `Appended` outcomes on its sink, raw its delivery reports.
//! - **Consume** (records delivered per second): an independent reader of every partition from
//!   the earliest offset (ours: `subscribe` with `Subscription::all`, credit for everything;
//!   raw: a `BaseConsumer` that reads the topic's metadata, `assign`s every partition and polls
//!   in a tight loop, touching each payload). The clock starts at the first delivery (ours: the
//!   first `Records` event, raw: the first message) and stops at the last record; what the
//!   first delivery carried is not counted. The time from creating the consumer to its first
//!   delivery is printed apart, as the consumer's start.
//!
//! Each figure is the median of `runs` runs after one warm-up run (a tenth of the records), ours
//! and raw interleaved, each on a fresh broker. Ratios: ours/raw, higher is better.
//!
//! What the first version of this benchmark got wrong (it showed ours 1.4x to 19x faster): the
//! raw side's timed regions began right after creating its clients, so they held two fixed
//! waits of librdkafka's of about 500 ms that our backend had already served before its clock
//! started: the idempotent producer's id request, retried on a 500 ms timer when no broker is
//! up yet as the producer starts (a race, `rdkafka_idempotence.c`), and the consumer's
//! start-offset query, put off by 500 ms for a partition assigned before its leader is known
//! (`rd_kafka_toppar_offset_request`; our consumer reads the topic's metadata before it
//! assigns).

// Host code (a benchmark): it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiot_actors::adapters::kafka::{KafkaLog, KafkaSettings};
use aiot_actors::adapters::tansu::Tansu;
use aiot_actors::ports::eventlog::{
    AppendOutcome, ConsumerEvent, EventLog, LogError, Record, Start, Subscription,
};
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

const KEYS: usize = 100;
const PARTITIONS: u32 = 4;
const TOPIC: &str = "bench";
/// Records each producer appends, and waits for, before its clock starts. The consumers read
/// them too (the topic holds `WARM_UP + n` records).
const WARM_UP: usize = 100;
/// Record timestamps: this instant (ms since the epoch) plus the record's index.
const EPOCH_MS: u64 = 1_750_000_000_000;
/// A step that takes longer has failed.
const STEP_MAX: Duration = Duration::from_secs(300);

/// One run's figures.
#[derive(Debug, Clone, Copy)]
struct Figures {
    /// Records acknowledged per second.
    append: f64,
    /// Records delivered per second.
    consume: f64,
    /// Milliseconds from creating the consumer to its first delivery (not in `consume`).
    consumer_start_ms: f64,
}

/// Runs the Kafka figures and prints their rows.
pub fn kafka_section(quick: bool, runs: usize) -> Result<(), String> {
    let runs = runs.max(1);
    for (size, full_count) in [(256usize, 200_000usize), (4096, 25_000)] {
        let count = if quick { full_count / 10 } else { full_count };
        // Each measurement on a fresh broker: tansu keeps everything in memory and slows as it
        // fills, so a shared one would favour whichever side ran first.
        let measure = |ours: bool, n: usize| -> Result<Figures, String> {
            let broker = Tansu::start()?;
            let settings = KafkaSettings::new(broker.bootstrap());
            create_topic(&settings)?;
            if ours {
                ours_run(&settings, size, n)
            } else {
                raw_run(&settings, size, n)
            }
        };
        measure(true, count / 10)?;
        measure(false, count / 10)?;
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            mine.push(measure(true, count)?);
            theirs.push(measure(false, count)?);
        }
        report(size, count, runs, &median(&mine), &median(&theirs));
    }
    Ok(())
}

fn report(size: usize, count: usize, runs: usize, ours: &Figures, raw: &Figures) {
    println!(
        "stream, kafka backend on tansu: {count} records of {size} B, {KEYS} keys, {PARTITIONS} \
         partitions, acks=all, idempotent, after {WARM_UP} warm-up records; medians of {runs} runs"
    );
    println!("{:<30} {:>12} {:>12} {:>8}", "figure", "aiot", "raw rdkafka", "ratio");
    let mb = |per_s: f64| per_s * size as f64 / 1e6;
    for (name, a, b) in [
        ("kafka append (records/s)", ours.append, raw.append),
        ("kafka consume (records/s)", ours.consume, raw.consume),
    ] {
        println!("{name:<30} {a:>12.0} {b:>12.0} {:>8.2} (ours/raw, higher is better)", a / b);
        println!("{:<30} {:>12.1} {:>12.1}", "  payload MB/s", mb(a), mb(b));
    }
    println!(
        "{:<30} {:>12.1} {:>12.1}          (not in the consume figure)",
        "consumer start (ms)", ours.consumer_start_ms, raw.consumer_start_ms
    );
    println!();
}

fn median(runs: &[Figures]) -> Figures {
    let pick = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Figures {
        append: pick(runs.iter().map(|f| f.append).collect()),
        consume: pick(runs.iter().map(|f| f.consume).collect()),
        consumer_start_ms: pick(runs.iter().map(|f| f.consumer_start_ms).collect()),
    }
}

fn key(i: usize) -> String {
    format!("mote-{}", i % KEYS)
}

fn payload(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|b| (b + i) as u8).collect()
}

fn timestamp(i: usize) -> u64 {
    EPOCH_MS + i as u64
}

fn record(i: usize, size: usize) -> Record {
    Record::new(TOPIC, key(i), payload(i, size), timestamp(i))
}

/// Creates the topic with a client of its own, dropped before either side's clients start.
fn create_topic(settings: &KafkaSettings) -> Result<(), String> {
    let log = KafkaLog::new(settings.clone(), Arc::new(|_| {})).map_err(|e| e.to_string())?;
    log.create_topic(TOPIC, PARTITIONS).map_err(|e| format!("create topic: {e}"))
}

/// Counts deliveries (acknowledgements or records) and notes when the first came and when the
/// expected total was reached, from the thread that delivers them.
struct Tally {
    count: AtomicU64,
    failed: AtomicU64,
    target: AtomicU64,
    /// When the first delivery came, and how many it brought.
    first: Mutex<Option<(Instant, u64)>>,
    reached: Mutex<Option<Instant>>,
}

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Tally {
            count: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            first: Mutex::new(None),
            reached: Mutex::new(None),
        })
    }

    /// Waits for a count of `total` from now on (set before what is to be counted starts).
    fn expect(&self, total: u64) {
        *self.reached.lock() = None;
        self.target.store(total, Ordering::SeqCst);
    }

    fn add(&self, delivered: u64) {
        let total = self.count.fetch_add(delivered, Ordering::SeqCst) + delivered;
        if total == delivered {
            *self.first.lock() = Some((Instant::now(), delivered));
        }
        if total >= self.target.load(Ordering::SeqCst) {
            self.reached.lock().get_or_insert_with(Instant::now);
        }
    }

    fn fail(&self) {
        self.failed.fetch_add(1, Ordering::SeqCst);
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// When the expected total was reached; fails on a failed delivery or after `STEP_MAX`.
    fn wait(&self, what: &str) -> Result<Instant, String> {
        let start = Instant::now();
        loop {
            let failed = self.failed.load(Ordering::SeqCst);
            if failed != 0 {
                return Err(format!("{what}: {failed} failed"));
            }
            if let Some(at) = *self.reached.lock() {
                return Ok(at);
            }
            if start.elapsed() > STEP_MAX {
                return Err(format!("{what}: {} after {STEP_MAX:?}", self.count()));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Records per second after the first delivery, until the total was reached.
    fn rate_after_first(&self, done: Instant, what: &str) -> Result<(Instant, f64), String> {
        let (first, carried) = self.first.lock().ok_or_else(|| format!("{what}: nothing delivered"))?;
        let counted = self.count().saturating_sub(carried);
        let seconds = done.duration_since(first).as_secs_f64();
        if counted == 0 || seconds <= 0.0 {
            return Err(format!("{what}: the first delivery brought every record; too few to time"));
        }
        Ok((first, counted as f64 / seconds))
    }
}

/// Our backend, as actors use it: `EventLog::append` and `EventLog::subscribe`.
fn ours_run(settings: &KafkaSettings, size: usize, n: usize) -> Result<Figures, String> {
    let total = WARM_UP + n;
    let acks = Tally::new();
    let sink_acks = Arc::clone(&acks);
    let log = KafkaLog::new(
        settings.clone(),
        Arc::new(move |outcome| match outcome {
            AppendOutcome::Appended { .. } => sink_acks.add(1),
            _ => sink_acks.fail(),
        }),
    )
    .map_err(|e| e.to_string())?;

    acks.expect(WARM_UP as u64);
    append_ours(&log, 0, (0..WARM_UP).map(|i| record(i, size)).collect(), size)?;
    acks.wait("ours: warm-up appends")?;

    let records: Vec<Record> = (WARM_UP..total).map(|i| record(i, size)).collect();
    acks.expect(total as u64);
    let start = Instant::now();
    append_ours(&log, WARM_UP, records, size)?;
    let done = acks.wait("ours: appends acknowledged")?;
    let append = n as f64 / done.duration_since(start).as_secs_f64();

    let delivered = Tally::new();
    delivered.expect(total as u64);
    let counted = Arc::clone(&delivered);
    let mut subscription = Subscription::all(&[TOPIC], "bench-reader", Start::Earliest);
    subscription.credit = u32::try_from(total).map_err(|e| e.to_string())?;
    let subscribed = Instant::now();
    let consumer = log
        .subscribe(
            subscription,
            Arc::new(move |event| {
                if let ConsumerEvent::Records(records) = event {
                    counted.add(records.len() as u64);
                }
            }),
        )
        .map_err(|e| e.to_string())?;
    let done = delivered.wait("ours: records consumed")?;
    drop(consumer);
    let (first, consume) = delivered.rate_after_first(done, "ours: consume")?;
    let consumer_start_ms = first.duration_since(subscribed).as_secs_f64() * 1e3;
    Ok(Figures { append, consume, consumer_start_ms })
}

/// Appends `records` (ids from `first_id`) as fast as the log takes them. `append` keeps the
/// record even when it refuses it (`Full`), so a refused one is made again (that is, off the
/// fast path: the loop then sleeps 1 ms anyway).
fn append_ours(log: &KafkaLog, first_id: usize, records: Vec<Record>, size: usize) -> Result<(), String> {
    for (id, record) in (first_id..).zip(records) {
        let mut record = record;
        loop {
            match log.append(id as u64, record) {
                Ok(()) => break,
                Err(LogError::Full) => {
                    std::thread::sleep(Duration::from_millis(1));
                    record = self::record(id, size);
                }
                Err(e) => return Err(format!("ours: append: {e}")),
            }
        }
    }
    Ok(())
}

/// The raw producer's delivery reports, counted.
struct Counting(Arc<Tally>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_ok() {
            self.0.add(1);
        } else {
            self.0.fail();
        }
    }
}

type RawProducer = ThreadedProducer<Counting>;

/// Raw rdkafka with our backend's librdkafka configurations: only our layer differs.
fn raw_run(settings: &KafkaSettings, size: usize, n: usize) -> Result<Figures, String> {
    let total = WARM_UP + n;
    let acks = Tally::new();
    let producer: RawProducer = settings
        .producer_config()
        .create_with_context(Counting(Arc::clone(&acks)))
        .map_err(|e| format!("raw producer: {e}"))?;

    let warm: Vec<(String, Vec<u8>)> = (0..WARM_UP).map(|i| (key(i), payload(i, size))).collect();
    acks.expect(WARM_UP as u64);
    send_raw(&producer, 0, &warm)?;
    acks.wait("raw: warm-up appends")?;

    let records: Vec<(String, Vec<u8>)> = (WARM_UP..total).map(|i| (key(i), payload(i, size))).collect();
    acks.expect(total as u64);
    let start = Instant::now();
    send_raw(&producer, WARM_UP, &records)?;
    let done = acks.wait("raw: appends acknowledged")?;
    let append = n as f64 / done.duration_since(start).as_secs_f64();

    let subscribed = Instant::now();
    let consumer: BaseConsumer =
        settings.consumer_config(None, "bench-raw").create().map_err(|e| format!("raw consumer: {e}"))?;
    // Like any reader of every partition (and like ours): the partitions from the metadata,
    // which also tells the client each partition's leader before it is assigned.
    let metadata =
        consumer.fetch_metadata(Some(TOPIC), settings.request_timeout).map_err(|e| format!("raw: {e}"))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == TOPIC)
        .map(|t| t.partitions().len())
        .ok_or("raw: the topic is not in the metadata")?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment.add_partition_offset(TOPIC, partition, Offset::Beginning).map_err(|e| e.to_string())?;
    }
    consumer.assign(&assignment).map_err(|e| format!("raw assign: {e}"))?;
    // The idiomatic loop: poll, touch the payload, count; the clock read only at the first
    // record and the last.
    let (mut count, mut bytes, mut first) = (0usize, 0usize, None);
    while count < total {
        if subscribed.elapsed() > STEP_MAX {
            return Err(format!("raw: {count} of {total} records consumed after {STEP_MAX:?}"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                bytes += message.payload().map_or(0, <[u8]>::len);
                count += 1;
                if first.is_none() {
                    first = Some(Instant::now());
                }
            }
            Some(Err(e)) => return Err(format!("raw poll: {e}")),
            None => {}
        }
    }
    let done = Instant::now();
    if bytes != total * size {
        return Err(format!("raw: read {bytes} payload bytes, expected {}", total * size));
    }
    let first = first.ok_or("raw: nothing consumed")?;
    // The first record is not counted: the clock starts as it is delivered.
    let consume = (total - 1) as f64 / done.duration_since(first).as_secs_f64();
    let consumer_start_ms = first.duration_since(subscribed).as_secs_f64() * 1e3;
    Ok(Figures { append, consume, consumer_start_ms })
}

/// Sends `records` (indices from `first`) as fast as the producer's queue takes them.
fn send_raw(producer: &RawProducer, first: usize, records: &[(String, Vec<u8>)]) -> Result<(), String> {
    for (i, (key, payload)) in (first..).zip(records) {
        let mut record =
            BaseRecord::to(TOPIC).key(key.as_bytes()).payload(&payload[..]).timestamp(timestamp(i) as i64);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("raw send: {e}")),
            }
        }
    }
    Ok(())
}
