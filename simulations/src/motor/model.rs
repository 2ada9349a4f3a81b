//! One motor: its lives (degradation, failure, repair), its maintenance log, and its windows.

use std::collections::BTreeMap;
use std::f64::consts::TAU;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::bearing::DefectFrequencies;
use super::degradation::{Condition, Defect, DefectKind, Life};
use super::maintenance::{Finding, Inspection, MaintenanceEvent, Source};
use super::params::{LoadProfile, MotorParams};
use super::rng::{self, WyRand};
use super::sensor::{self, ChannelScale, SensorFaults};
use super::signal::{self, WindowState, OFFSETS};

/// What a window's ground truth says (only scoring code and tests read it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowTruth {
    /// Whether the motor was running (false while it is down for repair).
    pub running: bool,
    /// The sensor faults in each channel ([current, vibration, sound, temperature]).
    pub sensor_faults: [SensorFaults; 4],
}

impl WindowTruth {
    /// Whether any channel has a sensor fault.
    pub fn any_sensor_fault(&self) -> bool {
        self.sensor_faults.iter().any(SensorFaults::any)
    }
}

/// One simulated induction motor.
///
/// Times are motor time: a [`Duration`] since the motor's time zero (the simulation's start, or
/// whatever origin the caller chose). Everything random derives from `seed`:
///
/// - The defect timeline (onsets, growth, failures, repairs) is drawn life by life from the seed
///   alone, so it never depends on which calls were made, except [`Motor::inject_defect`].
/// - A window's content depends only on the seed, the parameters, the defect timeline, `t`,
///   `fs` and the window's length: never on earlier captures.
/// - Maintenance events depend on the seed and on the inspection requests made (and when).
#[derive(Debug, Clone)]
pub struct Motor {
    params: MotorParams,
    seed: u64,
    offsets: [f64; OFFSETS],
    lives: Vec<Life>,
    /// Events at or before `now` have been emitted.
    now: Duration,
    /// The next life event: (life index, failure or repair).
    cursor: (usize, Source),
    routine_rng: ChaCha8Rng,
    next_routine: Option<Duration>,
    /// Pending requests by (answer time, sequence): request time.
    requests: BTreeMap<(Duration, u64), Duration>,
    request_seq: u64,
}

impl Motor {
    pub fn new(params: MotorParams, seed: u64) -> Motor {
        assert!(
            params.line_hz > 0.0 && params.pole_pairs > 0,
            "line frequency and pole pairs must be positive"
        );
        let mut offsets = [0.0; OFFSETS];
        for (k, o) in offsets.iter_mut().enumerate() {
            *o = rng::unit(rng::hash(&[seed, rng::PHASES, k as u64]));
        }
        let first = Life::draw(seed, 0, Duration::ZERO, &params.degradation);
        let mut routine_rng = ChaCha8Rng::seed_from_u64(rng::hash(&[seed, rng::INSPECTIONS]));
        let next_routine = params
            .maintenance
            .inspection_interval
            .filter(|i| !i.is_zero())
            .map(|i| Duration::from_secs_f64(rng::exponential(&mut routine_rng, i.as_secs_f64())));
        Motor {
            params,
            seed,
            offsets,
            lives: vec![first],
            now: Duration::ZERO,
            cursor: (0, Source::Failure),
            routine_rng,
            next_routine,
            requests: BTreeMap::new(),
            request_seq: 0,
        }
    }

