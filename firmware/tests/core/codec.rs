//! The frame and payload codec: round trips of every kind, every error path, properties.

use crate::common::*;
use aiot_firmware::actuation::{ActuationState, Transition, TransitionCause};
use aiot_firmware::features::FEATURE_COUNT;
use aiot_firmware::ota::{OtaError, OtaStatus};
use aiot_firmware::protocol::*;
use aiot_firmware::sampling::{Channel, WINDOW};
use proptest::prelude::*;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

fn env() -> Envelope {
    Envelope { mote: ID, boot_epoch: 3, seq: 42, capture_ms: 1_700_000_000_123 }
}

fn encode(p: &Payload<'_>, key: &MoteKey) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_FRAME];
    let n = encode_frame(&env(), p, key, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn features_report() -> FeaturesReport {
    FeaturesReport {
        model_version: 4,
        score: Some(0.25),
        state: ActuationState::Derate,
        clipped: [0, 3, 0, 1],
        ring_dropped: 9,
        down_mark: DownMark { epoch: 2, seq: 77 },
        features: core::array::from_fn(|i| i as f32 * 1.5 - 3.0),
    }
}

fn samples() -> Vec<Payload<'static>> {
    vec![
        Payload::Features(features_report()),
        Payload::Features(FeaturesReport { model_version: 0, score: None, ..features_report() }),
        Payload::Stage1Event(Stage1Event {
            transition: Transition {
                from: ActuationState::Normal,
                to: ActuationState::Trip,
                score: 0.9,
                cause: TransitionCause::Score,
            },
            model_version: 4,
        }),
        Payload::OtaReceipt(OtaReceipt {
            status: OtaStatus::Refused(OtaError::BadSignature),
            model_version: 5,
            active_version: 4,
            received: 127,
        }),
        Payload::OtaReceipt(OtaReceipt {
            status: OtaStatus::Confirmed,
            model_version: 5,
            active_version: 5,
            received: 0,
        }),
        Payload::Ack(Ack { boot_epoch: 3, first_seq: 10, last_seq: 20 }),
        Payload::Command(Command::SetReportInterval { seconds: 30 }),
        Payload::Command(Command::SetRawEvery { reports: 0 }),
        Payload::Command(Command::ResetTrip),
        Payload::Command(Command::RequestRaw),
        Payload::OtaBegin(OtaManifest { model_version: 5, size: 127, sha256: [7; 32], signature: [8; 64] }),
        Payload::OtaChunk(OtaChunk { offset: 64, data: &[1, 2, 3, 4, 5] }),
        Payload::OtaChunk(OtaChunk { offset: 0, data: &[] }),
        Payload::OtaCommit(OtaCommit { model_version: 5 }),
        Payload::DownReceipt(DownReceipt { kind: Kind::OtaChunk, mark: DownMark { epoch: 3, seq: 9 } }),
    ]
}

#[test]
fn every_kind_round_trips() {
    for p in samples() {
        let bytes = encode(&p, &KEY);
        assert_eq!(bytes.len(), FRAME_OVERHEAD + p.encoded_len());
        let frame = decode_frame(&bytes).unwrap();
        assert_eq!(frame.kind, p.kind());
        assert_eq!(frame.envelope, env());
        let frame = frame.verify(&KEY).unwrap();
        assert_eq!(frame.decode_payload().unwrap(), p, "{:?}", p.kind());
        assert_eq!(frame.envelope.dedup_key(), DedupKey { mote: ID, boot_epoch: 3, seq: 42 });
        assert_eq!(
            p.kind().is_down(),
            matches!(
                p,
                Payload::Ack(_)
                    | Payload::Command(_)
                    | Payload::OtaBegin(_)
                    | Payload::OtaChunk(_)
                    | Payload::OtaCommit(_)
            )
        );
    }
}

#[test]
fn a_raw_window_round_trips_to_the_same_window() {
    let w = window(0.3);
    let p = Payload::RawWindow(RawWindow::of(&w));
    let bytes = encode(&p, &KEY);
    assert_eq!(bytes.len(), MAX_FRAME, "a full raw window is the largest frame");
    let decoded = open_frame(&bytes, &KEY).unwrap().decode_payload().unwrap();
    assert_eq!(decoded, p);
    let Payload::RawWindow(raw) = decoded else { panic!("{decoded:?}") };
    assert_eq!(raw.len(), WINDOW);
    assert_eq!(raw.sample(Channel::Vibration, 5), Some(w.samples[1][5]));
    assert_eq!(raw.sample(Channel::Vibration, WINDOW), None);
    assert_eq!(raw.to_window().unwrap(), w);
    let mut buffer = [0i16; WINDOW];
    for ch in Channel::ALL {
        assert_eq!(raw.read_channel(ch, &mut buffer), &w.samples[ch.index()][..]);
    }
}

#[test]
fn a_short_raw_window_decodes_but_is_not_a_window() {
    let mut payload = Vec::new();
    payload.extend(8192u32.to_le_bytes());
    payload.extend(3u32.to_le_bytes());
    for _ in 0..4 {
        payload.extend(0.5f32.to_le_bytes());
    }
    payload.extend([0u8; 8]);
    for s in 0..12i16 {
        payload.extend(s.to_le_bytes());
    }
    let p = Payload::decode(Kind::RawWindow, &payload).unwrap();
    let Payload::RawWindow(raw) = p else { panic!() };
    assert_eq!(raw.channel(Channel::Sound).collect::<Vec<_>>(), [6, 7, 8]);
    assert_eq!(raw.read_channel(Channel::Sound, &mut [0; WINDOW]), [6, 7, 8]);
    assert!(raw.to_window().is_none());
    let mut again = vec![0u8; payload.len()];
    assert_eq!(p.encode(&mut again), Ok(payload.len()));
    assert_eq!(again, payload);
}

/// Rewrites byte `at` and fixes the CRC, so decoding gets past the CRC check.
fn patched(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] = value;
    let crc_at = b.len() - MAC_LEN - CRC_LEN;
    let crc = CRC32.checksum(&b[..crc_at]);
    b[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn every_frame_error_is_typed() {
    let good = encode(&Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 0 }), &KEY);
    assert_eq!(decode_frame(&[]), Err(FrameError::Short { len: 0 }));
    assert_eq!(decode_frame(&good[..FRAME_OVERHEAD - 1]), Err(FrameError::Short { len: 63 }));
    assert_eq!(decode_frame(&patched(&good, 0, 2)), Err(FrameError::BadVersion(2)));
    // Truncation and trailing bytes.
    let n = good.len();
    assert_eq!(decode_frame(&good[..n - 1]), Err(FrameError::LengthMismatch { declared: n, actual: n - 1 }));
    let mut long = good.clone();
    long.push(0);
    assert_eq!(decode_frame(&long), Err(FrameError::LengthMismatch { declared: n, actual: n + 1 }));
    // Oversized: a declared payload beyond MAX_PAYLOAD is refused before anything is read.
    let mut big = good.clone();
    big[24..28].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
    assert_eq!(decode_frame(&big), Err(FrameError::Oversized { payload_len: MAX_PAYLOAD + 1 }));
    // Corruption anywhere before the CRC is a bad CRC; in the CRC itself too.
    for at in [1, 5, 20, 30, n - MAC_LEN - 1] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        assert_eq!(decode_frame(&b), Err(FrameError::BadCrc), "byte {at}");
    }
    assert_eq!(decode_frame(&patched(&good, 1, 0x7f)), Err(FrameError::UnknownKind(0x7f)));
    assert_eq!(decode_frame(&patched(&good, 3, 0x80)), Err(FrameError::BadFlags(0x8000)));
    // The MAC: another mote's key, a flipped MAC byte, a header changed with a fixed-up CRC.
    assert_eq!(decode_frame(&good).unwrap().verify(&OTHER_KEY), Err(FrameError::BadMac));
    let mut b = good.clone();
    b[n - 1] ^= 1;
    assert_eq!(open_frame(&b, &KEY), Err(FrameError::BadMac));
    assert_eq!(open_frame(&patched(&good, 4, 18), &KEY), Err(FrameError::BadMac));
    // Encoding into a small buffer.
    let p = Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 0 });
    assert_eq!(
        encode_frame(&env(), &p, &KEY, &mut [0u8; 70]),
        Err(FrameError::BufferTooSmall { needed: 76 })
    );
    let too_big = vec![0u8; MAX_PAYLOAD + 1];
    assert_eq!(
        encode_frame_raw(Kind::OtaChunk, &env(), &too_big, &KEY, &mut vec![0u8; 2 * MAX_FRAME]),
        Err(FrameError::Oversized { payload_len: MAX_PAYLOAD + 1 })
    );
    let bad = Payload::Ack(Ack { boot_epoch: 1, first_seq: 2, last_seq: 1 });
    assert!(matches!(encode_frame(&env(), &bad, &KEY, &mut [0u8; 200]), Err(FrameError::Payload(_))));
}

