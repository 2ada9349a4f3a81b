//! The OTA receiver: a good image activates on trial; every refusal is typed and leaves the
//! active model; an unconfirmed boot rolls back, a confirmed one stays.

use crate::common::*;
use aiot_firmware::model::MAX_MODEL_SIZE;
use aiot_firmware::ota::{OtaError, OtaStore};
use ed25519_dalek::SigningKey;

fn pk() -> [u8; 32] {
    signing_key().verifying_key().to_bytes()
}

/// Runs a whole transfer; returns the commit's result.
fn transfer(
    ota: &mut OtaStore,
    manifest: &aiot_firmware::protocol::OtaManifest,
    image: &[u8],
) -> Result<u32, OtaError> {
    ota.begin(manifest)?;
    for (i, c) in image.chunks(50).enumerate() {
        ota.chunk((i * 50) as u32, c)?;
    }
    ota.commit(manifest.model_version, &pk()).map(|m| m.version)
}

/// A store with model 1 active and confirmed.
fn with_model_1() -> OtaStore {
    let mut ota = OtaStore::new();
    let img = image(&model(1));
    assert_eq!(transfer(&mut ota, &manifest(&signing_key(), 1, &img), &img), Ok(1));
    assert!(ota.on_trial());
    assert!(!ota.on_good_window(3));
    assert!(!ota.on_good_window(3));
    assert!(ota.on_good_window(3), "third good window confirms");
    assert!(!ota.on_trial());
    ota
}

#[test]
fn a_good_image_activates_on_trial_in_the_other_slot() {
    let mut ota = with_model_1();
    assert_eq!(ota.active_slot(), Some(0));
    let img = image(&model(2));
    assert_eq!(transfer(&mut ota, &manifest(&signing_key(), 2, &img), &img), Ok(2));
    assert_eq!(ota.active_slot(), Some(1));
    assert_eq!(ota.active_version(), 2);
    assert_eq!(ota.active_model(), Some(model(2)));
    assert!(ota.on_trial());
}

fn refused(ota: &mut OtaStore, result: Result<u32, OtaError>, expected: OtaError) {
    assert_eq!(result, Err(expected));
    assert_eq!(ota.active_version(), 1, "the active model stays after {expected:?}");
    assert_eq!(ota.active_model(), Some(model(1)));
    assert!(!ota.on_trial());
    assert_eq!(ota.commit(2, &pk()), Err(OtaError::NoTransfer), "a refusal ends the transfer");
}

#[test]
fn a_bad_hash_is_refused() {
    let mut ota = with_model_1();
    let img = image(&model(2));
    let mut m = manifest(&signing_key(), 2, &img);
    let mut tampered = img.clone();
    tampered[20] ^= 1;
    let r = transfer(&mut ota, &m, &tampered);
    refused(&mut ota, r, OtaError::BadHash);
    // A manifest whose hash was changed after signing: the image no longer matches it.
    m.sha256[0] ^= 1;
    let r = transfer(&mut ota, &m, &img);
    refused(&mut ota, r, OtaError::BadHash);
}

#[test]
fn a_bad_signature_is_refused() {
    let mut ota = with_model_1();
    let img = image(&model(2));
    let other = SigningKey::from_bytes(&[3; 32]);
    let r = transfer(&mut ota, &manifest(&other, 2, &img), &img);
    refused(&mut ota, r, OtaError::BadSignature);
    let mut m = manifest(&signing_key(), 2, &img);
    m.signature[5] ^= 0x40;
    let r = transfer(&mut ota, &m, &img);
    refused(&mut ota, r, OtaError::BadSignature);
    // Signed for another version: the message differs, so the signature does not verify.
    let mut m = manifest(&signing_key(), 3, &img);
    m.model_version = 2;
    let r = transfer(&mut ota, &m, &img);
    refused(&mut ota, r, OtaError::BadSignature);
}

#[test]
fn a_truncated_image_is_refused_and_the_rest_may_still_come() {
    let mut ota = with_model_1();
    let img = image(&model(2));
    ota.begin(&manifest(&signing_key(), 2, &img)).unwrap();
    ota.chunk(0, &img[..100]).unwrap();
    assert_eq!(ota.received(), 100);
    assert_eq!(ota.commit(2, &pk()).map(|m| m.version), Err(OtaError::Truncated));
    assert_eq!(ota.active_version(), 1);
    assert!(!ota.on_trial());
    ota.chunk(100, &img[100..]).unwrap();
    assert_eq!(ota.commit(2, &pk()).map(|m| m.version), Ok(2));
}

#[test]
fn a_signed_but_corrupt_model_is_refused() {
    let mut ota = with_model_1();
    let mut img = image(&model(2));
    img[0] = b'X'; // bad magic, then signed as it is
    let r = transfer(&mut ota, &manifest(&signing_key(), 2, &img), &img);
    refused(&mut ota, r, OtaError::BadModel);
    // Signed as version 2 but the model inside says 9.
    let img = image(&model(9));
    let r = transfer(&mut ota, &manifest(&signing_key(), 2, &img), &img);
    refused(&mut ota, r, OtaError::VersionMismatch);
}

