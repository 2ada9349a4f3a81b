//! The motor model: defect frequencies against hand values, spectra of captured windows,
//! degradation to failure and repair, determinism, inspections, sensor faults, temperature.

use std::f64::consts::TAU;
use std::time::Duration;

use aiot_simulations::motor::*;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

// ---- a small FFT for the checks ----

#[derive(Clone, Copy, Debug, Default)]
struct C(f64, f64);

/// In-place radix-2 FFT (`inverse` without the 1/n scaling); `x.len()` a power of two.
fn fft(x: &mut [C], inverse: bool) {
    let n = x.len();
    assert!(n.is_power_of_two());
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            x.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let w = sign * TAU / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (s, c) = (w * k as f64).sin_cos();
                let a = x[start + k];
                let b = x[start + k + len / 2];
                let t = C(b.0 * c - b.1 * s, b.0 * s + b.1 * c);
                x[start + k] = C(a.0 + t.0, a.1 + t.1);
                x[start + k + len / 2] = C(a.0 - t.0, a.1 - t.1);
            }
        }
        len <<= 1;
    }
}

fn channel(w: &[[f32; 4]], ch: usize) -> Vec<f64> {
    w.iter().map(|s| f64::from(s[ch])).collect()
}

fn hann(n: usize) -> Vec<f64> {
    (0..n).map(|i| 0.5 - 0.5 * (TAU * i as f64 / n as f64).cos()).collect()
}

/// Amplitude spectrum (Hann window, scaled so a sinusoid of amplitude A shows about A).
fn spectrum(x: &[f64]) -> Vec<f64> {
    let w = hann(x.len());
    let sum: f64 = w.iter().sum();
    let mut c: Vec<C> = x.iter().zip(&w).map(|(v, w)| C(v * w, 0.0)).collect();
    fft(&mut c, false);
    c[..x.len() / 2].iter().map(|z| 2.0 * (z.0 * z.0 + z.1 * z.1).sqrt() / sum).collect()
}