#[test]
fn every_payload_error_is_typed() {
    let bad = |kind, field| Err(PayloadError::BadField { kind, field });
    let enc = |p: Payload<'_>| {
        let mut b = vec![0u8; p.encoded_len()];
        p.encode(&mut b).unwrap();
        b
    };
    // Wrong lengths, for every kind.
    for p in samples() {
        let b = enc(p);
        if p.kind() != Kind::OtaChunk {
            let got = b.len() + 1;
            let mut long = b.clone();
            long.push(0);
            assert_eq!(Payload::decode(p.kind(), &long), Err(PayloadError::Length { kind: p.kind(), got }));
        }
        assert_eq!(
            Payload::decode(p.kind(), &b[..b.len().min(3)]),
            Err(PayloadError::Length { kind: p.kind(), got: b.len().min(3) })
        );
    }
    let mut small = [0u8; 4];
    assert_eq!(
        Payload::Ack(Ack { boot_epoch: 0, first_seq: 0, last_seq: 0 }).encode(&mut small),
        Err(PayloadError::BufferTooSmall)
    );

    let f = enc(Payload::Features(features_report()));
    let with = |b: &[u8], at: usize, v: &[u8]| {
        let mut b = b.to_vec();
        b[at..at + v.len()].copy_from_slice(v);
        b
    };
    assert_eq!(Payload::decode(Kind::Features, &with(&f, 8, &[3])), bad(Kind::Features, "state"));
    assert_eq!(Payload::decode(Kind::Features, &with(&f, 9, &[0])), bad(Kind::Features, "score"));
    assert_eq!(Payload::decode(Kind::Features, &with(&f, 0, &[0, 0, 0, 0])), bad(Kind::Features, "score"));
    assert_eq!(
        Payload::decode(Kind::Features, &with(&f, 4, &f32::NAN.to_le_bytes())),
        bad(Kind::Features, "score")
    );
    assert_eq!(
        Payload::decode(Kind::Features, &with(&f, 10, &[FEATURE_COUNT as u8 + 1])),
        bad(Kind::Features, "n_features")
    );
    assert_eq!(Payload::decode(Kind::Features, &with(&f, 11, &[1])), bad(Kind::Features, "reserved"));

    let w = window(0.1);
    let r = enc(Payload::RawWindow(RawWindow::of(&w)));
    assert_eq!(
        Payload::decode(Kind::RawWindow, &with(&r, 4, &0u32.to_le_bytes())),
        bad(Kind::RawWindow, "n")
    );
    assert_eq!(
        Payload::decode(Kind::RawWindow, &with(&r, 4, &2049u32.to_le_bytes())),
        bad(Kind::RawWindow, "n")
    );
    assert_eq!(
        Payload::decode(Kind::RawWindow, &with(&r, 8, &0f32.to_le_bytes())),
        bad(Kind::RawWindow, "scale")
    );

    let e = enc(samples()[2]);
    assert_eq!(Payload::decode(Kind::Stage1Event, &with(&e, 0, &[9])), bad(Kind::Stage1Event, "from"));
    assert_eq!(Payload::decode(Kind::Stage1Event, &with(&e, 1, &[9])), bad(Kind::Stage1Event, "to"));
    assert_eq!(Payload::decode(Kind::Stage1Event, &with(&e, 2, &[9])), bad(Kind::Stage1Event, "cause"));
    assert_eq!(Payload::decode(Kind::Stage1Event, &with(&e, 3, &[9])), bad(Kind::Stage1Event, "reserved"));

    let o = enc(samples()[3]);
    assert_eq!(Payload::decode(Kind::OtaReceipt, &with(&o, 0, &[9])), bad(Kind::OtaReceipt, "status"));
    assert_eq!(Payload::decode(Kind::OtaReceipt, &with(&o, 1, &[99])), bad(Kind::OtaReceipt, "status"));
    assert_eq!(Payload::decode(Kind::OtaReceipt, &with(&o, 0, &[1])), bad(Kind::OtaReceipt, "status"));
    assert_eq!(Payload::decode(Kind::OtaReceipt, &with(&o, 2, &[1])), bad(Kind::OtaReceipt, "reserved"));

    let r = enc(*samples().last().unwrap());
    assert_eq!(Payload::decode(Kind::DownReceipt, &with(&r, 0, &[0x81])), bad(Kind::DownReceipt, "kind"));
    assert_eq!(Payload::decode(Kind::DownReceipt, &with(&r, 0, &[0x01])), bad(Kind::DownReceipt, "kind"));
    assert_eq!(Payload::decode(Kind::DownReceipt, &with(&r, 0, &[0x86])), bad(Kind::DownReceipt, "kind"));
    assert_eq!(Payload::decode(Kind::DownReceipt, &with(&r, 3, &[1])), bad(Kind::DownReceipt, "reserved"));
    let ack_receipt = DownReceipt { kind: Kind::Ack, mark: DownMark::default() };
    assert_eq!(
        Payload::DownReceipt(ack_receipt).encode(&mut [0; 64]),
        Err(PayloadError::BadField { kind: Kind::DownReceipt, field: "kind" }),
        "acks are not receipted"
    );

    let a = enc(samples()[5]);
    assert_eq!(Payload::decode(Kind::Ack, &with(&a, 4, &99u32.to_le_bytes())), bad(Kind::Ack, "seq range"));

    let c = enc(Payload::Command(Command::ResetTrip));
    assert_eq!(Payload::decode(Kind::Command, &with(&c, 0, &[9])), bad(Kind::Command, "command"));
    assert_eq!(Payload::decode(Kind::Command, &with(&c, 1, &[1])), bad(Kind::Command, "reserved"));
    assert_eq!(Payload::decode(Kind::Command, &with(&c, 4, &[1])), bad(Kind::Command, "argument"));
    assert_eq!(Payload::decode(Kind::Command, &with(&c, 0, &[1])), bad(Kind::Command, "argument"));
    let mut b = [0u8; COMMAND_LEN];
    assert_eq!(
        Payload::Command(Command::SetReportInterval { seconds: 0 }).encode(&mut b),
        Err(PayloadError::BadField { kind: Kind::Command, field: "interval" })
    );
}

