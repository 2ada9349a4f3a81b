//! The closed loop on the motes, checked end to end: motor physics -> window -> features ->
//! stage-1 score -> actuation, for the plant's motes, which leave the factory with a signed
//! stage-1 model (`factory_flash`).
//!
//! `LoopCheck` follows one mote window by window and holds it to the rule without trusting the
//! mote: it scores the window's features with the model itself (the one active in the mote's
//! flash, which an OTA update may have replaced), counts the run of scores at or
//! over the threshold, and requires a trip in the very window that completes a run of `k`, and
//! no trip before. RAM (the run) starts over when the mote boots; a trip is latched in flash.

use aiot_firmware::actuation::{ActuationConfig, ActuationState};
use aiot_firmware::features::FEATURE_COUNT;
use aiot_firmware::model::{Model, MAX_MODEL_SIZE};
use aiot_firmware::mote::{Persistent, WindowOutcome};
use aiot_firmware::ota::signed_message;
use aiot_firmware::protocol::OtaManifest;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The plant's model-signing key (a simulation has no secrets).
pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[0x5a; 32])
}

/// Index of the lowest and the highest vibration band in the feature vector.
const BAND_LOW: usize = 4;
const BAND_HIGH: usize = 7;

/// The factory model: it scores the lowest vibration band (imbalance, looseness) and the
/// highest (bearing defects ringing) against a healthy motor's levels, in tenths of a decade:
/// logit = z(low) + z(high) - 6, so a healthy motor scores about 0.0025 and a band one decade
/// over its healthy level trips. Threshold 0.5.
pub fn factory_model() -> Model {
    let mut offset = [0.0; FEATURE_COUNT];
    let mut scale = [1.0; FEATURE_COUNT];
    let mut weights = [0i8; FEATURE_COUNT];
    for (i, healthy) in [(BAND_LOW, -3.56), (BAND_HIGH, -4.40)] {
        offset[i] = healthy;
        scale[i] = 0.1;
        weights[i] = 10;
    }
    Model {
        version: 1,
        offset,
        scale,
        input_scale: 0.1,
        weights,
        weight_scale: 0.1,
        bias: -6.0,
        threshold: 0.5,
    }
}

/// Flashes the factory model into a mote's flash, signed as the registry would sign it (the
/// mote checks the signature as for any update).
pub fn factory_flash(persistent: &mut Persistent) {
    let model = factory_model();
    let mut image = [0u8; MAX_MODEL_SIZE];
    let len = model.encode(&mut image).expect("the factory model encodes");
    let image = &image[..len];
    let sha256: [u8; 32] = Sha256::digest(image).into();
    let signature = signing_key().sign(&signed_message(model.version, len as u32, &sha256)).to_bytes();
    let manifest = OtaManifest { model_version: model.version, size: len as u32, sha256, signature };
    persistent
        .flash_model(&manifest, image, &signing_key().verifying_key().to_bytes())
        .expect("the factory model verifies");
}

/// One mote's loop, followed window by window.
#[derive(Debug, Default, Clone)]
pub struct LoopCheck {
    /// Windows in a row scored at or over the threshold, this boot.
    run: u16,
    pub trips: u64,
}

impl LoopCheck {
    /// The mote booted: its run lengths were RAM.
    pub fn on_boot(&mut self) {
        self.run = 0;
    }

    /// Checks one window's outcome, scored by `model` (the mote's active one); `Err` says how
    /// the mote broke the rule.
    pub fn on_window(&mut self, outcome: &WindowOutcome, model: Option<&Model>) -> Result<(), String> {
        let (model, score) = match (model, outcome.score) {
            (Some(model), Some(score)) => (model, score),
            (None, None) => return Ok(()),
            (Some(_), None) => return Err("the mote has a model but did not score its window".into()),
            (None, Some(_)) => return Err("the mote has no model but scored its window".into()),
        };
        let expected = model.score(&outcome.features);
        if score != expected {
            return Err(format!("the mote scored {score}, its features score {expected}"));
        }
        let k = ActuationConfig::default().k;
        self.run = if score >= model.threshold { self.run.saturating_add(1) } else { 0 };
        let tripped_now = outcome.transition.is_some_and(|t| t.to == ActuationState::Trip);
        self.trips += u64::from(tripped_now);
        if self.run >= k && outcome.state != ActuationState::Trip {
            return Err(format!(
                "{} windows in a row scored over the threshold (last {score:.3}) but the mote is in {:?}",
                self.run, outcome.state
            ));
        }
        if tripped_now && self.run < k {
            return Err(format!("the mote tripped after {} windows over the threshold, not {k}", self.run));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factory_model_is_quiet_on_healthy_levels_and_trips_a_decade_up() {
        let model = factory_model();
        let mut healthy = [0.0f32; FEATURE_COUNT];
        healthy[BAND_LOW] = -3.56;
        healthy[BAND_HIGH] = -4.40;
        assert!(model.score(&healthy) < 0.01);
        let mut worn = healthy;
        worn[BAND_HIGH] += 1.0;
        assert!(model.score(&worn) > 0.95);
        let mut flash = Persistent::new();
        factory_flash(&mut flash);
        assert_eq!(flash.ota().active_model(), Some(model));
    }

    fn outcome(features: [f32; FEATURE_COUNT], state: ActuationState, tripped: bool) -> WindowOutcome {
        use aiot_firmware::actuation::{Transition, TransitionCause};
        let score = factory_model().score(&features);
        let transition = tripped.then_some(Transition {
            from: ActuationState::Normal,
            to: ActuationState::Trip,
            score,
            cause: TransitionCause::Score,
        });
        WindowOutcome { features, score: Some(score), state, transition, frames: 1 }
    }

    #[test]
    fn a_mote_that_does_not_trip_on_the_kth_window_or_trips_early_is_caught() {
        let mut worn = [0.0f32; FEATURE_COUNT];
        worn[BAND_LOW] = -3.56;
        worn[BAND_HIGH] = -3.0;
        let mut lazy = LoopCheck::default();
        assert!(lazy
            .on_window(&outcome(worn, ActuationState::Normal, false), Some(&factory_model()))
            .is_ok());
        assert!(lazy
            .on_window(&outcome(worn, ActuationState::Derate, false), Some(&factory_model()))
            .is_ok());
        let late = lazy.on_window(&outcome(worn, ActuationState::Derate, false), Some(&factory_model()));
        assert!(late.is_err_and(|why| why.contains("3 windows in a row")));

        let mut eager = LoopCheck::default();
        assert!(eager
            .on_window(&outcome(worn, ActuationState::Normal, false), Some(&factory_model()))
            .is_ok());
        let early = eager.on_window(&outcome(worn, ActuationState::Trip, true), Some(&factory_model()));
        assert!(early.is_err_and(|why| why.contains("after 2 windows")));

        let mut rebooted = LoopCheck::default();
        rebooted.on_window(&outcome(worn, ActuationState::Normal, false), Some(&factory_model())).unwrap();
        rebooted.on_window(&outcome(worn, ActuationState::Normal, false), Some(&factory_model())).unwrap();
        rebooted.on_boot();
        rebooted
            .on_window(&outcome(worn, ActuationState::Normal, false), Some(&factory_model()))
            .expect("the run started over at boot");

        let mut wrong_score = outcome(worn, ActuationState::Normal, false);
        wrong_score.score = Some(0.1);
        assert!(LoopCheck::default().on_window(&wrong_score, Some(&factory_model())).is_err());
    }
}
