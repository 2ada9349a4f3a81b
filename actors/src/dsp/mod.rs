//! The DSP filter's computation (BLUEPRINT section 5, issue 7): from one raw window to the
//! [`DspFeatures`] vector. Pure: no actor, no IO, no clock; the `DspFilter` actor wraps it.
//!
//! An [`Extractor`] is made once from a [`DspConfig`] (sample rate, window length, line
//! frequency, pole pairs, bearing geometry, bands). It holds the forward and inverse FFT plans
//! (rustfft, f64), the Hann window and every buffer, so [`Extractor::extract`] allocates
//! nothing. It costs three FFTs and an inverse FFT of the window plus about 300 windowed
//! passes over one channel for the frequency searches below: 6.7 ms per window in the test
//! profile (opt-level 1) on the 2-core development machine; a raw window arrives every ten
//! minutes per mote by default.
//!
//! # Definitions
//!
//! For a channel, `x[n] = q[n] * s` (`q` the i16 codes, `s` its scale widened from f32 to f64),
//! `n = 0..N`, `N` the window length, `fs` the sample rate; `d = x - mean(x)`; `m2 = mean(d^2)`,
//! `m4 = mean(d^4)` (population moments). `w[n] = 0.5 - 0.5 cos(2 pi n / N)` is the periodic
//! Hann window (`scipy.signal.get_window("hann", N)`), `W = sum(w)`, and
//! `D(f) = sum_n w[n] d[n] e^(-2 pi i f n / fs)` the Hann-windowed DTFT of `d` at any `f`.
//! Bins are `fs / N` apart (4 Hz at the default 8192 Hz and 2048 samples).
//!
//! **Searches.** A frequency is *searched in `[lo, hi]`*: the function is evaluated on the grid
//! `min(lo + k step, hi)`, `k = 0..=ceil((hi - lo) / step)`, `step` = a sixteenth of a bin, and
//! refined by golden-section search within one step of the best grid point (`search.rs`).
//!
//! **Shaft speed** (`shaft_hz`): the frequency maximising `|D(f)|` of the vibration, searched in
//! `[f_sync (1 - max_slip), f_sync (1 + line_tolerance)]`, `f_sync = line_hz / pole_pairs` from
//! the configuration (22.75 to 25.25 Hz by default). The 1x shaft line is the strongest
//! vibration line in that band on a healthy or bearing-faulty motor; the Hann window keeps the
//! leakage of the 2x, 2f and gravity lines out, and searching the DTFT instead of reading bins
//! measures a speed far finer than a bin. Measured on the motor physics
//! (`simulations/tests/dsp.rs`, loads 0.2 to 1.15, 8 windows each): within 0.55 % (0.13 Hz;
//! white vibration noise of 0.01 g against a 0.02 g 1x line bounds it). Limits: a broken rotor
//! bar's vibration sidebands at `fr -+ 2 s f` sit inside the 1x line's main lobe and pull the
//! estimate (by 0.4 Hz, 1.6 %, at severity 0.68 in the physics; by up to 2 Hz in synthetic
//! windows where they are as strong as the 1x line), which then also misplaces the current
//! sidebands below; a silent vibration channel (`m2 = 0`) gives 0, and then every feature
//! derived from the speed is 0.
//!
//! **Envelope.** The vibration is band-passed to `envelope_band_hz` (default 2 to 4 kHz, around
//! the housing resonance bearing impacts ring: bins `k`, `1 <= k < N/2`, with
//! `lo <= k fs / N <= hi`) and turned into its analytic signal in the same step
//! (`Z[k] = 2 X[k]` on those bins, 0 elsewhere; `z = ifft(Z)`; the same as `scipy.signal.hilbert`
//! of the band-passed signal); the envelope is `e = |z|`, `e0 = e - mean(e)`, and its power
//! spectrum `P[k] = |rfft(w e0)[k]|^2`, `k = 0..=N/2`. A band around a frequency `f` is the
//! `2 h + 1` bins centred on `k0 = floor(f N / fs + 0.5)` (`h = band_half_width_bins`, default
//! 1: 12 Hz), clamped to `1..=N/2`. Its **band energy** is its share of the envelope's power,
//! `sum(P[band]) / sum(P[1..=N/2])`: dimensionless, in `[0, 1]`, independent of the sensor's
//! gain and of the load (the bands move with the measured speed, the share does not depend on
//! how strongly the machine vibrates overall). Defect frequencies: [`bearing`], at `shaft_hz`.
//!
//! **Supply and sidebands.** The mean-removed current is fitted by least squares weighted by
//! `w` (a cosine and a sine per tone). First the supply tone alone: `f0` is searched in
//! `line_hz (1 +- line_tolerance)` for the least weighted residual, and `s = 1 - pole_pairs
//! shaft_hz / f0`. Then, with that `s` held, the tones `f`, `(1 - 2 s) f`, `(1 + 2 s) f`: `f`
//! (`line_hz`) is searched again in the same band for the least residual (`sidebands.rs` says
//! why). `line_a` is the amplitude (peak) fitted at `f`; `sb_lower` and `sb_upper` the
//! amplitudes fitted at the sidebands over `line_a` (ratios, not dB: 0.0005 healthy in the
//! physics, 0.05 at a broken bar's failure; `20 log10` gives dB). When `2 |s| f0` is under
//! `min_sideband_hz` (default 1 Hz, a quarter bin: light load), or the speed is unknown, `f` is
//! `f0`, and both ratios are 0. A 0.25 s window holds half a cycle of the 2sf beat, so the
//! ratios are coarse: on the physics a healthy motor reads up to 0.008 (noise through a fit
//! inside one bin), a broken bar with true sidebands of 0.034 reads 0.018 to 0.021.
//!
//! | # | name | definition | unit |
//! |---|---|---|---|
//! | 0 | `cur_rms` | `sqrt(m2)` of current | A |
//! | 1 | `cur_peak` | `max abs(d)` of current | A |
//! | 2 | `cur_crest` | `cur_peak / cur_rms` (0 when `cur_rms` = 0) | 1 |
//! | 3 | `cur_kurtosis` | `m4 / m2^2` of current, Pearson's (3 for a Gaussian; `scipy.stats.kurtosis(x, fisher=False)`), 0 when `m2` = 0 | 1 |
//! | 4-7 | `vib_rms`, `vib_peak`, `vib_crest`, `vib_kurtosis` | the same of vibration | g, g, 1, 1 |
//! | 8-11 | `snd_rms`, `snd_peak`, `snd_crest`, `snd_kurtosis` | the same of sound | Pa, Pa, 1, 1 |
//! | 12 | `shaft_hz` | shaft speed (above) | Hz |
//! | 13 | `vib_1x_g` | `2 abs(D(shaft_hz)) / W` of vibration: the 1x amplitude | g |
//! | 14 | `env_rms_g` | `sqrt(mean(e0^2))`: the envelope's fluctuation | g |
//! | 15 | `env_bpfo` | band energy at BPFO (outer-race defect) | 1 |
//! | 16 | `env_bpfi` | band energy at BPFI (inner race) | 1 |
//! | 17 | `env_bsf` | band energy at BSF (ball spin) | 1 |
//! | 18 | `env_ftf` | band energy at FTF (cage) | 1 |
//! | 19 | `env_bpfo_2` | band energy at 2 BPFO | 1 |
//! | 20 | `env_bpfi_2` | band energy at 2 BPFI | 1 |
//! | 21 | `env_bsf_2` | band energy at 2 BSF (a ball defect strikes both races) | 1 |
//! | 22 | `line_hz` | supply frequency (above); 0 for a silent current | Hz |
//! | 23 | `line_a` | supply amplitude, peak | A |
//! | 24 | `slip` | `1 - pole_pairs shaft_hz / line_hz`; 0 when either is 0 | 1 |
//! | 25 | `sb_lower` | current at `(1 - 2 s) f` over `line_a` | 1 |
//! | 26 | `sb_upper` | current at `(1 + 2 s) f` over `line_a` | 1 |
//! | 27 | `temp_mean` | `mean(x)` of temperature | °C |
//!
//! `actors/tests/reference/gen_dsp.py` computes the same definitions with numpy and scipy
//! (independently written) and `actors/tests/dsp_reference.rs` holds this code to it.

