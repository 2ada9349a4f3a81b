//! The over-the-air model receiver: chunks into the inactive of two A/B slots, SHA-256 and an
//! ed25519 signature checked before the model is even decoded, trial activation, confirmation,
//! rollback.
//!
//! Transfer: `OtaBegin(manifest)` picks the inactive slot and erases it (refused while the
//! active model is still on trial, since that slot is the rollback target); `OtaChunk`s must
//! arrive in order, without gaps, within the manifest's size; `OtaCommit` checks, in this
//! order: the version matches the manifest, every byte arrived, SHA-256 of the image equals
//! the manifest's, the manifest's signature verifies (strict ed25519) under the provisioned
//! 32-byte public key over [`signed_message`], the image decodes as a [`Model`] whose version is
//! the manifest's. Only then does the slot become active, **on trial**. The active model never
//! changes on a refusal.
//!
//! Resuming: the transfer in progress (manifest, slot, bytes received) is flash, so it survives
//! a disconnect and a reboot. A sender that lost track sends the whole transfer again: a begin
//! with the same manifest keeps the bytes received, a chunk wholly inside them with the same
//! bytes is a copy and ignored, and a chunk past them (a gap) or a commit before the last byte
//! (truncated) is refused without ending the transfer, so the missing chunks can still come.
//! Any other refusal (a chunk that contradicts received bytes or runs past the size, a failed
//! check at commit) ends the transfer, and the sender begins again.
//!
//! Signed message (53 bytes): `b"aiot-model-v1" || model_version u32 LE || size u32 LE ||
//! sha256 [u8; 32]`. The registry signs exactly these bytes.
//!
//! Confirmation is the core's: after `confirm_after` windows scored by the model on trial
//! ([`OtaStore::on_good_window`]; the mote's default is 3) the model is confirmed. A reboot while
//! on trial (the new model crashed the mote, or the watchdog fired) rolls back to the previous
//! slot (or to no model, if it was the first) at [`OtaStore::boot`].

use crate::model::{Model, MAX_MODEL_SIZE};
use crate::protocol::OtaManifest;
use core::fmt;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

/// Domain-separation prefix of the signed message.
pub const SIGNING_DOMAIN: &[u8; 13] = b"aiot-model-v1";
/// Length of [`signed_message`].
pub const SIGNED_MESSAGE_LEN: usize = SIGNING_DOMAIN.len() + 4 + 4 + 32;

/// The bytes the model-signing key signs for an image.
pub fn signed_message(model_version: u32, size: u32, sha256: &[u8; 32]) -> [u8; SIGNED_MESSAGE_LEN] {
    let mut m = [0u8; SIGNED_MESSAGE_LEN];
    let d = SIGNING_DOMAIN.len();
    m[..d].copy_from_slice(SIGNING_DOMAIN);
    m[d..d + 4].copy_from_slice(&model_version.to_le_bytes());
    m[d + 4..d + 8].copy_from_slice(&size.to_le_bytes());
    m[d + 8..].copy_from_slice(sha256);
    m
}

/// Why the receiver refused; the discriminant is the wire code in OTA receipts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtaError {
    /// The image is larger than a slot, or a chunk runs past the manifest's size.
    TooLarge = 1,
    /// A chunk or commit without a transfer in progress.
    NoTransfer = 2,
    /// A chunk starts after the bytes received so far (a gap).
    OutOfOrder = 3,
    /// A chunk starts before the bytes received so far.
    Overlap = 4,
    /// Commit before the whole image arrived.
    Truncated = 5,
    /// SHA-256 of the image differs from the manifest's.
    BadHash = 6,
    /// The signature does not verify under the provisioned key.
    BadSignature = 7,
    /// The verified image is not a valid model.
    BadModel = 8,
    /// The commit's, or the image's, model version is not the manifest's.
    VersionMismatch = 9,
    /// A transfer cannot begin while the active model is on trial.
    TrialPending = 10,
    /// Factory flashing into a store that already has a model (updates go over the air).
    AlreadyFlashed = 11,
}

