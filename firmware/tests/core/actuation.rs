//! The actuation rule: k consecutive windows, hysteresis, latch and reset.

use aiot_firmware::actuation::{ActuationConfig, ActuationState::*, Actuator, TransitionCause};

const T: f32 = 0.7; // trip at 0.7, derate at 0.5, leave derate below 0.4 (defaults)

fn rule() -> Actuator {
    Actuator::new(ActuationConfig::default(), Normal)
}

/// Feeds scores; returns the state after each.
fn run(a: &mut Actuator, scores: &[f32]) -> Vec<aiot_firmware::actuation::ActuationState> {
    scores
        .iter()
        .map(|&s| {
            a.on_score(s, T);
            a.state()
        })
        .collect()
}

#[test]
fn trips_after_k_consecutive_windows_over_threshold() {
    let mut a = rule();
    assert_eq!(a.on_score(0.9, T), None);
    assert_eq!(a.on_score(0.9, T), None);
    let t = a.on_score(0.95, T).expect("third window trips");
    assert_eq!((t.from, t.to, t.score, t.cause), (Normal, Trip, 0.95, TransitionCause::Score));
}

#[test]
fn a_broken_run_does_not_trip() {
    let mut a = rule();
    assert_eq!(run(&mut a, &[0.9, 0.9, 0.1, 0.9, 0.9]), [Normal; 5]);
    assert_eq!(run(&mut a, &[0.9]), [Trip]);
}

#[test]
fn derates_at_the_lower_threshold_then_trips() {
    let mut a = rule();
    assert_eq!(run(&mut a, &[0.55, 0.6, 0.5]), [Normal, Normal, Derate]);
    assert_eq!(run(&mut a, &[0.8, 0.8, 0.8]), [Derate, Derate, Trip]);
    // A run of high scores from Normal trips directly (trip is checked first).
    let mut b = rule();
    assert_eq!(run(&mut b, &[0.8, 0.8, 0.8]), [Normal, Normal, Trip]);
}

#[test]
fn leaving_derate_needs_k_windows_below_the_hysteresis_band() {
    let mut a = rule();
    run(&mut a, &[0.6, 0.6, 0.6]);
    assert_eq!(a.state(), Derate);
    // Below the derate threshold but inside the band: stays.
    assert_eq!(run(&mut a, &[0.45; 10]), [Derate; 10]);
    // Below 0.4 for k windows, with a break in between.
    assert_eq!(run(&mut a, &[0.3, 0.3, 0.45, 0.3, 0.3]), [Derate; 5]);
    let t = a.on_score(0.3, T).expect("third consecutive low window clears");
    assert_eq!((t.from, t.to), (Derate, Normal));
}

#[test]
fn trip_latches_until_reset() {
    let mut a = rule();
    run(&mut a, &[0.9, 0.9, 0.9]);
    assert_eq!(run(&mut a, &[0.0; 20]), [Trip; 20]);
    let t = a.reset().expect("reset leaves trip");
    assert_eq!((t.from, t.to, t.cause, t.score), (Trip, Normal, TransitionCause::Reset, 0.0));
    assert_eq!(a.reset(), None, "reset outside trip does nothing");
    // After the reset the run starts over.
    assert_eq!(run(&mut a, &[0.9, 0.9, 0.9]), [Normal, Normal, Trip]);
}

#[test]
fn a_latched_trip_can_be_restored_and_k_is_configurable() {
    let mut a = Actuator::new(ActuationConfig::default(), Trip);
    assert_eq!(run(&mut a, &[0.0; 3]), [Trip; 3]);
    let mut one = Actuator::new(ActuationConfig { k: 1, ..ActuationConfig::default() }, Normal);
    assert_eq!(run(&mut one, &[0.6, 0.1, 0.75]), [Derate, Normal, Trip]);
}

#[test]
fn a_run_over_the_threshold_that_began_before_a_derate_trips_at_its_kth_window() {
    let mut a = rule();
    // Derate at the third window, which is also the first over the trip threshold; the run of
    // high scores goes on through the derate and trips at its k-th window.
    assert_eq!(run(&mut a, &[0.55, 0.6, 0.75, 0.75, 0.75]), [Normal, Normal, Derate, Derate, Trip]);
}