#[test]
fn topics_and_ids() {
    assert_eq!(ID.to_string(), "mote-17");
    assert_eq!(ID.up_topic().as_str(), "aiot/mote-17/up");
    assert_eq!(ID.down_topic().as_str(), "aiot/mote-17/down");
    assert_eq!(parse_topic(ID.down_topic().as_str()), Some((ID, Direction::Down)));
    assert_eq!("mote-17".parse::<MoteId>(), Ok(ID));
    assert_eq!("mote-017".parse::<MoteId>(), Err(BadMoteId));
    assert_eq!(UP_TOPIC_FILTER, "aiot/+/up");
}

fn arb_state() -> impl Strategy<Value = ActuationState> {
    prop_oneof![Just(ActuationState::Normal), Just(ActuationState::Derate), Just(ActuationState::Trip)]
}

fn arb_ota_status() -> impl Strategy<Value = OtaStatus> {
    prop_oneof![
        Just(OtaStatus::Receiving),
        Just(OtaStatus::Activated),
        Just(OtaStatus::Confirmed),
        Just(OtaStatus::RolledBack),
        (1u8..=11).prop_map(|c| OtaStatus::Refused(OtaError::from_code(c).unwrap())),
    ]
}

fn arb_features() -> impl Strategy<Value = [f32; FEATURE_COUNT]> {
    proptest::array::uniform11(-1e6f32..1e6)
}

