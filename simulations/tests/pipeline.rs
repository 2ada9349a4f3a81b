//! The pipeline coordinator (`aiot_actors::pipeline`) on the deterministic executor, seed by
//! seed: toy step actors that answer after a seeded delay, fail or stay silent on their first
//! attempts, or refuse; checked: retries by each step's policy, every step handed the outputs
//! it takes, refusals and unreachable steps skipping what comes after them, requests
//! queued behind a run, the schedule, the status answered by ask, and the same seed giving the
//! same trace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::pipeline::coordinator::{
    PipelineBuilder, PipelineMsg, PipelineStats, PipelineStatus, Schedule, StepRequest,
};
use aiot_actors::pipeline::dag::{Retry, StepSpec};
use aiot_actors::pipeline::run::{Outcome, StepResult, StepState};
use aiot_runtime::exec::det::DetSystem;
use aiot_runtime::{Actor, ActorError, ActorPath, ActorRef, ActorSpec, Ctx, ReplyTo, SystemConfig};
use parking_lot::Mutex;
use rand::Rng;
use serde::{Deserialize, Serialize};

const SEEDS: u64 = 20;

/// How a toy step behaves on each run.
#[derive(Debug, Clone, Copy, Default)]
struct Behaviour {
    /// Its output is `value` plus the sum of its inputs.
    value: u64,
    /// Its first attempts of each run fail with an error ...
    fails: u32,
    /// ... then this many get no answer at all (they time out).
    silent: u32,
    refuses: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum ToyMsg {
    Step(StepRequest<u64>),
    /// Answer the request kept under this key (after a seeded delay).
    Answer(u64),
}

impl From<StepRequest<u64>> for ToyMsg {
    fn from(request: StepRequest<u64>) -> Self {
        ToyMsg::Step(request)
    }
}

/// Every request a toy saw: (run, step, attempt, input names).
type Seen = Arc<Mutex<Vec<(u64, String, u32, Vec<String>)>>>;

struct Toy {
    behaviour: Behaviour,
    seen: Seen,
    pending: BTreeMap<u64, (ReplyTo<StepResult<u64>>, StepResult<u64>)>,
    next: u64,
}

impl Actor for Toy {
    type Msg = ToyMsg;

    fn handle(&mut self, msg: ToyMsg, ctx: &mut Ctx<'_, ToyMsg>) -> Result<(), ActorError> {
        match msg {
            ToyMsg::Step(request) => {
                let StepRequest { run, step, attempt, inputs, reply, .. } = request;
                self.seen.lock().push((run, step.clone(), attempt, inputs.keys().cloned().collect()));
                let b = self.behaviour;
                let result = if b.refuses {
                    StepResult::Refused(format!("{step} has nothing to do"))
                } else if attempt <= b.fails {
                    StepResult::Failed(format!("{step} attempt {attempt} broke"))
                } else if attempt <= b.fails + b.silent {
                    return Ok(()); // never answered: the coordinator's timeout
                } else {
                    let output = b.value + inputs.values().sum::<u64>();
                    StepResult::Done { summary: format!("made {output}"), output }
                };
                self.next += 1;
                self.pending.insert(self.next, (reply, result));
                let delay = Duration::from_millis(ctx.rng().random_range(0..3_000));
                ctx.schedule_once(delay, ToyMsg::Answer(self.next));
            }
            ToyMsg::Answer(key) => {
                if let Some((reply, result)) = self.pending.remove(&key) {
                    ctx.reply(&reply, result)?;
                }
            }
        }
        Ok(())
    }
}

struct World {
    system: DetSystem,
    stats: PipelineStats,
    seen: Seen,
    pipeline: ActorRef<PipelineMsg<u64>>,
    /// Starts the coordinator again (as its supervisor would after a crash).
    restart: Box<dyn Fn(&mut DetSystem)>,
}

impl World {
    /// `steps`: (spec, behaviour); a step without behaviour has no actor.
    fn new(seed: u64, steps: Vec<(StepSpec, Option<Behaviour>)>, schedule: Schedule) -> World {
        let mut system = DetSystem::new(SystemConfig::with_seed(seed));
        let seen: Seen = Arc::default();
        let mut builder = PipelineBuilder::default();
        for (spec, behaviour) in steps {
            let name = format!("step-{}", spec.name);
            if let Some(behaviour) = behaviour {
                let seen = Arc::clone(&seen);
                let toy = ActorSpec::new(move |_| Toy {
                    behaviour,
                    seen: Arc::clone(&seen),
                    pending: BTreeMap::new(),
                    next: 0,
                });
                system.spawn(&name, toy).expect("a toy step starts");
            }
            builder = builder.step::<ToyMsg>(spec, &format!("/{name}"));
        }
        let pipeline = builder.build().expect("a valid shape");
        let stats = PipelineStats::default();
        let shared = Arc::clone(&stats);
        let restart = Box::new(move |system: &mut DetSystem| {
            let (pipeline, shared) = (pipeline.clone(), Arc::clone(&shared));
            let coordinator = ActorSpec::new(move |_| pipeline.coordinator(schedule, Arc::clone(&shared)));
            system.spawn("pipeline", coordinator).expect("the coordinator starts");
        });
        restart(&mut system);
        let pipeline = ActorRef::parse("/pipeline").unwrap();
        World { system, stats, seen, pipeline, restart }
    }

