#!/usr/bin/env python3
"""Reference values for the DSP filter's features (aiot-actors `dsp` module).

Builds deterministic motor-like windows, quantises them the way the firmware does, computes
every DSP feature with numpy/scipy from the quantised samples, and writes dsp.json beside this
file: the configuration, the feature names, and per case its recipe, the quantised samples
(base64 of i16 little-endian, channel-major: 2048 current, 2048 vibration, 2048 sound, 2048
temperature) and the expected features. The Rust test (actors/tests/dsp_reference.rs) decodes
the same samples and compares. The definitions are those of the table in actors/src/dsp/mod.rs,
written here from that text with numpy/scipy idioms (scipy.signal.hilbert for the analytic
signal, numpy.linalg.lstsq for the supply fit, scipy.optimize.minimize_scalar for the searches),
not ported from the Rust.

Run: python3 actors/tests/reference/gen_dsp.py   (needs numpy and scipy; CI does not run it,
dsp.json is committed)

Signals (t = n / fs, n = 0..2047, fs = 8192 Hz; f the supply frequency, s the slip, fr = f / 2
(1 - s) the shaft frequency; phases and noise from numpy.random.default_rng(seed), phases drawn
first, then noise per channel in the order current, vibration, sound, temperature):
  current      a1 cos(2 pi f t) + harmonics 3, 5, 7 at 1 %, 3 %, 2 % of a1 + sidebands of
               a1 * sb at (1 -+ 2 s) f + N(0, 0.15) A, a1 = 40 A
  vibration    0.02 g at fr, 0.006 g at 2 fr, 0.01 g at 2 f, sidebands of vsb g at fr -+ 2 s f,
               bearing impacts (below) + N(0, 0.01) g
  sound        the vibration (1 Pa/g) + 0.05 Pa at 2 f + 0.06 Pa at 9 fr + N(0, 0.05) Pa
  temperature  a constant + N(0, 0.05) C
Bearing impacts: at times k / fd (fd = BPFO or BPFI of the default 6309 bearing at fr), each
ringing the 3 kHz resonance as imp exp(-785 (t - t_k)) sin(2 pi 3000 (t - t_k)); inner-race
impacts are scaled by 0.5 (1 + cos(2 pi fr t_k)) (the defect passes the load zone once a turn).
Cases:
  healthy       f = 50, load slip s = 0.01875 (0.75 rated), sb = 0.0005, no impacts
  outer_race    healthy + outer-race impacts, imp = 0.3 g
  inner_race    healthy + inner-race impacts, imp = 0.3 g
  broken_bar    healthy with sb = 0.03 (current only: vibration sidebands as strong as the 1x
                pull the speed estimate, see the module doc)
  light_load    s = 0.005 (2 s f = 0.5 Hz, under the 1 Hz minimum: sidebands not fitted)
  heavy_offgrid f = 49.8 Hz, s = 0.03, sb = 0.01, outer-race impacts of 0.1 g
  silent        every channel 0 except temperature 20 C
"""
import base64
import json
import pathlib

import numpy as np
import scipy.optimize
import scipy.signal
import scipy.stats

FS = 8192
N = 2048
Q_MAX = 32767
FULL_SCALE = [128.0, 16.0, 64.0, 327.67]
SCALE = [np.float32(fs) / np.float32(Q_MAX) for fs in FULL_SCALE]

# DspConfig::default()
CONFIG = {
    "sample_rate_hz": FS,
    "window_len": N,
    "line_hz": 50.0,
    "pole_pairs": 2,
    "max_slip": 0.09,
    "line_tolerance": 0.01,
    "bearing": {"balls": 8, "ball_diameter_mm": 17.462, "pitch_diameter_mm": 72.5, "contact_angle_deg": 0.0},
    "envelope_band_hz": [2000.0, 4000.0],
    "band_half_width_bins": 1,
    "min_sideband_hz": 1.0,
}
STEPS_PER_BIN = 16
VERTEX_SPACING = 1e-4

NAMES = [
    "cur_rms", "cur_peak", "cur_crest", "cur_kurtosis",
    "vib_rms", "vib_peak", "vib_crest", "vib_kurtosis",
    "snd_rms", "snd_peak", "snd_crest", "snd_kurtosis",
    "shaft_hz", "vib_1x_g", "env_rms_g",
    "env_bpfo", "env_bpfi", "env_bsf", "env_ftf", "env_bpfo_2", "env_bpfi_2", "env_bsf_2",
    "line_hz", "line_a", "slip", "sb_lower", "sb_upper", "temp_mean",
]


def quantize(x, scale):
    """x / scale in f32, rounded half away from zero, clamped to +-32767 (`sampling::quantize`)."""
    v = (np.asarray(x, dtype=np.float32) / scale).astype(np.float64)
    r = np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5))
    return np.clip(r, -Q_MAX, Q_MAX).astype(np.int16)


