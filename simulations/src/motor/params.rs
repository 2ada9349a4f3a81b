//! The motor model's parameters, with defaults for a ~15 kW, 400 V, 50 Hz, four-pole (two pole
//! pairs) induction motor. Every field is public: override with struct update syntax.

use std::time::Duration;

use super::bearing::BearingGeometry;
use super::degradation::DefectKind;

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

/// Everything that defines one motor.
#[derive(Debug, Clone, PartialEq)]
pub struct MotorParams {
    /// Supply frequency, Hz (50 or 60).
    pub line_hz: f64,
    /// Pole pairs (2 for a four-pole motor).
    pub pole_pairs: u32,
    /// Slip at rated load (per unit); slip grows linearly with load.
    pub rated_slip: f64,
    pub load: LoadProfile,
    pub bearing: BearingGeometry,
    pub current: CurrentParams,
    pub vibration: VibrationParams,
    pub sound: SoundParams,
    pub thermal: ThermalParams,
    pub noise: NoiseParams,
    pub degradation: DegradationParams,
    pub maintenance: MaintenanceParams,
    pub sensor_faults: SensorFaultParams,
    /// Each channel's measuring range ([current, vibration, sound, temperature]); readings
    /// outside it are impossible for a healthy sensor.
    pub ranges: [SensorRange; 4],
}

impl Default for MotorParams {
    fn default() -> Self {
        MotorParams {
            line_hz: 50.0,
            pole_pairs: 2,
            rated_slip: 0.025,
            load: LoadProfile::default(),
            bearing: BearingGeometry::default(),
            current: CurrentParams::default(),
            vibration: VibrationParams::default(),
            sound: SoundParams::default(),
            thermal: ThermalParams::default(),
            noise: NoiseParams::default(),
            degradation: DegradationParams::default(),
            maintenance: MaintenanceParams::default(),
            sensor_faults: SensorFaultParams::default(),
            ranges: SensorRange::DEFAULTS,
        }
    }
}

impl MotorParams {
    /// The same motor on a 60 Hz supply.
    pub fn line_60hz() -> Self {
        MotorParams { line_hz: 60.0, ..MotorParams::default() }
    }

    /// A motor that never degrades and whose sensors never fail (for tests and baselines).
    pub fn healthy() -> Self {
        MotorParams {
            degradation: DegradationParams::none(),
            sensor_faults: SensorFaultParams::none(),
            maintenance: MaintenanceParams { inspection_interval: None, ..MaintenanceParams::default() },
            ..MotorParams::default()
        }
    }

    /// Synchronous speed of the rotating field, revolutions per second (`line_hz / pole_pairs`).
    pub fn synchronous_hz(&self) -> f64 {
        synchronous_hz(self.line_hz, self.pole_pairs)
    }

    /// Slip at `load` (per unit of rated load).
    pub fn slip(&self, load: f64) -> f64 {
        self.rated_slip * load.max(0.0)
    }

    /// Shaft (rotor) frequency at `load`, Hz.
    pub fn shaft_hz(&self, load: f64) -> f64 {
        self.synchronous_hz() * (1.0 - self.slip(load))
    }

    /// Shaft frequency at rated load (what a nameplate's rpm / 60 says).
    pub fn rated_shaft_hz(&self) -> f64 {
        self.shaft_hz(1.0)
    }
}

/// Synchronous mechanical speed in revolutions per second: `line_hz / pole_pairs`
/// (multiply by 60 for rpm: 1500 rpm for 50 Hz and two pole pairs).
pub fn synchronous_hz(line_hz: f64, pole_pairs: u32) -> f64 {
    line_hz / f64::from(pole_pairs.max(1))
}

/// The load the motor drives, per unit of rated load: a base, a daily cycle, and a smooth seeded
/// random variation, clamped to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadProfile {
    pub base: f64,
    /// Amplitude of the daily (cosine) cycle.
    pub daily_amplitude: f64,
    /// Hour of the day (motor time, 0..24) at which the daily cycle peaks.
    pub peak_hour: f64,
    /// Standard deviation of the random variation.
    pub random_amplitude: f64,
    /// Spacing of the random variation's knots (it is smoothly interpolated between them).
    pub random_period: Duration,
    pub min: f64,
    pub max: f64,
    /// A change of regime: from this time on (motor time) the base load is the given one
    /// (a plant running a new product, say); `None`: one regime throughout.
    pub shift: Option<(Duration, f64)>,
}

