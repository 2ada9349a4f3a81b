//! The fuzz body, bounded, in CI: 20 000 inputs (seeded random bytes, mutated valid down
//! frames, and step sequences that reach authenticated paths) through `fuzz::fuzz_one`.

use aiot_firmware::fuzz::{fuzz_one, FuzzHarness, FUZZ_KEY, FUZZ_MOTE, STEP_SEPARATOR};
use aiot_firmware::protocol::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn valid_down_frames() -> Vec<Vec<u8>> {
    let payloads = [
        Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 5 }),
        Payload::Command(Command::ResetTrip),
        Payload::Command(Command::SetReportInterval { seconds: 5 }),
        Payload::OtaBegin(OtaManifest { model_version: 2, size: 127, sha256: [1; 32], signature: [2; 64] }),
        Payload::OtaChunk(OtaChunk { offset: 0, data: &[1, 2, 3, 4, 5, 6, 7, 8] }),
        Payload::OtaCommit(OtaCommit { model_version: 2 }),
    ];
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let env = Envelope { mote: FUZZ_MOTE, boot_epoch: 1, seq: i as u32 + 1, capture_ms: 0 };
            let mut buf = vec![0u8; MAX_FRAME];
            let n = encode_frame(&env, p, &FUZZ_KEY, &mut buf).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

fn mutate(rng: &mut ChaCha8Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..4) {
        match rng.random_range(0..4) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 => b.truncate(rng.random_range(0..=b.len())),
            2 => b.extend((0..rng.random_range(1..8)).map(|_| rng.random::<u8>())),
            _ if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            _ => {}
        }
    }
    b
}

fn steps(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut input = Vec::new();
    for _ in 0..rng.random_range(1..6) {
        input.push(rng.random::<u8>());
        let max = if rng.random_bool(0.2) { 300 } else { 24 };
        let len = rng.random_range(0..max);
        // Mostly zero bytes keep mutated models close to valid ones.
        input.extend((0..len).map(|_| if rng.random_bool(0.7) { 0 } else { rng.random::<u8>() }));
        input.push(STEP_SEPARATOR);
    }
    input
}

#[test]
fn the_fuzz_body_survives_20_000_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xA107_F022);
    let valid = valid_down_frames();
    for i in 0..20_000 {
        let input = match i % 4 {
            0 => (0..rng.random_range(0..200)).map(|_| rng.random::<u8>()).collect(),
            1 | 2 => {
                let pick = rng.random_range(0..valid.len());
                mutate(&mut rng, valid[pick].clone())
            }
            _ => steps(&mut rng),
        };
        fuzz_one(&input);
    }
}

#[test]
fn the_harness_reaches_activation_and_refusal() {
    // A signed OTA of the unmutated base model activates; a window then scores it.
    let mut h = FuzzHarness::new();
    h.step(&[1]);
    assert_eq!(h.mote().model_version(), 2);
    for _ in 0..3 {
        h.step(&[2, 1, 2, 3]);
    }
    assert_eq!(h.mote().counters().windows, 3);
    assert!(!h.mote().persistent().ota().on_trial(), "three windows confirm the model");
    // The same with the hash corrupted is refused and model 2 stays.
    h.step(&[1 | 0x20]);
    assert_eq!(h.mote().model_version(), 2);
    assert_eq!(h.mote().counters().ota_refused, 1);
    // Valid down frames delivered as they are: each accepted once.
    let mut h = FuzzHarness::new();
    for f in valid_down_frames() {
        h.raw(&f);
    }
    assert_eq!(h.mote().counters().down_accepted, 6);
}