/// Amplitude of the component at `freq` (a Hann-windowed DFT at exactly that frequency).
fn amplitude_at(x: &[f64], fs: f64, freq: f64) -> f64 {
    let w = hann(x.len());
    let sum: f64 = w.iter().sum();
    let (mut re, mut im) = (0.0, 0.0);
    for (i, (v, w)) in x.iter().zip(&w).enumerate() {
        let ph = TAU * freq * i as f64 / fs;
        re += v * w * ph.cos();
        im -= v * w * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / sum
}

/// The frequency of the largest bin of `spec` between `lo` and `hi` Hz.
fn peak(spec: &[f64], bin_hz: f64, lo: f64, hi: f64) -> f64 {
    let (a, b) = ((lo / bin_hz).ceil() as usize, (hi / bin_hz) as usize);
    let i = (a..=b).max_by(|&i, &j| spec[i].total_cmp(&spec[j])).unwrap();
    i as f64 * bin_hz
}

/// The envelope spectrum of `x`: band-pass `lo..hi` Hz, analytic signal, magnitude, mean
/// removed, amplitude spectrum.
fn envelope_spectrum(x: &[f64], fs: f64, lo: f64, hi: f64) -> Vec<f64> {
    let n = x.len();
    let mut c: Vec<C> = x.iter().map(|&v| C(v, 0.0)).collect();
    fft(&mut c, false);
    for (i, z) in c.iter_mut().enumerate() {
        let f = i as f64 * fs / n as f64;
        let keep = i < n / 2 && f >= lo && f <= hi;
        *z = if keep { C(2.0 * z.0, 2.0 * z.1) } else { C(0.0, 0.0) };
    }
    fft(&mut c, true);
    let env: Vec<f64> = c.iter().map(|z| (z.0 * z.0 + z.1 * z.1).sqrt() / n as f64).collect();
    let mean = env.iter().sum::<f64>() / n as f64;
    let env: Vec<f64> = env.iter().map(|v| v - mean).collect();
    spectrum(&env)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A healthy motor at constant load, no sensor faults.
fn steady(load: f64) -> MotorParams {
    MotorParams { load: LoadProfile::constant(load), ..MotorParams::healthy() }
}

fn window(m: &mut Motor, t: Duration, fs: f64, n: usize) -> (Vec<[f32; 4]>, WindowTruth) {
    let mut w = vec![[0.0f32; 4]; n];
    let truth = m.capture(t, fs, &mut w);
    (w, truth)
}

// ---- defect frequencies and speed ----

#[test]
fn defect_frequencies_match_hand_values() {
    // n = 12, d = 10 mm, D = 50 mm, no contact angle, fr = 10 Hz: d/D = 0.2.
    // BPFO = 6 * 10 * 0.8 = 48; BPFI = 6 * 10 * 1.2 = 72; BSF = 2.5 * 10 * (1 - 0.04) = 24;
    // FTF = 5 * 0.8 = 4.
    let g = BearingGeometry {
        balls: 12,
        ball_diameter_mm: 10.0,
        pitch_diameter_mm: 50.0,
        contact_angle_deg: 0.0,
    };
    let f = defect_frequencies(&g, 10.0);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(f.bpfo, 48.0) && close(f.bpfi, 72.0) && close(f.bsf, 24.0) && close(f.ftf, 4.0), "{f:?}");

    // The default 6309 (8 balls, 17.462 / 72.5 mm) at 1462.5 rpm (24.375 Hz):
    // d/D = 0.2408552; BPFO = 4 * 24.375 * 0.7591448 = 74.0166; BPFI = 97.5 * 1.2408552 = 120.9834;
    // BSF = 2.0759 * 24.375 * (1 - 0.0580112) = 47.6655; FTF = 12.1875 * 0.7591448 = 9.2521.
    let f = BearingGeometry::default().defect_frequencies(24.375);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
    assert!(
        close(f.bpfo, 74.0166) && close(f.bpfi, 120.9834) && close(f.bsf, 47.6655) && close(f.ftf, 9.2521),
        "{f:?}"
    );

    // A 15 degree contact angle: 9 balls, 7.94 / 39.04 mm, 30 Hz: d/D cos a = 0.196449.
    let g = BearingGeometry {
        balls: 9,
        ball_diameter_mm: 7.94,
        pitch_diameter_mm: 39.04,
        contact_angle_deg: 15.0,
    };
    let f = g.defect_frequencies(30.0);
    assert!(
        close(f.bpfo, 108.4791) && close(f.bpfi, 161.5209) && close(f.bsf, 70.9068) && close(f.ftf, 12.0532),
        "{f:?}"
    );
    // Identities: BPFO + BPFI = n fr; FTF = BPFO / n.
    assert!((f.bpfo + f.bpfi - 270.0).abs() < 1e-9 && (f.ftf - f.bpfo / 9.0).abs() < 1e-9);
}

#[test]
fn speed_and_slip() {
    assert_eq!(synchronous_hz(50.0, 2), 25.0);
    assert_eq!(synchronous_hz(60.0, 2), 30.0);
    assert_eq!(synchronous_hz(50.0, 1), 50.0);
    let p = MotorParams::default();
    assert!((p.rated_shaft_hz() - 24.375).abs() < 1e-12, "1462.5 rpm at rated load");
    assert!(p.shaft_hz(0.5) > p.shaft_hz(1.0), "slip grows with load");
    assert!((p.slip(0.5) - 0.0125).abs() < 1e-12);
    let mut m = Motor::new(steady(0.8), 1);
    assert!((m.shaft_hz(HOUR) - 25.0 * (1.0 - 0.025 * 0.8)).abs() < 1e-9);
    assert!((MotorParams::line_60hz().rated_shaft_hz() - 29.25).abs() < 1e-12);
}

// ---- spectra ----

#[test]
fn current_and_vibration_peaks() {
    for params in [steady(0.75), MotorParams { line_hz: 60.0, ..steady(0.75) }] {
        let mut m = Motor::new(params.clone(), 3);
        let t = DAY;
        let fs = 8192.0;
        let (w, truth) = window(&mut m, t, fs, 8192); // 1 Hz bins
        assert!(truth.running && !truth.any_sensor_fault());
        let f = params.line_hz;
        let current = spectrum(&channel(&w, CURRENT));
        assert_eq!(peak(&current, 1.0, 5.0, 2000.0), f, "current peaks at line frequency");
        // Fundamental amplitude: sqrt(2) * 28.5 * sqrt(0.16 + 0.84 * 0.5625) = 31.9 A.
        let a1 = std::f64::consts::SQRT_2 * 28.5 * (0.16f64 + 0.84 * 0.5625).sqrt();
        let measured = amplitude_at(&channel(&w, CURRENT), fs, f);
        assert!((measured - a1).abs() / a1 < 0.02, "fundamental {measured} vs {a1}");
        // 5th harmonic at 3%.
        assert!((amplitude_at(&channel(&w, CURRENT), fs, 5.0 * f) / a1 - 0.03).abs() < 0.003);

        let fr = m.shaft_hz(t);
        let vib = channel(&w, VIBRATION);
        let spec = spectrum(&vib);
        assert!((peak(&spec, 1.0, 5.0, 60.0) - fr).abs() <= 1.0, "1x shaft at {fr}");
        assert!((peak(&spec, 1.0, 80.0, 200.0) - 2.0 * f).abs() <= 1.0, "2x line frequency");
        let floor = median(&spec);
        assert!(amplitude_at(&vib, fs, fr) > 20.0 * floor && amplitude_at(&vib, fs, 2.0 * f) > 10.0 * floor);
        // Sound carries the hum at 2f and the fan tone at 9 x fr.
        let sound = spectrum(&channel(&w, SOUND));
        assert!(
            (peak(&sound, 1.0, 80.0, 400.0) - 9.0 * fr).abs() <= 1.0
                || (peak(&sound, 1.0, 80.0, 400.0) - 2.0 * f).abs() <= 1.0
        );
    }
}

#[test]
fn default_window_shows_line_frequency_and_1x() {
    let mut m = Motor::new(steady(0.75), 4);
    let (w, _) = window(&mut m, DAY, SAMPLE_RATE_HZ, WINDOW_LEN);
    let bin = SAMPLE_RATE_HZ / WINDOW_LEN as f64; // 4 Hz
    assert!((peak(&spectrum(&channel(&w, CURRENT)), bin, 5.0, 2000.0) - 50.0).abs() <= bin);
    assert!((peak(&spectrum(&channel(&w, VIBRATION)), bin, 8.0, 60.0) - m.shaft_hz(DAY)).abs() <= bin);
}

#[test]
fn imbalance_grows_1x() {
    let mut healthy = Motor::new(steady(0.75), 5);
    let mut unbalanced = Motor::new(steady(0.75), 5);
    unbalanced.inject_defect(DefectKind::Imbalance, Duration::ZERO, 10 * DAY).unwrap();
    let t = 9 * DAY;
    let fr = healthy.shaft_hz(t);
    let (wh, _) = window(&mut healthy, t, 8192.0, 8192);
    let (wu, _) = window(&mut unbalanced, t, 8192.0, 8192);
    let s = unbalanced.severity(DefectKind::Imbalance, t);
    let (ah, au) = (
        amplitude_at(&channel(&wh, VIBRATION), 8192.0, fr),
        amplitude_at(&channel(&wu, VIBRATION), 8192.0, fr),
    );
    assert!((ah - 0.02).abs() < 0.003, "healthy 1x {ah}");
    assert!((au - (0.02 + 0.6 * s)).abs() < 0.01, "1x {au} at severity {s}");
}

#[test]
fn broken_rotor_bar_sidebands() {
    // 2sf is about 1.9 Hz: resolving the sidebands takes a long window (16 s at 1024 Hz).
    let (fs, n) = (1024.0, 16_384);
    let t = 9 * DAY + HOUR;
    let mut healthy = Motor::new(steady(0.75), 6);
    let mut broken = Motor::new(steady(0.75), 6);
    broken.inject_defect(DefectKind::BrokenRotorBar, Duration::ZERO, 10 * DAY).unwrap();
    let s = broken.slip(t);
    let f = 50.0;
    let ratio = |m: &mut Motor| {
        let (w, _) = window(m, t, fs, n);
        let x = channel(&w, CURRENT);
        let a1 = amplitude_at(&x, fs, f);
        let lower = amplitude_at(&x, fs, (1.0 - 2.0 * s) * f);
        let upper = amplitude_at(&x, fs, (1.0 + 2.0 * s) * f);
        // Between the sidebands and the fundamental there is nothing.
        let between = amplitude_at(&x, fs, (1.0 - s) * f);
        (lower / a1, upper / a1, between / a1)
    };
    let (hl, hu, _) = ratio(&mut healthy);
    let (bl, bu, between) = ratio(&mut broken);
    let sev = broken.severity(DefectKind::BrokenRotorBar, t);
    assert!(sev > 0.6, "severity {sev}");
    assert!(hl < 0.002 && hu < 0.002, "healthy sidebands {hl} {hu}");
    // 0.0005 + (0.05 - 0.0005) * severity relative to the fundamental.
    let expected = 0.0005 + 0.0495 * sev;
    assert!(
        (bl - expected).abs() < 0.2 * expected && (bu - expected).abs() < 0.2 * expected,
        "{bl} {bu} vs {expected}"
    );
    assert!(between < 0.01, "no component between sideband and fundamental: {between}");
}

#[test]
fn envelope_spectrum_shows_bearing_defects() {
    let (fs, n) = (SAMPLE_RATE_HZ, WINDOW_LEN);
    let bin = fs / n as f64;
    let t = 7 * DAY;
    for (kind, seed) in [(DefectKind::OuterRace, 7), (DefectKind::InnerRace, 8)] {
        let mut m = Motor::new(steady(0.75), seed);
        m.inject_defect(kind, Duration::ZERO, 10 * DAY).unwrap();
        let sev = m.severity(kind, t);
        assert!(sev > 0.2 && sev < 0.4, "severity {sev}");
        let df = m.defect_frequencies(t);
        let fr = m.shaft_hz(t);
        let (w, _) = window(&mut m, t, fs, n);
        let env = envelope_spectrum(&channel(&w, VIBRATION), fs, 2000.0, 4000.0);
        let found = peak(&env, bin, 10.0, 400.0);
        match kind {
            DefectKind::OuterRace => {
                assert!((found - df.bpfo).abs() <= bin, "envelope peak {found}, BPFO {}", df.bpfo)
            }
            _ => {
                // BPFI, or one of its shaft-rate sidebands (the modulation puts energy there).
                let near = [df.bpfi, df.bpfi - fr, df.bpfi + fr, fr].iter().any(|f| (found - f).abs() <= bin);
                assert!(near, "envelope peak {found}, BPFI {} fr {fr}", df.bpfi);
                let at = (df.bpfi / bin).round() as usize;
                let local = env[at - 1].max(env[at]).max(env[at + 1]);
                assert!(local > 5.0 * median(&env), "BPFI stands out");
            }
        }
        // The raw spectrum's energy sits at the resonance.
        let spec = spectrum(&channel(&w, VIBRATION));
        assert!((peak(&spec, bin, 1000.0, 4000.0) - 3000.0).abs() < 300.0);
    }
    // A healthy bearing shows nothing at BPFO.
    let mut m = Motor::new(steady(0.75), 9);
    let bpfo = m.defect_frequencies(t).bpfo;
    let (w, _) = window(&mut m, t, fs, n);
    let env = envelope_spectrum(&channel(&w, VIBRATION), fs, 2000.0, 4000.0);
    let at = (bpfo / bin).round() as usize;
    assert!(env[at] < 4.0 * median(&env[3..100]), "healthy envelope at BPFO");
}

// ---- degradation, failure, repair ----

fn degrading() -> MotorParams {
    let mut p = steady(0.75);
    p.degradation = DegradationParams::only(
        DefectKind::OuterRace,
        DefectParams { rate_per_year: 20.0, mean_life: 5 * DAY, ..DefectParams::default() },
    );
    p.degradation.overheating =
        DefectParams { rate_per_year: 5.0, mean_life: 3 * DAY, ..DefectParams::default() };
    p
}

#[test]
fn failure_at_ground_truth_time_then_repair() {
    let mut m = Motor::new(degrading(), 11);
    let downtime = m.params().maintenance.downtime;
    let mut t = Duration::ZERO;
    let mut causes = Vec::new();
    for _ in 0..8 {
        let (at, cause) = m.next_failure(t).expect("this motor fails");
        // Time to failure is exact from any earlier time.
        for k in 0..5u32 {
            let probe = t + (at - t) * k / 5;
            assert_eq!(m.time_to_failure(probe), Some(at - probe));
            assert_eq!(m.next_failure(probe), Some((at, cause)));
        }
        let before = at - Duration::from_nanos(1);
        assert!(m.severity(cause, before) < 1.0 && m.is_running(before));
        for e in m.advance(before) {
            assert!(
                !matches!(e, MaintenanceEvent::Failure { .. } | MaintenanceEvent::Repaired { .. }),
                "{e:?}"
            );
        }
        let events = m.advance(at);
        assert_eq!(events.last(), Some(&MaintenanceEvent::Failure { at, cause }), "{events:?}");
        assert_eq!(m.condition(at).severity(cause), 1.0, "severity reaches exactly 1 at failure");
        assert!(!m.is_running(at) && !m.is_running(at + downtime / 2));
        let (w, truth) = window(&mut m, at + downtime / 2, 8192.0, 2048);
        assert!(!truth.running);
        let rms = (channel(&w, CURRENT).iter().map(|v| v * v).sum::<f64>() / 2048.0).sqrt();
        assert!(rms < 1.0, "no current while down: {rms}");
        let restart = at + downtime;
        let events = m.advance(restart);
        assert!(events.contains(&MaintenanceEvent::Repaired { at: restart }), "{events:?}");
        let c = m.condition(restart);
        assert!(c.is_healthy(), "restarts healthy: {c:?}");
        assert!(m.next_failure(restart).unwrap().0 > restart);
        causes.push(cause);
        t = restart;
    }
    assert!(causes.contains(&DefectKind::OuterRace));
}

#[test]
fn severity_grows_monotonically_to_failure() {
    let mut m = Motor::new(degrading(), 12);
    let (at, cause) = m.next_failure(Duration::ZERO).unwrap();
    let onset = m.defects(Duration::ZERO).iter().find(|d| d.kind == cause).unwrap().onset;
    assert_eq!(m.severity(cause, onset - Duration::from_nanos(1)), 0.0);
    let mut prev = 0.0;
    for k in 0..=100u32 {
        let s = m.severity(cause, onset + (at - onset) * k / 100);
        assert!(s >= prev && s > 0.0 && s <= 1.0);
        prev = s;
    }
    assert_eq!(prev, 1.0);
}

#[test]
fn paris_growth_fails_at_the_same_time() {
    let mut p = degrading();
    p.degradation.outer_race.growth_exponent = 2.0;
    p.degradation.overheating.growth_exponent = 2.0;
    let mut m = Motor::new(p, 13);
    let (at, cause) = m.next_failure(Duration::ZERO).unwrap();
    let events = m.advance(at);
    assert_eq!(events.last(), Some(&MaintenanceEvent::Failure { at, cause }));
}

// ---- determinism ----

#[test]
fn same_seed_same_windows_and_events() {
    let p = MotorParams::default();
    let (mut a, mut b, mut c) = (Motor::new(p.clone(), 21), Motor::new(p.clone(), 21), Motor::new(p, 22));
    // b captures in another order, with extra captures in between: windows do not depend on history.
    let times: Vec<Duration> = (0..40u64).map(|k| Duration::from_secs(k * 7 * 86_400 + k * 613)).collect();
    let mut wa = Vec::new();
    for &t in &times {
        wa.push(window(&mut a, t, 8192.0, 1024));
    }
    for &t in times.iter().rev() {
        let _ = window(&mut b, t + Duration::from_secs(60), 8192.0, 1024);
        let wb = window(&mut b, t, 8192.0, 1024);
        let wa = &wa[times.iter().position(|x| *x == t).unwrap()];
        assert_eq!(wa.1, wb.1);
        assert!(wa
            .0
            .iter()
            .zip(&wb.0)
            .all(|(x, y)| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())));
        let wc = window(&mut c, t, 8192.0, 1024);
        assert!(wa.0 != wc.0, "another seed, another window");
    }
    let year = 365 * DAY;
    let mut ea = Vec::new();
    let mut eb = Vec::new();
    for step in 1..=52u32 {
        ea.extend(a.advance(year * step / 52));
        eb.extend(b.advance(year * step / 52));
    }
    let ec = c.advance(year);
    assert!(!ea.is_empty());
    assert_eq!(ea, eb);
    assert_ne!(ea, ec);
    assert!(ea.windows(2).all(|w| w[0].at() <= w[1].at()), "events in time order");
}