    pub fn params(&self) -> &MotorParams {
        &self.params
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The time up to which [`Motor::advance`] has emitted events.
    pub fn now(&self) -> Duration {
        self.now
    }

    // ---- the defect timeline ----

    /// Draws lives until the one in force at `t` exists.
    fn ensure_lives(&mut self, t: Duration) {
        loop {
            let last = self.lives.last().expect("a motor always has a life");
            let Some((failed, _)) = last.failure else { return };
            let restart = failed + self.params.maintenance.downtime;
            if restart > t {
                return;
            }
            let index = self.lives.len() as u64;
            let next = Life::draw(self.seed, index, restart, &self.params.degradation);
            self.lives.push(next);
        }
    }

    /// The index of the life in force at `t` (its start at or before `t`; lives drawn).
    fn life_index(&mut self, t: Duration) -> usize {
        self.ensure_lives(t);
        self.drawn_life_index(t)
    }

    /// The same for a `t` whose life is already drawn.
    fn drawn_life_index(&self, t: Duration) -> usize {
        self.lives.partition_point(|l| l.start <= t).saturating_sub(1)
    }

    /// Whether the motor runs at `t` (false from a failure until its repair).
    pub fn is_running(&mut self, t: Duration) -> bool {
        let i = self.life_index(t);
        self.lives[i].running(t)
    }

    /// The motor's condition at `t` (ground truth).
    pub fn condition(&mut self, t: Duration) -> Condition {
        let i = self.life_index(t);
        let life = &self.lives[i];
        let running = life.running(t);
        let mut defects: Vec<(DefectKind, f64)> = Vec::new();
        if running || life.failure.is_some_and(|(at, _)| at == t) {
            for d in life.defects.iter().filter(|d| d.onset <= t) {
                defects.push((d.kind, d.severity(t)));
            }
        }
        Condition { running, defects }
    }

    /// Severity of `kind` at `t` (ground truth; 0 while down for repair).
    pub fn severity(&mut self, kind: DefectKind, t: Duration) -> f64 {
        self.condition(t).severity(kind)
    }

    /// The first failure at or after `t`: (when, cause), exact (ground truth). `None` if the
    /// motor never fails (no defect kind has a positive rate). While the motor is down for repair
    /// this is the next life's failure.
    pub fn next_failure(&mut self, t: Duration) -> Option<(Duration, DefectKind)> {
        let i = self.life_index(t);
        match self.lives[i].failure {
            Some((at, kind)) if at >= t => Some((at, kind)),
            Some((at, _)) => {
                self.ensure_lives(at + self.params.maintenance.downtime);
                self.lives[i + 1].failure
            }
            None => None,
        }
    }

    /// Time from `t` to the next failure (ground truth; see [`Motor::next_failure`]).
    pub fn time_to_failure(&mut self, t: Duration) -> Option<Duration> {
        self.next_failure(t).map(|(at, _)| at - t)
    }

    /// The defects of the life in force at `t`, including those not yet arisen (ground truth).
    pub fn defects(&mut self, t: Duration) -> Vec<Defect> {
        let i = self.life_index(t);
        self.lives[i].defects.clone()
    }

    /// Makes a defect of `kind` arise at `onset` and fail the motor `life` later (unless another
    /// defect fails it first), replacing any defect of that kind in that life; the lives after
    /// it are drawn again. For demos and tests. `onset` must not be before [`Motor::now`] and
    /// the motor must be running then.
    pub fn inject_defect(
        &mut self,
        kind: DefectKind,
        onset: Duration,
        life: Duration,
    ) -> Result<(), &'static str> {
        if onset < self.now {
            return Err("onset before the events already emitted");
        }
        let i = self.life_index(onset);
        if !self.lives[i].running(onset) {
            return Err("the motor is down for repair at the onset");
        }
        self.lives.truncate(i + 1);
        let p = self.params.degradation.get(kind);
        let defect = Defect {
            kind,
            onset,
            failure_at: onset + life.max(Duration::from_millis(1)),
            initial_severity: p.initial_severity,
            growth_exponent: p.growth_exponent,
        };
        let l = &mut self.lives[i];
        l.defects.retain(|d| d.kind != kind);
        l.defects.push(defect);
        l.settle();
        Ok(())
    }

    // ---- operating point ----

    /// Load at `t`, per unit of rated load (0 while down).
    pub fn load(&mut self, t: Duration) -> f64 {
        if self.is_running(t) {
            load_at(self.seed, &self.params.load, t.as_secs_f64())
        } else {
            0.0
        }
    }

    /// Slip at `t` (per unit).
    pub fn slip(&mut self, t: Duration) -> f64 {
        let load = self.load(t);
        self.params.slip(load)
    }

    /// Shaft frequency at `t`, Hz (0 while down).
    pub fn shaft_hz(&mut self, t: Duration) -> f64 {
        if self.is_running(t) {
            let load = self.load(t);
            self.params.shaft_hz(load)
        } else {
            0.0
        }
    }

    /// Bearing defect frequencies at the shaft speed of `t`.
    pub fn defect_frequencies(&mut self, t: Duration) -> DefectFrequencies {
        let fr = self.shaft_hz(t);
        self.params.bearing.defect_frequencies(fr)
    }

