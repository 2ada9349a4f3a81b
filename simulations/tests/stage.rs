//! Stream stages (`aiot_actors::streams::stage`) against the simulated event log under log
//! faults, seed by seed, on the deterministic executor.
//!
//! The input topic holds numbered records of a few motes. Two replicas of one stage share it in
//! a consumer group; each input becomes one or two outputs (a few are refused as unusable).
//! Meanwhile the log is flaky (jitter, lost acknowledgements) and crashes now and then, and one
//! replica stops midway (its partitions move to the other). Checked for every seed:
//! - every output of every usable input reaches the output topic, and nothing else does;
//! - after de-duplication (first occurrence kept) each mote's outputs are in input order;
//! - every input ends up committed: a replica joining the group afterwards is assigned every
//!   partition and reads nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::ports::eventlog::adapter::{Log, LogLink};
use aiot_actors::ports::eventlog::{EventLog, Record, StoredRecord, TopicPartition};
use aiot_actors::streams::mote_key;
use aiot_actors::streams::stage::{NoControl, Output, Process, Stage, StageConfig, StageStats, StageTime};
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{ActorPath, ActorSpec, SystemConfig};
use aiot_simulations::eventlog::{LogFaults, SimLog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEEDS: u64 = 60;
const INPUT: &str = "numbers";
const OUTPUT: &str = "squares";
const PARTITIONS: u32 = 4;
const MOTES: u32 = 6;
const PER_MOTE: u32 = 60;
const TICK: Duration = Duration::from_millis(10);
const FAULTS_FOR: Duration = Duration::from_secs(40);
const DEADLINE: Duration = Duration::from_secs(600);

/// Refuses every 13th number; makes two outputs of every third, one of the others.
struct Squares;

fn decode(payload: &[u8]) -> Result<(u32, u32), String> {
    let bytes: [u8; 8] = payload.try_into().map_err(|_| format!("{} bytes, not 8", payload.len()))?;
    let [m0, m1, m2, m3, s0, s1, s2, s3] = bytes;
    Ok((u32::from_le_bytes([m0, m1, m2, m3]), u32::from_le_bytes([s0, s1, s2, s3])))
}

fn outputs_of(seq: u32) -> u32 {
    match seq {
        s if s % 13 == 0 => 0,
        s if s % 3 == 0 => 2,
        _ => 1,
    }
}

impl Process for Squares {
    type Control = NoControl;

    fn outputs(&self) -> Vec<&'static str> {
        vec![OUTPUT]
    }

    fn control(&mut self, control: NoControl) -> Result<(), String> {
        match control {}
    }

    fn process(&mut self, input: &StoredRecord, _at: StageTime, out: &mut Vec<Output>) -> Result<(), String> {
        let (mote, seq) = decode(&input.record.payload)?;
        if outputs_of(seq) == 0 {
            return Err(format!("{seq} is unlucky"));
        }
        for k in 0..outputs_of(seq) {
            let payload = [mote.to_le_bytes(), seq.to_le_bytes(), k.to_le_bytes()].concat();
            out.push(Output {
                mote,
                record: Record::new(OUTPUT, mote_key(mote), payload, input.record.timestamp_ms),
            });
        }
        Ok(())
    }
}

fn config(member: &str) -> StageConfig {
    StageConfig {
        inputs: vec![INPUT],
        group: "squares".into(),
        member: member.into(),
        partitions: PARTITIONS,
        in_flight: 16,
    }
}

fn spawn(system: &mut DetSystem, name: &str) -> Arc<StageStats> {
    let stats = Arc::new(StageStats::default());
    let shared = Arc::clone(&stats);
    let member = name.to_string();
    system
        .spawn(name, ActorSpec::new(move |_| Stage::new(Squares, config(&member), Arc::clone(&shared))))
        .expect("a stage starts");
    stats
}

/// Every (mote, seq, k) in the output topic, in each partition's order.
fn outputs(log: &SimLog) -> Result<Vec<(u32, u32, u32)>, String> {
    let mut all = Vec::new();
    for partition in 0..PARTITIONS {
        for record in log.records(&TopicPartition::new(OUTPUT, partition)) {
            let p = &record.payload;
            if p.len() != 12 {
                return Err(format!("an output of {} bytes", p.len()));
            }
            let word = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
            all.push((word(0), word(4), word(8)));
        }
    }
    Ok(all)
}

