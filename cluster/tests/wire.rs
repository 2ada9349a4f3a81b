//! The wire codec: round trips, any split of a stream, and refusals that name the problem. The
//! decoder is swept with seeded random and mutated input: it must never panic, never hand out
//! a frame that was not sent, and refuse oversized lengths before buffering them.

use aiot_cluster::wire::{encode, FrameDecoder, WireError, FRAME_LEN_MAX, WIRE_VERSION};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    Hello { node: String, incarnation: u64 },
    Actor { to: String, seq: u64, bytes: Vec<u8> },
    Heartbeat,
}

fn sample(i: u64) -> Msg {
    match i % 3 {
        0 => Msg::Hello { node: format!("node-{i}"), incarnation: i },
        1 => Msg::Actor { to: format!("/plant/proxy-{i}"), seq: i, bytes: vec![i as u8; (i % 300) as usize] },
        _ => Msg::Heartbeat,
    }
}

fn stream(n: u64) -> (Vec<Msg>, Vec<u8>) {
    let msgs: Vec<Msg> = (0..n).map(sample).collect();
    let mut bytes = Vec::new();
    for m in &msgs {
        encode(m, &mut bytes).unwrap();
    }
    (msgs, bytes)
}

fn drain(decoder: &mut FrameDecoder) -> Result<Vec<Msg>, WireError> {
    let mut out = Vec::new();
    while let Some(m) = decoder.next_frame::<Msg>()? {
        out.push(m);
    }
    Ok(out)
}

#[test]
fn frames_round_trip_whatever_the_chunking() {
    let (msgs, bytes) = stream(50);
    for seed in 0..200u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut decoder = FrameDecoder::new();
        let mut got = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let n = rng.random_range(1..=64.min(bytes.len() - at));
            decoder.push(&bytes[at..at + n]);
            at += n;
            got.extend(drain(&mut decoder).unwrap());
        }
        assert_eq!(got, msgs, "seed {seed}");
        assert_eq!(decoder.buffered(), 0);
    }
}

#[test]
fn a_version_mismatch_is_refused_with_both_versions() {
    let mut bytes = Vec::new();
    encode(&Msg::Heartbeat, &mut bytes).unwrap();
    bytes[4..6].copy_from_slice(&(WIRE_VERSION + 1).to_be_bytes());
    let mut decoder = FrameDecoder::new();
    decoder.push(&bytes);
    let err = decoder.next_frame::<Msg>().unwrap_err();
    assert_eq!(err, WireError::Version { got: WIRE_VERSION + 1, want: WIRE_VERSION });
    let expected = format!("peer speaks wire version {}, this node speaks {WIRE_VERSION}", WIRE_VERSION + 1);
    assert!(err.to_string().contains(&expected), "{err}");
    assert_eq!(decoder.next_frame::<Msg>().unwrap_err(), err, "a refused stream stays refused");
}

#[test]
fn oversized_frames_are_refused_on_both_sides_before_buffering() {
    let big = Msg::Actor { to: "/x".into(), seq: 0, bytes: vec![0; FRAME_LEN_MAX] };
    let mut out = vec![7u8];
    assert!(matches!(encode(&big, &mut out), Err(WireError::Oversized { .. })));
    assert_eq!(out, [7], "a refused frame leaves the buffer as it was");
    let mut decoder = FrameDecoder::new();
    decoder.push(&(FRAME_LEN_MAX as u32 + 1).to_be_bytes());
    let err = decoder.next_frame::<Msg>().unwrap_err();
    assert_eq!(err, WireError::Oversized { len: FRAME_LEN_MAX + 1, max: FRAME_LEN_MAX });
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn malformed_short_and_padded_frames_are_refused() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&[0, 0, 0, 1, 0]);
    assert_eq!(decoder.next_frame::<Msg>().unwrap_err(), WireError::TooShort { len: 1 });

    let mut garbage = vec![0, 0, 0, 5];
    garbage.extend_from_slice(&WIRE_VERSION.to_be_bytes());
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    let mut decoder = FrameDecoder::new();
    decoder.push(&garbage);
    assert!(matches!(decoder.next_frame::<Msg>(), Err(WireError::Malformed(_))));

    let mut padded = Vec::new();
    encode(&Msg::Heartbeat, &mut padded).unwrap();
    let len = u32::from_be_bytes(padded[..4].try_into().unwrap()) + 1;
    padded[..4].copy_from_slice(&len.to_be_bytes());
    padded.push(0);
    let mut decoder = FrameDecoder::new();
    decoder.push(&padded);
    let err = decoder.next_frame::<Msg>().unwrap_err();
    assert_eq!(err, WireError::Malformed("1 bytes left over".into()));
}

#[test]
fn random_and_mutated_input_never_panics_nor_invents_frames() {
    let (msgs, valid) = stream(20);
    for seed in 0..3000u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let bytes: Vec<u8> = if seed % 2 == 0 {
            (0..rng.random_range(0..200)).map(|_| rng.random()).collect()
        } else {
            let mut b = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            b
        };
        let mut decoder = FrameDecoder::new();
        decoder.push(&bytes);
        let mut got = Vec::new();
        while let Ok(Some(m)) = decoder.next_frame::<Msg>() {
            got.push(m);
        }
        if seed % 2 == 1 {
            // Frames before the first corrupted one come out intact; a corrupted frame may still
            // decode (bincode has no checksum: integrity is TLS's job), but never more of them
            // than were sent.
            assert!(got.len() <= msgs.len(), "seed {seed}");
        }
    }
}
