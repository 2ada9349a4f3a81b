//! Shared fixtures: keys, a signing key, models whose score follows vibration RMS, windows, and
//! a cluster side that seals down frames with an increasing counter.

use aiot_firmware::features::FEATURE_COUNT;
use aiot_firmware::model::{Model, MAX_MODEL_SIZE};
use aiot_firmware::mote::MoteConfig;
use aiot_firmware::ota::signed_message;
use aiot_firmware::protocol::{
    encode_frame, open_frame, Envelope, Frame, MoteId, MoteKey, OtaChunk, OtaCommit, OtaManifest, Payload,
    MAX_FRAME,
};
use aiot_firmware::sampling::{Window, DEFAULT_SAMPLE_RATE_HZ};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

pub const ID: MoteId = MoteId(17);
pub const KEY: MoteKey = MoteKey([0x11; 32]);
pub const OTHER_KEY: MoteKey = MoteKey([0x22; 32]);

pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

pub fn config() -> MoteConfig {
    MoteConfig::new(ID, KEY, signing_key().verifying_key().to_bytes())
}

/// A model whose score depends only on vibration RMS: q = round(rms / 0.01 g),
/// logit = 0.1 q - 3, so 0.05 g -> 0.076, 0.30 g -> 0.5, 0.50 g -> 0.88; threshold 0.7.
pub fn model(version: u32) -> Model {
    let mut weights = [0i8; FEATURE_COUNT];
    weights[0] = 100;
    Model {
        version,
        offset: [0.0; FEATURE_COUNT],
        scale: [1.0; FEATURE_COUNT],
        input_scale: 0.01,
        weights,
        weight_scale: 0.1,
        bias: -3.0,
        threshold: 0.7,
    }
}

pub fn image(m: &Model) -> Vec<u8> {
    let mut buf = [0u8; MAX_MODEL_SIZE];
    let n = m.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

pub fn manifest(key: &SigningKey, version: u32, image: &[u8]) -> OtaManifest {
    let sha256: [u8; 32] = Sha256::digest(image).into();
    let signature = key.sign(&signed_message(version, image.len() as u32, &sha256)).to_bytes();
    OtaManifest { model_version: version, size: image.len() as u32, sha256, signature }
}

/// A window with a vibration sine of RMS `vib_rms_g` at 500 Hz, 10 A current, 40 °C.
pub fn window(vib_rms_g: f64) -> Window {
    let amp = vib_rms_g * 2f64.sqrt();
    Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |i| {
        let t = i as f64 / f64::from(DEFAULT_SAMPLE_RATE_HZ);
        let w = 2.0 * std::f64::consts::PI * t;
        [
            (14.14 * (50.0 * w).sin()) as f32,
            (amp * (500.0 * w).sin()) as f32,
            (0.2 * (100.0 * w).sin()) as f32,
            40.0,
        ]
    })
}

/// Collects frames handed out.
#[derive(Default)]
pub struct Sink(pub Vec<Vec<u8>>);

impl Sink {
    pub fn out(&mut self) -> impl FnMut(&[u8]) + '_ {
        |f: &[u8]| self.0.push(f.to_vec())
    }

    pub fn take(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.0)
    }
}

pub fn open(bytes: &[u8]) -> Frame<'_> {
    open_frame(bytes, &KEY).expect("a frame the mote sent opens under its key")
}

pub fn payload(bytes: &[u8]) -> Payload<'_> {
    open(bytes).decode_payload().unwrap()
}

/// The cluster side of one mote: seals down frames with an increasing (epoch, seq).
pub struct Cluster {
    pub mote: MoteId,
    pub key: MoteKey,
    pub epoch: u32,
    pub seq: u32,
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster { mote: ID, key: KEY, epoch: 1, seq: 0 }
    }
}

impl Cluster {
    pub fn down(&mut self, p: &Payload<'_>) -> Vec<u8> {
        self.seq += 1;
        let env = Envelope { mote: self.mote, boot_epoch: self.epoch, seq: self.seq, capture_ms: 0 };
        let mut buf = vec![0u8; MAX_FRAME];
        let n = encode_frame(&env, p, &self.key, &mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    /// Begin, chunks of `chunk` bytes, commit.
    pub fn ota(&mut self, manifest: &OtaManifest, image: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut frames = vec![self.down(&Payload::OtaBegin(*manifest))];
        for (i, data) in image.chunks(chunk).enumerate() {
            let c = OtaChunk { offset: (i * chunk) as u32, data };
            frames.push(self.down(&Payload::OtaChunk(c)));
        }
        frames.push(self.down(&Payload::OtaCommit(OtaCommit { model_version: manifest.model_version })));
        frames
    }
}