/// Any payload the codec can carry (owned data is leaked: a few bytes per case).
fn arb_payload() -> impl Strategy<Value = Payload<'static>> {
    prop_oneof![
        (
            1u32..,
            0f32..=1.0,
            arb_state(),
            any::<[u16; 4]>(),
            any::<u32>(),
            any::<(u32, u32)>(),
            arb_features()
        )
            .prop_map(|(v, s, state, clipped, dropped, (epoch, seq), features)| Payload::Features(
                FeaturesReport {
                    model_version: v,
                    score: Some(s),
                    state,
                    clipped,
                    ring_dropped: dropped,
                    down_mark: DownMark { epoch, seq },
                    features,
                }
            )),
        (arb_state(), any::<[u16; 4]>(), arb_features()).prop_map(|(state, clipped, features)| {
            Payload::Features(FeaturesReport {
                model_version: 0,
                score: None,
                state,
                clipped,
                ring_dropped: 0,
                down_mark: DownMark::default(),
                features,
            })
        }),
        (arb_state(), arb_state(), prop::bool::ANY, -1e3f32..1e3, any::<u32>()).prop_map(
            |(from, to, reset, score, v)| {
                let cause = if reset { TransitionCause::Reset } else { TransitionCause::Score };
                Payload::Stage1Event(Stage1Event {
                    transition: Transition { from, to, score, cause },
                    model_version: v,
                })
            }
        ),
        (arb_ota_status(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(status, m, a, r)| {
            Payload::OtaReceipt(OtaReceipt { status, model_version: m, active_version: a, received: r })
        }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(e, a, b)| Payload::Ack(Ack {
            boot_epoch: e,
            first_seq: a.min(b),
            last_seq: a.max(b)
        })),
        prop_oneof![
            (1u32..).prop_map(|seconds| Command::SetReportInterval { seconds }),
            any::<u32>().prop_map(|reports| Command::SetRawEvery { reports }),
            Just(Command::ResetTrip),
            Just(Command::RequestRaw),
        ]
        .prop_map(Payload::Command),
        (any::<u32>(), any::<u32>(), any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 64)).prop_map(
            |(v, size, sha256, sig)| Payload::OtaBegin(OtaManifest {
                model_version: v,
                size,
                sha256,
                signature: sig.try_into().unwrap()
            })
        ),
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(offset, data)| Payload::OtaChunk(OtaChunk { offset, data: data.leak() })),
        any::<u32>().prop_map(|v| Payload::OtaCommit(OtaCommit { model_version: v })),
        (
            prop::sample::select(vec![Kind::Command, Kind::OtaBegin, Kind::OtaChunk, Kind::OtaCommit]),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(kind, epoch, seq)| Payload::DownReceipt(DownReceipt {
                kind,
                mark: DownMark { epoch, seq }
            })),
    ]
}

