//! The int8 logistic model (stage 1) and its byte format.
//!
//! Scoring: `z[i] = (f[i] - offset[i]) / scale[i]` (standardisation), `v[i] = z[i] / input_scale`,
//! `q[i] = clamp(round_half_away(v[i]), -127, 127)` as i8 (NaN gives 0), then an integer dot
//! product `acc = sum(q[i] as i32 * w[i] as i32)`, one dequantisation
//! `logit = acc * (input_scale * weight_scale) + bias`, and `score = 1 / (1 + exp(-logit))` in
//! `[0, 1]`. The decision threshold applies to the score.
//!
//! Byte layout (little-endian, `n` = [`FEATURE_COUNT`], total [`MODEL_LEN`] = `28 + 9n` bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"AIM8"` |
//! | 4 | 2 | format version u16 = 1 |
//! | 6 | 2 | `n` u16, number of features |
//! | 8 | 4 | model version u32 (non-zero; 0 means "no model" in frames) |
//! | 12 | 8n | per feature: offset f32, scale f32 (finite, scale > 0) |
//! | 12+8n | 4 | input_scale f32 (finite, > 0) |
//! | 16+8n | n | weights i8 |
//! | 16+9n | 4 | weight_scale f32 (finite, > 0) |
//! | 20+9n | 4 | bias f32 (finite) |
//! | 24+9n | 4 | threshold f32 (in `[0, 1]`) |
//!
//! The image carries no checksum of its own: over the air it is covered by SHA-256 and an ed25519
//! signature ([`crate::ota`]).

use crate::features::{FeatureVector, FEATURE_COUNT};

/// Magic at the start of a model image.
pub const MODEL_MAGIC: [u8; 4] = *b"AIM8";
/// The format version this code reads and writes.
pub const MODEL_FORMAT_VERSION: u16 = 1;
/// Fixed bytes of a model image besides the per-feature ones.
pub const MODEL_HEADER_LEN: usize = 28;
/// Exact length of a model image for [`FEATURE_COUNT`] features.
pub const MODEL_LEN: usize = MODEL_HEADER_LEN + 9 * FEATURE_COUNT;
/// Largest model image a mote accepts (the size of an OTA slot).
pub const MAX_MODEL_SIZE: usize = 512;

const _: () = assert!(MODEL_LEN <= MAX_MODEL_SIZE);

