//! Stage 2 as the node declares it (`aiot_actors::inference::declare`): two replicas of the
//! stage actor share `features` in one consumer group on the simulated event log, under the
//! deterministic executor, seed by seed. The model arrives as a control message
//! (`Stage2Control::Install`) sent to each replica by path, as the trainer's deployment does.
//!
//! The feature stream holds DSP vectors of a few motors: on the faulty ones the outer-race
//! band rises window by window; a few windows are flagged by the proxy (a stuck sensor), and
//! stage-1 vectors are mixed in. Checked for every seed:
//! - with both replicas, every window is read exactly once (the group splits the partitions; the
//!   log here has no faults, so nothing is redelivered);
//! - every faulty motor gets exactly one machine alert raised (then escalated once), with the
//!   installed model's version and the outer-race band as its evidence; healthy motors none;
//! - a flagged window raises a sensor-fault alert, never a machine-fault alert;
//! - a model of the wrong width is refused and counted, and the installed one stays;
//! - the capture-to-decision latency is reported for the scored windows.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::dsp::{DspConfig, DspFeatures};
use aiot_actors::inference::alerts::{AlertKind, AlertLevel, AlertRecord, AlertRule, ALERTS};
use aiot_actors::inference::features::{FeatureRecord, FeatureSource, FEATURES};
use aiot_actors::inference::stage2::Stage2Control;
use aiot_actors::inference::{self, InferenceConfig, InferenceStats};
use aiot_actors::ml::logistic::LogisticModel;
use aiot_actors::ml::scorer::Scorer;
use aiot_actors::ml::standardize::Standardizer;
use aiot_actors::ports::eventlog::adapter::{Log, LogLink};
use aiot_actors::ports::eventlog::{EventLog, Record, TopicPartition};
use aiot_actors::streams::stage::StageMsg;
use aiot_actors::streams::{mote_key, PARTITIONS};
use aiot_actors::things::sensor_faults::SensorFaults;
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{ActorRef, ClusterClock, SystemConfig, Topology};
use aiot_simulations::eventlog::{LogFaults, SimLog};
use ndarray::Array1;

const SEEDS: u64 = 20;
const MOTORS: u32 = 8;
const WINDOWS: u32 = 40;
/// Motors 1 and 2 are faulty.
const FAULTY: [u32; 2] = [1, 2];
/// Window 17 of motor 5 comes from a stuck vibration sensor.
const FLAGGED: (u32, u32) = (5, 17);
const MODEL_VERSION: u32 = 7;
const TICK: Duration = Duration::from_millis(10);
/// The cluster time at the system's start, Unix ms.
const ORIGIN_MS: u64 = 1_800_000_000_000;
/// The windows reach the log 1 s after the start; they were captured a minute apart before.
const ARRIVAL_MS: u64 = ORIGIN_MS + 1_000;
const DEADLINE: Duration = Duration::from_secs(120);

fn bpfo_index() -> usize {
    DspFeatures::NAMES.iter().position(|f| *f == "env_bpfo").expect("a named feature")
}

/// Log-odds `10 (env_bpfo - 0.5)`.
fn scorer(width: usize) -> Scorer {
    let mut coef = Array1::zeros(width);
    if width == DspFeatures::NAMES.len() {
        coef[bpfo_index()] = 10.0;
    }
    Scorer { standardizer: Standardizer::identity(width), model: LogisticModel { intercept: -5.0, coef } }
}

/// Motor `mote`'s window `seq`: the band grows from 0.1 to 0.98 on a faulty motor.
fn window(mote: u32, seq: u32) -> FeatureRecord {
    let mut values = vec![0.0; DspFeatures::NAMES.len()];
    let growth = if FAULTY.contains(&mote) { 0.88 * f64::from(seq) / f64::from(WINDOWS) } else { 0.0 };
    values[bpfo_index()] = 0.1 + growth;
    let faults = if (mote, seq) == FLAGGED { SensorFaults([0, 1, 0, 0]) } else { SensorFaults::default() };
    let capture_ms = ARRIVAL_MS - 60_000 * u64::from(WINDOWS - seq);
    FeatureRecord {
        mote,
        boot_epoch: 1,
        seq,
        capture_ms,
        received_ms: capture_ms + 20,
        source: FeatureSource::Dsp,
        faults,
        values,
    }
}

fn alerts(log: &SimLog) -> Vec<AlertRecord> {
    (0..PARTITIONS)
        .flat_map(|p| log.records(&TopicPartition::new(ALERTS, p)))
        .map(|r| AlertRecord::decode(&r.payload).expect("an alert record"))
        .collect()
}

