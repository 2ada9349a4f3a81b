//! One OTA transfer as the command records that carry it: `OtaBegin` (the manifest: version,
//! size, SHA-256 and the registry's ed25519 signature), the image in `OtaChunk`s of at most
//! `chunk_len` bytes, in order, and `OtaCommit`. The command relay and the gateway deliver a
//! mote's commands one at a time and in order, each resent until the mote's report shows it
//! (or given up), so a transfer interrupted by a disconnect goes on where it stopped once the
//! mote is back; a mote that rebooted meanwhile refuses the next chunk (no transfer), and the
//! deployer begins again.

use aiot_firmware::protocol::{OtaChunk, OtaCommit, OtaManifest, Payload};

use crate::registry::artifact::SignedModel;
use crate::streams::CommandRecord;

/// Image bytes per chunk by default: small enough for the smallest MQTT client buffers.
pub const CHUNK_LEN: usize = 64;

/// The manifest a mote checks the image against.
pub fn manifest(model: &SignedModel) -> Result<OtaManifest, String> {
    let signature: [u8; 64] = model
        .ota_signature
        .as_slice()
        .try_into()
        .map_err(|_| format!("model {}: the OTA signature is not 64 bytes", model.card.version))?;
    Ok(OtaManifest {
        model_version: model.card.version,
        size: model.image.len() as u32,
        sha256: model.card.image_sha256,
        signature,
    })
}

/// The command records of one transfer of `model` to `mote`, in the order they must arrive.
pub fn transfer(mote: u32, model: &SignedModel, chunk_len: usize) -> Result<Vec<CommandRecord>, String> {
    if chunk_len == 0 {
        return Err("the OTA chunk length must be at least 1".into());
    }
    let mut payloads = vec![Payload::OtaBegin(manifest(model)?)];
    for (i, data) in model.image.chunks(chunk_len).enumerate() {
        payloads.push(Payload::OtaChunk(OtaChunk { offset: (i * chunk_len) as u32, data }));
    }
    payloads.push(Payload::OtaCommit(OtaCommit { model_version: model.card.version }));
    payloads.iter().map(|p| CommandRecord::new(mote, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::artifact::ModelCard;
    use aiot_firmware::model::{Model, MODEL_LEN};
    use aiot_firmware::ota::{OtaError, OtaStore};
    use aiot_firmware::protocol::{Kind, Payload};
    use ed25519_dalek::SigningKey;
    use std::collections::BTreeMap;

    fn signed(version: u32, key: &SigningKey) -> SignedModel {
        let model = Model {
            version,
            offset: [0.0; 11],
            scale: [1.0; 11],
            input_scale: 0.1,
            weights: [3; 11],
            weight_scale: 0.1,
            bias: -2.0,
            threshold: 0.5,
        };
        let mut image = vec![0; MODEL_LEN];
        model.encode(&mut image).unwrap();
        let card = ModelCard {
            version,
            parent: None,
            created_ms: 0,
            dataset_sha256: [0; 32],
            params: BTreeMap::new(),
            metrics: BTreeMap::new(),
            image_sha256: [0; 32],
            image_len: 0,
            stage2: None,
        };
        SignedModel::sign(card, image, key).unwrap()
    }

    /// Feeds the records to a mote's OTA store as its receiver would; the commit's outcome.
    fn deliver(records: &[CommandRecord], store: &mut OtaStore, public: &[u8; 32]) -> Result<u32, OtaError> {
        for record in records {
            let kind = Kind::from_code(record.command.kind).unwrap();
            match Payload::decode(kind, &record.command.payload).unwrap() {
                Payload::OtaBegin(m) => store.begin(&m)?,
                Payload::OtaChunk(c) => store.chunk(c.offset, c.data)?,
                Payload::OtaCommit(c) => return store.commit(c.model_version, public).map(|m| m.version),
                other => panic!("not an OTA payload: {other:?}"),
            }
        }
        Err(OtaError::Truncated)
    }

    #[test]
    fn a_transfer_is_a_manifest_chunks_in_order_and_a_commit_that_the_mote_activates() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let model = signed(4, &key);
        let records = transfer(9, &model, CHUNK_LEN).unwrap();
        assert_eq!(records.len(), 2 + model.image.len().div_ceil(CHUNK_LEN));
        assert!(records.len() >= 4, "a model takes several chunks");
        assert!(records.iter().all(|r| r.mote == 9));
        let mut store = OtaStore::new();
        assert_eq!(deliver(&records, &mut store, &public), Ok(4));
        assert_eq!(store.active_version(), 4);
    }

    #[test]
    fn a_tampered_chunk_a_foreign_signature_or_a_lost_chunk_leaves_the_old_model() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let mut store = OtaStore::new();
        assert_eq!(deliver(&transfer(1, &signed(1, &key), CHUNK_LEN).unwrap(), &mut store, &public), Ok(1));
        store.on_good_window(1);

        let mut tampered = transfer(1, &signed(2, &key), CHUNK_LEN).unwrap();
        let last = tampered[2].command.payload.len() - 1;
        tampered[2].command.payload[last] ^= 1;
        assert_eq!(deliver(&tampered, &mut store, &public), Err(OtaError::BadHash));

        let foreign = signed(2, &SigningKey::from_bytes(&[8; 32]));
        assert_eq!(
            deliver(&transfer(1, &foreign, CHUNK_LEN).unwrap(), &mut store, &public),
            Err(OtaError::BadSignature)
        );

        let mut lost = transfer(1, &signed(2, &key), CHUNK_LEN).unwrap();
        lost.remove(1);
        assert_eq!(deliver(&lost, &mut store, &public), Err(OtaError::OutOfOrder));

        let mut truncated = transfer(1, &signed(2, &key), CHUNK_LEN).unwrap();
        truncated.remove(truncated.len() - 2);
        assert_eq!(deliver(&truncated, &mut store, &public), Err(OtaError::Truncated));
        assert_eq!(store.active_version(), 1, "the mote keeps its model");
        assert!(transfer(1, &signed(2, &key), 0).is_err());
    }
}
