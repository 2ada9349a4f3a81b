//! A registered model as it is stored: its card (version, lineage, metrics, and stage 2's float
//! model of the same training run), the int8 image the motes run, two ed25519 signatures by the
//! model-signing key, all sealed with an AEAD at rest.
//!
//! - **Signatures.** `ota_signature` is over `aiot_firmware::ota::signed_message(version, size,
//!   sha256(image))`: exactly what a mote verifies before it activates an image, so the deployer
//!   sends it as the OTA manifest's signature. `card_signature` is over SHA-256 of the encoded
//!   card, so the lineage and metrics cannot be altered either.
//! - **At rest** (BLUEPRINT section 10, "Data at rest"): `AIMR` | format version | nonce |
//!   ChaCha20-Poly1305(bincode of the signed model), the header as associated data. The nonce is
//!   the first 12 bytes of SHA-256(key | plaintext): deterministic (no randomness, so the
//!   simulator can run it), and two different plaintexts never share a nonce under one key.
//! - **Refused on load**, each with its own error: a short or foreign file, a failed
//!   authentication tag (corruption or another key), an undecodable body, an image whose hash or
//!   length is not the card's, an image the firmware would not load, a signature that does not
//!   verify (unsigned, or signed by another key).

use std::collections::BTreeMap;
use std::fmt;

use aiot_firmware::model::Model;
use aiot_firmware::ota::signed_message;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ml::scorer::Scorer;

/// The first bytes of a sealed model.
pub const MAGIC: [u8; 4] = *b"AIMR";
/// The sealed format this code writes and reads (2: the card holds stage 2's model).
pub const FORMAT_VERSION: u8 = 2;
const HEADER_LEN: usize = 5;
const NONCE_LEN: usize = 12;

/// A model's lineage and quality: what it was made from, how, and how well it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Registry version (non-zero, increasing); also the version inside the image.
    pub version: u32,
    /// The version it was retrained from, if any.
    pub parent: Option<u32>,
    /// Cluster time when it was registered, ms.
    pub created_ms: u64,
    /// SHA-256 of the training data as the trainer saw it (features and labels, in order).
    pub dataset_sha256: [u8; 32],
    /// Training parameters by name (C, tolerance, iterations...).
    pub params: BTreeMap<String, f64>,
    /// Validation metrics by name (float and int8 ROC AUC, agreement...).
    pub metrics: BTreeMap<String, f64>,
    /// SHA-256 and length of the int8 image.
    pub image_sha256: [u8; 32],
    pub image_len: u32,
    /// Stage 2's model from the same run (signed with the card).
    pub stage2: Option<Stage2Model>,
}

/// Stage 2's float model: the DSP-feature scorer and its alert threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage2Model {
    pub scorer: Scorer,
    pub threshold: f64,
}

/// A model with its signatures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedModel {
    pub card: ModelCard,
    #[serde(with = "serde_bytes")]
    pub image: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub ota_signature: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub card_signature: Vec<u8>,
}

/// Why a model was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactError {
    /// Too short to be a sealed model, or not one (magic, format version).
    NotAModel(String),
    /// The authentication tag failed: the bytes changed, or another key sealed them.
    Corrupt,
    /// Decrypted, but the body does not decode.
    Undecodable(String),
    /// The image is not what the card says (hash or length), or not a loadable int8 model.
    BadImage(String),
    /// A signature does not verify under the model-signing key.
    BadSignature(&'static str),
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::NotAModel(why) => write!(f, "not a sealed model: {why}"),
            ArtifactError::Corrupt => {
                write!(f, "corrupt or sealed under another key (authentication failed)")
            }
            ArtifactError::Undecodable(why) => write!(f, "undecodable model: {why}"),
            ArtifactError::BadImage(why) => write!(f, "bad model image: {why}"),
            ArtifactError::BadSignature(which) => write!(f, "the {which} signature does not verify"),
        }
    }
}

impl std::error::Error for ArtifactError {}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn encode_card(card: &ModelCard) -> Vec<u8> {
    bincode::serde::encode_to_vec(card, bincode::config::standard()).expect("a card always encodes")
}

