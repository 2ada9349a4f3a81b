//! Swarm testing: each seed draws its own fault profile (which kinds of fault happen, and how
//! often), and faults are injected from it, each with its own end scheduled (a cut heals, a
//! crashed node restarts, a clog clears).

use std::collections::BTreeMap;
use std::time::Duration;

use aiot_runtime::{ActorPath, Instant};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::world::{World, TICK};

/// The kinds of fault a profile may enable.
pub const KINDS: [&str; 5] = ["partition", "one-way cut", "crash", "clog", "reset"];

/// Which fault kinds a run injects, and how often (faults per simulated minute), and which
/// fault points are enabled with what probability per visit.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub enabled: Vec<&'static str>,
    pub per_minute: f64,
    pub points: BTreeMap<&'static str, f64>,
}

impl Profile {
    /// A profile drawn from the seed: a random non-empty subset of `kinds`, a random rate, and
    /// a random subset of the cluster's fault points.
    pub fn draw(rng: &mut ChaCha8Rng, kinds: &[&'static str]) -> Profile {
        let mut enabled: Vec<&'static str> = kinds.iter().copied().filter(|_| rng.random_bool(0.5)).collect();
        if enabled.is_empty() {
            enabled.push(kinds[rng.random_range(0..kinds.len())]);
        }
        let per_minute = rng.random_range(2.0..20.0);
        let mut points = BTreeMap::new();
        for point in aiot_cluster::FAULT_POINTS {
            if rng.random_bool(0.5) {
                points.insert(point, rng.random_range(0.01..0.2));
            }
        }
        Profile { enabled, per_minute, points }
    }
}

/// Something that ends a fault.
#[derive(Debug, Clone)]
enum Recovery {
    Uncut(String, String),
    Restart(String),
    Unclog(String, String),
    BrokerUp,
    LogUp,
}

/// Ends an outage of the plant's event log.
fn restart_log(world: &World) {
    if let Some(streams) = world.plant().and_then(|p| p.streams()) {
        streams.log().restart();
    }
}

/// Injects faults by a profile and undoes each when its time comes.
pub struct Injector {
    profile: Profile,
    rng: ChaCha8Rng,
    timeline: BTreeMap<(Instant, u64), Recovery>,
    next: u64,
}

impl Injector {
    pub fn new(profile: Profile, rng: ChaCha8Rng) -> Self {
        Injector { profile, rng, timeline: BTreeMap::new(), next: 0 }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    fn later(&mut self, world: &World, within: std::ops::Range<u64>, recovery: Recovery) {
        let after = Duration::from_millis(self.rng.random_range(within));
        self.at(world.now() + after, recovery);
    }

    fn at(&mut self, at: Instant, recovery: Recovery) {
        self.next += 1;
        self.timeline.insert((at, self.next), recovery);
    }

    /// Called once per tick: recoveries that are due, then perhaps a new fault.
    pub fn step(&mut self, world: &mut World) {
        while let Some(entry) = self.timeline.first_entry() {
            if entry.key().0 > world.now() {
                break;
            }
            match entry.remove() {
                Recovery::Uncut(a, b) => world.net().uncut(&a, &b),
                Recovery::Restart(name) => world.restart(&name),
                Recovery::Unclog(a, b) => world.net().clog(&a, &b, 1),
                Recovery::BrokerUp => world.plant().iter().for_each(|p| p.broker().restart()),
                Recovery::LogUp => restart_log(world),
            }
        }
        let chance = self.profile.per_minute * TICK.as_secs_f64() / 60.0;
        if !self.rng.random_bool(chance.min(1.0)) {
            return;
        }
        let kind = self.profile.enabled[self.rng.random_range(0..self.profile.enabled.len())];
        let names = world.node_names();
        let pick = |rng: &mut ChaCha8Rng| names[rng.random_range(0..names.len())].clone();
        match kind {
            "partition" => {
                let size = self.rng.random_range(1..=names.len() / 2);
                let side: Vec<String> = (0..size).map(|_| pick(&mut self.rng)).collect();
                let until = world.now() + Duration::from_millis(self.rng.random_range(1_000..15_000));
                for a in &side {
                    for b in names.iter().filter(|b| !side.contains(b)) {
                        world.net().cut(a, b);
                        world.net().cut(b, a);
                        self.at(until, Recovery::Uncut(a.clone(), b.clone()));
                        self.at(until, Recovery::Uncut(b.clone(), a.clone()));
                    }
                }
            }
            "move" => {
                // A live move of something a node hosts to another node (one lacking a tag the
                // subtree requires refuses it; so does a node that is not running).
                let from = pick(&mut self.rng);
                let hosted: Vec<ActorPath> = world
                    .coordinator(&from)
                    .map(|c| c.hosted().iter().cloned().collect())
                    .unwrap_or_default();
                if hosted.is_empty() {
                    return;
                }
                let root = hosted[self.rng.random_range(0..hosted.len())].clone();
                // Targets in a random order until one is accepted.
                let mut targets: Vec<&String> = names.iter().filter(|n| **n != from).collect();
                targets.shuffle(&mut self.rng);
                if !targets.into_iter().any(|to| world.begin_move(&from, &root, to).is_ok()) {
                    world.count_fault("move refused");
                    return;
                }
            }
            "one-way cut" => {
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                if a == b {
                    return;
                }
                world.net().cut(&a, &b);
                self.later(world, 1_000..15_000, Recovery::Uncut(a, b));
            }
            "mote reboot" => {
                if let Some(plant) = world.plant_mut() {
                    plant.reboot_one();
                }
            }
            "broker crash" => {
                if let Some(plant) = world.plant() {
                    plant.broker().crash();
                    self.later(world, 1_000..20_000, Recovery::BrokerUp);
                }
            }
            "log crash" => {
                let Some(streams) = world.plant().and_then(|p| p.streams()) else { return };
                streams.log().crash();
                self.later(world, 1_000..30_000, Recovery::LogUp);
            }
            "crash" => {
                let victim = pick(&mut self.rng);
                if !world.is_live(&victim) {
                    return;
                }
                world.crash(&victim);
                self.later(world, 1_000..20_000, Recovery::Restart(victim));
            }
            "clog" => {
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                let factor = self.rng.random_range(10..200);
                world.net().clog(&a, &b, factor);
                self.later(world, 1_000..10_000, Recovery::Unclog(a, b));
            }
            _ => {
                let (a, b) = (pick(&mut self.rng), pick(&mut self.rng));
                world.net().break_connection(&a, &b);
            }
        }
        world.count_fault(kind);
    }

    /// Faults stop: every cut and clog ends, every crashed node restarts.
    pub fn heal(&mut self, world: &mut World) {
        for (_, recovery) in std::mem::take(&mut self.timeline) {
            match recovery {
                Recovery::Restart(name) => world.restart(&name),
                Recovery::BrokerUp => world.plant().iter().for_each(|p| p.broker().restart()),
                Recovery::LogUp => restart_log(world),
                _ => {}
            }
        }
        world.net().heal();
    }
}