pub mod bearing;
mod envelope;
mod features;
mod search;
mod sidebands;
mod spectrum;
mod stats;

use std::fmt;
use std::sync::Arc;

use aiot_firmware::protocol::RawWindow;
use aiot_firmware::sampling::{Channel, Window, CHANNELS, DEFAULT_SAMPLE_RATE_HZ, WINDOW};
use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

pub use bearing::{defect_frequencies, BearingGeometry, DefectFrequencies};
pub use features::{DspFeatures, FEATURE_COUNT};

use sidebands::Search;

/// Grid points per bin in the frequency searches.
const SEARCH_STEPS_PER_BIN: f64 = 16.0;

/// What the extractor needs to know about the motor and the windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DspConfig {
    /// Sample rate of the windows, Hz.
    pub sample_rate_hz: u32,
    /// Samples per channel in a window.
    pub window_len: usize,
    /// Nominal supply frequency, Hz.
    pub line_hz: f64,
    /// Pole pairs (synchronous speed = `line_hz / pole_pairs`).
    pub pole_pairs: u32,
    /// Largest slip the speed search allows (per unit).
    pub max_slip: f64,
    /// How far the supply frequency may stray from `line_hz` (per unit).
    pub line_tolerance: f64,
    /// The monitored bearing.
    pub bearing: BearingGeometry,
    /// The envelope's band-pass, Hz (`lo`, `hi`): around the resonance bearing impacts ring.
    pub envelope_band_hz: (f64, f64),
    /// Bins on each side of a defect frequency's nearest bin in its band.
    pub band_half_width_bins: usize,
    /// Sidebands closer than this to the supply line (`2 |s| f`, Hz) are not fitted.
    pub min_sideband_hz: f64,
}