impl SignedModel {
    /// Signs `image` (an encoded int8 model) under the card made from `card`'s lineage fields;
    /// the card's image hash and length are filled in here.
    pub fn sign(mut card: ModelCard, image: Vec<u8>, key: &SigningKey) -> Result<SignedModel, ArtifactError> {
        let model = Model::decode(&image).map_err(|e| ArtifactError::BadImage(format!("{e:?}")))?;
        if model.version != card.version {
            return Err(ArtifactError::BadImage(format!(
                "the image says version {}, the card {}",
                model.version, card.version
            )));
        }
        card.image_sha256 = sha256(&image);
        card.image_len = image.len() as u32;
        let ota = key.sign(&signed_message(card.version, card.image_len, &card.image_sha256));
        let card_signature = key.sign(&sha256(&encode_card(&card)));
        Ok(SignedModel {
            card,
            image,
            ota_signature: ota.to_bytes().to_vec(),
            card_signature: card_signature.to_bytes().to_vec(),
        })
    }

    /// Every check a loaded model must pass: image against card, image loadable, both
    /// signatures under `public`.
    pub fn verify(&self, public: &VerifyingKey) -> Result<Model, ArtifactError> {
        let card = &self.card;
        if sha256(&self.image) != card.image_sha256 || self.image.len() != card.image_len as usize {
            return Err(ArtifactError::BadImage("its hash or length is not the card's".into()));
        }
        let model = Model::decode(&self.image).map_err(|e| ArtifactError::BadImage(format!("{e:?}")))?;
        let signature = |bytes: &[u8], which| {
            let bytes: [u8; 64] = bytes.try_into().map_err(|_| ArtifactError::BadSignature(which))?;
            Ok::<_, ArtifactError>(Signature::from_bytes(&bytes))
        };
        let ota = signature(&self.ota_signature, "OTA")?;
        public
            .verify_strict(&signed_message(card.version, card.image_len, &card.image_sha256), &ota)
            .map_err(|_| ArtifactError::BadSignature("OTA"))?;
        let card_signature = signature(&self.card_signature, "card")?;
        public
            .verify_strict(&sha256(&encode_card(card)), &card_signature)
            .map_err(|_| ArtifactError::BadSignature("card"))?;
        Ok(model)
    }

    /// The sealed bytes to store, under the storage key `key`.
    pub fn seal(&self, key: &[u8; 32]) -> Vec<u8> {
        let body =
            bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("a model always encodes");
        let header = header();
        let mut hasher = Sha256::new();
        hasher.update(key);
        hasher.update(&body);
        let digest: [u8; 32] = hasher.finalize().into();
        let nonce = &digest[..NONCE_LEN];
        let cipher = ChaCha20Poly1305::new(key.into());
        let sealed = cipher
            .encrypt(nonce.into(), Payload { msg: &body, aad: &header })
            .expect("encryption of an in-memory buffer cannot fail");
        [&header[..], nonce, &sealed].concat()
    }

    /// Opens sealed bytes and verifies everything (`verify`): a model that loads is intact,
    /// signed by the model-signing key, and loadable by a mote.
    pub fn open(
        bytes: &[u8],
        key: &[u8; 32],
        public: &VerifyingKey,
    ) -> Result<(SignedModel, Model), ArtifactError> {
        if bytes.len() < HEADER_LEN + NONCE_LEN + 16 {
            return Err(ArtifactError::NotAModel(format!("{} bytes", bytes.len())));
        }
        let (header_bytes, rest) = bytes.split_at(HEADER_LEN);
        if header_bytes[..4] != MAGIC {
            return Err(ArtifactError::NotAModel("no AIMR magic".into()));
        }
        if header_bytes[4] != FORMAT_VERSION {
            return Err(ArtifactError::NotAModel(format!("format version {}", header_bytes[4])));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(key.into());
        let body = cipher
            .decrypt(nonce.into(), Payload { msg: sealed, aad: header_bytes })
            .map_err(|_| ArtifactError::Corrupt)?;
        let (signed, used): (SignedModel, usize) =
            bincode::serde::decode_from_slice(&body, bincode::config::standard())
                .map_err(|e| ArtifactError::Undecodable(e.to_string()))?;
        if used != body.len() {
            return Err(ArtifactError::Undecodable(format!("{} bytes left over", body.len() - used)));
        }
        let model = signed.verify(public)?;
        Ok((signed, model))
    }
}

fn header() -> [u8; HEADER_LEN] {
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], FORMAT_VERSION]
}

#[cfg(test)]
mod tests {
    use super::*;
    use aiot_firmware::features::FEATURE_COUNT;
    use aiot_firmware::model::MODEL_LEN;

    const STORAGE_KEY: [u8; 32] = [7; 32];

