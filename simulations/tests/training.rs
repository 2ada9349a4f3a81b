//! The training pipeline and stage 2 together on the simulated event log, under the
//! deterministic executor: the `features` stream holds 60 hourly DSP windows of 16 motors, the
//! `maintenance` stream the failures of the 6 faulty ones (their outer-race band rose before).
//! The pipeline's actors read both, label by the maintenance log only, fit, and install the
//! model on both stage-2 replicas; fresh windows of a motor going bad then raise an alert by
//! that model. Checked:
//! - the ingest step keeps every DSP window once (a copy in the stream is skipped) and the
//!   flagged window stays out of the training data;
//! - the first training comes when scheduled, with a held-out AUC near 1, and installs model 1
//!   on both replicas (the status says so);
//! - a motor whose band rises after that is alerted by model 1, a healthy one is not;
//! - the drift monitor, given the training's time as its reference, finds a load shift (four
//!   features move for every motor), asks the crew (through a stand-in `/gateway`) to inspect
//!   every motor heard from that day, and has the trainer retrain: model 2 reaches both
//!   replicas;
//! - the crew's inspections of the alerted motor then turn from confirming its defect to
//!   finding it healthy: the monitor's Page-Hinkley test on stage 2's errors fires once and the
//!   pipeline runs at once (model 3);
//! - the pipeline ran three times, every step done once, and its status says why each ran.
//!
//! The run is made twice: the trainer numbering its models, and with the registry, which
//! gives each version and stores each release (stage 2's model in its signed card, the motes'
//! int8 model trained on the stage-1 vectors the motes reported with each window) before
//! stage 2 installs it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::deploy::canary::{COMPARED_AUC, COMPARED_AUC_CURRENT};
use aiot_actors::deploy::deployer::{DeployState, DeployerMsg};
use aiot_actors::deploy::rollout::Phase;
use aiot_actors::dsp::{DspConfig, DspFeatures};
use aiot_actors::inference::alerts::{AlertKind, AlertLevel, AlertRecord, AlertRule, ALERTS};
use aiot_actors::inference::features::{FeatureRecord, FeatureSource, FEATURES};
use aiot_actors::inference::{self, InferenceConfig, InferenceStats};
use aiot_actors::maintenance::{Defect, Finding, MaintenanceEvent, MaintenanceRecord};
use aiot_actors::pipeline::run::StepState;
use aiot_actors::ports::eventlog::adapter::{Log, LogLink};
use aiot_actors::ports::eventlog::{EventLog, Record, TopicPartition};
use aiot_actors::registry::service::{Registry, RegistryKeys, RegistryMsg, RegistryStats};
use aiot_actors::streams::{mote_key, MAINTENANCE, PARTITIONS};
use aiot_actors::things::gateway::GatewayMsg;
use aiot_actors::things::sensor_faults::SensorFaults;
use aiot_actors::training::monitor::MonitorConfig;
use aiot_actors::training::TrainerConfig;
use aiot_actors::training::{self, TrainingStats};
use aiot_firmware::features::FEATURE_COUNT;
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{Actor, ActorError, ActorRef, ClusterClock, Ctx, SystemConfig, Topology};
use aiot_simulations::eventlog::{LogFaults, SimLog};
use ed25519_dalek::SigningKey;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEEDS: u64 = 5;
const HOUR: u64 = 3_600_000;
/// The first window's time, Unix ms.
const T0: u64 = 1_800_000_000_000;
/// The cluster's start: ten days after the first window, so the healthy windows' label horizon
/// (7 days) has passed.
const ORIGIN_MS: u64 = T0 + 240 * HOUR;
const MOTORS: u32 = 16;
const FAULTY: std::ops::RangeInclusive<u32> = 1..=6;
const HOURS: u32 = 60;
/// A healthy motor's window with a stuck sensor.
const FLAGGED: (u32, u32) = (12, 30);
const TICK: Duration = Duration::from_millis(100);

fn bpfo() -> usize {
    DspFeatures::NAMES.iter().position(|f| *f == "env_bpfo").expect("a named feature")
}

/// Stands in for the gateway: records the motors the crew is asked to inspect.
struct Crew(Arc<Mutex<Vec<u32>>>);

impl Actor for Crew {
    type Msg = GatewayMsg;

    fn handle(&mut self, msg: GatewayMsg, _ctx: &mut Ctx<'_, GatewayMsg>) -> Result<(), ActorError> {
        if let GatewayMsg::Inspect(request) = msg {
            self.0.lock().push(request.mote);
        }
        Ok(())
    }
}