impl Default for LoadProfile {
    fn default() -> Self {
        LoadProfile {
            base: 0.75,
            daily_amplitude: 0.15,
            peak_hour: 14.0,
            random_amplitude: 0.05,
            random_period: Duration::from_secs(15 * 60),
            min: 0.1,
            max: 1.15,
            shift: None,
        }
    }
}

impl LoadProfile {
    /// The base load at `secs` (motor time), after any regime shift.
    pub fn base_at(&self, secs: f64) -> f64 {
        match self.shift {
            Some((at, base)) if secs >= at.as_secs_f64() => base,
            _ => self.base,
        }
    }

    /// A constant load.
    pub fn constant(load: f64) -> Self {
        LoadProfile {
            base: load,
            daily_amplitude: 0.0,
            random_amplitude: 0.0,
            min: 0.0,
            max: 2.0,
            ..Self::default()
        }
    }
}

/// Stator current (one phase, measured by a current transformer), amperes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurrentParams {
    /// RMS current at rated load.
    pub rated_a: f64,
    /// No-load (magnetising) current as a fraction of rated current; RMS current at load `l` is
    /// `rated * sqrt(i0^2 + (1 - i0^2) l^2)`.
    pub no_load_fraction: f64,
    /// Supply harmonics (order, amplitude relative to the fundamental).
    pub harmonics: [(u32, f64); 3],
    /// Amplitude of each (1 +- 2s) f sideband relative to the fundamental, healthy rotor.
    pub brb_sideband_healthy: f64,
    /// The same with a broken-rotor-bar defect at severity 1 (grows linearly with severity).
    pub brb_sideband_at_failure: f64,
}

impl Default for CurrentParams {
    fn default() -> Self {
        CurrentParams {
            rated_a: 28.5,
            no_load_fraction: 0.4,
            harmonics: [(3, 0.01), (5, 0.03), (7, 0.02)],
            brb_sideband_healthy: 0.0005,
            brb_sideband_at_failure: 0.05,
        }
    }
}

/// Housing vibration (an accelerometer on the drive-end bearing housing), g.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VibrationParams {
    /// Amplitude at shaft frequency (1x), healthy.
    pub one_x_g: f64,
    /// Amplitude added at 1x by an imbalance at severity 1 (linear in severity).
    pub imbalance_one_x_g: f64,
    /// Amplitude at 2x shaft frequency (residual misalignment).
    pub two_x_g: f64,
    /// Amplitude at twice line frequency (electromagnetic forces).
    pub electrical_2f_g: f64,
    /// Amplitude of each 1x +- 2sf sideband with a broken rotor bar at severity 1.
    pub brb_sideband_g: f64,
    /// Peak of one bearing-defect impact at severity 1 (linear in severity).
    pub bearing_impulse_g: f64,
    /// Broadband noise grows by `1 + gain * s^2` with the worst bearing severity `s`.
    pub bearing_noise_gain: f64,
    /// Random jitter of impact times, as a fraction of the impact period (rolling-element slip).
    pub impulse_jitter: f64,
    /// The structural resonance the impacts excite, Hz (clamped to 0.4 fs for low sample rates).
    pub resonance_hz: f64,
    /// Its -3 dB bandwidth, Hz (decay time constant `1 / (pi * bandwidth)`).
    pub resonance_bandwidth_hz: f64,
}

impl Default for VibrationParams {
    fn default() -> Self {
        VibrationParams {
            one_x_g: 0.02,
            imbalance_one_x_g: 0.6,
            two_x_g: 0.006,
            electrical_2f_g: 0.01,
            brb_sideband_g: 0.03,
            bearing_impulse_g: 1.0,
            bearing_noise_gain: 3.0,
            impulse_jitter: 0.01,
            resonance_hz: 3000.0,
            resonance_bandwidth_hz: 250.0,
        }
    }
}

/// Sound pressure near the motor (a microphone), pascals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoundParams {
    /// Sound radiated by the housing per g of vibration.
    pub coupling_pa_per_g: f64,
    /// Magnetic hum at twice line frequency.
    pub hum_pa: f64,
    /// Cooling-fan blades (the fan tone is at blades x shaft frequency).
    pub fan_blades: u32,
    pub fan_tone_pa: f64,
}

impl Default for SoundParams {
    fn default() -> Self {
        SoundParams { coupling_pa_per_g: 1.0, hum_pa: 0.05, fan_blades: 9, fan_tone_pa: 0.06 }
    }
}

