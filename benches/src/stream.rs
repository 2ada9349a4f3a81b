//! `aiot-bench stream`: the embedded event log against its baseline, plain appends and fsyncs to
//! one file, in the same run, at the same record sizes and the same durability.
//!
//! - **Append** (records acknowledged per second): N records of S bytes (payload; 16-byte key)
//!   appended to a one-partition topic of the embedded log under `FsyncPolicy::Always` (group
//!   commit, at most 1024 records per sync), timed from the first append to the last
//!   acknowledgement. Each record is framed (length, CRC-32C), encrypted (XChaCha20-Poly1305)
//!   and synced before its acknowledgement. Baseline: one thread appends the same records
//!   (key and payload with a length prefix, nothing else) to one file, one `write` and one
//!   `fdatasync` per 1024 records: the largest batch the log syncs at once, so the log syncs at
//!   least as often. No encryption, no CRC, no index, no threads.
//! - **Consume** (records delivered per second): a consumer reading the whole topic from the
//!   earliest offset (credit for all of it), timed from subscribing to the last record
//!   delivered: reads, CRC checks, decryption and delivery of owned records. Baseline: the same
//!   file read back in 1 MiB chunks, each record copied out as an owned key and payload.
//!   Both read from a warm page cache (written just before).
//!
//! Each figure is the median of `--runs` runs (after one warm-up), ours and the baseline's
//! interleaved, each run in a fresh directory. Ratio: ours/baseline, higher is better.
//!
//! Kafka: the Kafka adapter's figures (rdkafka on a Kafka-protocol broker, same sizes and
//! counts) are `stream_kafka.rs`, printed after this section by `run`.

// Host code (a benchmark): it reads the wall clock and waits on threads.
#![allow(clippy::disallowed_methods)]

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiot_actors::adapters::embedded_log::{EmbeddedLog, LogConfig, LogKey};
use aiot_actors::ports::eventlog::{
    AppendOutcome, ConsumerEvent, EventLog, LogError, Record, Start, Subscription,
};

/// `aiot-bench stream` options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Runs per figure; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Small sizes (a smoke test of a few seconds).
    #[arg(long)]
    pub quick: bool,
}

/// Records per sync: the log's group-commit batch and the baseline's write-and-fsync batch.
const BATCH: usize = 1024;
const KEY_LEN: usize = 16;
const TOPIC: &str = "bench";
/// How long one measurement may take before the benchmark fails.
const STEP_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Figures {
    append_per_s: f64,
    consume_per_s: f64,
}

pub fn run(args: &Args) -> Result<(), String> {
    for (size, full_count) in [(256usize, 200_000usize), (4096, 25_000)] {
        let count = if args.quick { full_count / 50 } else { full_count };
        let records = records(size, count);
        measure_ours(&records)?;
        measure_baseline(&records)?;
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..args.runs.max(1) {
            mine.push(measure_ours(&records)?);
            theirs.push(measure_baseline(&records)?);
        }
        report(size, count, &median(&mine), &median(&theirs));
    }
    crate::stream_kafka::kafka_section(args.quick, args.runs)
}

fn records(size: usize, count: usize) -> Vec<Record> {
    (0..count)
        .map(|i| {
            let key = format!("mote-{:011}", i % 100);
            let payload: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            Record::new(TOPIC, key.into_bytes(), payload, i as u64)
        })
        .collect()
}

fn median(runs: &[Figures]) -> Figures {
    let pick = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Figures {
        append_per_s: pick(runs.iter().map(|f| f.append_per_s).collect()),
        consume_per_s: pick(runs.iter().map(|f| f.consume_per_s).collect()),
    }
}

fn report(size: usize, count: usize, ours: &Figures, base: &Figures) {
    println!(
        "stream: {count} records of {size} B (+{KEY_LEN} B key), fsync per batch of <= {BATCH}; medians"
    );
    println!("{:<30} {:>14} {:>14} {:>10}", "figure", "aiot log", "file+fsync", "ratio");
    let mb = |per_s: f64| per_s * (size + KEY_LEN) as f64 / 1e6;
    for (name, a, b) in [
        ("append (records/s)", ours.append_per_s, base.append_per_s),
        ("consume (records/s)", ours.consume_per_s, base.consume_per_s),
    ] {
        println!("{name:<30} {a:>14.0} {b:>14.0} {:>10.2} (ours/baseline, higher is better)", a / b);
        println!("{:<30} {:>14.1} {:>14.1}", "  the same in MB/s", mb(a), mb(b));
    }
    println!();
}

