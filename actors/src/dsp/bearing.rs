//! Rolling-element bearing geometry and its defect frequencies: the one definition in the
//! workspace (the motor physics in `aiot-simulations` re-exports it, so the faults it makes and
//! the bands the filter looks in cannot disagree).

use serde::{Deserialize, Serialize};

/// A rolling-element bearing's geometry. Lengths in millimetres, angle in degrees.
///
/// The default is a 6309 deep-groove ball bearing, the drive-end bearing of a typical 15 kW
/// four-pole motor (frame 160): 8 balls of 17.462 mm on a 72.5 mm pitch circle, no contact angle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BearingGeometry {
    /// Number of rolling elements.
    pub balls: u32,
    /// Rolling-element diameter `d`, mm.
    pub ball_diameter_mm: f64,
    /// Pitch diameter `D`, mm.
    pub pitch_diameter_mm: f64,
    /// Contact angle, degrees.
    pub contact_angle_deg: f64,
}

impl Default for BearingGeometry {
    fn default() -> Self {
        BearingGeometry {
            balls: 8,
            ball_diameter_mm: 17.462,
            pitch_diameter_mm: 72.5,
            contact_angle_deg: 0.0,
        }
    }
}

/// The characteristic defect frequencies of a bearing at one shaft speed, in Hz.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DefectFrequencies {
    /// Ball pass frequency, outer race: `n/2 * fr * (1 - d/D cos a)`.
    pub bpfo: f64,
    /// Ball pass frequency, inner race: `n/2 * fr * (1 + d/D cos a)`.
    pub bpfi: f64,
    /// Ball spin frequency: `D/(2d) * fr * (1 - (d/D cos a)^2)` (a ball defect strikes the
    /// races at twice this rate).
    pub bsf: f64,
    /// Fundamental train (cage) frequency: `fr/2 * (1 - d/D cos a)`.
    pub ftf: f64,
}

impl BearingGeometry {
    /// The defect frequencies at shaft frequency `shaft_hz` (the inner race turning with the
    /// shaft, the outer race fixed).
    pub fn defect_frequencies(&self, shaft_hz: f64) -> DefectFrequencies {
        defect_frequencies(self, shaft_hz)
    }
}

/// The standard bearing defect frequencies (see [`DefectFrequencies`]), a pure function of
/// the geometry and the shaft frequency in Hz.
pub fn defect_frequencies(g: &BearingGeometry, shaft_hz: f64) -> DefectFrequencies {
    let ratio = g.ball_diameter_mm / g.pitch_diameter_mm * g.contact_angle_deg.to_radians().cos();
    let n = f64::from(g.balls);
    DefectFrequencies {
        bpfo: n / 2.0 * shaft_hz * (1.0 - ratio),
        bpfi: n / 2.0 * shaft_hz * (1.0 + ratio),
        bsf: g.pitch_diameter_mm / (2.0 * g.ball_diameter_mm) * shaft_hz * (1.0 - ratio * ratio),
        ftf: shaft_hz / 2.0 * (1.0 - ratio),
    }
}
