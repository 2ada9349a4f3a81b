//! A fleet: N motors from one seed, each with its own forked stream, optionally with parameters
//! varying between motors.

use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::maintenance::MaintenanceEvent;
use super::model::{Motor, WindowTruth};
use super::params::MotorParams;
use super::rng;

/// How much parameters vary between the motors of a fleet: each is the standard deviation of
/// the log of a multiplicative factor (0.1: about +-10%), drawn per motor from its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Variation {
    /// Base load.
    pub load: f64,
    /// Noise level.
    pub noise: f64,
    /// Rated temperature rise.
    pub thermal: f64,
    /// Rated slip.
    pub slip: f64,
    /// Every defect kind's onset rate.
    pub degradation: f64,
}

impl Variation {
    /// No variation: every motor has the base parameters.
    pub fn none() -> Self {
        Variation::default()
    }

    /// A plausible spread for a plant of similar motors.
    pub fn typical() -> Self {
        Variation { load: 0.15, noise: 0.2, thermal: 0.1, slip: 0.1, degradation: 0.3 }
    }

    fn apply(&self, base: &MotorParams, r: &mut ChaCha8Rng) -> MotorParams {
        let mut factor = |sigma: f64| {
            let z = rng::standard_normal(r);
            (sigma * z - 0.5 * sigma * sigma).exp()
        };
        let mut p = base.clone();
        let load = factor(self.load);
        p.load.base *= load;
        if let Some((_, base)) = &mut p.load.shift {
            *base *= load;
        }
        p.noise.level *= factor(self.noise);
        p.thermal.rated_rise_c *= factor(self.thermal);
        p.rated_slip *= factor(self.slip);
        let d = factor(self.degradation);
        p.degradation.outer_race.rate_per_year *= d;
        p.degradation.inner_race.rate_per_year *= d;
        p.degradation.imbalance.rate_per_year *= d;
        p.degradation.broken_rotor_bar.rate_per_year *= d;
        p.degradation.overheating.rate_per_year *= d;
        p
    }
}

/// N motors from one seed. Motor `i` uses ChaCha8 stream `i` of the fleet seed (its motor seed
/// and its parameter variation), so adding motors leaves the others unchanged.
#[derive(Debug, Clone)]
pub struct Fleet {
    motors: Vec<Motor>,
}

impl Fleet {
    /// `n` motors with the same parameters.
    pub fn new(seed: u64, n: usize, params: &MotorParams) -> Fleet {
        Fleet::with_variation(seed, n, params, &Variation::none())
    }

    /// `n` motors whose parameters vary around `params` by `variation`.
    pub fn with_variation(seed: u64, n: usize, params: &MotorParams, variation: &Variation) -> Fleet {
        let motors = (0..n)
            .map(|i| {
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                r.set_stream(i as u64);
                let motor_seed = r.next_u64();
                Motor::new(variation.apply(params, &mut r), motor_seed)
            })
            .collect();
        Fleet { motors }
    }

    pub fn len(&self) -> usize {
        self.motors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.motors.is_empty()
    }

    pub fn motor(&self, i: usize) -> &Motor {
        &self.motors[i]
    }

    pub fn motor_mut(&mut self, i: usize) -> &mut Motor {
        &mut self.motors[i]
    }

    pub fn motors(&self) -> &[Motor] {
        &self.motors
    }

    pub fn motors_mut(&mut self) -> &mut [Motor] {
        &mut self.motors
    }

    /// Every motor's maintenance events up to `to`, as (motor index, event), ordered by time,
    /// then motor index.
    pub fn advance(&mut self, to: Duration) -> Vec<(usize, MaintenanceEvent)> {
        let mut all: Vec<(usize, MaintenanceEvent)> = Vec::new();
        for (i, m) in self.motors.iter_mut().enumerate() {
            all.extend(m.advance(to).into_iter().map(|e| (i, e)));
        }
        // Stable: one motor's events at one instant keep their order.
        all.sort_by_key(|(i, e)| (e.at(), *i));
        all
    }

    /// Motor `i`'s window at `t` (see [`Motor::capture`]).
    pub fn capture(&mut self, i: usize, t: Duration, fs: f64, out: &mut [[f32; 4]]) -> WindowTruth {
        self.motors[i].capture(t, fs, out)
    }
}