#[test]
fn fleet_streams() {
    let p = MotorParams::default();
    let mut small = Fleet::new(5, 3, &p);
    let mut big = Fleet::new(5, 10, &p);
    let mut other = Fleet::new(6, 3, &p);
    assert_eq!(small.len(), 3);
    let t = 3 * DAY;
    for i in 0..3 {
        assert_eq!(small.motor(i).seed(), big.motor(i).seed(), "adding motors leaves the others alone");
        let (mut x, mut y, mut z) = ([[0.0f32; 4]; 256], [[0.0f32; 4]; 256], [[0.0f32; 4]; 256]);
        small.capture(i, t, 8192.0, &mut x);
        big.capture(i, t, 8192.0, &mut y);
        other.capture(i, t, 8192.0, &mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
    }
    let seeds: std::collections::BTreeSet<u64> = big.motors().iter().map(Motor::seed).collect();
    assert_eq!(seeds.len(), 10);
    let events = big.advance(730 * DAY);
    assert!(events.windows(2).all(|w| (w[0].1.at(), w[0].0) <= (w[1].1.at(), w[1].0)));
    assert!(events.iter().any(|(_, e)| matches!(e, MaintenanceEvent::Failure { .. })));
    let varied = Fleet::with_variation(5, 10, &p, &Variation::typical());
    let loads: Vec<f64> = varied.motors().iter().map(|m| m.params().load.base).collect();
    assert!(loads.windows(2).any(|w| w[0] != w[1]));
    assert_eq!(varied.motor(0).seed(), big.motor(0).seed());
}

#[test]
fn default_fleet_outcomes() {
    // 50 motors for a year with the default (accelerated) rates: 1.5 onsets per motor-year.
    let mut fleet = Fleet::with_variation(77, 50, &MotorParams::default(), &Variation::typical());
    let events = fleet.advance(365 * DAY);
    let mut failures = std::collections::BTreeMap::new();
    let (mut inspections, mut degraded) = (0, 0);
    for (_, e) in &events {
        match e {
            MaintenanceEvent::Failure { cause, .. } => *failures.entry(*cause).or_insert(0) += 1,
            MaintenanceEvent::Inspection(i) => {
                inspections += 1;
                degraded += usize::from(!i.is_healthy());
            }
            MaintenanceEvent::Repaired { .. } => {}
        }
    }
    let total: usize = failures.values().sum();
    assert!((40..=110).contains(&total), "{failures:?}");
    let bearing = failures.get(&DefectKind::OuterRace).unwrap_or(&0)
        + failures.get(&DefectKind::InnerRace).unwrap_or(&0);
    assert!(bearing * 2 > total, "bearings fail most: {failures:?}");
    assert!(failures.len() >= 4, "{failures:?}");
    // Routine inspections every 30 days on average: about 600.
    assert!((450..=750).contains(&inspections), "{inspections}");
    assert!(degraded > 0 && degraded < inspections / 2, "{degraded} of {inspections}");
}

// ---- inspections ----

#[test]
fn inspection_requests_answered_after_delay() {
    let mut m = Motor::new(steady(0.75), 31);
    m.inject_defect(DefectKind::OuterRace, 2 * DAY, 10 * DAY).unwrap();
    let delay = m.params().maintenance.request_delay;
    assert_eq!(delay, Duration::from_secs(1800));

    // Healthy before onset.
    let t = DAY;
    assert!(m.advance(t).is_empty());
    assert_eq!(m.request_inspection(t), t + delay);
    assert!(m.advance(t + delay - Duration::from_nanos(1)).is_empty());
    let e = m.advance(t + delay);
    assert_eq!(
        e,
        vec![MaintenanceEvent::Inspection(Inspection {
            at: t + delay,
            requested_at: Some(t),
            findings: vec![]
        })]
    );

    // Late in the defect's life: found, with about its true severity.
    let t = 10 * DAY;
    m.advance(t);
    m.request_inspection(t);
    let e = m.advance(t + HOUR);
    let [MaintenanceEvent::Inspection(i)] = e.as_slice() else { panic!("{e:?}") };
    assert_eq!((i.at, i.requested_at), (t + delay, Some(t)));
    let truth = m.severity(DefectKind::OuterRace, t + delay);
    assert_eq!(i.findings.len(), 1);
    assert_eq!(i.findings[0].kind, DefectKind::OuterRace);
    assert!((i.findings[0].severity - truth).abs() < 0.5 * truth, "{} vs {truth}", i.findings[0].severity);

    // Just after onset, below the detection threshold: reported healthy.
    let mut m = Motor::new(steady(0.75), 31);
    m.inject_defect(DefectKind::OuterRace, 2 * DAY, 10 * DAY).unwrap();
    m.request_inspection(2 * DAY + HOUR);
    let e = m.advance(3 * DAY);
    assert!(matches!(&e[..], [MaintenanceEvent::Inspection(i)] if i.is_healthy()), "{e:?}");
}

#[test]
fn request_during_downtime_answered_at_restart() {
    let mut m = Motor::new(degrading(), 32);
    let (at, cause) = m.next_failure(Duration::ZERO).unwrap();
    let downtime = m.params().maintenance.downtime;
    m.advance(at);
    m.request_inspection(at);
    let e = m.advance(at + 2 * downtime);
    let restart = at + downtime;
    let pos_repair = e.iter().position(|e| *e == MaintenanceEvent::Repaired { at: restart }).unwrap();
    let pos_insp = e
        .iter()
        .position(
            |e| matches!(e, MaintenanceEvent::Inspection(i) if i.requested_at == Some(at) && i.at == restart),
        )
        .unwrap();
    assert!(pos_repair < pos_insp, "{e:?}");
    let _ = cause;
}

#[test]
fn routine_inspections_at_random_intervals() {
    let mut p = degrading();
    p.maintenance.inspection_interval = Some(7 * DAY);
    let mut m = Motor::new(p, 33);
    let events = m.advance(3 * 365 * DAY);
    let routine: Vec<&Inspection> = events
        .iter()
        .filter_map(|e| match e {
            MaintenanceEvent::Inspection(i) if i.requested_at.is_none() => Some(i),
            _ => None,
        })
        .collect();
    // About 156 in three years, less those falling in downtime.
    assert!(routine.len() > 110 && routine.len() < 200, "{}", routine.len());
    let gaps: Vec<Duration> = routine.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.iter().min() != gaps.iter().max());
    assert!(routine.iter().any(|i| !i.is_healthy()) && routine.iter().any(|i| i.is_healthy()));
    // Each degraded finding matches the ground truth's kind.
    for i in routine.iter().filter(|i| !i.is_healthy()) {
        for f in &i.findings {
            assert!(m.severity(f.kind, i.at) >= m.params().maintenance.detection_threshold);
        }
    }
}

