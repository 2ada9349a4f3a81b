//! Links the firmware core's main APIs into a `#![no_std]` staticlib with no allocator: a mote
//! boots, takes windows, answers a down frame and an OTA; frames are encoded and decoded; a
//! model scores. If any of it needed `std` or `alloc`, this crate would not build.
#![no_std]

use aiot_firmware::features::extract;
use aiot_firmware::model::{Model, MAX_MODEL_SIZE};
use aiot_firmware::mote::{Mote, MoteConfig, Persistent};
use aiot_firmware::ota::OtaStore;
use aiot_firmware::protocol::{
    decode_frame, encode_frame, Ack, Envelope, MoteId, MoteKey, OtaManifest, Payload, MAX_FRAME,
};
use aiot_firmware::sampling::{Sampler, Window, DEFAULT_SAMPLE_RATE_HZ};
use core::panic::PanicInfo;

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    loop {}
}

/// Runs the core once; the result depends on every call so none is optimised away.
#[no_mangle]
pub extern "C" fn aiot_firmware_nostd_check(seed: u32) -> u32 {
    let key = MoteKey([seed as u8; 32]);
    let config = MoteConfig::new(MoteId(seed), key.clone(), [0; 32]);
    let mut mote: Mote<16, 32768> = Mote::boot(config, Persistent::new());

    // Sampling and a window through the whole mote.
    let mut sampler = Sampler::new(DEFAULT_SAMPLE_RATE_HZ);
    let mut window = Window::new(DEFAULT_SAMPLE_RATE_HZ);
    let mut i = 0u32;
    while !sampler.push([i as f32 * 0.001, 0.01, 0.02, 25.0], &mut window) {
        i += 1;
    }
    let mut sent = 0u32;
    let outcome = mote.on_window(1_000, &window, &mut |f: &[u8]| sent += f.len() as u32);

    // A down frame (an ack) encoded, decoded and applied.
    let mut buf = [0u8; MAX_FRAME];
    let env = Envelope { mote: MoteId(seed), boot_epoch: 1, seq: 1, capture_ms: 2_000 };
    let ack = Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 10 });
    let n = encode_frame(&env, &ack, &key, &mut buf).unwrap_or(0);
    let ok = decode_frame(&buf[..n]).and_then(|f| f.verify(&key)).is_ok() as u32;
    let applied = mote.on_down(&buf[..n], 2_000, &mut |f: &[u8]| sent += f.len() as u32).is_ok() as u32;
    mote.reboot();
    let resent = mote.resend(3_000, &mut |f: &[u8]| sent += f.len() as u32) as u32;

    // A model image decoded and scored.
    let mut image = [0u8; MAX_MODEL_SIZE];
    image[..4].copy_from_slice(b"AIM8");
    let score = Model::decode(&image).map_or(0.0, |m| m.score(&extract(&window)));

    // The OTA receiver refusing an unsigned image.
    let mut ota = OtaStore::new();
    let manifest = OtaManifest { model_version: 1, size: 4, sha256: [0; 32], signature: [0; 64] };
    let _ = ota.begin(&manifest);
    let _ = ota.chunk(0, &[1, 2, 3, 4]);
    let refused = ota.commit(1, &[seed as u8; 32]).is_err() as u32;

    sent ^ ok
        ^ applied
        ^ resent
        ^ refused
        ^ (score.to_bits())
        ^ outcome.frames as u32
        ^ mote.counters().windows as u32
}