/// Polls `done` until it holds, failing after `STEP_MAX`.
fn wait(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > STEP_MAX {
            return Err(format!("{what} did not finish in {STEP_MAX:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

fn measure_ours(records: &[Record]) -> Result<Figures, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let (a, f) = (Arc::clone(&acked), Arc::clone(&failed));
    let sink = Arc::new(move |outcome| {
        let counter = if matches!(outcome, AppendOutcome::Appended { .. }) { &a } else { &f };
        counter.fetch_add(1, Relaxed);
    });
    let config = LogConfig { max_batch: BATCH, ..LogConfig::new(LogKey([7; 32])) };
    let log = EmbeddedLog::open(dir.path(), config, sink).map_err(|e| e.to_string())?;
    log.create_topic(TOPIC, 1).map_err(|e| e.to_string())?;
    let total = records.len() as u64;

    let start = Instant::now();
    for (i, record) in records.iter().enumerate() {
        loop {
            match log.append(i as u64, record.clone()) {
                Ok(()) => break,
                Err(LogError::Full) => std::thread::yield_now(),
                Err(e) => return Err(format!("append {i}: {e}")),
            }
        }
    }
    wait("appending", || acked.load(Relaxed) + failed.load(Relaxed) == total)?;
    let append_s = start.elapsed().as_secs_f64();
    if failed.load(Relaxed) != 0 {
        return Err(format!("{} appends failed", failed.load(Relaxed)));
    }

    let delivered = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&delivered);
    let mut subscription = Subscription::all(&[TOPIC], "bench", Start::Earliest);
    subscription.credit = u32::MAX;
    let start = Instant::now();
    let _consumer = log
        .subscribe(
            subscription,
            Arc::new(move |event| {
                if let ConsumerEvent::Records(batch) = event {
                    d.fetch_add(batch.len() as u64, Relaxed);
                }
            }),
        )
        .map_err(|e| e.to_string())?;
    wait("consuming", || delivered.load(Relaxed) >= total)?;
    let consume_s = start.elapsed().as_secs_f64();
    Ok(Figures { append_per_s: total as f64 / append_s, consume_per_s: total as f64 / consume_s })
}

fn measure_baseline(records: &[Record]) -> Result<Figures, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("baseline.log");
    let io = |e: std::io::Error| format!("baseline file: {e}");
    let start = Instant::now();
    let mut file = File::create(&path).map_err(io)?;
    let mut buf = Vec::with_capacity(BATCH * (records[0].payload.len() + KEY_LEN + 8));
    for batch in records.chunks(BATCH) {
        buf.clear();
        for record in batch {
            buf.extend_from_slice(&(record.key.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
            buf.extend_from_slice(&record.key);
            buf.extend_from_slice(&record.payload);
        }
        file.write_all(&buf).map_err(io)?;
        file.sync_data().map_err(io)?;
    }
    let append_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let read = read_back(&path).map_err(io)?;
    let consume_s = start.elapsed().as_secs_f64();
    if read != records.len() {
        return Err(format!("the baseline read {read} of {} records", records.len()));
    }
    let total = records.len() as f64;
    Ok(Figures { append_per_s: total / append_s, consume_per_s: total / consume_s })
}

/// Reads the baseline file in 1 MiB chunks, copying each record out; returns how many.
fn read_back(path: &Path) -> std::io::Result<usize> {
    let mut file = File::open(path)?;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(records.len());
        }
        pending.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while pending.len() - at >= 8 {
            let key_len = u32::from_le_bytes(pending[at..at + 4].try_into().expect("4 bytes")) as usize;
            let len = u32::from_le_bytes(pending[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            if pending.len() - at < 8 + key_len + len {
                break;
            }
            let body = &pending[at + 8..at + 8 + key_len + len];
            records.push((body[..key_len].to_vec(), body[key_len..].to_vec()));
            at += 8 + key_len + len;
        }
        pending.drain(..at);
    }
}
