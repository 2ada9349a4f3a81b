//! The model registry (`aiot_actors::registry::service`) on the simulated event log, seed by
//! seed: it catches up before it registers, registers versions in order while the log crashes,
//! refuses what does not open (garbage, a model signed by another key) and keeps going, and a
//! new incarnation loads exactly the models registered before.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::ports::eventlog::adapter::{Log, LogLink};
use aiot_actors::ports::eventlog::{EventLog, Record};
use aiot_actors::registry::artifact::{ModelCard, SignedModel};
use aiot_actors::registry::service::{
    ModelsRecord, Registry, RegistryKeys, RegistryMsg, RegistryStats, MODELS,
};
use aiot_firmware::features::FEATURE_COUNT;
use aiot_firmware::model::{Model, MODEL_LEN};
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{ActorPath, ActorRef, ActorSpec, Message, ReplyTo, SystemConfig};
use aiot_simulations::eventlog::{LogFaults, SimLog};
use ed25519_dalek::SigningKey;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SEEDS: u64 = 30;
const TICK: Duration = Duration::from_millis(10);

fn image(version: u32) -> Vec<u8> {
    let model = Model {
        version,
        offset: [0.0; FEATURE_COUNT],
        scale: [1.0; FEATURE_COUNT],
        input_scale: 0.05,
        weights: [version as i8; FEATURE_COUNT],
        weight_scale: 0.01,
        bias: -2.0,
        threshold: 0.5,
    };
    let mut bytes = vec![0; MODEL_LEN];
    model.encode(&mut bytes).unwrap();
    bytes
}

fn card(version: u32) -> ModelCard {
    ModelCard {
        version,
        parent: version.checked_sub(1).filter(|v| *v > 0),
        created_ms: 0,
        dataset_sha256: [version as u8; 32],
        params: BTreeMap::from([("c".into(), 1.0)]),
        metrics: BTreeMap::from([("validation_auc".into(), 0.9)]),
        image_sha256: [0; 32],
        image_len: 0,
        stage2: None,
    }
}

struct Harness {
    system: DetSystem,
    log: SimLog,
    faults: ChaCha8Rng,
    crash_at: Option<Duration>,
    restart_at: Option<Duration>,
}

impl Harness {
    /// One tick; the log crashes once at `crash_at`, for 1 to 8 s.
    fn tick(&mut self) {
        self.system.run_for(TICK);
        let now = self.system.now().since_start();
        if self.restart_at.is_some_and(|at| now >= at) {
            self.restart_at = None;
            self.log.restart();
        } else if self.crash_at.is_some_and(|at| now >= at) {
            self.crash_at = None;
            self.log.crash();
            self.restart_at = Some(now + Duration::from_millis(self.faults.random_range(1_000..8_000)));
        }
        self.log.advance(now);
    }

    /// Asks and runs until the answer comes (60 simulated seconds at most).
    fn ask<R: Message>(
        &mut self,
        to: &ActorRef<RegistryMsg>,
        request: impl FnOnce(ReplyTo<R>) -> RegistryMsg,
    ) -> Result<R, String> {
        let mut pending =
            self.system.ask(to, request, Duration::from_secs(60)).map_err(|e| format!("{e:?}"))?;
        for _ in 0..7_000 {
            self.tick();
            if let Some(answer) = pending.try_take() {
                return answer.map_err(|e| format!("{e:?}"));
            }
        }
        Err("no answer".into())
    }

    /// Asks for the next version until the registry has caught up.
    fn next_version(&mut self, registry: &ActorRef<RegistryMsg>) -> Result<u32, String> {
        for _ in 0..100 {
            if let Some(next) = self.ask(registry, |reply| RegistryMsg::NextVersion { reply })? {
                return Ok(next);
            }
            for _ in 0..20 {
                self.tick();
            }
        }
        Err("the registry never caught up".into())
    }

    fn spawn(&mut self, keys: &RegistryKeys) -> (ActorRef<RegistryMsg>, Arc<RegistryStats>) {
        let stats = Arc::new(RegistryStats::default());
        let (keys, shared) = (keys.clone(), Arc::clone(&stats));
        let registry = self
            .system
            .spawn("registry", ActorSpec::new(move |_| Registry::new(keys.clone(), Arc::clone(&shared))))
            .expect("the registry starts");
        (registry, stats)
    }
}