// ---- sensor faults ----

#[test]
fn sensor_faults_at_configured_rates() {
    let rate = 0.04;
    let mut p = steady(0.75);
    p.sensor_faults = SensorFaultParams {
        stuck: FaultRate { fraction: rate, episode: Duration::ZERO },
        spikes: FaultRate { fraction: rate, episode: Duration::ZERO },
        dropout: FaultRate { fraction: rate, episode: Duration::ZERO },
        out_of_range: FaultRate { fraction: rate, episode: Duration::from_secs(600) },
    };
    let mut m = Motor::new(p.clone(), 41);
    let windows = 5000;
    let mut counts = [[0usize; 4]; 4];
    // The same motor without sensor faults.
    let mut clean = Motor::new(MotorParams { sensor_faults: SensorFaultParams::none(), ..p.clone() }, 41);
    for k in 0..windows {
        let t = Duration::from_secs(60 * k);
        let (w, truth) = window(&mut m, t, 8192.0, 256);
        let (c, _) = window(&mut clean, t, 8192.0, 256);
        for ch in 0..4 {
            let f = truth.sensor_faults[ch];
            let x: Vec<f32> = w.iter().map(|s| s[ch]).collect();
            let range = p.ranges[ch];
            counts[ch][0] += usize::from(f.stuck);
            counts[ch][1] += usize::from(f.spikes);
            counts[ch][2] += usize::from(f.dropout);
            counts[ch][3] += usize::from(f.out_of_range);
            if !f.any() {
                assert!(w.iter().zip(&c).all(|(a, b)| a[ch] == b[ch]), "unflagged windows are clean");
                assert!(x.iter().all(|v| range.contains(*v)));
            }
            if f.stuck && !f.out_of_range && !f.spikes && !f.dropout {
                assert!(x.iter().all(|v| *v == x[0]), "stuck: one value");
            }
            if f.out_of_range && !f.dropout {
                assert!(x.iter().any(|v| !range.contains(*v)), "out of range");
            }
            if f.dropout {
                assert!(x.iter().filter(|v| **v == 0.0).count() >= 256 / 20, "dropout: zeros");
            }
            if f.spikes && !f.stuck && !f.dropout && !f.out_of_range {
                assert!(w.iter().zip(&c).any(|(a, b)| a[ch] != b[ch]), "spikes change samples");
            }
        }
    }
    for (ch, row) in counts.iter().enumerate() {
        for (kind, &n) in row.iter().enumerate() {
            let observed = n as f64 / windows as f64;
            // Per-window faults: binomial, sd 0.0028; episodic (10 min, ~830 episodes): sd 0.007.
            assert!((observed - rate).abs() < 0.02, "channel {ch} kind {kind}: {observed}");
        }
    }
}

