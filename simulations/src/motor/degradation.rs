//! Degradation: defect kinds, their growth laws, and a motor's lives (healthy start, defects
//! arising and growing, failure, repair), all drawn from the seed.

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::params::{DefectParams, DegradationParams};
use super::rng;

/// What can go wrong with a motor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DefectKind {
    /// Outer-race spall: impacts at BPFO.
    OuterRace,
    /// Inner-race spall: impacts at BPFI, amplitude-modulated at shaft frequency.
    InnerRace,
    /// Rotor imbalance: vibration at 1x.
    Imbalance,
    /// Broken rotor bar: current sidebands at (1 +- 2s) f, vibration sidebands at 1x +- 2sf.
    BrokenRotorBar,
    /// Overheating (cooling fan, insulation): the temperature rise grows.
    Overheating,
}

impl DefectKind {
    pub const ALL: [DefectKind; 5] = [
        DefectKind::OuterRace,
        DefectKind::InnerRace,
        DefectKind::Imbalance,
        DefectKind::BrokenRotorBar,
        DefectKind::Overheating,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            DefectKind::OuterRace => "outer-race",
            DefectKind::InnerRace => "inner-race",
            DefectKind::Imbalance => "imbalance",
            DefectKind::BrokenRotorBar => "broken-rotor-bar",
            DefectKind::Overheating => "overheating",
        }
    }

    pub fn from_name(name: &str) -> Option<DefectKind> {
        DefectKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this is a bearing defect.
    pub fn is_bearing(self) -> bool {
        matches!(self, DefectKind::OuterRace | DefectKind::InnerRace)
    }
}

/// One defect: when it arose, when it will fail the motor, and its growth law.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defect {
    pub kind: DefectKind,
    pub onset: Duration,
    /// When its severity reaches 1 (the motor fails then, unless another defect failed it first).
    pub failure_at: Duration,
    pub initial_severity: f64,
    pub growth_exponent: f64,
}

impl Defect {
    /// Severity at `t` in [0, 1]: 0 before onset, exactly 1 from `failure_at` on, and in between
    /// the solution of `ds/dt = C s^m` through `(onset, s0)` and `(failure_at, 1)`.
    pub fn severity(&self, t: Duration) -> f64 {
        if t < self.onset {
            return 0.0;
        }
        if t >= self.failure_at {
            return 1.0;
        }
        let x = (t - self.onset).as_secs_f64() / (self.failure_at - self.onset).as_secs_f64();
        growth(self.initial_severity, self.growth_exponent, x)
    }
}

/// Severity at fraction `x` in [0, 1] of the life, growing from `s0` to 1.
pub(crate) fn growth(s0: f64, m: f64, x: f64) -> f64 {
    let s0 = s0.clamp(1e-9, 1.0);
    let s = if (m - 1.0).abs() < 1e-9 {
        // Exponential: s = s0^(1 - x).
        s0.powf(1.0 - x)
    } else {
        // s^(1-m) falls linearly from s0^(1-m) to 1.
        let a = s0.powf(1.0 - m);
        (a - (a - 1.0) * x).max(1e-300).powf(1.0 / (1.0 - m))
    };
    s.clamp(0.0, 1.0)
}

/// A motor's life from a start (new or repaired, healthy) to its failure.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Life {
    pub start: Duration,
    /// The defects that arise before the failure, by onset.
    pub defects: Vec<Defect>,
    /// The failure ending this life (`None`: it never fails).
    pub failure: Option<(Duration, DefectKind)>,
}

/// Onsets later than this are never.
const NEVER_SECS: f64 = 1000.0 * 365.25 * 86400.0;
const YEAR_SECS: f64 = 365.25 * 86400.0;

impl Life {
    /// Life number `index` of the motor with `seed`, starting at `start`: each kind's onset and
    /// life drawn from the life's own stream (the same draws whatever the rates, so changing one
    /// kind's rate leaves the others' draws alone).
    pub fn draw(seed: u64, index: u64, start: Duration, params: &DegradationParams) -> Life {
        let mut r = ChaCha8Rng::seed_from_u64(rng::hash(&[seed, rng::LIFE, index]));
        let mut defects = Vec::new();
        for kind in DefectKind::ALL {
            let p: &DefectParams = params.get(kind);
            let e = rng::exponential(&mut r, 1.0);
            let z = rng::standard_normal(&mut r);
            if p.rate_per_year <= 0.0 {
                continue;
            }
            let onset = e * YEAR_SECS / p.rate_per_year;
            if onset.is_nan() || onset >= NEVER_SECS {
                continue;
            }
            let life =
                p.mean_life.as_secs_f64() * (p.life_spread * z - 0.5 * p.life_spread * p.life_spread).exp();
            let onset = start + Duration::from_secs_f64(onset).max(Duration::from_nanos(1));
            let failure_at = onset + Duration::from_secs_f64(life.max(1e-3));
            defects.push(Defect {
                kind,
                onset,
                failure_at,
                initial_severity: p.initial_severity,
                growth_exponent: p.growth_exponent,
            });
        }
        let mut life = Life { start, defects, failure: None };
        life.settle();
        life
    }

    /// Orders the defects, finds the first failure and drops what would arise after it.
    pub fn settle(&mut self) {
        self.failure = self
            .defects
            .iter()
            .map(|d| (d.failure_at, d.kind))
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        if let Some((at, _)) = self.failure {
            self.defects.retain(|d| d.onset < at);
        }
        self.defects.sort_by(|a, b| a.onset.cmp(&b.onset).then(a.kind.cmp(&b.kind)));
    }

    /// Whether the motor runs at `t` (in this life: from its start to its failure).
    pub fn running(&self, t: Duration) -> bool {
        t >= self.start && self.failure.is_none_or(|(at, _)| t < at)
    }

    /// Severity of `kind` at `t` (0 if absent).
    pub fn severity(&self, kind: DefectKind, t: Duration) -> f64 {
        self.defects.iter().filter(|d| d.kind == kind).map(|d| d.severity(t)).fold(0.0, f64::max)
    }

    /// Severities of all kinds at `t`, indexed by [`DefectKind::index`].
    pub fn severities(&self, t: Duration) -> [f64; 5] {
        let mut s = [0.0; 5];
        for d in &self.defects {
            let v = d.severity(t);
            if v > s[d.kind.index()] {
                s[d.kind.index()] = v;
            }
        }
        s
    }
}

/// A motor's condition at one time (ground truth: only scoring code reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// False while the motor is down for repair after a failure.
    pub running: bool,
    /// The defects present (arisen, not yet repaired) with their severity in [0, 1].
    pub defects: Vec<(DefectKind, f64)>,
}

impl Condition {
    pub fn is_healthy(&self) -> bool {
        self.running && self.defects.is_empty()
    }

    pub fn severity(&self, kind: DefectKind) -> f64 {
        self.defects.iter().filter(|(k, _)| *k == kind).map(|(_, s)| *s).fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_ends() {
        for m in [1.0, 1.5, 2.0, 3.0] {
            assert!((growth(0.02, m, 0.0) - 0.02).abs() < 1e-12, "m {m}");
            assert!((growth(0.02, m, 1.0) - 1.0).abs() < 1e-9, "m {m}");
            let mut prev = 0.0;
            for i in 0..=100 {
                let s = growth(0.02, m, f64::from(i) / 100.0);
                assert!(s >= prev);
                prev = s;
            }
        }
        // Paris-like growth with m = 2 is slow, then sudden.
        assert!(growth(0.02, 2.0, 0.5) < growth(0.02, 1.0, 0.5));
    }
}
