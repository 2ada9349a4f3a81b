//! The fuzz body, shared by the cargo-fuzz target (`fuzz/`) and a bounded test in CI.
//!
//! [`fuzz_one`] takes arbitrary bytes to a fresh [`FuzzHarness`] and panics only on a bug. The
//! whole input goes, as it is, to the frame decoder, to every payload decoder (a payload that
//! decodes must re-encode to the same bytes) and to [`Mote::on_down`]. The input is then split
//! at each [`STEP_SEPARATOR`] byte into steps, so one input drives a sequence: each step's first
//! byte picks what it does with the rest, which reaches the paths a forged frame cannot:
//! - an authentic down frame (sealed under the mote's key) of a kind the byte picks, with the
//!   rest as its payload; delivered twice, the second must be refused as a replay;
//! - a correctly signed OTA of a model image mutated by the rest (chunk size, truncation and a
//!   wrong hash picked by the byte);
//! - a window synthesised from the rest, then a resend;
//! - a reboot, then a resend.
//!
//! The key and signing seed here are public test values: never provision them.

use crate::features::FEATURE_COUNT;
use crate::model::{Model, MAX_MODEL_SIZE, MODEL_LEN};
use crate::mote::{DownApplied, Mote, MoteConfig, Persistent};
use crate::ota::signed_message;
use crate::protocol::{
    decode_frame, encode_frame, encode_frame_raw, Envelope, Kind, MoteId, MoteKey, OtaChunk, OtaCommit,
    OtaManifest, Payload, MAX_FRAME, MAX_PAYLOAD,
};
use crate::sampling::{Window, DEFAULT_SAMPLE_RATE_HZ};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The harness mote's id.
pub const FUZZ_MOTE: MoteId = MoteId(7);
/// The harness mote's key.
pub const FUZZ_KEY: MoteKey = MoteKey([0x5a; 32]);
/// Seed of the harness's model-signing key.
pub const FUZZ_SIGNING_SEED: [u8; 32] = [0x42; 32];
/// Separates the steps of an input.
pub const STEP_SEPARATOR: u8 = 0xA5;

/// A small mote: 8 frames in a 4 KiB arena, so the ring's bounds are reached.
pub type FuzzMote = Mote<8, 4096>;

const DOWN_KINDS: [Kind; 5] = [Kind::Ack, Kind::Command, Kind::OtaBegin, Kind::OtaChunk, Kind::OtaCommit];

/// The model the OTA step mutates.
const BASE_MODEL: Model = Model {
    version: 1,
    offset: [0.0; FEATURE_COUNT],
    scale: [1.0; FEATURE_COUNT],
    input_scale: 0.1,
    weights: [16; FEATURE_COUNT],
    weight_scale: 0.01,
    bias: -2.0,
    threshold: 0.5,
};

/// A mote and the cluster side that talks to it.
pub struct FuzzHarness {
    mote: FuzzMote,
    signing: SigningKey,
    down_epoch: u32,
    down_seq: u32,
    now_ms: u64,
    model_version: u32,
    buf: [u8; MAX_FRAME],
    window: Window,
}

impl Default for FuzzHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs one fuzz input on a fresh harness (see the module doc).
pub fn fuzz_one(data: &[u8]) {
    let mut h = FuzzHarness::new();
    h.raw(data);
    if data.contains(&STEP_SEPARATOR) {
        data.split(|&b| b == STEP_SEPARATOR).for_each(|s| h.step(s));
    }
}

impl FuzzHarness {
    /// A freshly provisioned, booted mote.
    pub fn new() -> Self {
        let signing = SigningKey::from_bytes(&FUZZ_SIGNING_SEED);
        let config = MoteConfig::new(FUZZ_MOTE, FUZZ_KEY, signing.verifying_key().to_bytes());
        Self {
            mote: Mote::boot(config, Persistent::new()),
            signing,
            down_epoch: 1,
            down_seq: 0,
            now_ms: 0,
            model_version: 1,
            buf: [0; MAX_FRAME],
            window: Window::new(DEFAULT_SAMPLE_RATE_HZ),
        }
    }

    /// The mote.
    pub fn mote(&self) -> &FuzzMote {
        &self.mote
    }

    fn env(&mut self) -> Envelope {
        self.down_seq += 1;
        Envelope { mote: FUZZ_MOTE, boot_epoch: self.down_epoch, seq: self.down_seq, capture_ms: self.now_ms }
    }