fn run(seed: u64) -> Result<(), String> {
    let clock = ClusterClock { origin_ms: ORIGIN_MS, warp: 1.0 };
    let mut system = DetSystem::new(SystemConfig { clock, ..SystemConfig::with_seed(seed) });
    let log = SimLog::new(seed ^ 0x57a6e2, LogFaults::none(), Arc::new(|_| {}));
    log.create_topic(FEATURES, PARTITIONS).expect("a new log takes the topic");
    let link = LogLink::new();
    link.attach(Arc::new(log.client(link.sink())));
    system.install_port::<Log, _>(link.adapter()).expect("a fresh system has no log port");

    let stats = InferenceStats::default();
    let rule = AlertRule { threshold: 0.5, consecutive: 3, ..AlertRule::default() };
    let mut t = Topology::builder();
    let config = InferenceConfig {
        dsp: DspConfig::default(),
        dsp_replicas: 0,
        stage2_replicas: 2,
        rule,
        stats: stats.clone(),
    };
    inference::declare(&mut t, config);
    system.start(&t.build().expect("a valid topology")).expect("the replicas start");
    let replicas: Vec<ActorRef<StageMsg<Stage2Control>>> =
        ["/stage2-1", "/stage2-2"].iter().map(|p| ActorRef::parse(p).expect("a path")).collect();
    for replica in &replicas {
        let wrong = Stage2Control::Install { version: 99, scorer: Box::new(scorer(3)), rule };
        system.tell(replica, StageMsg::Control(wrong)).map_err(|e| e.to_string())?;
        let install = Stage2Control::Install {
            version: MODEL_VERSION,
            scorer: Box::new(scorer(DspFeatures::NAMES.len())),
            rule,
        };
        system.tell(replica, StageMsg::Control(install)).map_err(|e| e.to_string())?;
    }
    system.run_for(Duration::from_secs(1));

    let writer = log.client(Arc::new(|_| {}));
    let mut id = 0;
    for seq in 1..=WINDOWS {
        for mote in 1..=MOTORS {
            id += 1;
            let features = window(mote, seq);
            let mut record = Record::new(FEATURES, mote_key(mote), features.encode(), features.received_ms);
            if mote == 3 && seq % 10 == 0 {
                // A mote's stage-1 vector: stage 2 reads it and passes.
                let stage1 = FeatureRecord {
                    source: FeatureSource::Stage1 { model_version: 1, score: None },
                    ..features
                };
                record = Record::new(FEATURES, mote_key(mote), stage1.encode(), stage1.received_ms);
            }
            writer.append(id, record).expect("the log is up");
        }
    }
    let inputs = u64::from(MOTORS * WINDOWS);
    loop {
        system.run_for(TICK);
        let now = system.now().since_start();
        log.advance(now);
        if stats.stage2.done.load(Relaxed) >= inputs {
            break;
        }
        if now >= DEADLINE {
            return Err(format!(
                "{} of {inputs} windows done after {now:?}: {}",
                stats.stage2.done.load(Relaxed),
                stats.status()
            ));
        }
    }
    system.run_for(Duration::from_secs(1));
    log.advance(system.now().since_start());

    let read = stats.stage2.read.load(Relaxed);
    if read != inputs {
        return Err(format!("{read} reads of {inputs} windows: each must be read exactly once"));
    }
    let scoring = &stats.scoring;
    // Every DSP window but the flagged one and the stage-1 vectors is scored.
    let stage1 = u64::from(WINDOWS / 10);
    let expected_scored = inputs - 1 - stage1;
    let scored = scoring.scored.load(Relaxed);
    if scored != expected_scored || scoring.unscored.load(Relaxed) != 0 {
        return Err(format!("{scored} windows scored, expected {expected_scored}: {}", scoring.status()));
    }
    if stats.stage2.controls_refused.load(Relaxed) != 2
        || scoring.model_version.load(Relaxed) != u64::from(MODEL_VERSION)
    {
        return Err(format!(
            "the narrow model must be refused by both replicas and model {MODEL_VERSION} kept: {}",
            stats.status()
        ));
    }
    // Latency: the newest windows were captured at their arrival, the oldest 39 minutes
    // before; each is decided after it arrives, well within the run.
    let (newest, oldest) = (scoring.latency_quantile(0.0), scoring.latency_quantile(1.0));
    let backlog = 60_000 * u64::from(WINDOWS - 1);
    let in_run =
        |latency: Option<u64>, least: u64| latency.is_some_and(|ms| ms >= least && ms < least + 60_000);
    if !in_run(newest, 0) || !in_run(oldest, backlog) {
        return Err(format!("capture-to-decision latencies from {newest:?} to {oldest:?} ms"));
    }

    let mut by_motor: BTreeMap<u32, Vec<(AlertKind, AlertLevel)>> = BTreeMap::new();
    for alert in alerts(&log) {
        if alert.kind == AlertKind::Machine {
            if alert.model_version != MODEL_VERSION {
                return Err(format!("an alert by model {}, not {MODEL_VERSION}", alert.model_version));
            }
            if alert.evidence.first().map(|e| e.0.as_str()) != Some("env_bpfo") {
                return Err(format!("machine alert evidence {:?}", alert.evidence));
            }
        }
        by_motor.entry(alert.mote).or_default().push((alert.kind, alert.level));
    }
    let machine = |levels: &[(AlertKind, AlertLevel)]| -> Vec<AlertLevel> {
        levels.iter().filter(|(k, _)| *k == AlertKind::Machine).map(|(_, l)| *l).collect()
    };
    for mote in 1..=MOTORS {
        let levels = by_motor.get(&mote).cloned().unwrap_or_default();
        let expected =
            if FAULTY.contains(&mote) { vec![AlertLevel::Raised, AlertLevel::Escalated] } else { vec![] };
        if machine(&levels) != expected {
            return Err(format!(
                "motor {mote}: machine alerts {:?}, expected {expected:?}",
                machine(&levels)
            ));
        }
        let sensor: Vec<AlertLevel> =
            levels.iter().filter(|(k, _)| *k == AlertKind::Sensor).map(|(_, l)| *l).collect();
        let expected = if mote == FLAGGED.0 { vec![AlertLevel::Raised, AlertLevel::Cleared] } else { vec![] };
        if sensor != expected {
            return Err(format!("motor {mote}: sensor alerts {sensor:?}, expected {expected:?}"));
        }
    }
    Ok(())
}

#[test]
fn two_stage2_replicas_score_each_window_once_and_alert_with_the_installed_model() {
    let failures: Vec<String> =
        (1..=SEEDS).filter_map(|seed| run(seed).err().map(|e| format!("seed {seed}: {e}"))).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