def defect_frequencies(fr):
    b = CONFIG["bearing"]
    r = b["ball_diameter_mm"] / b["pitch_diameter_mm"] * np.cos(np.radians(b["contact_angle_deg"]))
    n = b["balls"]
    return {
        "bpfo": n / 2 * fr * (1 - r),
        "bpfi": n / 2 * fr * (1 + r),
        "bsf": b["pitch_diameter_mm"] / (2 * b["ball_diameter_mm"]) * fr * (1 - r * r),
        "ftf": fr / 2 * (1 - r),
    }


# ---- the features ----

HANN = scipy.signal.get_window("hann", N)
T = np.arange(N)
BIN = FS / N
STEP = BIN / STEPS_PER_BIN


def argmax_in(fun, lo, hi):
    """The argmax of fun over [lo, hi]: the best point of the grid min(lo + k step, hi), then
    scipy's bounded Brent within a step of it, then the vertex of a parabola through fun at
    x - h, x, x + h (h = step * 1e-4) when that is a maximum within h; an end of the band when
    x is within h of it and fun is no lower there."""
    k = int(np.ceil((hi - lo) / STEP))
    grid = np.minimum(lo + np.arange(k + 1) * STEP, hi)
    g = grid[int(np.argmax([fun(x) for x in grid]))]
    a, b = max(lo, g - STEP), min(hi, g + STEP)
    x = scipy.optimize.minimize_scalar(lambda v: -fun(v), bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-12}).x
    h = STEP * VERTEX_SPACING
    for edge in (lo, hi):
        if abs(x - edge) <= h and fun(edge) >= fun(x):
            return edge
    ys = np.array([fun(x - h), fun(x), fun(x + h)])
    c2 = np.polyfit([-h, 0.0, h], ys, 2)  # c2[0] v^2 + c2[1] v + c2[2]
    if c2[0] < 0:
        shift = -c2[1] / (2 * c2[0])
        if abs(shift) <= h:
            x = min(max(x + shift, lo), hi)
    return x


def moments(x):
    d = x - x.mean()
    rms = np.sqrt(np.mean(d * d))
    peak = np.abs(d).max()
    if rms == 0:
        return [rms, peak, 0.0, 0.0]
    return [rms, peak, peak / rms, scipy.stats.kurtosis(x, fisher=False, bias=True)]


def hann_dtft(d, f):
    return np.sum(HANN * d * np.exp(-2j * np.pi * f * T / FS))


def supply_fit(d, freqs):
    """Hann-weighted least squares of d on cos, sin at freqs: (amplitudes, weighted residual)."""
    cols = []
    for f in freqs:
        cols += [np.cos(2 * np.pi * f * T / FS), np.sin(2 * np.pi * f * T / FS)]
    a = np.array(cols).T
    sw = np.sqrt(HANN)
    coef, *_ = np.linalg.lstsq(a * sw[:, None], d * sw, rcond=None)
    r = sw * (d - a @ coef)
    return np.hypot(coef[0::2], coef[1::2]), float(r @ r)