/// The first-order thermal model of the winding temperature, degrees Celsius.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThermalParams {
    /// Mean ambient temperature.
    pub ambient_c: f64,
    /// Amplitude of the ambient's daily swing (peaks with the load cycle's `peak_hour`).
    pub ambient_daily_swing_c: f64,
    /// Steady-state rise over ambient at rated load.
    pub rated_rise_c: f64,
    /// Losses at no load as a fraction of losses at rated load (iron and friction losses); the
    /// rest grow with load squared.
    pub no_load_loss_fraction: f64,
    /// Thermal time constant.
    pub time_constant: Duration,
    /// An overheating defect (cooling fan, insulation) at severity `s` multiplies the rise by
    /// `1 + factor * s`.
    pub overheating_rise_factor: f64,
}

impl Default for ThermalParams {
    fn default() -> Self {
        ThermalParams {
            ambient_c: 25.0,
            ambient_daily_swing_c: 3.0,
            rated_rise_c: 65.0,
            no_load_loss_fraction: 0.3,
            time_constant: Duration::from_secs(40 * 60),
            overheating_rise_factor: 1.0,
        }
    }
}

/// White measurement noise per channel (standard deviations), all scaled by `level`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseParams {
    pub level: f64,
    pub current_a: f64,
    pub vibration_g: f64,
    pub sound_pa: f64,
    pub temperature_c: f64,
}

impl Default for NoiseParams {
    fn default() -> Self {
        NoiseParams { level: 1.0, current_a: 0.15, vibration_g: 0.01, sound_pa: 0.05, temperature_c: 0.05 }
    }
}

/// How one kind of defect arises and grows.
///
/// Onsets are a Poisson process (`rate_per_year` per motor-year of running since the last
/// repair). After onset the severity grows from `initial_severity` to 1 over a life drawn
/// log-normally around `mean_life` (`life_spread` is the log's standard deviation); the motor
/// fails when it reaches 1. The growth law is `ds/dt = C s^m` with `m = growth_exponent`:
/// `m = 1` is exponential growth, `m > 1` Paris-like (slow, then sudden).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefectParams {
    pub rate_per_year: f64,
    pub mean_life: Duration,
    pub life_spread: f64,
    pub initial_severity: f64,
    pub growth_exponent: f64,
}

impl DefectParams {
    /// A defect kind that never arises.
    pub fn never() -> Self {
        DefectParams { rate_per_year: 0.0, ..Self::default() }
    }
}

impl Default for DefectParams {
    fn default() -> Self {
        DefectParams {
            rate_per_year: 0.5,
            mean_life: Duration::from_secs(20 * DAY),
            life_spread: 0.3,
            initial_severity: 0.02,
            growth_exponent: 1.0,
        }
    }
}

/// Degradation settings per defect kind. The default rates are accelerated (real motors see a
/// bearing failure every few years, not every two) so that a fleet produces outcomes within a
/// simulated season.
///
/// Bearing spalls grow Paris-like (`m = 3`): with the default vibration parameters a new spall
/// (severity 0.02, impacts of 0.02 g) already shows in the envelope spectrum at BPFO (peak about
/// 3x the envelope's median in one default window, 7x six days before failure) while the
/// vibration RMS rises by less than 15% until two days before failure and by about 25% one day
/// before. The other kinds grow exponentially.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradationParams {
    pub outer_race: DefectParams,
    pub inner_race: DefectParams,
    pub imbalance: DefectParams,
    pub broken_rotor_bar: DefectParams,
    pub overheating: DefectParams,
}

impl Default for DegradationParams {
    fn default() -> Self {
        let d = DefectParams::default();
        DegradationParams {
            outer_race: DefectParams {
                rate_per_year: 0.6,
                mean_life: Duration::from_secs(20 * DAY),
                growth_exponent: 3.0,
                ..d
            },
            inner_race: DefectParams {
                rate_per_year: 0.4,
                mean_life: Duration::from_secs(15 * DAY),
                growth_exponent: 3.0,
                ..d
            },
            imbalance: DefectParams {
                rate_per_year: 0.2,
                mean_life: Duration::from_secs(40 * DAY),
                initial_severity: 0.05,
                ..d
            },
            broken_rotor_bar: DefectParams {
                rate_per_year: 0.15,
                mean_life: Duration::from_secs(60 * DAY),
                initial_severity: 0.05,
                ..d
            },
            overheating: DefectParams {
                rate_per_year: 0.15,
                mean_life: Duration::from_secs(10 * DAY),
                initial_severity: 0.05,
                ..d
            },
        }
    }
}

impl DegradationParams {
    /// No defect ever arises.
    pub fn none() -> Self {
        let n = DefectParams::never();
        DegradationParams { outer_race: n, inner_race: n, imbalance: n, broken_rotor_bar: n, overheating: n }
    }