    fn image(version: u32) -> Vec<u8> {
        let model = Model {
            version,
            offset: [0.5; FEATURE_COUNT],
            scale: [2.0; FEATURE_COUNT],
            input_scale: 0.05,
            weights: [3; FEATURE_COUNT],
            weight_scale: 0.01,
            bias: -1.0,
            threshold: 0.5,
        };
        let mut bytes = vec![0; MODEL_LEN];
        model.encode(&mut bytes).unwrap();
        bytes
    }

    fn card(version: u32) -> ModelCard {
        ModelCard {
            version,
            parent: None,
            created_ms: 1_000,
            dataset_sha256: [1; 32],
            params: BTreeMap::from([("c".to_string(), 1.0)]),
            metrics: BTreeMap::from([("auc".to_string(), 0.93)]),
            image_sha256: [0; 32],
            image_len: 0,
            stage2: None,
        }
    }

    fn keys() -> (SigningKey, VerifyingKey) {
        let key = SigningKey::from_bytes(&[42; 32]);
        let public = key.verifying_key();
        (key, public)
    }

    #[test]
    fn a_sealed_model_opens_to_itself_and_its_signature_is_the_one_motes_verify() {
        let (key, public) = keys();
        let signed = SignedModel::sign(card(3), image(3), &key).unwrap();
        let sealed = signed.seal(&STORAGE_KEY);
        assert_eq!(sealed, signed.seal(&STORAGE_KEY), "sealing is deterministic");
        assert!(
            !sealed.windows(MODEL_LEN).any(|w| w == signed.image.as_slice()),
            "the image is not stored in clear"
        );
        let (opened, model) = SignedModel::open(&sealed, &STORAGE_KEY, &public).unwrap();
        assert_eq!(opened, signed);
        assert_eq!(model.version, 3);
        // What a mote's OTA receiver checks: the manifest signature over the image's hash.
        let mut store = aiot_firmware::ota::OtaStore::new();
        let manifest = aiot_firmware::protocol::OtaManifest {
            model_version: 3,
            size: opened.card.image_len,
            sha256: opened.card.image_sha256,
            signature: opened.ota_signature.clone().try_into().unwrap(),
        };
        store.begin(&manifest).unwrap();
        store.chunk(0, &opened.image).unwrap();
        assert_eq!(store.commit(3, public.as_bytes()).unwrap().version, 3);
    }

    #[test]
    fn corrupt_foreign_unsigned_or_tampered_models_are_refused() {
        let (key, public) = keys();
        let signed = SignedModel::sign(card(4), image(4), &key).unwrap();
        let sealed = signed.seal(&STORAGE_KEY);
        let open = |bytes: &[u8]| SignedModel::open(bytes, &STORAGE_KEY, &public).map(|_| ());

        let mut flipped = sealed.clone();
        flipped[40] ^= 1;
        assert_eq!(open(&flipped), Err(ArtifactError::Corrupt));
        assert_eq!(SignedModel::open(&sealed, &[8; 32], &public).map(|_| ()), Err(ArtifactError::Corrupt));
        assert!(matches!(open(&sealed[..20]), Err(ArtifactError::NotAModel(_))));
        assert!(matches!(
            open(b"PK\x03\x04 a zip file, not a model at all"),
            Err(ArtifactError::NotAModel(_))
        ));

        let other = SigningKey::from_bytes(&[43; 32]);
        let foreign = SignedModel::sign(card(4), image(4), &other).unwrap().seal(&STORAGE_KEY);
        assert_eq!(open(&foreign), Err(ArtifactError::BadSignature("OTA")));

        let mut unsigned = signed.clone();
        unsigned.ota_signature = vec![0; 64];
        assert_eq!(open(&unsigned.seal(&STORAGE_KEY)), Err(ArtifactError::BadSignature("OTA")));

        let mut relabelled = signed.clone();
        relabelled.card.metrics.insert("auc".into(), 0.99);
        assert_eq!(open(&relabelled.seal(&STORAGE_KEY)), Err(ArtifactError::BadSignature("card")));

        let mut swapped = signed.clone();
        swapped.image = image(5);
        assert!(matches!(open(&swapped.seal(&STORAGE_KEY)), Err(ArtifactError::BadImage(_))));

        assert!(matches!(SignedModel::sign(card(4), image(5), &key), Err(ArtifactError::BadImage(_))));
        assert!(matches!(SignedModel::sign(card(4), vec![1, 2, 3], &key), Err(ArtifactError::BadImage(_))));
    }
}
