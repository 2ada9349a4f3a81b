//! The DSP features against the numpy/scipy reference (`tests/reference/gen_dsp.py`, which
//! wrote `dsp.json`: the configuration, the quantised samples of seven windows and their
//! features, computed independently from the definitions in `src/dsp/mod.rs`).
//!
//! Tolerance, every feature of every case: `|rust - ref| <= 1e-6 |ref| + abs`, with `abs =
//! 1e-12` (values that are exactly 0, such as the silent window's, or a fraction near 0),
//! except the sideband ratios `sb_lower` and `sb_upper`: `abs = 1e-8`. They move by about 0.5
//! per Hz of the fitted supply frequency, which each side places by its own search (golden
//! section here, Brent there) to within about 1e-9 Hz, and a healthy motor's ratio is only
//! about 1e-3: 1e-8 is a thousandth of the smallest ratio that means anything. 1e-6 relative
//! still fails any change of definition (sample instead of population variance: 2.4e-4; a
//! bin more or less in a band, Fisher's kurtosis, a missing factor 2, a rectangular window).

use aiot_actors::dsp::{DspConfig, DspFeatures, Extractor, FEATURE_COUNT};
use aiot_firmware::protocol::{Kind, Payload};
use aiot_firmware::sampling::{CHANNELS, DEFAULT_SAMPLE_RATE_HZ, SCALE, WINDOW};
use base64::Engine;
use serde_json::Value;

const REFERENCE: &str = include_str!("reference/dsp.json");

/// A case's raw-window payload, as a mote sends it: the header (sample rate, length, scales,
/// no clipping), then the fixture's samples (already i16 little-endian, channel-major).
fn payload(case: &Value) -> Vec<u8> {
    let samples =
        base64::engine::general_purpose::STANDARD.decode(case["samples_b64"].as_str().unwrap()).unwrap();
    assert_eq!(samples.len(), 2 * CHANNELS * WINDOW);
    let mut out = Vec::new();
    out.extend(DEFAULT_SAMPLE_RATE_HZ.to_le_bytes());
    out.extend((WINDOW as u32).to_le_bytes());
    SCALE.iter().for_each(|s| out.extend(s.to_le_bytes()));
    out.extend([0u8; 2 * CHANNELS]);
    out.extend(samples);
    out
}

fn extract(extractor: &mut Extractor, case: &Value) -> DspFeatures {
    let bytes = payload(case);
    let Ok(Payload::RawWindow(raw)) = Payload::decode(Kind::RawWindow, &bytes) else {
        panic!("not a raw window")
    };
    extractor.extract_raw(&raw).unwrap()
}

fn doc() -> Value {
    serde_json::from_str(REFERENCE).unwrap()
}

fn case_features(doc: &Value, name: &str) -> DspFeatures {
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
    extract(&mut Extractor::new(DspConfig::default()).unwrap(), case)
}

#[test]
fn features_match_the_numpy_reference() {
    let doc = doc();
    let config: DspConfig = serde_json::from_value(doc["config"].clone()).unwrap();
    assert_eq!(config, DspConfig::default(), "the reference uses the default configuration");
    let names: Vec<&str> =
        doc["feature_names"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, DspFeatures::NAMES, "the reference computes the same vector");
    let scales: Vec<f32> =
        doc["scale"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(scales, SCALE, "the reference quantises at the same scales");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    let mut extractor = Extractor::new(config).unwrap();
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected: Vec<f64> =
            case["features"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(expected.len(), FEATURE_COUNT);
        let got = extract(&mut extractor, case).as_array();
        for (i, (&g, &e)) in got.iter().zip(&expected).enumerate() {
            let feature = DspFeatures::NAMES[i];
            let abs = if feature.starts_with("sb_") { 1e-8 } else { 1e-12 };
            if (g - e).abs() > abs + 1e-6 * e.abs() {
                failures.push(format!("{name}: {feature} = {g}, reference {e} (diff {:e})", g - e));
            }
            if e != 0.0 {
                let rel = (g - e).abs() / e.abs();
                if rel > worst.0 {
                    worst = (rel, format!("{name}: {feature}"));
                }
            }
        }
    }
    println!("largest relative difference: {:e} ({})", worst.0, worst.1);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_reference_windows_are_distinct_conditions() {
    let doc = doc();
    let healthy = case_features(&doc, "healthy");
    let outer = case_features(&doc, "outer_race");
    let inner = case_features(&doc, "inner_race");
    let broken = case_features(&doc, "broken_bar");
    let offgrid = case_features(&doc, "heavy_offgrid");
    assert!(outer.env_bpfo > 10.0 * healthy.env_bpfo && outer.vib_kurtosis > 3.0 * healthy.vib_kurtosis);
    assert!(inner.env_bpfi > 10.0 * healthy.env_bpfi);
    assert!(broken.cur_rms > 0.0 && offgrid.sb_lower > 3.0 * healthy.sb_lower.max(healthy.sb_upper));
    assert!((offgrid.line_hz - 49.8).abs() < 0.01, "the supply is measured, not assumed");
    assert!((offgrid.shaft_hz - 24.9 * 0.97).abs() < 0.1 && (offgrid.slip - 0.03).abs() < 0.004);
    assert_eq!(case_features(&doc, "light_load").sb_lower, 0.0, "2sf under a quarter bin: not fitted");
}