/// Stands in for the deployer: records each release it is asked to roll out and answers that
/// it is installed on the fleet.
struct Fleet(Arc<Mutex<Vec<u32>>>);

impl Actor for Fleet {
    type Msg = DeployerMsg;

    fn handle(&mut self, msg: DeployerMsg, ctx: &mut Ctx<'_, DeployerMsg>) -> Result<(), ActorError> {
        if let DeployerMsg::Deploy { version, reply } = msg {
            self.0.lock().push(version);
            let _ = ctx.reply(&reply, DeployState::Rolling(Phase::Installed));
        }
        Ok(())
    }
}

/// A DSP window: every feature noise around 0.3, the outer-race band around `band`, and the
/// first four features `shift` higher (a new load regime).
fn window(mote: u32, seq: u32, time_ms: u64, band: f64, shift: f64, rng: &mut ChaCha8Rng) -> FeatureRecord {
    let mut values: Vec<f64> =
        (0..DspFeatures::NAMES.len()).map(|_| 0.3 + rng.random_range(-0.05..0.05)).collect();
    values[bpfo()] = band + rng.random_range(-0.05..0.05);
    values[..4].iter_mut().for_each(|v| *v += shift);
    let faults = if (mote, seq) == FLAGGED { SensorFaults([0, 1, 0, 0]) } else { SensorFaults::default() };
    FeatureRecord {
        mote,
        boot_epoch: 1,
        seq,
        capture_ms: time_ms - 50,
        received_ms: time_ms,
        source: FeatureSource::Dsp,
        faults,
        values,
    }
}

fn append(log: &SimLog, id: &mut u64, topic: &str, mote: u32, payload: Vec<u8>, time_ms: u64) {
    *id += 1;
    log.append(*id, Record::new(topic, mote_key(mote), payload, time_ms)).expect("the log is up");
}

fn alerts(log: &SimLog) -> Vec<AlertRecord> {
    (0..PARTITIONS)
        .flat_map(|p| log.records(&TopicPartition::new(ALERTS, p)))
        .map(|r| AlertRecord::decode(&r.payload).expect("an alert record"))
        .collect()
}

/// Runs the system (and the log's clock) until `done` or `limit` of executor time.
fn run_until(system: &mut DetSystem, log: &SimLog, limit: Duration, done: impl Fn() -> bool) -> bool {
    let until = system.now().since_start() + limit;
    while system.now().since_start() < until {
        system.run_for(TICK);
        log.advance(system.now().since_start());
        if done() {
            return true;
        }
    }
    false
}

/// A mote's stage-1 vector (the firmware's features): noise, the first one `band` high.
fn stage1(features: &FeatureRecord, band: f64, rng: &mut ChaCha8Rng) -> FeatureRecord {
    let mut values: Vec<f64> = (0..FEATURE_COUNT).map(|_| 1.0 + rng.random_range(-0.1..0.1)).collect();
    values[0] = band + rng.random_range(-0.05..0.05);
    // Its own frame: the report before the raw window.
    let source = FeatureSource::Stage1 { model_version: 0, score: None };
    FeatureRecord { seq: features.seq + 100_000, source, values, ..features.clone() }
}