proptest! {
    #[test]
    fn any_payload_round_trips_in_any_envelope(
        p in arb_payload(),
        mote in any::<u32>(),
        epoch in any::<u32>(),
        seq in any::<u32>(),
        capture_ms in any::<u64>(),
        key in any::<[u8; 32]>(),
    ) {
        let env = Envelope { mote: MoteId(mote), boot_epoch: epoch, seq, capture_ms };
        let key = MoteKey(key);
        let mut buf = vec![0u8; MAX_FRAME];
        let n = encode_frame(&env, &p, &key, &mut buf).unwrap();
        let frame = open_frame(&buf[..n], &key).unwrap();
        prop_assert_eq!(frame.envelope, env);
        prop_assert_eq!(frame.decode_payload().unwrap(), p);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(f) = decode_frame(&bytes) {
            let _ = f.verify(&KEY).map(|f| f.decode_payload());
        }
        for kind in Kind::ALL {
            let _ = Payload::decode(kind, &bytes);
        }
    }

    #[test]
    fn decoding_a_mutated_frame_never_panics_and_never_verifies(
        p in arb_payload(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..4),
    ) {
        let mut buf = vec![0u8; MAX_FRAME];
        let n = encode_frame(&env(), &p, &KEY, &mut buf).unwrap();
        let original = buf[..n].to_vec();
        let mut b = original.clone();
        for (at, x) in flips {
            let i = at.index(b.len());
            b[i] ^= x;
        }
        prop_assume!(b != original);
        // Any change is caught by the CRC or the MAC (or an earlier structural check).
        prop_assert!(open_frame(&b, &KEY).is_err());
    }
}