#[test]
fn stuck_episodes_span_windows() {
    let mut p = steady(0.75);
    p.sensor_faults =
        SensorFaultParams { stuck: FaultRate { fraction: 0.2, episode: HOUR }, ..SensorFaultParams::none() };
    let mut m = Motor::new(p, 42);
    let mut runs = 0;
    let mut prev: Option<f32> = None;
    for k in 0..600u64 {
        let (w, truth) = window(&mut m, Duration::from_secs(60 * k), 8192.0, 64);
        if truth.sensor_faults[TEMPERATURE].stuck {
            let v = w[0][TEMPERATURE];
            if prev == Some(v) {
                runs += 1;
            }
            prev = Some(v);
        } else {
            prev = None;
        }
    }
    assert!(runs > 50, "a stuck sensor stays stuck at one value across an episode's windows: {runs}");
}

// ---- temperature ----

fn mean_temperature(m: &mut Motor, t: Duration) -> f64 {
    let (w, _) = window(m, t, 8192.0, 2048);
    channel(&w, TEMPERATURE).iter().sum::<f64>() / 2048.0
}

#[test]
fn temperature_rises_with_load_and_overheating() {
    let t = 2 * DAY;
    let mut light = Motor::new(steady(0.3), 51);
    let mut full = Motor::new(steady(1.0), 51);
    let (tl, tf) = (mean_temperature(&mut light, t), mean_temperature(&mut full, t));
    assert!((tl - light.temperature(t)).abs() < 0.02, "the channel reads the model");
    // Rise: 65 * (0.3 + 0.7 l^2): 23.6 C at 0.3, 65 C at full load.
    assert!((tf - tl - 65.0 * 0.7 * (1.0 - 0.09)).abs() < 0.5, "{tl} {tf}");
    let (w, _) = window(&mut full, t, 8192.0, 2048);
    let temp = channel(&w, TEMPERATURE);
    let spread =
        temp.iter().cloned().fold(f64::MIN, f64::max) - temp.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.5, "nearly constant within a window");

    // Overheating: the rise grows towards double at failure.
    let mut hot = Motor::new(steady(1.0), 51);
    hot.inject_defect(DefectKind::Overheating, DAY, 10 * DAY).unwrap();
    let late = 10 * DAY + 12 * HOUR;
    let s = hot.severity(DefectKind::Overheating, late);
    let th = mean_temperature(&mut hot, late);
    let tn = mean_temperature(&mut full, late);
    assert!(s > 0.7 && th - tn > 0.6 * 65.0 * s, "overheating {th} vs {tn} at severity {s}");

    // After the failure the motor cools towards ambient.
    let failed = 11 * DAY;
    let t_fail = hot.temperature(failed);
    let t_cool = hot.temperature(failed + 4 * HOUR);
    assert!(t_cool < t_fail - 50.0 && t_cool < 35.0, "{t_fail} -> {t_cool}");

    // A step of load: the temperature follows with the thermal time constant.
    let mut varying = Motor::new(MotorParams::healthy(), 52);
    let temps: Vec<f64> = (0..48).map(|h| varying.temperature(HOUR * h)).collect();
    let loads: Vec<f64> = (0..48).map(|h| varying.load(HOUR * h)).collect();
    let hottest_load = loads.iter().cloned().fold(f64::MIN, f64::max);
    let coolest_load = loads.iter().cloned().fold(f64::MAX, f64::min);
    assert!(hottest_load - coolest_load > 0.2, "the daily cycle");
    let swing =
        temps.iter().cloned().fold(f64::MIN, f64::max) - temps.iter().cloned().fold(f64::MAX, f64::min);
    assert!(swing > 10.0, "temperature follows the load cycle: {swing}");
}