impl Default for DspConfig {
    /// The defaults of the motes (8192 Hz, 2048 samples) and of the motor physics (50 Hz, two
    /// pole pairs, a 6309 bearing, a 3 kHz housing resonance).
    fn default() -> Self {
        DspConfig {
            sample_rate_hz: DEFAULT_SAMPLE_RATE_HZ,
            window_len: WINDOW,
            line_hz: 50.0,
            pole_pairs: 2,
            max_slip: 0.09,
            line_tolerance: 0.01,
            bearing: BearingGeometry::default(),
            envelope_band_hz: (2000.0, 4000.0),
            band_half_width_bins: 1,
            min_sideband_hz: 1.0,
        }
    }
}

/// Why a configuration or a window was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum DspError {
    /// The configuration is unusable; the field is named.
    Config(&'static str),
    /// The window's sample rate is not the configured one.
    SampleRate { expected: u32, got: u32 },
    /// The window's length is not the configured one.
    WindowLen { expected: usize, got: usize },
}

impl fmt::Display for DspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DspError::Config(field) => write!(f, "DSP configuration: bad {field}"),
            DspError::SampleRate { expected, got } => {
                write!(f, "window sampled at {got} Hz, the extractor expects {expected} Hz")
            }
            DspError::WindowLen { expected, got } => {
                write!(f, "window of {got} samples, the extractor expects {expected}")
            }
        }
    }
}

impl std::error::Error for DspError {}