    /// Winding temperature at `t` without measurement noise, degrees Celsius: ambient plus a
    /// first-order lag (the thermal time constant) of the steady-state rise, which grows with
    /// load squared and with an overheating defect, and is zero while the motor is down.
    pub fn temperature(&mut self, t: Duration) -> f64 {
        const POINTS: i32 = 64;
        self.ensure_lives(t);
        let th = self.params.thermal;
        let tau = th.time_constant.as_secs_f64().max(1e-3);
        let h = tau / 10.0;
        let decay = (-h / tau).exp();
        let ts = t.as_secs_f64();
        let mut w = 1.0 - decay;
        let mut sum = 0.0;
        for i in 0..POINTS {
            sum += w * self.steady_rise(ts - (f64::from(i) + 0.5) * h);
            w *= decay;
        }
        sum /= 1.0 - decay.powi(POINTS);
        let ambient = th.ambient_c + th.ambient_daily_swing_c * (TAU * (ts / 86_400.0 - 15.0 / 24.0)).cos();
        ambient + sum
    }

    /// Steady-state temperature rise for the operating point at `secs` (lives drawn).
    fn steady_rise(&self, secs: f64) -> f64 {
        let (running, overheating) = if secs < 0.0 {
            (true, 0.0)
        } else {
            let d = Duration::from_secs_f64(secs);
            let life = &self.lives[self.drawn_life_index(d)];
            (life.running(d), life.severity(DefectKind::Overheating, d))
        };
        if !running {
            return 0.0;
        }
        let th = &self.params.thermal;
        let load = load_at(self.seed, &self.params.load, secs);
        let nl = th.no_load_loss_fraction;
        th.rated_rise_c * (nl + (1.0 - nl) * load * load) * (1.0 + th.overheating_rise_factor * overheating)
    }

    // ---- windows ----

    /// Fills `out` with one window of samples at `fs` Hz starting at motor time `t`:
    /// `[current A, vibration g, sound Pa, temperature degC]` per sample, sensor faults included,
    /// and returns the window's ground truth. The content depends only on the seed, the
    /// parameters, the defect timeline, `t`, `fs` and `out.len()`.
    pub fn capture(&mut self, t: Duration, fs: f64, out: &mut [[f32; 4]]) -> WindowTruth {
        assert!(fs > 0.0 && fs.is_finite(), "sample rate must be positive");
        let i = self.life_index(t);
        let life = &self.lives[i];
        let running = life.running(t);
        let severities = if running { life.severities(t) } else { [0.0; 5] };
        let load = if running { load_at(self.seed, &self.params.load, t.as_secs_f64()) } else { 0.0 };
        let temperature_c = self.temperature(t);
        let state = WindowState { running, load, severities, temperature_c };
        signal::synthesize(&self.params, self.seed, &self.offsets, t, fs, out, &state);
        let p = &self.params;
        let peak = (std::f64::consts::SQRT_2 * p.current.rated_a) as f32;
        let rise = p.thermal.rated_rise_c as f32;
        let scales = [
            ChannelScale { centre: 0.0, spread: peak, spike: 4.0 },
            ChannelScale { centre: 0.0, spread: 0.5, spike: 0.3 },
            ChannelScale { centre: 0.0, spread: 0.5, spike: 0.3 },
            ChannelScale { centre: p.thermal.ambient_c as f32 + 0.5 * rise, spread: 0.5 * rise, spike: 3.0 },
        ];
        let sensor_faults = sensor::apply(self.seed, &p.sensor_faults, &p.ranges, &scales, t, out);
        WindowTruth { running, sensor_faults }
    }

    // ---- the maintenance log ----

    /// Asks the crew to inspect the motor (requested at `t`); the finding comes out of
    /// [`Motor::advance`] `request_delay` later (never before [`Motor::now`]; if the motor is
    /// down for repair then, at its restart). Returns the planned answer time.
    pub fn request_inspection(&mut self, t: Duration) -> Duration {
        let at = (t + self.params.maintenance.request_delay).max(self.now);
        self.request_seq += 1;
        self.requests.insert((at, self.request_seq), t);
        at
    }