/// One seeded run; `Err` says what broke.
fn run(seed: u64) -> Result<u64, String> {
    let mut system = DetSystem::new(SystemConfig::with_seed(seed));
    let log = SimLog::new(seed ^ 0x5eed_57a6e, LogFaults::flaky(), Arc::new(|_| {}));
    log.create_topic(INPUT, PARTITIONS).expect("a new log takes the topic");
    let writer = log.client(Arc::new(|_| {}));
    let mut id = 0;
    for seq in 1..=PER_MOTE {
        for mote in 1..=MOTES {
            id += 1;
            let payload = [mote.to_le_bytes(), seq.to_le_bytes()].concat();
            writer.append(id, Record::new(INPUT, mote_key(mote), payload, 0)).expect("the log is up");
        }
    }
    log.advance(Duration::from_secs(1));

    let link = LogLink::new();
    link.attach(Arc::new(log.client(link.sink())));
    system.install_port::<Log, _>(link.adapter()).expect("a fresh system has no log port");
    let a = spawn(&mut system, "stage-a");
    let b = spawn(&mut system, "stage-b");

    let mut faults = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x57a6e);
    let mut next_crash = Some(Duration::from_millis(faults.random_range(300..5_000)));
    let mut restart_at: Option<Duration> = None;
    let mut stop_b_at = Some(Duration::from_millis(faults.random_range(500..20_000)));
    let expected: BTreeSet<(u32, u32, u32)> = (1..=MOTES)
        .flat_map(|m| (1..=PER_MOTE).flat_map(move |s| (0..outputs_of(s)).map(move |k| (m, s, k))))
        .collect();
    loop {
        system.run_for(TICK);
        let now = system.now().since_start();
        if stop_b_at.is_some_and(|at| now >= at) {
            stop_b_at = None;
            system.stop_subtree(&ActorPath::parse("/stage-b").expect("a path"));
        }
        if restart_at.is_some_and(|at| now >= at) {
            log.restart();
            restart_at = None;
            let gap = Duration::from_millis(faults.random_range(1_000..8_000));
            next_crash = Some(now + gap).filter(|at| *at < FAULTS_FOR);
        } else if next_crash.is_some_and(|at| now >= at) {
            log.crash();
            next_crash = None;
            restart_at = Some(now + Duration::from_millis(faults.random_range(500..=10_000)));
        }
        log.advance(now);
        let seen: BTreeSet<_> = outputs(&log)?.into_iter().collect();
        if now >= FAULTS_FOR && restart_at.is_none() && seen == expected {
            break;
        }
        if now >= DEADLINE {
            let missing = expected.difference(&seen).count();
            return Err(format!(
                "{missing} outputs missing after {now:?} ({}, {} partitions; {}, {} partitions)",
                a.status("stage-a"),
                a.assigned.load(Relaxed),
                b.status("stage-b"),
                b.assigned.load(Relaxed)
            ));
        }
    }

    // Outputs: nothing unexpected; per mote, first occurrences in input order.
    let mut firsts: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (mote, seq, k) in outputs(&log)? {
        if !expected.contains(&(mote, seq, k)) {
            return Err(format!("an output nobody should have made: mote {mote}, seq {seq}, k {k}"));
        }
        if seen.insert((mote, seq, k)) {
            firsts.entry(mote).or_default().push((seq, k));
        }
    }
    for (mote, order) in &firsts {
        if let Some(w) = order.windows(2).find(|w| w[0] > w[1]) {
            return Err(format!("mote {mote}'s outputs out of order: {:?} before {:?}", w[0], w[1]));
        }
    }

    // Commits: let them settle, then a newcomer takes every partition and finds nothing to do.
    let run_ticks = |system: &mut DetSystem, ticks: u32| {
        for _ in 0..ticks {
            system.run_for(TICK);
            log.advance(system.now().since_start());
        }
    };
    run_ticks(&mut system, 2_000);
    system.stop_subtree(&ActorPath::parse("/stage-a").expect("a path"));
    let late = spawn(&mut system, "stage-late");
    run_ticks(&mut system, 3_000);
    let (assigned, read) = (late.assigned.load(Relaxed), late.read.load(Relaxed));
    if assigned != u64::from(PARTITIONS) || read != 0 {
        return Err(format!(
            "a replica joining after the run was assigned {assigned} of {PARTITIONS} partitions and \
             read {read} records again: inputs left uncommitted"
        ));
    }
    let refused = a.refused.load(Relaxed) + b.refused.load(Relaxed);
    if refused < u64::from(MOTES * (PER_MOTE / 13)) {
        return Err(format!("only {refused} inputs refused: the unusable ones were not all read"));
    }
    Ok(log.stats().crashes)
}

#[test]
fn a_stage_makes_every_output_durable_in_order_and_commits_every_input_under_log_faults() {
    let mut failures = Vec::new();
    let mut crashes = 0;
    for seed in 1..=SEEDS {
        match run(seed) {
            Ok(c) => crashes += c,
            Err(why) => failures.push(format!("seed {seed}: {why}")),
        }
    }
    assert!(failures.is_empty(), "{} of {SEEDS} seeds failed:\n{}", failures.len(), failures.join("\n"));
    assert!(crashes >= SEEDS, "only {crashes} log crashes in {SEEDS} seeds: the faults did not happen");
}