    fn request(&mut self, reason: &str) {
        self.system.tell(&self.pipeline, PipelineMsg::Run { reason: reason.into() }).unwrap();
    }

    /// The status, asked of the coordinator like any client would.
    fn status(&mut self) -> PipelineStatus {
        let mut pending =
            self.system.ask(&self.pipeline, PipelineMsg::Status, Duration::from_secs(5)).unwrap();
        loop {
            if let Some(answer) = pending.try_take() {
                return answer.expect("the status");
            }
            assert!(self.system.step(), "the coordinator answers");
        }
    }
}

const NO_SCHEDULE: Schedule = Schedule { first_after: None, every: None };

fn quick(name: &str, after: &[&str]) -> StepSpec {
    StepSpec::new(name, after)
        .timeout(Duration::from_secs(5))
        .retry(Retry { attempts: 3, backoff: Duration::from_secs(2) })
}

fn toy(value: u64) -> Option<Behaviour> {
    Some(Behaviour { value, ..Behaviour::default() })
}

/// ingest -> extract -> {drift, train} -> register (taking every earlier output) -> deploy;
/// extract fails twice, train stays silent once.
fn ml_shaped() -> Vec<(StepSpec, Option<Behaviour>)> {
    vec![
        (quick("ingest", &[]), toy(1)),
        (quick("extract", &["ingest"]), Some(Behaviour { value: 10, fails: 2, ..Behaviour::default() })),
        (quick("drift", &["extract"]), toy(100)),
        (quick("train", &["extract"]), Some(Behaviour { value: 1_000, silent: 1, ..Behaviour::default() })),
        (quick("register", &["train", "drift"]).takes(&["ingest", "extract", "drift", "train"]), toy(10_000)),
        (quick("deploy", &["register"]), toy(100_000)),
    ]
}

fn state<'a>(status: &'a PipelineStatus, run: usize, step: &str) -> &'a StepState {
    &status.recent[run].steps.iter().find(|(name, _)| name == step).expect("a step").1
}