impl OtaError {
    /// The error with wire code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        use OtaError::*;
        [
            TooLarge,
            NoTransfer,
            OutOfOrder,
            Overlap,
            Truncated,
            BadHash,
            BadSignature,
            BadModel,
            VersionMismatch,
            TrialPending,
            AlreadyFlashed,
        ]
        .into_iter()
        .find(|e| *e as u8 == code)
    }
}

impl fmt::Display for OtaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "image too large",
            Self::NoTransfer => "no transfer in progress",
            Self::OutOfOrder => "chunk out of order (gap)",
            Self::Overlap => "chunk overlaps received bytes",
            Self::Truncated => "image truncated",
            Self::BadHash => "image hash mismatch",
            Self::BadSignature => "bad signature",
            Self::BadModel => "image is not a valid model",
            Self::VersionMismatch => "model version mismatch",
            Self::TrialPending => "active model still on trial",
            Self::AlreadyFlashed => "a model is already flashed",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OtaError {}

/// What the receiver did (reported in OTA receipts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtaStatus {
    /// A transfer began.
    Receiving,
    /// A verified model is active, on trial.
    Activated,
    /// The model on trial is confirmed.
    Confirmed,
    /// A reboot during a trial rolled back to the previous model.
    RolledBack,
    /// Refused; the active model is unchanged.
    Refused(OtaError),
}

#[derive(Clone, Debug)]
struct Slot {
    image: [u8; MAX_MODEL_SIZE],
    /// Bytes of the image (0: empty).
    len: usize,
    /// Version of the verified model in it (0: none).
    version: u32,
}

impl Slot {
    const EMPTY: Slot = Slot { image: [0; MAX_MODEL_SIZE], len: 0, version: 0 };
}

#[derive(Clone, Debug)]
struct Transfer {
    slot: usize,
    manifest: OtaManifest,
    received: usize,
}

/// The A/B slots and the receiver's state, the transfer in progress included: all of it is
/// persistent (flash).
#[derive(Clone, Debug)]
pub struct OtaStore {
    slots: [Slot; 2],
    active: Option<usize>,
    /// Rollback target while on trial.
    previous: Option<usize>,
    /// Good windows seen on trial; `None` when not on trial.
    trial: Option<u32>,
    transfer: Option<Transfer>,
}

impl Default for OtaStore {
    fn default() -> Self {
        Self::new()
    }
}

impl OtaStore {
    /// Empty slots, no model.
    pub fn new() -> Self {
        Self { slots: [Slot::EMPTY, Slot::EMPTY], active: None, previous: None, trial: None, transfer: None }
    }

    /// Starts a transfer into the inactive slot.
    pub fn begin(&mut self, manifest: &OtaManifest) -> Result<(), OtaError> {
        if self.trial.is_some() {
            return Err(OtaError::TrialPending);
        }
        if self.transfer.as_ref().is_some_and(|t| t.manifest == *manifest) {
            return Ok(()); // the same transfer, sent again: resume it
        }
        self.transfer = None;
        if manifest.size as usize > MAX_MODEL_SIZE {
            return Err(OtaError::TooLarge);
        }
        let slot = self.active.map_or(0, |a| 1 - a);
        self.slots[slot] = Slot::EMPTY;
        self.transfer = Some(Transfer { slot, manifest: *manifest, received: 0 });
        Ok(())
    }

    /// Stores a chunk (a copy of received bytes is ignored); a refusal ends the transfer,
    /// but for a gap.
    pub fn chunk(&mut self, offset: u32, data: &[u8]) -> Result<(), OtaError> {
        let t = self.transfer.as_mut().ok_or(OtaError::NoTransfer)?;
        let offset = offset as usize;
        if offset > t.received {
            return Err(OtaError::OutOfOrder);
        }
        let copy = offset + data.len() <= t.received
            && self.slots[t.slot].image[offset..offset + data.len()] == *data;
        if offset < t.received && copy {
            return Ok(());
        }
        let check = if offset < t.received {
            Err(OtaError::Overlap)
        } else if data.len() > t.manifest.size as usize - t.received {
            Err(OtaError::TooLarge)
        } else {
            Ok(())
        };
        if let Err(e) = check {
            self.transfer = None;
            return Err(e);
        }
        let slot = &mut self.slots[t.slot];
        slot.image[offset..offset + data.len()].copy_from_slice(data);
        t.received += data.len();
        slot.len = t.received;
        Ok(())
    }

