//! The feature vector against the numpy/scipy reference (`tests/reference/gen_features.py`,
//! which wrote `features.json`: the quantised samples of five windows and their features).
//!
//! Tolerances, per feature, `|rust - ref| <= abs + rel * |ref|`:
//! - statistics (RMS, peak, crest, kurtosis, current and sound RMS, temperature mean):
//!   `rel = 1e-6`, `abs = 1e-9`. Both sides accumulate the same f64 moments of the same samples
//!   (only the summation order differs, ~1e-15 relative) and round to f32, so they agree to
//!   within one f32 ulp (6e-8 relative; measured: 2e-16, they round alike). 1e-6 still catches
//!   any change of definition: sample instead of population variance differs by 2.4e-4 at
//!   N = 2048, a missing mean removal or Fisher's kurtosis by far more.
//! - band energies (log10 of g²): `abs = 1e-4`. The firmware's FFT runs in f32 on samples
//!   rounded to f32 (numpy's in f64): rounding errors of order 1e-7 of the window's power,
//!   spread over 1024 bins. Measured over all cases, including the weakest band (the saturated
//!   case's highest, 8e-7 of its window's power): at most 1.5e-6 in log10. 1e-4 (0.02 % in
//!   power) keeps a 60-fold margin, while a band edge moved by one bin or a lost factor 2 of
//!   the one-sided power (0.3 in log10) still fails.

use aiot_firmware::features::{extract, FEATURE_COUNT, FEATURE_NAMES};
use aiot_firmware::sampling::{Window, CHANNELS, DEFAULT_SAMPLE_RATE_HZ, SCALE, WINDOW};
use serde_json::Value;

const REFERENCE: &str = include_str!("../reference/features.json");

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= u32::from(value(c)) << (18 - 6 * i);
        }
        out.extend(&acc.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn window(case: &Value) -> Window {
    let raw = base64(case["samples_b64"].as_str().unwrap());
    assert_eq!(raw.len(), 2 * CHANNELS * WINDOW);
    let mut w = Window::new(DEFAULT_SAMPLE_RATE_HZ);
    for (k, pair) in raw.chunks(2).enumerate() {
        w.samples[k / WINDOW][k % WINDOW] = i16::from_le_bytes([pair[0], pair[1]]);
    }
    w
}

#[test]
fn features_match_the_numpy_reference() {
    let doc: Value = serde_json::from_str(REFERENCE).unwrap();
    assert_eq!(doc["sample_rate_hz"], DEFAULT_SAMPLE_RATE_HZ);
    assert_eq!(doc["window"], WINDOW);
    let names: Vec<&str> =
        doc["feature_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, FEATURE_NAMES, "the reference computes the same vector");
    let scales: Vec<f32> =
        doc["scale"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(scales, SCALE, "the reference quantises at the same scales");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected: Vec<f64> =
            case["features"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(expected.len(), FEATURE_COUNT);
        let got = extract(&window(case));
        for i in 0..FEATURE_COUNT {
            let (rel, abs) = if (4..8).contains(&i) { (0.0, 1e-4) } else { (1e-6, 1e-9) };
            let (g, e) = (f64::from(got[i]), expected[i]);
            assert!(
                (g - e).abs() <= abs + rel * e.abs(),
                "{name}: {} = {g}, reference {e} (diff {:e})",
                FEATURE_NAMES[i],
                g - e
            );
        }
    }
}

#[test]
fn the_reference_windows_are_distinct_conditions() {
    let doc: Value = serde_json::from_str(REFERENCE).unwrap();
    let f = |name: &str| {
        let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
        extract(&window(case))
    };
    let (healthy, fault, saturated) = (f("healthy"), f("outer_race"), f("saturated"));
    assert!(fault[3] > 3.0 * healthy[3], "bearing impacts raise kurtosis");
    assert!(fault[7] > healthy[7] + 2.0, "and the high band");
    let sat = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == "saturated").unwrap();
    assert!(window(sat).samples[1].contains(&32767), "the saturated case clips");
    assert_eq!(saturated[1], 16.0, "its vibration peak sits at full scale");
}