fn run(seed: u64, registry: bool) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let clock = ClusterClock { origin_ms: ORIGIN_MS, warp: 1.0 };
    let mut system = DetSystem::new(SystemConfig { clock, ..SystemConfig::with_seed(seed) });
    let log = SimLog::new(seed ^ 0x7a1e, LogFaults::none(), Arc::new(|_| {}));
    let writer = log.client(Arc::new(|_| {}));
    for topic in [FEATURES, MAINTENANCE] {
        log.create_topic(topic, PARTITIONS).expect("a new log takes the topic");
    }
    let mut id = 0;
    for hour in 0..HOURS {
        for mote in 1..=MOTORS {
            let band =
                if FAULTY.contains(&mote) { 0.2 + 0.6 * f64::from(hour) / f64::from(HOURS - 1) } else { 0.2 };
            let features = window(mote, hour + 1, T0 + u64::from(hour) * HOUR, band, 0.0, &mut rng);
            append(&writer, &mut id, FEATURES, mote, features.encode(), features.received_ms);
            let report = stage1(&features, band, &mut rng);
            append(&writer, &mut id, FEATURES, mote, report.encode(), report.received_ms);
            if (mote, hour) == (2, 10) {
                // A copy, as an at-least-once stream may hold.
                append(&writer, &mut id, FEATURES, mote, features.encode(), features.received_ms);
            }
        }
    }
    for mote in FAULTY {
        let failure = MaintenanceRecord {
            mote,
            time_ms: T0 + u64::from(HOURS + 2) * HOUR,
            event: MaintenanceEvent::Failure { defect: Defect::OuterRace },
        };
        append(&writer, &mut id, MAINTENANCE, mote, failure.to_json(), failure.time_ms);
    }

    let link = LogLink::new();
    link.attach(Arc::new(log.client(link.sink())));
    system.install_port::<Log, _>(link.adapter()).expect("a fresh system has no log port");
    let stats = InferenceStats::default();
    let training_stats = TrainingStats::default();
    let trainer_stats = Arc::clone(&training_stats.trainer);
    let monitor_stats = Arc::clone(&training_stats.monitor);
    let mut t = Topology::builder();
    let rule = AlertRule { consecutive: 3, ..AlertRule::default() };
    let config = InferenceConfig {
        dsp: DspConfig::default(),
        dsp_replicas: 0,
        stage2_replicas: 2,
        rule,
        stats: stats.clone(),
    };
    inference::declare(&mut t, config);
    let trainer = TrainerConfig {
        rule,
        first_after: Duration::from_secs(60),
        replicas: vec!["/stage2-1".into(), "/stage2-2".into()],
        registry: registry.then(|| "/registry".into()),
        deployer: registry.then(|| "/deployer".into()),
        ..TrainerConfig::default()
    };
    let registry_stats = Arc::new(RegistryStats::default());
    let deployed = Arc::new(Mutex::new(Vec::new()));
    if registry {
        let fleet = Arc::clone(&deployed);
        t.actor("/deployer", move |_| Fleet(Arc::clone(&fleet)));
        let keys = RegistryKeys { storage: [5; 32], signing: SigningKey::from_bytes(&[6; 32]) };
        let stats = Arc::clone(&registry_stats);
        t.actor("/registry", move |_| Registry::new(keys.clone(), Arc::clone(&stats)));
    }
    let monitor =
        MonitorConfig { reference_span: Duration::from_secs(12 * 24 * 3600), ..MonitorConfig::default() };
    training::declare(&mut t, trainer, monitor, training_stats.clone());
    let inspected = Arc::new(Mutex::new(Vec::new()));
    let crew = Arc::clone(&inspected);
    t.actor("/gateway", move |_| Crew(Arc::clone(&crew)));
    system.start(&t.build().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;

    // Before its first training (a minute of cluster time) the trainer has read everything.
    let windows = u64::from(MOTORS * HOURS);
    let read = run_until(&mut system, &log, Duration::from_secs(50), || {
        trainer_stats.windows.load(Relaxed) == windows
    });
    if !read || trainer_stats.outcomes.load(Relaxed) != 6 || trainer_stats.trainings.load(Relaxed) != 0 {
        return Err(format!(
            "before training: {} (expected {windows} windows, 6 outcomes)",
            trainer_stats.status()
        ));
    }
    let trained = run_until(&mut system, &log, Duration::from_secs(90), || {
        stats.scoring.model_version.load(Relaxed) == 1
    });
    let last = trainer_stats.last.lock().clone().unwrap_or_default();
    let registered =
        !registry || (last.ends_with("; registered") && registry_stats.registered.load(Relaxed) == 1);
    if !trained
        || !registered
        || !last.starts_with(
            "model 1 (scheduled): 360 positive, 599 negative windows (0 unlabelled, 1 flagged left out)",
        )
    {
        return Err(format!("first training: {} | {}", trainer_stats.status(), stats.status()));
    }
    let auc: f64 = last
        .split("held-out AUC ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or(0.0);
    if auc < 0.95 {
        return Err(format!("held-out AUC {auc} in: {last}"));
    }

    // Fresh windows: motor 17's band jumps, motor 18 stays healthy. Stage 2 has read the
    // DSP windows, their copy and the stage-1 reports so far, then these 24.
    for hour in 0..12 {
        let time_ms = ORIGIN_MS + u64::from(hour) * HOUR;
        for (mote, band) in [(17, if hour < 4 { 0.2 } else { 0.9 }), (18, 0.2)] {
            let features = window(mote, hour + 1, time_ms, band, 0.0, &mut rng);
            append(&writer, &mut id, FEATURES, mote, features.encode(), features.received_ms);
        }
    }
    let alerted = run_until(&mut system, &log, Duration::from_secs(20), || {
        stats.stage2.done.load(Relaxed) >= 2 * windows + 1 + 24
    });
    let machine: Vec<(u32, AlertLevel, u32)> = alerts(&log)
        .into_iter()
        .filter(|a| a.kind == AlertKind::Machine)
        .map(|a| (a.mote, a.level, a.model_version))
        .collect();
    if !alerted || machine.first() != Some(&(17, AlertLevel::Raised, 1)) || machine.iter().any(|a| a.0 != 17)
    {
        return Err(format!("machine alerts {machine:?} after the fresh windows: {}", stats.status()));
    }
    // The alert names the fault by its evidence (the outer-race band) and puts the band far
    // above the fleet's (2 sd: the fleet holds the six faulty motors too).
    let raised = alerts(&log).into_iter().find(|a| a.kind == AlertKind::Machine).expect("checked above");
    let context = raised.context.clone().unwrap_or_else(|| panic!("no context: {raised:?}"));
    let bpfo_z = context.fleet_z.iter().find(|(f, _)| f == "env_bpfo").map(|(_, z)| *z);
    if context.fault != Some(Defect::OuterRace) || !bpfo_z.is_some_and(|z| z > 2.0) {
        return Err(format!("the alert's context: {}", context.describe()));
    }

    // A new load regime from hour 12 on: every motor's first four features move. The windows
    // arrive hour by hour, as they would live.
    for hour in 12..24 {
        let time_ms = ORIGIN_MS + u64::from(hour) * HOUR;
        for mote in 1..=MOTORS {
            let features = window(mote, HOURS + hour + 1, time_ms, 0.2, 0.3, &mut rng);
            append(&writer, &mut id, FEATURES, mote, features.encode(), features.received_ms);
        }
        run_until(&mut system, &log, Duration::from_secs(1), || false);
    }
    let found =
        run_until(&mut system, &log, Duration::from_secs(20), || monitor_stats.drifts.load(Relaxed) == 1);
    let mut asked = inspected.lock().clone();
    asked.sort_unstable();
    let heard: Vec<u32> = (1..=MOTORS + 2).collect();
    if !found || asked != heard {
        return Err(format!("after the shift: inspections asked for {asked:?}: {}", monitor_stats.status()));
    }
    let last = monitor_stats.last.lock().clone().unwrap_or_default();
    let moved: Vec<&str> = DspFeatures::NAMES[..4].to_vec();
    if !moved.iter().all(|f| last.contains(f)) {
        return Err(format!(
            "the drift's evidence does not name the features that moved ({moved:?}): {last}"
        ));
    }
    // The crew answers every request of a running motor (motor 17's defect found, the others
    // healthy; motors 1 to 6 failed and are not repaired yet): the retrain command follows once
    // the answers are read, not after `retrain_after` (2 hours).
    let answered_ms = ORIGIN_MS + 24 * HOUR;
    for &mote in asked.iter().filter(|m| !FAULTY.contains(m)) {
        let findings =
            if mote == 17 { vec![Finding { defect: Defect::OuterRace, severity: 0.4 }] } else { Vec::new() };
        let event = MaintenanceEvent::Inspection { findings, requested: true };
        let outcome = MaintenanceRecord { mote, time_ms: answered_ms, event };
        append(&writer, &mut id, MAINTENANCE, mote, outcome.to_json(), outcome.time_ms);
    }
    let retrained = run_until(&mut system, &log, Duration::from_secs(700), || {
        stats.scoring.model_version.load(Relaxed) == 2
    });
    let last = trainer_stats.last.lock().clone().unwrap_or_default();
    let registered = !registry || registry_stats.registered.load(Relaxed) == 2;
    if !retrained
        || !registered
        || !last.starts_with("model 2 (drift at ")
        || monitor_stats.retrains_requested.load(Relaxed) != 1
    {
        return Err(format!(
            "after the drift: {} | {} | {}",
            trainer_stats.status(),
            monitor_stats.status(),
            stats.status()
        ));
    }
    // The crew's outcomes after model 2's training, all of motor 17, which stage 2 alerted on
    // (one motor: one partition, read in order): 30 inspections that find its defect (right),
    // then 15 that find it healthy (false alarms): Page-Hinkley finds the error rate risen, and
    // the trainer retrains at once.
    let trained_ms = ORIGIN_MS + 30 * HOUR;
    for i in 0..45u64 {
        let findings =
            if i < 30 { vec![Finding { defect: Defect::OuterRace, severity: 0.4 }] } else { Vec::new() };
        let event = MaintenanceEvent::Inspection { findings, requested: false };
        let outcome = MaintenanceRecord { mote: 17, time_ms: trained_ms + i * 60_000, event };
        append(&writer, &mut id, MAINTENANCE, 17, outcome.to_json(), outcome.time_ms);
    }
    let alarmed = run_until(&mut system, &log, Duration::from_secs(20), || {
        stats.scoring.model_version.load(Relaxed) == 3
    });
    let last = trainer_stats.last.lock().clone().unwrap_or_default();
    if !alarmed
        || monitor_stats.error_alarms.load(Relaxed) != 1
        || !last.starts_with("model 3 (error rate rose at ")
    {
        return Err(format!(
            "after the false alarms: {} | {}",
            trainer_stats.status(),
            monitor_stats.status()
        ));
    }
    let pipeline = training_stats.pipeline.lock().clone();
    let mut expected = vec!["ingest", "extract", "drift-check", "train", "validate", "quantize", "register"];
    if registry {
        expected.push("deploy");
    }
    let reasons: Vec<&str> = pipeline.recent.iter().map(|run| run.reason.as_str()).collect();
    let all_done = pipeline.recent.iter().all(|run| {
        let names: Vec<&str> = run.steps.iter().map(|(name, _)| name.as_str()).collect();
        names == expected && run.steps.iter().all(|(_, s)| matches!(s, StepState::Done { attempts: 1, .. }))
    });
    if (pipeline.runs, pipeline.succeeded, pipeline.retries) != (3, 3, 0)
        || !all_done
        || reasons[0] != "scheduled"
        || !reasons[1].starts_with("drift at ")
        || !reasons[2].starts_with("error rate rose at ")
    {
        return Err(format!("the pipeline's runs: {pipeline:#?}"));
    }
    if registry {
        check_stored(&mut system, &log, &stats)?;
        // Each release was handed to the deployer once: it answered that it is installed.
        let deployed = deployed.lock().clone();
        if deployed != [1, 2, 3] {
            return Err(format!("releases handed to the deployer: {deployed:?}"));
        }
    }
    Ok(())
}

/// With a registry: model 2 as stored is signed by the registry's key, holds stage 2's model
/// with the threshold it alerts by, and the motes' int8 model met its quality targets.
fn check_stored(system: &mut DetSystem, log: &SimLog, stats: &InferenceStats) -> Result<(), String> {
    let registry = ActorRef::<RegistryMsg>::parse("/registry").map_err(|e| format!("{e:?}"))?;
    let mut pending = system
        .ask(&registry, |reply| RegistryMsg::Get { version: 2, reply }, Duration::from_secs(5))
        .map_err(|e| format!("{e:?}"))?;
    run_until(system, log, Duration::from_secs(5), || false);
    let model = pending.try_take().ok_or("the registry did not answer")?.map_err(|e| format!("{e:?}"))?;
    let model = model.ok_or("model 2 is not in the registry")?;
    model.verify(&SigningKey::from_bytes(&[6; 32]).verifying_key()).map_err(|e| e.to_string())?;
    let card = &model.card;
    let stage2 = card.stage2.as_ref().ok_or("the card has no stage-2 model")?;
    if card.parent != Some(1) || stats.scoring.model_version.load(Relaxed) < 2 {
        return Err(format!("model 2's parent {:?}; stage 2 runs {:?}", card.parent, stats.scoring.status()));
    }
    let agreement = card.metrics.get("stage1_int8_agreement").copied().unwrap_or(0.0);
    if !(stage2.threshold > 0.0 && stage2.threshold < 1.0) || agreement < 0.99 {
        return Err(format!("stage-2 threshold {} and int8 agreement {agreement}", stage2.threshold));
    }
    // Model 1 was installed on the fleet: model 2's card scores both on the same windows.
    let compared = [COMPARED_AUC, COMPARED_AUC_CURRENT].map(|name| card.metrics.get(name).copied());
    if !compared.iter().all(|auc| auc.is_some_and(|auc| (0.5..=1.0).contains(&auc))) {
        return Err(format!("model 2's card: the comparison's AUCs {compared:?}: {:?}", card.metrics));
    }
    Ok(())
}

#[test]
fn the_trainer_fits_from_the_streams_and_stage2_alerts_with_its_model() {
    let failures: Vec<String> = (1..=SEEDS)
        .flat_map(|seed| [(seed, false), (seed, true)])
        .filter_map(|(seed, registry)| {
            run(seed, registry).err().map(|e| format!("seed {seed}, registry {registry}: {e}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
