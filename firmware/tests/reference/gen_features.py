#!/usr/bin/env python3
"""Reference values for the stage-1 feature vector (aiot-firmware `features` module).

Builds a few deterministic test windows, quantises them the way the firmware does, computes the
feature vector with numpy/scipy from the quantised samples, and writes features.json beside this
file: for each case its recipe, the per-channel scales, the quantised samples (base64 of i16
little-endian, channel-major: 2048 current, 2048 vibration, 2048 sound, 2048 temperature) and the
expected features. The Rust test (tests/features_reference.rs) decodes the same samples and
compares. The samples are written out, so the Rust side need not reproduce numpy's generator.

Run: python3 firmware/tests/reference/gen_features.py   (needs numpy and scipy; CI does not run
it, features.json is committed)

Signal recipes (t = n / fs, n = 0..2047, fs = 8192 Hz; noise from numpy.random.default_rng(seed)
normal draws, drawn per case in the order current, vibration, sound, temperature):
  healthy      current 14.14 sin(2 pi 50 t) + 0.7 sin(2 pi 150 t) + N(0, 0.05) A;
               vibration 1 + 0.05 sin(2 pi 24.6 t) + 0.02 sin(2 pi 100 t) + N(0, 0.01) g
               (1 g of gravity on the axis); sound 0.1 sin(2 pi 100 t) + N(0, 0.2) Pa;
               temperature 45 + N(0, 0.01) C
  outer_race   healthy, plus on vibration a decaying 3 kHz resonance excited at the outer-race
               defect frequency 89.3 Hz: sum over impacts k at t_k = k / 89.3 of
               2 exp(-800 (t - t_k)) sin(2 pi 3000 (t - t_k)) for t >= t_k
  imbalance    healthy with vibration 1x raised to 0.5 g, current 20 A peak, temperature 80 C
  saturated    vibration 20 sin(2 pi 60 t) g (beyond the 16 g full scale: clips), current 150 A
               peak (clips), sound N(0, 5) Pa, temperature 30 C
  silent       every channel 0 except temperature 20 C (zero variance: crest, kurtosis 0)
"""
import base64
import json
import pathlib

import numpy as np
import scipy.stats

FS = 8192
N = 2048
Q_MAX = 32767
FULL_SCALE = [128.0, 16.0, 64.0, 327.67]
# The firmware computes scale = FULL_SCALE / 32767 in f32.
SCALE = [np.float32(fs) / np.float32(Q_MAX) for fs in FULL_SCALE]
BANDS_HZ = [(10, 200), (200, 1000), (1000, 2500), (2500, 2**32 - 1)]
BAND_FLOOR = 1e-10
NAMES = ["vib_rms", "vib_peak", "vib_crest", "vib_kurtosis", "vib_band_0", "vib_band_1",
         "vib_band_2", "vib_band_3", "cur_rms", "sound_rms", "temp_mean"]


def quantize(x, scale):
    """x / scale in f32, rounded half away from zero, clamped to +-32767 (as `sampling::quantize`)."""
    v = (np.asarray(x, dtype=np.float32) / scale).astype(np.float64)
    r = np.where(v >= 0, np.floor(v + 0.5), np.ceil(v - 0.5))
    return np.clip(r, -Q_MAX, Q_MAX).astype(np.int16)


def moments(q, scale):
    x = q.astype(np.float64) * np.float64(scale)
    mu = x.mean()
    d = x - mu
    return x, mu, d, np.mean(d**2)


def features(qs):
    _, _, dv, m2v = moments(qs[1], SCALE[1])
    xv = qs[1].astype(np.float64) * np.float64(SCALE[1])
    rms = np.sqrt(m2v)
    peak = np.max(np.abs(dv))
    crest = peak / rms if rms > 0 else 0.0
    kurt = scipy.stats.kurtosis(xv, fisher=False, bias=True) if m2v > 0 else 0.0
    X = np.fft.rfft(dv)
    p = 2.0 * np.abs(X) ** 2 / N**2
    p[N // 2] = np.abs(X[N // 2]) ** 2 / N**2
    j = np.arange(N // 2 + 1, dtype=np.int64)
    f = j * FS
    bands = []
    for lo, hi in BANDS_HZ:
        sel = (j >= 1) & (lo * N <= f) & (f < hi * N)
        bands.append(np.log10(p[sel].sum() + BAND_FLOOR))
    cur = np.sqrt(moments(qs[0], SCALE[0])[3])
    snd = np.sqrt(moments(qs[2], SCALE[2])[3])
    temp = moments(qs[3], SCALE[3])[1]
    return [float(np.float32(v)) for v in [rms, peak, crest, kurt, *bands, cur, snd, temp]]


def healthy(t, rng):
    cur = 14.14 * np.sin(2 * np.pi * 50 * t) + 0.7 * np.sin(2 * np.pi * 150 * t) + rng.normal(0, 0.05, N)
    vib = 1 + 0.05 * np.sin(2 * np.pi * 24.6 * t) + 0.02 * np.sin(2 * np.pi * 100 * t) + rng.normal(0, 0.01, N)
    snd = 0.1 * np.sin(2 * np.pi * 100 * t) + rng.normal(0, 0.2, N)
    tmp = 45 + rng.normal(0, 0.01, N)
    return [cur, vib, snd, tmp]


def outer_race(t, rng):
    ch = healthy(t, rng)
    hits = np.zeros(N)
    for k in range(int(t[-1] * 89.3) + 1):
        tk = k / 89.3
        dt = t - tk
        m = dt >= 0
        hits[m] += 2 * np.exp(-800 * dt[m]) * np.sin(2 * np.pi * 3000 * dt[m])
    ch[1] = ch[1] + hits
    return ch


def imbalance(t, rng):
    ch = healthy(t, rng)
    ch[1] = ch[1] + 0.45 * np.sin(2 * np.pi * 24.6 * t)
    ch[0] = ch[0] * (20 / 14.14)
    ch[3] = ch[3] + 35
    return ch


def saturated(t, rng):
    return [150 * np.sin(2 * np.pi * 50 * t), 20 * np.sin(2 * np.pi * 60 * t), rng.normal(0, 5, N),
            np.full(N, 30.0)]


def silent(t, rng):
    return [np.zeros(N), np.zeros(N), np.zeros(N), np.full(N, 20.0)]


CASES = [("healthy", healthy, 1), ("outer_race", outer_race, 2), ("imbalance", imbalance, 3),
         ("saturated", saturated, 4), ("silent", silent, 5)]


def main():
    t = np.arange(N) / FS
    out = {
        "generator": "firmware/tests/reference/gen_features.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sample_rate_hz": FS,
        "window": N,
        "feature_names": NAMES,
        "scale": [float(s) for s in SCALE],
        "cases": [],
    }
    for name, recipe, seed in CASES:
        rng = np.random.default_rng(seed)
        chans = recipe(t, rng)
        qs = [quantize(c, SCALE[i]) for i, c in enumerate(chans)]
        raw = np.concatenate(qs).astype("<i2").tobytes()
        out["cases"].append({
            "name": name,
            "seed": seed,
            "samples_b64": base64.b64encode(raw).decode(),
            "features": features(qs),
        })
    path = pathlib.Path(__file__).with_name("features.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