    /// Verifies the image and activates it on trial; a refusal leaves the active model as it
    /// was and ends the transfer, but for a truncated image (the rest may still come).
    pub fn commit(&mut self, model_version: u32, public_key: &[u8; 32]) -> Result<Model, OtaError> {
        let t = self.transfer.as_ref().ok_or(OtaError::NoTransfer)?;
        if model_version == t.manifest.model_version && t.received < t.manifest.size as usize {
            return Err(OtaError::Truncated);
        }
        let t = self.transfer.take().expect("a transfer in progress");
        let m = &t.manifest;
        if model_version != m.model_version {
            return Err(OtaError::VersionMismatch);
        }
        let image = &self.slots[t.slot].image[..t.received];
        if Sha256::digest(image).as_slice() != m.sha256 {
            return Err(OtaError::BadHash);
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| OtaError::BadSignature)?;
        let message = signed_message(m.model_version, m.size, &m.sha256);
        key.verify_strict(&message, &Signature::from_bytes(&m.signature))
            .map_err(|_| OtaError::BadSignature)?;
        let model = Model::decode(image).map_err(|_| OtaError::BadModel)?;
        if model.version != m.model_version {
            return Err(OtaError::VersionMismatch);
        }
        self.slots[t.slot].version = model.version;
        self.previous = self.active;
        self.active = Some(t.slot);
        self.trial = Some(0);
        Ok(model)
    }

    /// Factory flashing: the whole transfer at once (begin, one chunk, commit, with every check
    /// of a commit), then confirmed, since a mote leaves the factory on a model it already runs.
    /// Only into a store without an active model.
    pub fn flash(
        &mut self,
        manifest: &OtaManifest,
        image: &[u8],
        public_key: &[u8; 32],
    ) -> Result<Model, OtaError> {
        if self.active.is_some() {
            return Err(OtaError::AlreadyFlashed);
        }
        self.begin(manifest)?;
        self.chunk(0, image)?;
        let model = self.commit(manifest.model_version, public_key)?;
        self.trial = None;
        self.previous = None;
        Ok(model)
    }

    /// A window was scored by the active model; returns true when that confirms the model on
    /// trial (after `confirm_after` such windows).
    pub fn on_good_window(&mut self, confirm_after: u32) -> bool {
        match self.trial {
            Some(n) if n + 1 >= confirm_after => {
                self.trial = None;
                self.previous = None;
                true
            }
            Some(n) => {
                self.trial = Some(n + 1);
                false
            }
            None => false,
        }
    }

    /// Boot: if the active model was on trial, rolls back to the previous one and returns the
    /// version rolled back from. A transfer in progress goes on (there is none on trial).
    pub fn boot(&mut self) -> Option<u32> {
        self.trial.take()?;
        let failed = self.active?;
        let version = self.slots[failed].version;
        self.slots[failed] = Slot::EMPTY;
        self.active = self.previous.take();
        Some(version)
    }

    /// The active model, decoded from its slot (`None` without one, or if the slot no longer
    /// decodes).
    pub fn active_model(&self) -> Option<Model> {
        let slot = &self.slots[self.active?];
        Model::decode(&slot.image[..slot.len]).ok()
    }

    /// The active model's version (0: none).
    pub fn active_version(&self) -> u32 {
        self.active.map_or(0, |a| self.slots[a].version)
    }

    /// The active slot (0 or 1), if any.
    pub fn active_slot(&self) -> Option<usize> {
        self.active
    }

    /// True while the active model is on trial.
    pub fn on_trial(&self) -> bool {
        self.trial.is_some()
    }

    /// Image bytes received in the transfer in progress (0 without one).
    pub fn received(&self) -> u32 {
        self.transfer.as_ref().map_or(0, |t| t.received as u32)
    }

    /// The model version of the transfer in progress (0 without one).
    pub fn receiving_version(&self) -> u32 {
        self.transfer.as_ref().map_or(0, |t| t.manifest.model_version)
    }
}