fn run(seed: u64) -> Result<(), String> {
    let log = SimLog::new(seed ^ 0x4e61_57e7, LogFaults::flaky(), Arc::new(|_| {}));
    log.create_topic(MODELS, 1).expect("a new log takes the topic");
    let mut system = DetSystem::new(SystemConfig::with_seed(seed));
    let link = LogLink::new();
    link.attach(Arc::new(log.client(link.sink())));
    system.install_port::<Log, _>(link.adapter()).expect("a fresh system has no log port");
    let mut faults = ChaCha8Rng::seed_from_u64(seed ^ 0xfa17);
    let crash_at = Some(Duration::from_millis(faults.random_range(500..3_000)));
    let mut h = Harness { system, log, faults, crash_at, restart_at: None };
    let keys = RegistryKeys { storage: [3; 32], signing: SigningKey::from_bytes(&[9; 32]) };
    let (registry, stats) = h.spawn(&keys);

    // Something that is not a model, and a model signed by another key, in the stream.
    let writer = h.log.client(Arc::new(|_| {}));
    let foreign = SignedModel::sign(card(1), image(1), &SigningKey::from_bytes(&[10; 32])).unwrap();
    let records = [b"not a record".to_vec(), ModelsRecord::Model(foreign.seal(&keys.storage)).encode()];
    for (id, payload) in records.into_iter().enumerate() {
        writer.append(id as u64, Record::new(MODELS, b"models".to_vec(), payload, 0)).expect("the log is up");
    }
    h.log.advance(Duration::from_millis(200)); // stored before the log's crash

    let mut registered = Vec::new();
    for round in 0..3 {
        let version = h.next_version(&registry)?;
        if round == 1 {
            // The second registration is made while the log is down: it lands after the restart.
            while h.log.is_up() {
                h.tick();
            }
        }
        let answer = h.ask(&registry, |reply| RegistryMsg::Register {
            card: Box::new(card(version)),
            image: image(version),
            reply,
        })?;
        if answer != Ok(version) {
            return Err(format!("registering version {version}: {answer:?}"));
        }
        let stale = h.ask(&registry, |reply| RegistryMsg::Register {
            card: Box::new(card(version)),
            image: image(version),
            reply,
        })?;
        if stale.is_ok() {
            return Err(format!("version {version} registered twice"));
        }
        let model = h.ask(&registry, |reply| RegistryMsg::Get { version, reply })?;
        registered.push(model.ok_or(format!("version {version} registered but not kept"))?);
    }
    if h.log.stats().crashes != 1 {
        return Err("the log did not crash".into());
    }
    if registered.iter().map(|m| m.card.version).collect::<Vec<_>>() != [1, 2, 3] {
        return Err(format!("versions out of order: {registered:?}"));
    }

    // A new incarnation loads exactly those, refusing the two bad records again.
    h.system.stop_subtree(&ActorPath::parse("/registry").unwrap());
    for _ in 0..100 {
        h.tick();
    }
    let (registry, again) = h.spawn(&keys);
    if h.next_version(&registry)? != 4 {
        return Err("the new incarnation would reuse a version".into());
    }
    let cards = h.ask(&registry, |reply| RegistryMsg::List { reply })?;
    let kept: Vec<ModelCard> = registered.iter().map(|m| m.card.clone()).collect();
    if cards != kept {
        return Err(format!("reloaded {cards:?}, registered {kept:?}"));
    }
    for model in &registered {
        let version = model.card.version;
        if h.ask(&registry, |reply| RegistryMsg::Get { version, reply })?.as_ref() != Some(model) {
            return Err(format!("version {version} reloaded differently"));
        }
    }
    let (refused, loaded) = (again.refused.load(Relaxed), again.loaded.load(Relaxed));
    if (refused, loaded) != (2, 3) || stats.refused.load(Relaxed) != 2 {
        return Err(format!("refused {refused} and loaded {loaded} on reload (expected 2 and 3)"));
    }
    Ok(())
}

#[test]
fn the_registry_keeps_signed_sealed_versions_in_order_through_log_crashes_and_reloads_them() {
    let failures: Vec<String> =
        (1..=SEEDS).filter_map(|seed| run(seed).err().map(|why| format!("seed {seed}: {why}"))).collect();
    assert!(failures.is_empty(), "{} of {SEEDS} seeds failed:\n{}", failures.len(), failures.join("\n"));
}