def features(qs):
    x = [q.astype(np.float64) * np.float64(SCALE[c]) for c, q in enumerate(qs)]
    stats = moments(x[0]) + moments(x[1]) + moments(x[2])
    temp_mean = x[3].mean()
    cur, vib = x[0] - x[0].mean(), x[1] - x[1].mean()
    line, pp = CONFIG["line_hz"], CONFIG["pole_pairs"]
    sync = line / pp

    # Shaft speed: the vibration's Hann-windowed DTFT peak near synchronous speed.
    if np.var(vib) > 0:
        mag2 = lambda f: abs(hann_dtft(vib, f)) ** 2
        fr = argmax_in(mag2, sync * (1 - CONFIG["max_slip"]), sync * (1 + CONFIG["line_tolerance"]))
        one_x = 2 * np.sqrt(mag2(fr)) / HANN.sum()
    else:
        fr, one_x = 0.0, 0.0

    # Envelope: band-pass by zeroing rfft bins, scipy's Hilbert transform, magnitude.
    lo, hi = CONFIG["envelope_band_hz"]
    k = np.arange(N // 2 + 1)
    keep = (k >= 1) & (k < N / 2) & (lo * N <= k * FS) & (k * FS <= hi * N)
    band_passed = np.fft.irfft(np.fft.rfft(vib) * keep, n=N)
    env = np.abs(scipy.signal.hilbert(band_passed))
    e0 = env - env.mean()
    env_rms = np.sqrt(np.mean(e0 ** 2))
    power = np.abs(np.fft.rfft(HANN * e0)) ** 2
    total = power[1:].sum()
    half = CONFIG["band_half_width_bins"]

    def band(f):
        if fr <= 0 or total <= 0 or f <= 0:
            return 0.0
        k0 = int(np.floor(f / BIN + 0.5))
        sel = (k >= max(1, k0 - half)) & (k <= k0 + half)
        return power[sel].sum() / total

    df = defect_frequencies(fr)
    bands = [band(df["bpfo"]), band(df["bpfi"]), band(df["bsf"]), band(df["ftf"]),
             band(2 * df["bpfo"]), band(2 * df["bpfi"]), band(2 * df["bsf"])]

    # Supply: the frequency whose fit of the supply alone leaves the least residual gives the
    # slip; with it held, the frequency whose fit of the supply and the two sidebands leaves the
    # least residual (when they are separable); amplitudes from that fit.
    if np.any(cur != 0):
        tol = CONFIG["line_tolerance"]
        lo_f, hi_f = line * (1 - tol), line * (1 + tol)
        f0 = argmax_in(lambda f: -supply_fit(cur, [f])[1], lo_f, hi_f)
        s = 1 - pp * fr / f0
        if fr > 0 and 2 * abs(s) * f0 >= CONFIG["min_sideband_hz"]:
            tones = lambda f: [f, (1 - 2 * s) * f, (1 + 2 * s) * f]
            f_hat = argmax_in(lambda f: -supply_fit(cur, tones(f))[1], lo_f, hi_f)
            amps, _ = supply_fit(cur, tones(f_hat))
            line_a, lower, upper = amps[0], amps[1] / amps[0], amps[2] / amps[0]
        else:
            f_hat = f0
            amps, _ = supply_fit(cur, [f0])
            line_a, lower, upper = amps[0], 0.0, 0.0
    else:
        f_hat, line_a, lower, upper = 0.0, 0.0, 0.0, 0.0
    slip = 1 - pp * fr / f_hat if fr > 0 and f_hat > 0 else 0.0

    out = stats + [fr, one_x, env_rms] + bands + [f_hat, line_a, slip, lower, upper, temp_mean]
    return [float(v) for v in out]


# ---- the windows ----


def motor(rng, f=50.0, slip=0.01875, sb=0.0005, vsb=0.0, outer=0.0, inner=0.0, temp=70.0):
    t = T / FS
    fr = f / 2 * (1 - slip)
    ph = rng.uniform(0, 2 * np.pi, 16)
    tone = lambda amp, freq, i: amp * np.cos(2 * np.pi * freq * t + ph[i])
    a1 = 40.0
    cur = tone(a1, f, 0) + tone(0.01 * a1, 3 * f, 1) + tone(0.03 * a1, 5 * f, 2) + tone(0.02 * a1, 7 * f, 3)
    cur += tone(a1 * sb, (1 - 2 * slip) * f, 4) + tone(a1 * sb, (1 + 2 * slip) * f, 5)
    vib = tone(0.02, fr, 6) + tone(0.006, 2 * fr, 7) + tone(0.01, 2 * f, 8)
    vib += tone(vsb, fr - 2 * slip * f, 9) + tone(vsb, fr + 2 * slip * f, 10)
    df = defect_frequencies(fr)
    for imp, fd, modulated in [(outer, df["bpfo"], False), (inner, df["bpfi"], True)]:
        if imp <= 0:
            continue
        for tk in np.arange(ph[11] / (2 * np.pi) / fd, t[-1], 1 / fd):
            a = imp * (0.5 * (1 + np.cos(2 * np.pi * fr * tk + ph[12])) if modulated else 1.0)
            dt = t - tk
            m = dt >= 0
            vib[m] += a * np.exp(-785 * dt[m]) * np.sin(2 * np.pi * 3000 * dt[m])
    snd = vib + tone(0.05, 2 * f, 13) + tone(0.06, 9 * fr, 14)
    cur = cur + rng.normal(0, 0.15, N)
    vib = vib + rng.normal(0, 0.01, N)
    snd = snd + rng.normal(0, 0.05, N)
    tmp = temp + rng.normal(0, 0.05, N)
    return [cur, vib, snd, tmp]


CASES = [
    ("healthy", 1, {}),
    ("outer_race", 2, {"outer": 0.3}),
    ("inner_race", 3, {"inner": 0.3}),
    ("broken_bar", 4, {"sb": 0.03}),
    ("light_load", 5, {"slip": 0.005, "temp": 45.0}),
    ("heavy_offgrid", 6, {"f": 49.8, "slip": 0.03, "sb": 0.01, "outer": 0.1, "temp": 95.0}),
    ("silent", 7, None),
]


def main():
    out = {
        "generator": "actors/tests/reference/gen_dsp.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "config": CONFIG,
        "feature_names": NAMES,
        "scale": [float(s) for s in SCALE],
        "cases": [],
    }
    for name, seed, recipe in CASES:
        rng = np.random.default_rng(seed)
        if recipe is None:
            chans = [np.zeros(N), np.zeros(N), np.zeros(N), np.full(N, 20.0)]
        else:
            chans = motor(rng, **recipe)
        qs = [quantize(c, SCALE[i]) for i, c in enumerate(chans)]
        raw = np.concatenate(qs).astype("<i2").tobytes()
        feats = features(qs)
        assert len(feats) == len(NAMES)
        out["cases"].append({
            "name": name,
            "seed": seed,
            "recipe": recipe,
            "samples_b64": base64.b64encode(raw).decode(),
            "features": feats,
        })
    path = pathlib.Path(__file__).with_name("dsp.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")
    for case in out["cases"]:
        print(case["name"], {n: round(v, 6) for n, v in zip(NAMES, case["features"])})


if __name__ == "__main__":
    main()
