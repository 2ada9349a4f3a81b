//! Seeded randomness for the motor model.
//!
//! Slow, rare draws (a life's defect onsets, the inspection schedule, a fleet's per-motor
//! streams) come from ChaCha8 streams seeded from the motor's seed. Fast, bulk draws (the
//! noise of a window) come from [`WyRand`], seeded by hashing (motor seed, purpose, window
//! time...), so a window's content depends only on what it hashes, never on earlier calls.
//! Gaussian samples use a 256-layer ziggurat (tables built once).

use std::sync::OnceLock;

use rand::RngCore;

/// Purposes, hashed into seeds so that streams never overlap.
pub(crate) const LIFE: u64 = 1;
pub(crate) const INSPECTIONS: u64 = 2;
pub(crate) const FINDING: u64 = 3;
pub(crate) const WINDOW: u64 = 4;
pub(crate) const LOAD: u64 = 5;
pub(crate) const SENSOR: u64 = 6;
pub(crate) const PHASES: u64 = 7;

/// SplitMix64's finaliser: a bijective 64-bit mix.
#[inline]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A hash of several words (order matters).
#[inline]
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |h, &p| mix(h ^ mix(p)))
}

/// A uniform number in [0, 1) from a hash.
#[inline]
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// wyrand: a fast 64-bit generator (one multiply per draw) for a window's noise.
#[derive(Debug, Clone)]
pub(crate) struct WyRand(u64);

impl WyRand {
    pub(crate) fn new(seed: u64) -> Self {
        WyRand(mix(seed))
    }

    /// A uniform number in [0, 1).
    #[inline]
    pub(crate) fn uniform(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// A standard normal sample.
    #[inline]
    pub(crate) fn normal(&mut self) -> f64 {
        Normal::new().sample(self)
    }
}

impl RngCore for WyRand {
    #[inline]
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) as u64) ^ (t as u64)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// A uniform number in (0, 1] from any generator (safe for `ln`).
#[inline]
pub(crate) fn open_unit<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    1.0 - unit(rng.next_u64())
}

/// An exponential sample with the given mean.
pub(crate) fn exponential<R: RngCore + ?Sized>(rng: &mut R, mean: f64) -> f64 {
    -open_unit(rng).ln() * mean
}

/// Ziggurat tables: layer edges X[0..=256] (X[0] = V / f(R), X[1] = R, X[256] = 0) and
/// F[i] = exp(-X[i]^2 / 2).
struct Zig {
    x: [f64; 257],
    f: [f64; 257],
}

const ZIG_R: f64 = 3.654_152_885_361_009;
const ZIG_V: f64 = 0.004_928_673_233_99;

fn zig() -> &'static Zig {
    static TABLES: OnceLock<Zig> = OnceLock::new();
    TABLES.get_or_init(|| {
        let pdf = |x: f64| (-0.5 * x * x).exp();
        let mut x = [0.0; 257];
        let mut f = [0.0; 257];
        x[0] = ZIG_V / pdf(ZIG_R);
        x[1] = ZIG_R;
        f[0] = pdf(x[0]);
        f[1] = pdf(x[1]);
        for i in 1..256 {
            let next = f[i] + ZIG_V / x[i];
            if i + 1 == 256 || next >= 1.0 {
                x[i + 1] = 0.0;
                f[i + 1] = 1.0;
            } else {
                x[i + 1] = (-2.0 * next.ln()).sqrt();
                f[i + 1] = next;
            }
        }
        x[256] = 0.0;
        f[256] = 1.0;
        Zig { x, f }
    })
}

/// A standard normal sample (Marsaglia and Tsang's ziggurat, 256 layers; the layer index and
/// the value come from different bits of one draw).
#[inline]
pub(crate) fn standard_normal<R: RngCore + ?Sized>(rng: &mut R) -> f64 {
    Normal::new().sample(rng)
}

/// A standard normal sampler holding the ziggurat tables (for loops: look them up once).
#[derive(Clone, Copy)]
pub(crate) struct Normal(&'static Zig);

impl Normal {
    pub(crate) fn new() -> Self {
        Normal(zig())
    }

    #[inline(always)]
    pub(crate) fn sample<R: RngCore + ?Sized>(self, rng: &mut R) -> f64 {
        let bits = rng.next_u64();
        let i = (bits & 0xff) as usize;
        let x = (2.0 * unit(bits) - 1.0) * self.0.x[i];
        if x.abs() < self.0.x[i + 1] {
            return x;
        }
        self.slow(i, x, rng)
    }

    /// The rare case (about 1.2% of draws): the tail, or a wedge.
    #[cold]
    #[inline(never)]
    fn slow<R: RngCore + ?Sized>(self, mut i: usize, mut x: f64, rng: &mut R) -> f64 {
        let z = self.0;
        loop {
            if i == 0 {
                // The tail beyond R (Marsaglia's method).
                loop {
                    let tx = -open_unit(rng).ln() / ZIG_R;
                    let ty = -open_unit(rng).ln();
                    if 2.0 * ty >= tx * tx {
                        return if x < 0.0 { -(ZIG_R + tx) } else { ZIG_R + tx };
                    }
                }
            }
            if z.f[i] + (z.f[i + 1] - z.f[i]) * unit(rng.next_u64()) < (-0.5 * x * x).exp() {
                return x;
            }
            let bits = rng.next_u64();
            i = (bits & 0xff) as usize;
            x = (2.0 * unit(bits) - 1.0) * z.x[i];
            if x.abs() < z.x[i + 1] {
                return x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_moments() {
        let mut rng = WyRand::new(7);
        let n = 400_000;
        let (mut s1, mut s2, mut s4) = (0.0, 0.0, 0.0);
        let mut beyond3 = 0;
        for _ in 0..n {
            let x = rng.normal();
            s1 += x;
            s2 += x * x;
            s4 += x * x * x * x;
            if x.abs() > 3.0 {
                beyond3 += 1;
            }
        }
        let n = n as f64;
        let mean = s1 / n;
        let var = s2 / n - mean * mean;
        let kurt = (s4 / n) / (var * var);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        // P(|x| > 3) = 0.0027
        let tail = beyond3 as f64 / n;
        assert!((tail - 0.0027).abs() < 0.0005, "tail {tail}");
    }

    #[test]
    fn zig_tables_close() {
        let z = zig();
        // The last computed layer edge lands near 0 (V was chosen for 256 layers).
        assert!(z.x[255] < 0.3 && z.x[255] > 0.0, "{}", z.x[255]);
    }
}