impl DspConfig {
    fn check(&self) -> Result<(), DspError> {
        let fs = f64::from(self.sample_rate_hz);
        let b = &self.bearing;
        let checks = [
            (self.sample_rate_hz > 0, "sample_rate_hz"),
            (self.window_len >= 16, "window_len"),
            (self.line_hz > 0.0 && self.line_hz < fs / 2.0, "line_hz"),
            (self.pole_pairs > 0, "pole_pairs"),
            (self.max_slip > 0.0 && self.max_slip < 1.0, "max_slip"),
            (self.line_tolerance >= 0.0 && self.line_tolerance < 0.5, "line_tolerance"),
            (b.balls > 0 && b.ball_diameter_mm > 0.0 && b.pitch_diameter_mm > b.ball_diameter_mm, "bearing"),
            (self.envelope_band_hz.0 < self.envelope_band_hz.1, "envelope_band_hz"),
            (self.min_sideband_hz >= 0.0, "min_sideband_hz"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some(&(_, field)) => Err(DspError::Config(field)),
            None => Ok(()),
        }
    }
}

/// Computes [`DspFeatures`] from raw windows; made once, used for every window.
pub struct Extractor {
    cfg: DspConfig,
    fft: Arc<dyn Fft<f64>>,
    ifft: Arc<dyn Fft<f64>>,
    hann: Vec<f64>,
    pass: Option<(usize, usize)>,
    buf: Vec<Complex64>,
    scratch: Vec<Complex64>,
    /// Dequantised channels, mean removed after [`Extractor::extract`].
    x: [Vec<f64>; CHANNELS],
    vib_spectrum: Vec<f64>,
    env: Vec<f64>,
    env_power: Vec<f64>,
    /// The windowed current, for the supply fit.
    weighted: Vec<f64>,
}

impl fmt::Debug for Extractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extractor").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Extractor {
    /// Plans the FFTs and allocates every buffer for `cfg`.
    pub fn new(cfg: DspConfig) -> Result<Self, DspError> {
        cfg.check()?;
        let n = cfg.window_len;
        let mut planner = FftPlanner::new();
        let (fft, ifft) = (planner.plan_fft_forward(n), planner.plan_fft_inverse(n));
        let scratch = fft.get_inplace_scratch_len().max(ifft.get_inplace_scratch_len());
        let (lo, hi) = cfg.envelope_band_hz;
        let pass = envelope::pass_bins(lo, hi, f64::from(cfg.sample_rate_hz), n);
        Ok(Extractor {
            fft,
            ifft,
            hann: spectrum::hann(n),
            pass,
            buf: vec![Complex64::default(); n],
            scratch: vec![Complex64::default(); scratch],
            x: core::array::from_fn(|_| vec![0.0; n]),
            vib_spectrum: vec![0.0; n / 2 + 1],
            env: vec![0.0; n],
            env_power: vec![0.0; n / 2 + 1],
            weighted: vec![0.0; n],
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &DspConfig {
        &self.cfg
    }

    /// The features of a window ([`WINDOW`] samples: the configuration's length must be that).
    pub fn extract(&mut self, window: &Window) -> Result<DspFeatures, DspError> {
        self.extract_raw(&RawWindow::of(window))
    }

    /// The features of a raw-window payload.
    pub fn extract_raw(&mut self, window: &RawWindow<'_>) -> Result<DspFeatures, DspError> {
        let (expected, got) = (self.cfg.sample_rate_hz, window.sample_rate_hz);
        if expected != got {
            return Err(DspError::SampleRate { expected, got });
        }
        let (expected, got) = (self.cfg.window_len, window.len());
        if expected != got {
            return Err(DspError::WindowLen { expected, got });
        }
        for ch in Channel::ALL {
            let scale = f64::from(window.scale[ch.index()]);
            for (x, q) in self.x[ch.index()].iter_mut().zip(window.channel(ch)) {
                *x = f64::from(q) * scale;
            }
        }
        Ok(self.compute())
    }

    /// The vibration's amplitude spectrum of the last window (`N/2 + 1` bins, Hann window,
    /// mean removed; a sinusoid of amplitude `A` g on a bin reads `A`).
    pub fn vibration_spectrum(&self) -> &[f64] {
        &self.vib_spectrum
    }

    /// The envelope's power spectrum `P` of the last window (`N/2 + 1` bins, module doc).
    pub fn envelope_power(&self) -> &[f64] {
        &self.env_power
    }

    fn compute(&mut self) -> DspFeatures {
        let cfg = &self.cfg;
        let fs = f64::from(cfg.sample_rate_hz);
        let n = cfg.window_len;
        let bin = fs / n as f64;
        let step = bin / SEARCH_STEPS_PER_BIN;
        let [cur, vib, snd, tmp] = &mut self.x;
        let temp_mean = stats::remove_mean(tmp);
        for x in [&mut *cur, &mut *vib, &mut *snd] {
            stats::remove_mean(x);
        }
        let (c, v, s) = (stats::stats(cur), stats::stats(vib), stats::stats(snd));

        spectrum::amplitude_spectrum(
            self.fft.as_ref(),
            vib,
            &self.hann,
            &mut self.buf,
            &mut self.scratch,
            &mut self.vib_spectrum,
        );
        let hann_sum: f64 = self.hann.iter().sum();
        let sync = cfg.line_hz / f64::from(cfg.pole_pairs);
        let (shaft_hz, vib_1x_g) = if v.rms > 0.0 {
            let (lo, hi) = (sync * (1.0 - cfg.max_slip), sync * (1.0 + cfg.line_tolerance));
            let magnitude = |f: f64| spectrum::windowed_dtft(vib, &self.hann, f / fs).norm_sqr();
            let fr = search::maximise(lo, hi, step, magnitude);
            (fr, 2.0 * magnitude(fr).sqrt() / hann_sum)
        } else {
            (0.0, 0.0)
        };

        envelope::envelope(
            self.fft.as_ref(),
            self.ifft.as_ref(),
            vib,
            self.pass,
            &mut self.buf,
            &mut self.scratch,
            &mut self.env,
        );
        stats::remove_mean(&mut self.env);
        let env_rms_g = stats::stats(&self.env).rms;
        envelope::power_spectrum(
            self.fft.as_ref(),
            &self.env,
            &self.hann,
            &mut self.buf,
            &mut self.scratch,
            &mut self.env_power,
        );
        let total: f64 = self.env_power[1..].iter().sum();
        let half = cfg.band_half_width_bins;
        let band = |f: f64| {
            if shaft_hz > 0.0 {
                envelope::band_fraction(&self.env_power, total, f, bin, half)
            } else {
                0.0
            }
        };
        let df = cfg.bearing.defect_frequencies(shaft_hz);

        let search = Search {
            fs,
            lo_hz: cfg.line_hz * (1.0 - cfg.line_tolerance),
            hi_hz: cfg.line_hz * (1.0 + cfg.line_tolerance),
            step_hz: step,
            pole_pairs: cfg.pole_pairs,
            min_separation_hz: cfg.min_sideband_hz,
        };
        let supply = sidebands::supply(cur, &self.hann, &mut self.weighted, shaft_hz, &search);
        let slip = if shaft_hz > 0.0 && supply.hz > 0.0 {
            1.0 - f64::from(cfg.pole_pairs) * shaft_hz / supply.hz
        } else {
            0.0
        };

        DspFeatures {
            cur_rms: c.rms,
            cur_peak: c.peak,
            cur_crest: c.crest,
            cur_kurtosis: c.kurtosis,
            vib_rms: v.rms,
            vib_peak: v.peak,
            vib_crest: v.crest,
            vib_kurtosis: v.kurtosis,
            snd_rms: s.rms,
            snd_peak: s.peak,
            snd_crest: s.crest,
            snd_kurtosis: s.kurtosis,
            shaft_hz,
            vib_1x_g,
            env_rms_g,
            env_bpfo: band(df.bpfo),
            env_bpfi: band(df.bpfi),
            env_bsf: band(df.bsf),
            env_ftf: band(df.ftf),
            env_bpfo_2: band(2.0 * df.bpfo),
            env_bpfi_2: band(2.0 * df.bpfi),
            env_bsf_2: band(2.0 * df.bsf),
            line_hz: supply.hz,
            line_a: supply.amplitude,
            slip,
            sb_lower: supply.lower,
            sb_upper: supply.upper,
            temp_mean,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_configurations_and_mismatched_windows() {
        let bad = DspConfig { pole_pairs: 0, ..DspConfig::default() };
        assert_eq!(Extractor::new(bad).unwrap_err(), DspError::Config("pole_pairs"));
        let mut e = Extractor::new(DspConfig::default()).unwrap();
        let w = Window::new(4096);
        assert_eq!(e.extract(&w).unwrap_err(), DspError::SampleRate { expected: 8192, got: 4096 });
        let mut short = Extractor::new(DspConfig { window_len: 1024, ..DspConfig::default() }).unwrap();
        let w = Window::new(DEFAULT_SAMPLE_RATE_HZ);
        assert_eq!(short.extract(&w).unwrap_err(), DspError::WindowLen { expected: 1024, got: WINDOW });
    }

    #[test]
    fn a_silent_window_gives_zeros_and_the_temperature() {
        let mut e = Extractor::new(DspConfig::default()).unwrap();
        let w = Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |_| [0.0, 0.0, 0.0, 21.5]);
        let f = e.extract(&w).unwrap();
        assert!((f.temp_mean - 21.5).abs() < 1e-5, "{}", f.temp_mean);
        assert_eq!(DspFeatures { temp_mean: 0.0, ..f }, DspFeatures::default());
    }

    #[test]
    fn a_motor_like_window_reads_its_speed_supply_and_outer_race_impacts() {
        use std::f64::consts::TAU;
        let (fr, f) = (24.5, 50.0);
        let df = BearingGeometry::default().defect_frequencies(fr);
        let w = Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |i| {
            let t = i as f64 / f64::from(DEFAULT_SAMPLE_RATE_HZ);
            // Impacts at BPFO ringing 3 kHz.
            let since = t % (1.0 / df.bpfo);
            let ring = 0.5 * (-800.0 * since).exp() * (TAU * 3000.0 * since).sin();
            let vib = 0.02 * (TAU * fr * t).sin() + 0.01 * (TAU * 2.0 * f * t).sin() + ring;
            [(30.0 * (TAU * f * t).sin()) as f32, vib as f32, 0.0, 40.0]
        });
        let mut e = Extractor::new(DspConfig::default()).unwrap();
        let got = e.extract(&w).unwrap();
        assert!((got.shaft_hz - fr).abs() < 0.05, "{got:?}");
        assert!((got.line_hz - f).abs() < 1e-3 && (got.line_a - 30.0).abs() < 0.01, "{got:?}");
        assert!((got.slip - 0.02).abs() < 0.002, "{got:?}");
        assert!(got.sb_lower < 1e-3 && got.sb_upper < 1e-3, "{got:?}");
        assert!(got.env_bpfo > 0.3 && got.env_bpfo > 10.0 * got.env_bpfi, "{got:?}");
        assert!((got.vib_1x_g - 0.02).abs() < 0.002, "{got:?}");
        assert_eq!(e.vibration_spectrum().len(), WINDOW / 2 + 1);
    }
}
