//! Induction-motor physics: the world the motes sample (BLUEPRINT sections 7, 8 and 10).
//!
//! A [`Motor`] is a ~15 kW, four-pole induction motor by default ([`MotorParams`], every field
//! overridable): speed and slip follow a seeded load profile; five kinds of defect
//! ([`DefectKind`]: outer race, inner race, imbalance, broken rotor bar, overheating) arise at
//! seeded random times, grow to failure by a stated growth law, and the motor is repaired after
//! a downtime and restarts healthy. The crew's maintenance log ([`MaintenanceEvent`]: failures,
//! repairs, routine and requested inspection findings) comes out of [`Motor::advance`] in time
//! order; the ground truth ([`Motor::time_to_failure`], [`Motor::condition`]) is for scoring code
//! only.
//!
//! [`Motor::capture`] fills one raw window (default 2048 samples at 8192 Hz, both parameters)
//! of four channels in physical units, `[current A, vibration g, sound Pa, temperature degC]`
//! (indices [`CURRENT`], [`VIBRATION`], [`SOUND`], [`TEMPERATURE`]):
//!
//! - current: line frequency scaled by load, supply harmonics, broken-rotor-bar sidebands at
//!   `(1 +- 2s) f` (resolving them, `2 s f` is 1 to 2 Hz, takes windows of several seconds);
//! - vibration: 1x shaft (imbalance grows it), 2x shaft, 2x line frequency, bearing impacts at
//!   BPFO / BPFI (BPFI modulated at shaft rate) ringing a structural resonance (3 kHz), so
//!   the envelope spectrum shows the defect frequency; broadband roughness grows late;
//! - sound: the housing's vibration radiated, magnetic hum, the fan's blade-pass tone, noise;
//! - temperature: a first-order thermal model (ambient, losses growing with load squared,
//!   overheating), constant within a window but for noise;
//! - sensor faults per channel (stuck, spikes, dropouts, out of range), flagged in the
//!   window's [`WindowTruth`].
//!
//! Determinism: no clock, no unseeded randomness; time is always a parameter. A window depends
//! only on (seed, parameters, defect timeline, t, fs, length), never on earlier captures: its
//! noise comes from a generator seeded by hashing those. The defect timeline depends only on the
//! seed (and on [`Motor::inject_defect`], for demos). The events of [`Motor::advance`] depend on
//! the seed and the inspection requests made.
//!
//! [`Fleet`] makes N motors from one seed; [`TimeWarp`] maps a demo's host-elapsed time to
//! motor time.

mod bearing;
mod degradation;
mod fleet;
mod maintenance;
mod model;
mod params;
mod rng;
mod sensor;
mod signal;
mod warp;

pub use bearing::{defect_frequencies, BearingGeometry, DefectFrequencies};
pub use degradation::{Condition, Defect, DefectKind};
pub use fleet::{Fleet, Variation};
pub use maintenance::{Finding, Inspection, MaintenanceEvent};
pub use model::{Motor, WindowTruth};
pub use params::{
    synchronous_hz, CurrentParams, DefectParams, DegradationParams, FaultRate, LoadProfile,
    MaintenanceParams, MotorParams, NoiseParams, SensorFaultParams, SensorRange, SoundParams, ThermalParams,
    VibrationParams,
};
pub use sensor::SensorFaults;
pub use signal::{CHANNELS, CURRENT, SOUND, TEMPERATURE, VIBRATION};
pub use warp::TimeWarp;

/// The default raw window: samples per channel.
pub const WINDOW_LEN: usize = 2048;
/// The default sample rate, Hz.
pub const SAMPLE_RATE_HZ: f64 = 8192.0;
