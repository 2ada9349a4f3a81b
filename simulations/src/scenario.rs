//! Scenarios and the run: a scenario names its nodes, its topology, the invariants checked
//! after every tick and the liveness condition; `run` plays one seed: faults by the seed's swarm
//! profile for the run's duration, then a liveness phase in which faults stop, the world heals
//! and the condition must hold within `LIVENESS_MAX` of simulated time.

use std::time::Duration;

use aiot_runtime::{Instant, Topology};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::faults::{Injector, Profile};
use crate::world::{NodeSpec, Probe, Stats, World};

/// How long the healed world has to satisfy the liveness condition.
pub const LIVENESS_MAX: Duration = Duration::from_secs(60);

pub trait Scenario: Sync {
    fn name(&self) -> &'static str;
    /// One line for `aiot sim --list`.
    fn about(&self) -> &'static str;
    fn nodes(&self) -> Vec<NodeSpec>;
    /// The topology; its actors may report to `probe`, which the checks read.
    fn topology(&self, probe: &Probe) -> Topology;
    /// The fault kinds a seed's profile may draw from.
    fn faults(&self) -> &'static [&'static str] {
        &crate::faults::KINDS
    }
    /// Checked after every tick; an `Err` names what broke.
    fn invariant(&self, world: &World) -> Result<(), String>;
    /// What must hold once the world has healed.
    fn live(&self, world: &World) -> bool;
    /// Why `live` does not hold (for the failure message).
    fn not_live(&self, world: &World) -> String;
    /// Adjusts the world before the run (a test scenario may break something on purpose).
    fn prepare(&self, _world: &mut World) {}
    /// How long the healed world has to satisfy `live` (default [`LIVENESS_MAX`]; work that
    /// runs on long periods of its own, such as a rollout's canary, needs more).
    fn liveness_max(&self) -> Duration {
        LIVENESS_MAX
    }
    /// What the run added up to, for the summary and for tests: by default the plant's
    /// totals (frames, drops, reboots, trips), for scenarios with one.
    fn totals(&self, world: &World) -> std::collections::BTreeMap<&'static str, u64> {
        world.plant().map(|p| p.totals()).unwrap_or_default()
    }
}

/// What one seed's run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub scenario: &'static str,
    pub seed: u64,
    pub profile: Profile,
    /// Simulated time, both phases.
    pub simulated: Duration,
    pub stats: Stats,
    /// How often each enabled fault point fired.
    pub fault_points: std::collections::BTreeMap<&'static str, u64>,
    pub trace_hash: u64,
    /// The scenario's totals (`Scenario::totals`).
    pub totals: std::collections::BTreeMap<&'static str, u64>,
    /// The first invariant broken, or the liveness failure.
    pub failure: Option<String>,
}

/// Plays `scenario` with `seed` for `duration` of faults, then the liveness phase. `progress`
/// is called about every simulated minute with the time reached.
pub fn run(
    scenario: &dyn Scenario,
    seed: u64,
    duration: Duration,
    mut progress: impl FnMut(Instant),
) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let probe = Probe::default();
    let mut world = World::new(&mut rng, &scenario.nodes(), scenario.topology(&probe), probe);
    scenario.prepare(&mut world);
    let profile = Profile::draw(&mut rng, scenario.faults());
    let mut injector = Injector::new(profile.clone(), ChaCha8Rng::seed_from_u64(rng.random()));
    aiot_runtime::fault::install(profile.points.clone(), rng.random());
    let end = world.now() + duration;
    let mut failure = None;
    let mut next_progress = world.now() + Duration::from_secs(60);
    while world.now() < end && failure.is_none() {
        injector.step(&mut world);
        world.tick();
        failure = check(scenario, &mut world);
        if world.now() >= next_progress {
            progress(world.now());
            next_progress = next_progress + Duration::from_secs(60);
        }
    }
    // Faults stop, fault points too.
    let fault_points = aiot_runtime::fault::uninstall();
    if failure.is_none() {
        injector.heal(&mut world);
        crate::world::probe(world.probe()).healed = true;
        let liveness_max = scenario.liveness_max();
        let deadline = world.now() + liveness_max;
        loop {
            world.tick();
            failure = check(scenario, &mut world);
            if failure.is_some() || scenario.live(&world) {
                break;
            }
            if world.now() >= deadline {
                failure = Some(format!(
                    "liveness: not within {liveness_max:?} of healing: {}",
                    scenario.not_live(&world)
                ));
                break;
            }
        }
    }
    Outcome {
        scenario: scenario.name(),
        seed,
        profile,
        simulated: world.now().saturating_since(Instant::ZERO),
        stats: world.stats.clone(),
        fault_points,
        trace_hash: world.trace_hash(),
        totals: scenario.totals(&world),
        failure,
    }
}

fn check(scenario: &dyn Scenario, world: &mut World) -> Option<String> {
    world.stats.invariants_checked += 1;
    scenario.invariant(world).err().map(|why| format!("at {:?}: {why}", world.now()))
}