#[test]
fn chunk_order_size_and_sequence_errors() {
    let img = image(&model(2));
    let m = manifest(&signing_key(), 2, &img);
    let mut ota = with_model_1();
    ota.begin(&m).unwrap();
    ota.chunk(0, &img[..10]).unwrap();
    // A gap is refused, and the missing chunk may still come.
    assert_eq!(ota.chunk(20, &img[20..30]), Err(OtaError::OutOfOrder));
    assert_eq!(ota.received(), 10);
    // A copy of received bytes is ignored; bytes that contradict them end the transfer.
    ota.chunk(0, &img[..10]).unwrap();
    ota.chunk(10, &img[10..20]).unwrap();
    ota.chunk(5, &img[5..15]).unwrap();
    assert_eq!(ota.received(), 20);
    let mut wrong = img[5..15].to_vec();
    wrong[0] ^= 1;
    assert_eq!(ota.chunk(5, &wrong), Err(OtaError::Overlap));
    assert_eq!(ota.chunk(20, &img[20..30]), Err(OtaError::NoTransfer));
    ota.begin(&m).unwrap();
    ota.chunk(0, &img[..10]).unwrap();
    assert_eq!(ota.chunk(5, &img[5..15]), Err(OtaError::Overlap), "partly new: not a copy");
    ota.begin(&m).unwrap();
    let mut long = img.clone();
    long.push(0);
    assert_eq!(ota.chunk(0, &long), Err(OtaError::TooLarge));
    assert_eq!(ota.chunk(0, &img), Err(OtaError::NoTransfer));
    let big = aiot_firmware::protocol::OtaManifest { size: MAX_MODEL_SIZE as u32 + 1, ..m };
    assert_eq!(ota.begin(&big), Err(OtaError::TooLarge));
    ota.begin(&m).unwrap();
    ota.chunk(0, &img).unwrap();
    assert_eq!(ota.commit(3, &pk()).map(|m| m.version), Err(OtaError::VersionMismatch));
    assert_eq!(ota.active_version(), 1);
}

#[test]
fn an_unconfirmed_model_rolls_back_at_boot_and_a_confirmed_one_stays() {
    let mut ota = with_model_1();
    assert_eq!(ota.boot(), None, "a confirmed model stays");
    assert_eq!(ota.active_version(), 1);
    let img = image(&model(2));
    transfer(&mut ota, &manifest(&signing_key(), 2, &img), &img).unwrap();
    assert_eq!(ota.begin(&manifest(&signing_key(), 3, &img)), Err(OtaError::TrialPending));
    ota.on_good_window(3);
    assert_eq!(ota.boot(), Some(2), "rebooted on trial: rolls back from 2");
    assert_eq!(ota.active_version(), 1);
    assert_eq!(ota.active_model(), Some(model(1)));
    assert!(!ota.on_trial());
    assert_eq!(ota.boot(), None);
    // The very first model, unconfirmed, rolls back to no model.
    let mut fresh = OtaStore::new();
    let img = image(&model(1));
    transfer(&mut fresh, &manifest(&signing_key(), 1, &img), &img).unwrap();
    assert_eq!(fresh.boot(), Some(1));
    assert_eq!(fresh.active_version(), 0);
    assert_eq!(fresh.active_model(), None);
}

#[test]
fn a_transfer_resumes_after_a_reboot_and_a_repeated_begin() {
    let mut ota = with_model_1();
    let img = image(&model(2));
    let m = manifest(&signing_key(), 2, &img);
    ota.begin(&m).unwrap();
    ota.chunk(0, &img[..10]).unwrap();
    assert_eq!(ota.boot(), None);
    assert_eq!(ota.received(), 10, "the transfer is flash");
    // The sender lost track and sends it all again: begin and the first chunk change nothing.
    ota.begin(&m).unwrap();
    ota.chunk(0, &img[..10]).unwrap();
    ota.chunk(10, &img[10..]).unwrap();
    assert_eq!(ota.commit(2, &pk()).map(|m| m.version), Ok(2));
    // Another manifest starts over.
    let mut ota = with_model_1();
    ota.begin(&m).unwrap();
    ota.chunk(0, &img[..10]).unwrap();
    let img3 = image(&model(3));
    ota.begin(&manifest(&signing_key(), 3, &img3)).unwrap();
    assert_eq!(ota.received(), 0);
}

#[test]
fn factory_flashing_checks_the_signature_and_leaves_a_confirmed_model() {
    let img = image(&model(1));
    let mut ota = OtaStore::new();
    let forged = manifest(&SigningKey::from_bytes(&[3; 32]), 1, &img);
    assert_eq!(ota.flash(&forged, &img, &pk()), Err(OtaError::BadSignature));
    assert_eq!(ota.active_version(), 0, "nothing activated on a refusal");
    assert_eq!(ota.flash(&manifest(&signing_key(), 1, &img), &img, &pk()), Ok(model(1)));
    assert!(!ota.on_trial(), "a flashed model is confirmed");
    assert_eq!(ota.boot(), None, "a boot keeps it");
    assert_eq!(ota.active_model(), Some(model(1)));
    let img2 = image(&model(2));
    assert_eq!(ota.flash(&manifest(&signing_key(), 2, &img2), &img2, &pk()), Err(OtaError::AlreadyFlashed));
    assert_eq!(ota.active_version(), 1);
}