    /// Emits the maintenance events up to and including `to`, in time order (at one instant:
    /// failure, repair, routine inspection, requested inspections by request order).
    pub fn advance(&mut self, to: Duration) -> Vec<MaintenanceEvent> {
        let mut out = Vec::new();
        loop {
            let life_event = self.next_life_event().map(|(at, s)| (at, s, 0));
            let routine = self.next_routine.map(|at| (at, Source::Routine, 0));
            let request = self.requests.first_key_value().map(|(&(at, seq), _)| (at, Source::Request, seq));
            let Some(next) = [life_event, routine, request].into_iter().flatten().min() else { break };
            if next.0 > to {
                break;
            }
            match next {
                (at, Source::Failure, _) => {
                    let i = self.cursor.0;
                    let (_, cause) = self.lives[i].failure.expect("a failure event has a failure");
                    out.push(MaintenanceEvent::Failure { at, cause });
                    self.cursor = (i, Source::Repair);
                }
                (at, Source::Repair, _) => {
                    self.ensure_lives(at);
                    self.cursor = (self.cursor.0 + 1, Source::Failure);
                    out.push(MaintenanceEvent::Repaired { at });
                }
                (at, Source::Routine, _) => {
                    let mean = self.params.maintenance.inspection_interval.unwrap_or_default().as_secs_f64();
                    let gap = rng::exponential(&mut self.routine_rng, mean).max(1e-3);
                    self.next_routine = Some(at + Duration::from_secs_f64(gap));
                    if self.is_running(at) {
                        out.push(MaintenanceEvent::Inspection(self.inspect(at, None)));
                    }
                }
                (at, Source::Request, seq) => {
                    let requested = self.requests.remove(&(at, seq)).expect("the request is pending");
                    let i = self.life_index(at);
                    if self.lives[i].running(at) {
                        out.push(MaintenanceEvent::Inspection(self.inspect(at, Some(requested))));
                    } else {
                        let (failed, _) =
                            self.lives[i].failure.expect("a motor is down only after a failure");
                        let restart = failed + self.params.maintenance.downtime;
                        self.requests.insert((restart, seq), requested);
                    }
                }
            }
        }
        self.now = self.now.max(to);
        out
    }

    /// The next failure or repair to emit.
    fn next_life_event(&self) -> Option<(Duration, Source)> {
        let (i, stage) = self.cursor;
        let (failed, _) = self.lives[i].failure?;
        match stage {
            Source::Failure => Some((failed, Source::Failure)),
            _ => Some((failed + self.params.maintenance.downtime, Source::Repair)),
        }
    }

    /// What an inspector sees at `at` (the motor running).
    fn inspect(&mut self, at: Duration, requested: Option<Duration>) -> Inspection {
        let m = self.params.maintenance;
        let condition = self.condition(at);
        let mut r = WyRand::new(rng::hash(&[
            self.seed,
            rng::FINDING,
            at.as_nanos() as u64,
            requested.map_or(u64::MAX, |r| r.as_nanos() as u64),
        ]));
        let mut findings = Vec::new();
        for (kind, s) in condition.defects {
            let error = r.normal();
            if s < m.detection_threshold {
                continue;
            }
            let seen = (s * (1.0 + m.severity_error * error)).clamp(0.01, 1.0);
            findings.push(Finding { kind, severity: (seen * 100.0).round() / 100.0 });
        }
        Inspection { at, requested_at: requested, findings }
    }
}

/// Load at `secs` (may be negative: before motor time zero the profile continues).
pub(crate) fn load_at(seed: u64, p: &LoadProfile, secs: f64) -> f64 {
    let daily = p.daily_amplitude * (TAU * (secs / 86_400.0 - p.peak_hour / 24.0)).cos();
    let period = p.random_period.as_secs_f64();
    let random = if p.random_amplitude > 0.0 && period > 0.0 {
        let x = secs / period;
        let k = x.floor();
        let u = x - k;
        let knot = |k: i64| (2.0 * rng::unit(rng::hash(&[seed, rng::LOAD, k as u64])) - 1.0) * 3f64.sqrt();
        let (a, b) = (knot(k as i64), knot(k as i64 + 1));
        p.random_amplitude * (a + (b - a) * u * u * (3.0 - 2.0 * u))
    } else {
        0.0
    };
    (p.base_at(secs) + daily + random).clamp(p.min, p.max)
}
