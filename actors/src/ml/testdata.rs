//! Seeded synthetic data for the module's tests: standard normals and motor feature windows.
//!
//! [`motor_windows`] draws stage-1 feature vectors (`aiot_firmware::features`' order and units)
//! for a fleet at varying load, about 12% of them from motors with a bearing defect of random
//! severity (early defects barely show), with 3% of labels flipped (an inspector's mistakes):
//! a data set a linear model separates well but not perfectly. [`fleet`] lays them out as a
//! fleet's labelled windows over 30 days.

use aiot_firmware::features::{FeatureVector, FEATURE_COUNT};

use super::dataset::Window;
use super::labels::Outcomes;
use crate::maintenance::{Defect, MaintenanceEvent, MaintenanceRecord};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A standard normal draw (Box-Muller; one of the pair is discarded).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` windows and their labels (`true` = degraded), reproducible from `seed`.
pub fn motor_windows(seed: u64, n: usize) -> (Vec<FeatureVector>, Vec<bool>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let load: f64 = 0.3 + 0.7 * rng.random::<f64>();
        let degraded = rng.random::<f64>() < 0.12;
        let severity = if degraded { rng.random::<f64>().powf(0.7) } else { 0.0 };
        let machine = normal(&mut rng); // this window's shared vibration level (mounting, speed)
        let vib_rms = 0.04
            * (1.0 + 0.6 * load)
            * (0.25 * machine + 0.1 * normal(&mut rng)).exp()
            * (1.0 + 0.8 * severity);
        let crest = 3.2 + 0.25 * normal(&mut rng) + 2.0 * severity;
        let kurtosis = 3.0
            + 0.3 * normal(&mut rng).abs()
            + 5.0 * severity * severity
            + 0.5 * severity * normal(&mut rng).abs();
        let band_base = (vib_rms * vib_rms).log10();
        let bands = [
            band_base - 0.3 + 0.15 * normal(&mut rng),
            band_base - 0.9 + 0.6 * severity + 0.2 * normal(&mut rng),
            band_base - 1.4 + 0.9 * severity + 0.25 * normal(&mut rng),
            band_base - 2.0 + 0.5 * severity + 0.3 * normal(&mut rng),
        ];
        let cur_rms = 4.0 + 11.0 * load + 0.3 * normal(&mut rng) + 0.4 * severity;
        let sound_rms =
            (0.15 + 0.1 * load) * (0.15 * machine + 0.1 * normal(&mut rng)).exp() * (1.0 + 0.5 * severity);
        let temp_mean = 35.0 + 25.0 * load + 2.5 * normal(&mut rng) + 4.0 * severity;
        let values = [
            vib_rms,
            vib_rms * crest,
            crest,
            kurtosis,
            bands[0],
            bands[1],
            bands[2],
            bands[3],
            cur_rms,
            sound_rms,
            temp_mean,
        ];
        let mut window: FeatureVector = [0.0; FEATURE_COUNT];
        for (slot, v) in window.iter_mut().zip(values) {
            *slot = v as f32;
        }
        features.push(window);
        labels.push(degraded != (rng.random::<f64>() < 0.03));
    }
    (features, labels)
}

/// The windows as an `n x FEATURE_COUNT` f64 matrix.
pub fn to_matrix(features: &[FeatureVector]) -> Array2<f64> {
    Array2::from_shape_fn((features.len(), FEATURE_COUNT), |(i, j)| f64::from(features[i][j]))
}

pub const HOUR: u64 = 3_600_000;
pub const DAY: u64 = 24 * HOUR;

/// 60 motors, a window every 6 hours for 30 days; motors 1..=15 fail on day 25 and their last
/// week looks degraded. A few windows are flagged (and look degraded: if they entered training
/// they would teach noise).
pub fn fleet() -> (Vec<Window>, Outcomes) {
    let (vectors, labels) = motor_windows(11, 20_000);
    let mut healthy = vectors.iter().zip(&labels).filter(|(_, l)| !**l).map(|(v, _)| v);
    let mut degraded = vectors.iter().zip(&labels).filter(|(_, l)| **l).map(|(v, _)| v);
    let (mut windows, mut outcomes) = (Vec::new(), Outcomes::default());
    for mote in 1..=60u32 {
        let fails = mote <= 15;
        if fails {
            let event = MaintenanceEvent::Failure { defect: Defect::OuterRace };
            outcomes.record(&MaintenanceRecord { mote, time_ms: 25 * DAY, event });
        }
        for step in 0..120u64 {
            let time_ms = step * 6 * HOUR;
            let late = fails && time_ms > 18 * DAY && time_ms < 25 * DAY;
            let flagged = step % 40 == 7;
            let source = if late || flagged { degraded.next() } else { healthy.next() };
            let values = source.expect("enough windows").iter().map(|v| f64::from(*v)).collect();
            windows.push(Window { mote, time_ms, values, flagged });
        }
    }
    (windows, outcomes)
}