// ---- time warp ----

#[test]
fn time_warp() {
    let w = TimeWarp::new(1000.0);
    assert_eq!(w.motor_time(Duration::from_secs(3)), Duration::from_secs(3000));
    assert_eq!(w.host_elapsed(Duration::from_secs(3000)), Duration::from_secs(3));
    let w2 = w.rewarp(Duration::from_secs(10), 10.0);
    assert_eq!(w2.motor_time(Duration::from_secs(10)), Duration::from_secs(10_000));
    assert_eq!(w2.motor_time(Duration::from_secs(11)), Duration::from_secs(10_010));
    assert_eq!(w2.host_elapsed(Duration::from_secs(10_010)), Duration::from_secs(11));
}

// ---- cost (run by hand: cargo test --release -p aiot-simulations --test motor -- --ignored --nocapture) ----

#[test]
#[ignore]
#[allow(clippy::disallowed_methods)] // a timing harness reads the wall clock on purpose
fn capture_cost() {
    let mut fleet = Fleet::new(1, 100, &MotorParams::default());
    let mut w = [[0.0f32; 4]; WINDOW_LEN];
    let mut sink = 0.0f32;
    let windows = 100 * 200;
    let start = std::time::Instant::now();
    for k in 0..200u64 {
        let t = Duration::from_secs(60 * k);
        fleet.advance(t);
        for i in 0..100 {
            fleet.capture(i, t, SAMPLE_RATE_HZ, &mut w);
            sink += w[7][1];
        }
    }
    let per = start.elapsed() / windows;
    println!("{per:?} per 2048x4 window ({sink})");
    let mut m = Motor::new(MotorParams::healthy(), 2);
    m.inject_defect(DefectKind::InnerRace, Duration::ZERO, 100 * DAY).unwrap();
    let start = std::time::Instant::now();
    for k in 0..10_000u64 {
        m.capture(Duration::from_secs(60 * k), SAMPLE_RATE_HZ, &mut w);
        sink += w[7][1];
    }
    println!("{:?} per window with a bearing defect ({sink})", start.elapsed() / 10_000);
}