#[test]
fn a_run_retries_failed_and_silent_steps_and_hands_each_step_its_ancestors_outputs() {
    let mut hashes = Vec::new();
    for seed in 0..SEEDS {
        let mut world = World::new(seed, ml_shaped(), NO_SCHEDULE);
        world.request("drift on motor-3");
        world.system.run_until_idle();
        let status = world.status();
        assert_eq!((status.runs, status.succeeded, status.retries), (1, 1, 3), "seed {seed}: {status:?}");
        let run = &status.recent[0];
        assert_eq!(run.outcome, Outcome::Succeeded);
        assert_eq!(run.reason, "drift on motor-3");
        // ingest 1, extract 11, drift 111, train 1011, register 11134, deploy 111134.
        match state(&status, 0, "deploy") {
            StepState::Done { attempts: 1, summary, .. } => assert_eq!(summary, "made 111134", "seed {seed}"),
            other => panic!("seed {seed}: deploy {other:?}"),
        }
        assert!(matches!(state(&status, 0, "extract"), StepState::Done { attempts: 3, .. }));
        assert!(matches!(state(&status, 0, "train"), StepState::Done { attempts: 2, .. }));
        let seen = world.seen.lock().clone();
        let register: Vec<_> = seen.iter().filter(|(_, step, _, _)| step == "register").collect();
        assert_eq!(register.len(), 1);
        assert_eq!(register[0].3, ["drift", "extract", "ingest", "train"], "the outputs it takes");
        let (order, _): (Vec<String>, Vec<_>) = status.steps.iter().cloned().unzip();
        assert_eq!(order, ["ingest", "extract", "drift", "train", "register", "deploy"]);
        hashes.push(world.system.trace_hash());

        let mut again = World::new(seed, ml_shaped(), NO_SCHEDULE);
        again.request("drift on motor-3");
        again.system.run_until_idle();
        assert_eq!(again.status(), status, "seed {seed}: the same run");
        assert_eq!(again.system.trace_hash(), world.system.trace_hash(), "seed {seed}: the same trace");
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert!(hashes.len() as u64 > SEEDS / 2, "the seeds explore different timings: {} traces", hashes.len());
}

#[test]
fn a_refusal_or_an_unreachable_step_skips_what_comes_after_it_and_requests_queue_behind_a_run() {
    for seed in 0..SEEDS {
        let mut steps = ml_shaped();
        steps[2].1 = Some(Behaviour { refuses: true, ..Behaviour::default() });
        let mut world = World::new(seed, steps, NO_SCHEDULE);
        world.request("first");
        world.system.run_for(Duration::from_millis(500));
        world.request("second");
        world.request("third");
        world.request("second");
        world.system.run_until_idle();
        let status = world.status();
        assert_eq!((status.runs, status.refused, status.failed), (2, 2, 0), "seed {seed}: {status:?}");
        assert_eq!(status.recent[1].reason, "second; third", "queued requests make one run");
        for run in 0..2 {
            assert!(matches!(state(&status, run, "drift"), StepState::Refused { .. }), "not retried");
            assert!(matches!(state(&status, run, "train"), StepState::Done { .. }), "a side branch goes on");
            assert!(matches!(state(&status, run, "register"), StepState::Skipped { .. }));
            assert!(matches!(state(&status, run, "deploy"), StepState::Skipped { .. }));
        }
        let drift_asks = world.seen.lock().iter().filter(|(_, step, _, _)| step == "drift").count();
        assert_eq!(drift_asks, 2, "a refusal is asked once per run");

        let mut steps = ml_shaped();
        steps[4].1 = None; // register has no actor
        let mut world = World::new(seed, steps, NO_SCHEDULE);
        world.request("lonely");
        world.system.run_until_idle();
        let status = world.status();
        assert_eq!((status.runs, status.failed), (1, 1), "seed {seed}: {status:?}");
        match state(&status, 0, "register") {
            StepState::Failed { attempts: 3, error } => assert!(error.contains("/step-register"), "{error}"),
            other => panic!("seed {seed}: register {other:?}"),
        }
        assert!(matches!(state(&status, 0, "deploy"), StepState::Skipped { .. }));
        assert!(status.line().contains("1 runs (0 succeeded, 0 refused, 1 failed"), "{}", status.line());
    }
}

#[test]
fn a_restarted_coordinator_runs_again_what_was_in_progress_and_queued() {
    for seed in 0..SEEDS {
        let mut world = World::new(seed, ml_shaped(), NO_SCHEDULE);
        world.request("first");
        world.system.run_for(Duration::from_millis(500)); // extract is failing its first attempts
        world.request("second");
        world.system.run_for(Duration::from_millis(10));
        assert!(world.system.stop_subtree(&ActorPath::parse("/pipeline").unwrap()));
        world.system.run_for(Duration::from_millis(10));
        (world.restart)(&mut world.system);
        world.system.run_until_idle();
        let status = world.status();
        assert_eq!((status.runs, status.failed, status.succeeded), (2, 1, 1), "seed {seed}: {status:?}");
        assert_eq!(status.recent[0].reason, "first; second", "seed {seed}: both asked for again");
    }
}

#[test]
fn runs_start_on_the_schedule() {
    let schedule =
        Schedule { first_after: Some(Duration::from_secs(60)), every: Some(Duration::from_secs(600)) };
    let mut world = World::new(7, ml_shaped(), schedule);
    world.system.run_for(Duration::from_secs(59));
    assert_eq!(world.stats.lock().runs, 0, "not before the first is due");
    world.system.run_for(Duration::from_secs(35 * 60 - 59));
    let status = world.status();
    assert_eq!((status.runs, status.succeeded), (4, 4), "at 1, 11, 21 and 31 minutes: {status:?}");
    assert!(status.recent.iter().all(|run| run.reason == "scheduled"));
    assert_eq!(status.next_scheduled_ms.map(|at| at - status.recent[3].started_ms), Some(600_000));
}