/// Why a model image or value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelError {
    /// Fewer bytes than the layout needs.
    Truncated {
        /// Bytes the layout needs.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// More bytes than the layout has.
    TrailingBytes {
        /// Bytes the layout has.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The first four bytes are not [`MODEL_MAGIC`].
    BadMagic,
    /// A format version this code does not read.
    UnsupportedFormat(u16),
    /// The model takes a different number of features than this firmware computes.
    FeatureCount {
        /// [`FEATURE_COUNT`].
        expected: usize,
        /// The model's count.
        got: usize,
    },
    /// Model version 0 is reserved for "no model".
    ZeroVersion,
    /// A number is NaN or infinite.
    NotFinite,
    /// A scale (per-feature, input or weight) is not greater than zero.
    NonPositiveScale,
    /// The threshold is outside `[0, 1]`.
    BadThreshold,
    /// The output buffer is smaller than [`MODEL_LEN`].
    BufferTooSmall,
}

impl core::fmt::Display for ModelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { needed, got } => write!(f, "model image truncated: {got} of {needed} bytes"),
            Self::TrailingBytes { expected, got } => {
                write!(f, "model image has {got} bytes, the layout has {expected}")
            }
            Self::BadMagic => f.write_str("not a model image (bad magic)"),
            Self::UnsupportedFormat(v) => write!(f, "unsupported model format version {v}"),
            Self::FeatureCount { expected, got } => {
                write!(f, "model takes {got} features, this firmware computes {expected}")
            }
            Self::ZeroVersion => f.write_str("model version 0 is reserved"),
            Self::NotFinite => f.write_str("model holds a NaN or infinite number"),
            Self::NonPositiveScale => f.write_str("model holds a scale that is not > 0"),
            Self::BadThreshold => f.write_str("model threshold outside [0, 1]"),
            Self::BufferTooSmall => f.write_str("buffer too small for the model image"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ModelError {}

/// A decoded, validated int8 logistic model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// Model version (non-zero).
    pub version: u32,
    /// Per-feature standardisation offset (the training mean).
    pub offset: [f32; FEATURE_COUNT],
    /// Per-feature standardisation scale (the training standard deviation), > 0.
    pub scale: [f32; FEATURE_COUNT],
    /// Standardised units per int8 input step, > 0.
    pub input_scale: f32,
    /// int8 weights.
    pub weights: [i8; FEATURE_COUNT],
    /// Logit units per weight step, > 0.
    pub weight_scale: f32,
    /// Logit bias.
    pub bias: f32,
    /// Decision threshold on the score, in `[0, 1]`.
    pub threshold: f32,
}

fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn positive(v: f32) -> Result<f32, ModelError> {
    if !v.is_finite() {
        Err(ModelError::NotFinite)
    } else if v <= 0.0 {
        Err(ModelError::NonPositiveScale)
    } else {
        Ok(v)
    }
}

impl Model {
    /// Checks every invariant of the format (what `decode` refuses, `encode` refuses too).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.version == 0 {
            return Err(ModelError::ZeroVersion);
        }
        if !self.offset.iter().chain([&self.bias, &self.threshold]).all(|v| v.is_finite()) {
            return Err(ModelError::NotFinite);
        }
        for &s in self.scale.iter().chain([&self.input_scale, &self.weight_scale]) {
            positive(s)?;
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(ModelError::BadThreshold);
        }
        Ok(())
    }

    /// Decodes and validates a model image (layout in the module doc).
    pub fn decode(b: &[u8]) -> Result<Model, ModelError> {
        if b.len() < MODEL_HEADER_LEN {
            return Err(ModelError::Truncated { needed: MODEL_HEADER_LEN, got: b.len() });
        }
        if b[0..4] != MODEL_MAGIC {
            return Err(ModelError::BadMagic);
        }
        let format = u16::from_le_bytes([b[4], b[5]]);
        if format != MODEL_FORMAT_VERSION {
            return Err(ModelError::UnsupportedFormat(format));
        }
        let n = usize::from(u16::from_le_bytes([b[6], b[7]]));
        if n != FEATURE_COUNT {
            return Err(ModelError::FeatureCount { expected: FEATURE_COUNT, got: n });
        }
        if b.len() < MODEL_LEN {
            return Err(ModelError::Truncated { needed: MODEL_LEN, got: b.len() });
        }
        if b.len() > MODEL_LEN {
            return Err(ModelError::TrailingBytes { expected: MODEL_LEN, got: b.len() });
        }
        let n8 = 8 * FEATURE_COUNT;
        let mut m = Model {
            version: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            offset: [0.0; FEATURE_COUNT],
            scale: [0.0; FEATURE_COUNT],
            input_scale: f32_at(b, 12 + n8),
            weights: [0; FEATURE_COUNT],
            weight_scale: f32_at(b, 16 + n8 + FEATURE_COUNT),
            bias: f32_at(b, 20 + n8 + FEATURE_COUNT),
            threshold: f32_at(b, 24 + n8 + FEATURE_COUNT),
        };
        for i in 0..FEATURE_COUNT {
            m.offset[i] = f32_at(b, 12 + 8 * i);
            m.scale[i] = f32_at(b, 16 + 8 * i);
            m.weights[i] = b[16 + n8 + i] as i8;
        }
        m.validate()?;
        Ok(m)
    }

    /// Writes the model image into `out`; returns its length ([`MODEL_LEN`]).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, ModelError> {
        self.validate()?;
        let out = out.get_mut(..MODEL_LEN).ok_or(ModelError::BufferTooSmall)?;
        let n = FEATURE_COUNT;
        out[0..4].copy_from_slice(&MODEL_MAGIC);
        out[4..6].copy_from_slice(&MODEL_FORMAT_VERSION.to_le_bytes());
        out[6..8].copy_from_slice(&(n as u16).to_le_bytes());
        out[8..12].copy_from_slice(&self.version.to_le_bytes());
        for i in 0..n {
            out[12 + 8 * i..16 + 8 * i].copy_from_slice(&self.offset[i].to_le_bytes());
            out[16 + 8 * i..20 + 8 * i].copy_from_slice(&self.scale[i].to_le_bytes());
            out[16 + 8 * n + i] = self.weights[i] as u8;
        }
        out[12 + 8 * n..16 + 8 * n].copy_from_slice(&self.input_scale.to_le_bytes());
        let tail = 16 + 9 * n;
        out[tail..tail + 4].copy_from_slice(&self.weight_scale.to_le_bytes());
        out[tail + 4..tail + 8].copy_from_slice(&self.bias.to_le_bytes());
        out[tail + 8..tail + 12].copy_from_slice(&self.threshold.to_le_bytes());
        Ok(MODEL_LEN)
    }

    /// Standardises and quantises the features to int8 (see the module doc).
    pub fn quantize_input(&self, features: &FeatureVector) -> [i8; FEATURE_COUNT] {
        let mut q = [0i8; FEATURE_COUNT];
        for (i, out) in q.iter_mut().enumerate() {
            let v = (features[i] - self.offset[i]) / self.scale[i] / self.input_scale;
            // `as` saturates and maps NaN to 0; the clamp keeps the range symmetric.
            *out = (libm::roundf(v).clamp(-127.0, 127.0)) as i8;
        }
        q
    }

    /// The logit: one integer dot product, one dequantisation.
    pub fn logit(&self, features: &FeatureVector) -> f32 {
        let q = self.quantize_input(features);
        let acc: i32 = q.iter().zip(&self.weights).map(|(&x, &w)| i32::from(x) * i32::from(w)).sum();
        acc as f32 * (self.input_scale * self.weight_scale) + self.bias
    }

    /// The score in `[0, 1]`.
    pub fn score(&self, features: &FeatureVector) -> f32 {
        1.0 / (1.0 + libm::expf(-self.logit(features)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            version: 7,
            offset: [0.5; FEATURE_COUNT],
            scale: [2.0; FEATURE_COUNT],
            input_scale: 0.05,
            weights: [10, -20, 30, -40, 50, -60, 70, -80, 90, -100, 127],
            weight_scale: 0.01,
            bias: -1.0,
            threshold: 0.7,
        }
    }

    #[test]
    fn round_trip_and_score_matches_float_arithmetic() {
        let m = model();
        let mut buf = [0u8; MAX_MODEL_SIZE];
        let n = m.encode(&mut buf).unwrap();
        assert_eq!(n, MODEL_LEN);
        assert_eq!(Model::decode(&buf[..n]), Ok(m));
        let f: FeatureVector = core::array::from_fn(|i| i as f32 * 0.3);
        let q = m.quantize_input(&f);
        for i in 0..FEATURE_COUNT {
            let z = (f[i] - 0.5) / 2.0 / 0.05;
            assert_eq!(q[i], z.round().clamp(-127.0, 127.0) as i8);
        }
        let acc: i32 = (0..FEATURE_COUNT).map(|i| q[i] as i32 * m.weights[i] as i32).sum();
        let expect = 1.0 / (1.0 + (-(acc as f32 * 0.0005 - 1.0)).exp());
        assert!((m.score(&f) - expect).abs() < 1e-6);
        let mut nan = f;
        nan[0] = f32::NAN;
        assert!(m.score(&nan).is_finite());
        assert!(m.score(&[1e30; FEATURE_COUNT]) <= 1.0);
    }

    #[test]
    fn decode_refuses_every_bad_image() {
        let mut buf = [0u8; MAX_MODEL_SIZE];
        let n = model().encode(&mut buf).unwrap();
        let good = &buf[..n];
        assert_eq!(Model::decode(&good[..5]), Err(ModelError::Truncated { needed: 28, got: 5 }));
        assert_eq!(Model::decode(&good[..n - 1]), Err(ModelError::Truncated { needed: n, got: n - 1 }));
        assert_eq!(Model::decode(&buf[..n + 1]), Err(ModelError::TrailingBytes { expected: n, got: n + 1 }));
        let patched = |at: usize, bytes: &[u8]| {
            let mut b = good.to_vec();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            Model::decode(&b)
        };
        assert_eq!(patched(0, b"XIM8"), Err(ModelError::BadMagic));
        assert_eq!(patched(4, &[2, 0]), Err(ModelError::UnsupportedFormat(2)));
        assert_eq!(patched(6, &[3, 0]), Err(ModelError::FeatureCount { expected: FEATURE_COUNT, got: 3 }));
        assert_eq!(patched(8, &[0; 4]), Err(ModelError::ZeroVersion));
        assert_eq!(patched(12, &f32::NAN.to_le_bytes()), Err(ModelError::NotFinite));
        assert_eq!(patched(16, &0.0f32.to_le_bytes()), Err(ModelError::NonPositiveScale));
        assert_eq!(patched(16, &f32::INFINITY.to_le_bytes()), Err(ModelError::NotFinite));
        assert_eq!(patched(n - 4, &1.5f32.to_le_bytes()), Err(ModelError::BadThreshold));
        assert_eq!(patched(n - 8, &f32::NEG_INFINITY.to_le_bytes()), Err(ModelError::NotFinite));
        assert_eq!(model().encode(&mut [0u8; 10]), Err(ModelError::BufferTooSmall));
        let bad = Model { weight_scale: -1.0, ..model() };
        assert_eq!(bad.encode(&mut buf), Err(ModelError::NonPositiveScale));
    }
}