    /// The whole input against the decoders and the mote, as it is.
    pub fn raw(&mut self, data: &[u8]) {
        if let Ok(frame) = decode_frame(data) {
            if let Ok(frame) = frame.verify(&FUZZ_KEY) {
                let _ = frame.decode_payload();
            }
        }
        for kind in Kind::ALL {
            if let Ok(p) = Payload::decode(kind, data) {
                let n = p.encode(&mut self.buf);
                assert_eq!(
                    n.map(|n| &self.buf[..n]),
                    Ok(data),
                    "{kind:?} payload does not re-encode to its bytes"
                );
            }
        }
        let _ = self.mote.on_down(data, self.now_ms, &mut |_| {});
    }

    /// One step: the first byte picks what the rest does.
    pub fn step(&mut self, step: &[u8]) {
        let Some((&pick, rest)) = step.split_first() else { return };
        self.now_ms += 1000;
        match pick % 4 {
            0 => self.authentic(DOWN_KINDS[usize::from(pick / 4) % DOWN_KINDS.len()], rest),
            1 => self.ota(pick, rest),
            2 => {
                self.window = Window::from_fn(DEFAULT_SAMPLE_RATE_HZ, |i| {
                    let b =
                        |k: usize| f32::from(rest.get((i * 4 + k) % rest.len().max(1)).copied().unwrap_or(0));
                    [b(0) - 128.0, (b(1) - 128.0) / 8.0, b(2) - 128.0, b(3)]
                });
                self.mote.on_window(self.now_ms, &self.window, &mut |_| {});
                self.mote.resend(self.now_ms, &mut |_| {});
            }
            _ => {
                self.mote.reboot();
                self.mote.resend(self.now_ms, &mut |_| {});
            }
        }
    }

    /// Seals `payload` as an authentic down frame of `kind` and delivers it twice.
    fn authentic(&mut self, kind: Kind, payload: &[u8]) {
        let env = self.env();
        let payload = &payload[..payload.len().min(MAX_PAYLOAD)];
        let Ok(n) = encode_frame_raw(kind, &env, payload, &FUZZ_KEY, &mut self.buf) else { return };
        let first = self.mote.on_down(&self.buf[..n], self.now_ms, &mut |_| {});
        let again = self.mote.on_down(&self.buf[..n], self.now_ms, &mut |_| {});
        // Acks are exempt from replay protection, and a replayed one removes nothing.
        let harmless = matches!(again, Err(_) | Ok(DownApplied::Ack { removed: 0 }))
            && (kind == Kind::Ack || again.is_err());
        assert!(harmless, "a replayed down frame was applied: {first:?} then {again:?}");
    }

    fn deliver(&mut self, payload: &Payload<'_>) {
        let env = self.env();
        if let Ok(n) = encode_frame(&env, payload, &FUZZ_KEY, &mut self.buf) {
            let _ = self.mote.on_down(&self.buf[..n], self.now_ms, &mut |_| {});
        }
    }

    /// A signed OTA of the base model mutated by `rest`.
    fn ota(&mut self, pick: u8, rest: &[u8]) {
        let mut image = [0u8; MAX_MODEL_SIZE];
        self.model_version += 1;
        let model = Model { version: self.model_version, ..BASE_MODEL };
        let Ok(mut len) = model.encode(&mut image) else { return };
        for (i, b) in rest.iter().enumerate() {
            image[i % MODEL_LEN] ^= b;
        }
        if pick & 0x10 != 0 {
            len = (len + rest.len()).min(MAX_MODEL_SIZE);
        }
        let mut sha256: [u8; 32] = Sha256::digest(&image[..len]).into();
        let signature =
            self.signing.sign(&signed_message(self.model_version, len as u32, &sha256)).to_bytes();
        if pick & 0x20 != 0 {
            sha256[0] ^= 1;
        }
        let manifest = OtaManifest { model_version: self.model_version, size: len as u32, sha256, signature };
        self.deliver(&Payload::OtaBegin(manifest));
        let chunk = 1 + usize::from(pick >> 6) * 40;
        let sent = if pick & 0x08 != 0 { len.saturating_sub(1) } else { len };
        for offset in (0..sent).step_by(chunk) {
            let data = &image[offset..(offset + chunk).min(sent)];
            self.deliver(&Payload::OtaChunk(OtaChunk { offset: offset as u32, data }));
        }
        self.deliver(&Payload::OtaCommit(OtaCommit { model_version: self.model_version }));
    }
}