    /// Only `kind` arises, with `params`.
    pub fn only(kind: DefectKind, params: DefectParams) -> Self {
        let mut d = Self::none();
        *d.get_mut(kind) = params;
        d
    }

    pub fn get(&self, kind: DefectKind) -> &DefectParams {
        match kind {
            DefectKind::OuterRace => &self.outer_race,
            DefectKind::InnerRace => &self.inner_race,
            DefectKind::Imbalance => &self.imbalance,
            DefectKind::BrokenRotorBar => &self.broken_rotor_bar,
            DefectKind::Overheating => &self.overheating,
        }
    }

    pub fn get_mut(&mut self, kind: DefectKind) -> &mut DefectParams {
        match kind {
            DefectKind::OuterRace => &mut self.outer_race,
            DefectKind::InnerRace => &mut self.inner_race,
            DefectKind::Imbalance => &mut self.imbalance,
            DefectKind::BrokenRotorBar => &mut self.broken_rotor_bar,
            DefectKind::Overheating => &mut self.overheating,
        }
    }
}

/// The maintenance crew.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaintenanceParams {
    /// Time from a failure to the motor running again, healthy.
    pub downtime: Duration,
    /// Mean interval between routine inspections (exponentially distributed); `None`: only
    /// requested inspections.
    pub inspection_interval: Option<Duration>,
    /// Delay between an inspection request and its finding.
    pub request_delay: Duration,
    /// Inspectors see a defect only from this severity on.
    pub detection_threshold: f64,
    /// Relative standard deviation of the severity an inspector reports.
    pub severity_error: f64,
}

impl Default for MaintenanceParams {
    fn default() -> Self {
        MaintenanceParams {
            downtime: Duration::from_secs(8 * HOUR),
            inspection_interval: Some(Duration::from_secs(30 * DAY)),
            request_delay: Duration::from_secs(30 * 60),
            detection_threshold: 0.05,
            severity_error: 0.15,
        }
    }
}

/// How often one kind of sensor fault affects a channel.
///
/// `fraction` is the expected fraction of windows affected. With `episode` zero, each window is
/// affected independently; otherwise faults come in episodes of that length (aligned to a grid
/// with a per-channel seeded offset), each affected with probability `fraction`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultRate {
    pub fraction: f64,
    pub episode: Duration,
}

impl FaultRate {
    pub const NEVER: FaultRate = FaultRate { fraction: 0.0, episode: Duration::ZERO };
}

/// Sensor faults, drawn per channel (each channel independently, the same rates for all). The
/// defaults affect about 0.45% of a channel's windows, about 1.8% of windows in some channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorFaultParams {
    /// The channel reads one constant value (frozen ADC, broken wire to a held input).
    pub stuck: FaultRate,
    /// A few isolated samples jump far from the signal (EMI, loose connector).
    pub spikes: FaultRate,
    /// A run of samples reads zero (lost samples, brown-out).
    pub dropout: FaultRate,
    /// The channel reads outside its physical range (offset fault, open circuit to a rail).
    pub out_of_range: FaultRate,
}

impl Default for SensorFaultParams {
    fn default() -> Self {
        SensorFaultParams {
            stuck: FaultRate { fraction: 0.001, episode: Duration::from_secs(6 * HOUR) },
            spikes: FaultRate { fraction: 0.002, episode: Duration::ZERO },
            dropout: FaultRate { fraction: 0.001, episode: Duration::ZERO },
            out_of_range: FaultRate { fraction: 0.0005, episode: Duration::from_secs(HOUR) },
        }
    }
}

impl SensorFaultParams {
    pub fn none() -> Self {
        SensorFaultParams {
            stuck: FaultRate::NEVER,
            spikes: FaultRate::NEVER,
            dropout: FaultRate::NEVER,
            out_of_range: FaultRate::NEVER,
        }
    }
}

/// A channel's measuring range, in its physical unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorRange {
    pub min: f32,
    pub max: f32,
}

impl SensorRange {
    /// Current +-100 A, vibration +-16 g, sound +-20 Pa (about 117 dB SPL), temperature -40 to 150 C.
    pub const DEFAULTS: [SensorRange; 4] = [
        SensorRange { min: -100.0, max: 100.0 },
        SensorRange { min: -16.0, max: 16.0 },
        SensorRange { min: -20.0, max: 20.0 },
        SensorRange { min: -40.0, max: 150.0 },
    ];

    pub fn contains(&self, v: f32) -> bool {
        v >= self.min && v <= self.max
    }
}
