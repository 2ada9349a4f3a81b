//! The mote core end to end: windows in, frames out, acks, commands, OTA, forged and replayed
//! down frames, reboots.

use crate::common::*;
use aiot_firmware::actuation::{ActuationState, TransitionCause};
use aiot_firmware::mote::{DownApplied, DownError, Mote, Persistent};
use aiot_firmware::ota::{OtaError, OtaStatus};
use aiot_firmware::protocol::*;

type SmallMote = Mote<32, 40_000>;

fn boot() -> Box<Mote> {
    Box::new(Mote::boot(config(), Persistent::new()))
}

fn kinds(frames: &[Vec<u8>]) -> Vec<Kind> {
    frames.iter().map(|f| open(f).kind).collect()
}

/// Installs `model(version)` through OTA; returns the frames the mote sent.
fn install<const F: usize, const A: usize>(
    m: &mut Mote<F, A>,
    c: &mut Cluster,
    version: u32,
) -> Vec<Vec<u8>> {
    let img = image(&model(version));
    let mut sink = Sink::default();
    for f in c.ota(&manifest(&signing_key(), version, &img), &img, 40) {
        m.on_down(&f, 0, &mut sink.out()).unwrap();
    }
    sink.take()
}

#[test]
fn windows_become_frames_on_schedule() {
    let mut m = boot();
    assert_eq!(m.boot_epoch(), 1);
    let mut sink = Sink::default();
    let o = m.on_window(1_000, &window(0.05), &mut sink.out());
    assert_eq!((o.score, o.state, o.transition, o.frames), (None, ActuationState::Normal, None, 2));
    let frames = sink.take();
    assert_eq!(kinds(&frames), [Kind::Features, Kind::RawWindow]);
    for (i, f) in frames.iter().enumerate() {
        let e = open(f).envelope;
        assert_eq!((e.mote, e.boot_epoch, e.seq, e.capture_ms), (ID, 1, i as u32, 1_000));
    }
    let Payload::Features(r) = payload(&frames[0]) else { panic!() };
    assert_eq!((r.model_version, r.score, r.state), (0, None, ActuationState::Normal));
    assert_eq!(r.features, o.features);
    let Payload::RawWindow(raw) = payload(&frames[1]) else { panic!() };
    assert_eq!(raw.to_window().unwrap(), window(0.05));
    // Until the interval passes, windows send nothing; then a features frame alone.
    assert_eq!(m.on_window(2_000, &window(0.05), &mut sink.out()).frames, 0);
    assert_eq!(m.next_report_ms(), 61_000);
    m.on_window(61_000, &window(0.05), &mut sink.out());
    assert_eq!(kinds(&sink.take()), [Kind::Features]);
    let c = m.counters();
    assert_eq!((c.windows, c.frames_sent), (3, 3));
    assert_eq!(m.persistent().ring().len(), 3);
}

#[test]
fn without_a_model_the_mote_never_actuates() {
    let mut m = boot();
    for i in 0..10 {
        let o = m.on_window(i * 1_000, &window(2.0), &mut |_| {});
        assert_eq!((o.score, o.state), (None, ActuationState::Normal));
    }
}

#[test]
fn acks_remove_frames_and_unacked_frames_are_resent() {
    let mut m = boot();
    let mut sink = Sink::default();
    for i in 0..3 {
        m.on_window(i * 60_000, &window(0.05), &mut sink.out());
    }
    assert_eq!(m.persistent().ring().len(), 4); // features + raw, features, features
                                                // Frames not sent for resend_after_ms (30 s), oldest first; the newest is not due yet.
    let sent = sink.take();
    assert_eq!(m.resend(125_000, &mut sink.out()), 3);
    assert_eq!(sink.take(), sent[..3]);
    assert_eq!(m.resend(125_000, &mut sink.out()), 0, "just resent");
    let mut c = Cluster::default();
    let ack = c.down(&Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 2 }));
    assert_eq!(m.on_down(&ack, 150_000, &mut sink.out()), Ok(DownApplied::Ack { removed: 3 }));
    assert_eq!(m.persistent().ring().iter().map(|p| p.seq).collect::<Vec<_>>(), [3]);
    assert_eq!(m.counters().frames_resent, 3);
    assert_eq!(m.counters().down_accepted, 1);
}

#[test]
fn on_connecting_every_kept_frame_is_resent_at_once_oldest_first() {
    let mut m = boot();
    let mut sink = Sink::default();
    m.on_window(1_000, &window(0.05), &mut sink.out()); // published while disconnected
    let sent = sink.take();
    assert_eq!(sent.len(), 2);
    assert_eq!(m.resend(1_001, &mut sink.out()), 0, "not due before 30 s");
    m.on_connected();
    assert_eq!(m.resend(1_001, &mut sink.out()), 2);
    assert_eq!(sink.take(), sent, "in the order first sent");
    assert_eq!(m.resend(1_002, &mut sink.out()), 0, "just resent");
}

#[test]
fn commands_apply() {
    let mut m = boot();
    let mut c = Cluster::default();
    let mut sink = Sink::default();
    m.on_window(0, &window(0.05), &mut sink.out());
    let cmd = |c: &mut Cluster, cmd| c.down(&Payload::Command(cmd));
    sink.take();
    let f = cmd(&mut c, Command::SetReportInterval { seconds: 10 });
    assert_eq!(
        m.on_down(&f, 0, &mut sink.out()),
        Ok(DownApplied::Command(Command::SetReportInterval { seconds: 10 }))
    );
    // Answered at once by a receipt naming the command's (epoch, seq).
    let frames = sink.take();
    assert_eq!(frames.len(), 1);
    let receipt = DownReceipt { kind: Kind::Command, mark: DownMark { epoch: 1, seq: 1 } };
    assert_eq!(payload(&frames[0]), Payload::DownReceipt(receipt));
    assert_eq!((m.report_interval_ms(), m.next_report_ms()), (10_000, 10_000));
    m.on_down(&cmd(&mut c, Command::SetRawEvery { reports: 2 }), 0, &mut sink.out()).unwrap();
    assert_eq!(m.raw_every(), 2);
    sink.take();
    m.on_window(10_000, &window(0.05), &mut sink.out());
    m.on_window(20_000, &window(0.05), &mut sink.out());
    assert_eq!(kinds(&sink.take()), [Kind::Features, Kind::Features, Kind::RawWindow]);
    m.on_down(&cmd(&mut c, Command::RequestRaw), 21_000, &mut sink.out()).unwrap();
    m.on_window(21_000, &window(0.05), &mut sink.out());
    assert_eq!(kinds(&sink.take()), [Kind::DownReceipt, Kind::Features, Kind::RawWindow]);
    // Settings are flash: they survive a reboot.
    m.reboot();
    assert_eq!((m.report_interval_ms(), m.raw_every()), (10_000, 2));
}

/// An authentic frame of `kind` with payload bytes as given, at down counter (1, `seq`).
fn sealed(kind: Kind, seq: u32, payload: &[u8]) -> Vec<u8> {
    let env = Envelope { mote: ID, boot_epoch: 1, seq, capture_ms: 0 };
    let mut buf = vec![0u8; MAX_FRAME];
    let n = encode_frame_raw(kind, &env, payload, &KEY, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn forged_corrupt_misaddressed_and_replayed_down_frames_are_refused_and_counted() {
    let mut m = boot();
    let mut sink = Sink::default();
    let set = Payload::Command(Command::SetReportInterval { seconds: 1 });
    // Forged: sealed under another key.
    let forged = Cluster { key: OTHER_KEY, ..Cluster::default() }.down(&set);
    assert_eq!(m.on_down(&forged, 0, &mut sink.out()), Err(DownError::Frame(FrameError::BadMac)));
    // Corrupted in transit.
    let mut c = Cluster::default();
    let mut corrupt = c.down(&set);
    corrupt[30] ^= 1;
    assert_eq!(m.on_down(&corrupt, 0, &mut sink.out()), Err(DownError::Frame(FrameError::BadCrc)));
    // Another mote's frame, under its own valid key.
    let other = Cluster { mote: MoteId(18), key: OTHER_KEY, ..Cluster::default() }.down(&set);
    assert_eq!(m.on_down(&other, 0, &mut sink.out()), Err(DownError::WrongMote(MoteId(18))));
    // An up kind, and a malformed payload, both authentic.
    let up = sealed(Kind::Features, 50, &[0; FEATURES_LEN]);
    assert_eq!(m.on_down(&up, 0, &mut sink.out()), Err(DownError::NotDown(Kind::Features)));
    let malformed = sealed(Kind::Command, 51, &[9; COMMAND_LEN]);
    assert!(matches!(m.on_down(&malformed, 0, &mut sink.out()), Err(DownError::Payload(_))));
    // A good one (seq 2), its replay, and an older authentic one (seq 1).
    let good = c.down(&set);
    assert!(sink.take().is_empty(), "refusals send nothing");
    assert!(m.on_down(&good, 0, &mut sink.out()).is_ok());
    let mark = DownMark { epoch: 1, seq: 2 };
    let receipt = DownReceipt { kind: Kind::Command, mark };
    assert_eq!(sink.take().iter().map(|f| payload(f)).collect::<Vec<_>>(), [Payload::DownReceipt(receipt)]);
    assert_eq!(m.on_down(&good, 0, &mut sink.out()), Err(DownError::Replayed(mark)));
    let older = Cluster::default().down(&set);
    assert_eq!(m.on_down(&older, 0, &mut sink.out()), Err(DownError::Replayed(mark)));
    let n = m.counters();
    assert_eq!(
        (
            n.down_bad_mac,
            n.down_bad_crc,
            n.down_wrong_mote,
            n.down_malformed,
            n.down_replayed,
            n.down_accepted
        ),
        (1, 1, 1, 2, 2, 1)
    );
    assert_eq!(m.report_interval_ms(), 1_000, "only the authentic frame applied");
    assert!(sink.take().is_empty(), "a replay sends nothing");
    // A sender that restarts with a higher epoch is accepted.
    let mut restarted = Cluster { epoch: 2, ..Cluster::default() };
    assert!(m.on_down(&restarted.down(&set), 0, &mut sink.out()).is_ok());
    assert_eq!(m.persistent().down_mark(), DownMark { epoch: 2, seq: 1 });
}

#[test]
fn a_model_arrives_over_the_air_and_trips_the_motor() {
    let mut m = boot();
    let mut c = Cluster::default();
    let receipts = install(&mut m, &mut c, 5);
    let mut statuses = Vec::new();
    let mut accepted = Vec::new();
    for f in &receipts {
        match payload(f) {
            Payload::OtaReceipt(r) => statuses.push(r.status),
            Payload::DownReceipt(r) => accepted.push((r.kind, r.mark.seq)),
            p => panic!("{p:?}"),
        }
    }
    assert_eq!(statuses, [OtaStatus::Receiving, OtaStatus::Activated]);
    // Every OTA frame answered by a down receipt, in order: begin, the chunks, commit.
    let chunks = image(&model(5)).len().div_ceil(40) as u32;
    let mut expected = vec![(Kind::OtaBegin, 1)];
    expected.extend((0..chunks).map(|i| (Kind::OtaChunk, 2 + i)));
    expected.push((Kind::OtaCommit, 2 + chunks));
    assert_eq!(accepted, expected);
    assert_eq!(kinds(&receipts)[..2], [Kind::DownReceipt, Kind::OtaReceipt], "the receipt comes first");
    assert_eq!(m.model_version(), 5);
    let mut sink = Sink::default();
    // Healthy windows: a score, no transition; the third confirms the model.
    for i in 0..3 {
        let o = m.on_window(i * 60_000, &window(0.05), &mut sink.out());
        assert!(o.score.unwrap() < 0.1);
        assert_eq!(o.transition, None);
    }
    let frames = sink.take();
    assert_eq!(
        kinds(&frames),
        [Kind::Features, Kind::RawWindow, Kind::Features, Kind::OtaReceipt, Kind::Features]
    );
    let Payload::OtaReceipt(r) = payload(&frames[3]) else { panic!() };
    assert_eq!((r.status, r.model_version, r.active_version), (OtaStatus::Confirmed, 5, 5));
    // A fault: three windows over the threshold trip at once, with event, features and raw.
    let t0 = 130_000; // between reports
    for i in 0..2 {
        assert_eq!(m.on_window(t0 + i * 250, &window(0.5), &mut sink.out()).frames, 0);
    }
    let o = m.on_window(t0 + 500, &window(0.5), &mut sink.out());
    assert_eq!(o.state, ActuationState::Trip);
    let frames = sink.take();
    assert_eq!(kinds(&frames), [Kind::Stage1Event, Kind::Features, Kind::RawWindow]);
    let Payload::Stage1Event(e) = payload(&frames[0]) else { panic!() };
    assert_eq!(
        (e.transition.from, e.transition.to, e.model_version),
        (ActuationState::Normal, ActuationState::Trip, 5)
    );
    assert!(e.transition.score > 0.8);
    let Payload::Features(r) = payload(&frames[1]) else { panic!() };
    assert_eq!((r.state, r.model_version), (ActuationState::Trip, 5));
    // The trip latches, across a reboot too.
    m.on_window(t0 + 750, &window(0.05), &mut sink.out());
    m.reboot();
    assert_eq!(m.state(), ActuationState::Trip);
    assert_eq!(m.model_version(), 5, "a confirmed model survives the reboot");
    // Reset by command: the event goes out at once.
    sink.take();
    let reset = c.down(&Payload::Command(Command::ResetTrip));
    m.on_down(&reset, t0 + 1_000, &mut sink.out()).unwrap();
    assert_eq!(m.state(), ActuationState::Normal);
    let frames = sink.take();
    assert_eq!(kinds(&frames), [Kind::DownReceipt, Kind::Stage1Event]);
    let Payload::Stage1Event(e) = payload(&frames[1]) else { panic!() };
    assert_eq!((e.transition.to, e.transition.cause), (ActuationState::Normal, TransitionCause::Reset));
    m.reboot();
    assert_eq!(m.state(), ActuationState::Normal);
}

#[test]
fn a_refused_ota_keeps_the_old_model_and_an_unconfirmed_one_rolls_back() {
    let mut m = boot();
    let mut c = Cluster::default();
    install(&mut m, &mut c, 1);
    for i in 0..3 {
        m.on_window(i, &window(0.05), &mut |_| {});
    }
    // A tampered image: refused with a receipt, model 1 stays.
    let img = image(&model(2));
    let mut bad = img.clone();
    bad[30] ^= 1;
    let mut sink = Sink::default();
    let mut last = None;
    for f in c.ota(&manifest(&signing_key(), 2, &img), &bad, 64) {
        last = Some(m.on_down(&f, 0, &mut sink.out()).unwrap());
    }
    assert_eq!(last, Some(DownApplied::Ota(OtaStatus::Refused(OtaError::BadHash))));
    let frames = sink.take();
    let Payload::OtaReceipt(r) = payload(frames.last().unwrap()) else { panic!() };
    assert_eq!((r.status, r.model_version, r.active_version), (OtaStatus::Refused(OtaError::BadHash), 2, 1));
    assert_eq!(m.model_version(), 1);
    assert_eq!(m.counters().ota_refused, 1);
    // Model 2 installed, then a reboot before it is confirmed: back to 1, with a receipt.
    install(&mut m, &mut c, 2);
    assert_eq!(m.model_version(), 2);
    m.on_window(10, &window(0.05), &mut |_| {});
    m.reboot();
    assert_eq!(m.model_version(), 1);
    m.on_window(20, &window(0.05), &mut sink.out());
    let frames = sink.take();
    let Payload::OtaReceipt(r) = payload(&frames[0]) else { panic!() };
    assert_eq!((r.status, r.model_version, r.active_version), (OtaStatus::RolledBack, 2, 1));
}

#[test]
fn the_ring_survives_reboots_and_old_epochs_are_resent_as_they_were() {
    let mut m = boot();
    let mut sink = Sink::default();
    m.on_window(0, &window(0.05), &mut sink.out());
    let first_boot = sink.take();
    let flash = m.into_persistent();
    // Power cut: the host kept the flash; the mote boots from it (clock restarted at 0).
    let mut m = Box::new(Mote::boot(config(), flash));
    assert_eq!(m.boot_epoch(), 2);
    m.on_window(0, &window(0.05), &mut sink.out());
    let second_boot = sink.take();
    assert!(second_boot.iter().all(|f| open(f).envelope.boot_epoch == 2));
    assert_eq!(open(&second_boot[0]).envelope.seq, 0, "sequence numbers restart with the epoch");
    // Frames from epoch 1 are due at once after the boot, unchanged.
    assert_eq!(m.resend(0, &mut sink.out()), 2);
    assert_eq!(sink.take(), first_boot);
    // Acks name the epoch: acking epoch 2's seq 0..1 leaves epoch 1's frames.
    let mut c = Cluster::default();
    let ack = c.down(&Payload::Ack(Ack { boot_epoch: 2, first_seq: 0, last_seq: 1 }));
    assert_eq!(m.on_down(&ack, 0, &mut sink.out()), Ok(DownApplied::Ack { removed: 2 }));
    let left: Vec<(u32, u32)> = m.persistent().ring().iter().map(|p| (p.boot_epoch, p.seq)).collect();
    assert_eq!(left, [(1, 0), (1, 1)]);
    let ack = c.down(&Payload::Ack(Ack { boot_epoch: 1, first_seq: 0, last_seq: 1 }));
    assert_eq!(m.on_down(&ack, 0, &mut sink.out()), Ok(DownApplied::Ack { removed: 2 }));
    assert!(m.persistent().ring().is_empty());
    // Acks are exempt from replay protection (they only name frames already stored): a replay
    // after reboot removes nothing and leaves the mark alone. The mark is flash: a replayed
    // command after reboot is still refused.
    let command = c.down(&Payload::Command(Command::RequestRaw));
    assert!(m.on_down(&command, 0, &mut sink.out()).is_ok());
    m.reboot();
    assert_eq!(m.on_down(&ack, 0, &mut sink.out()), Ok(DownApplied::Ack { removed: 0 }));
    assert_eq!(
        m.on_down(&command, 0, &mut sink.out()),
        Err(DownError::Replayed(DownMark { epoch: 1, seq: 3 }))
    );
}

#[test]
fn a_full_ring_drops_the_oldest_and_reports_it() {
    let mut m: Box<SmallMote> = Box::new(Mote::boot(config(), Persistent::new()));
    let mut sink = Sink::default();
    // Each report: features (140 bytes), and every 10th a raw window (16.5 KB): both bounds bite.
    for i in 0..60 {
        m.on_window(i * 60_000, &window(0.05), &mut sink.out());
    }
    let frames = sink.take();
    assert_eq!(frames.len(), 66);
    let ring = m.persistent().ring();
    let stats = m.counters().ring;
    assert!(ring.len() <= 32 && ring.bytes_used() <= 40_000);
    assert_eq!(stats.total() as usize, frames.len() - ring.len(), "every frame is kept or counted");
    assert!(stats.dropped_full > 0 && stats.dropped_arena > 0, "{stats:?}");
    let Payload::Features(r) = payload(frames.last().unwrap()) else { panic!() };
    assert!(r.ring_dropped > 0 && u64::from(r.ring_dropped) <= stats.total());
    // What is kept is the newest, in order.
    let seqs: Vec<u32> = ring.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, (66 - ring.len() as u32..66).collect::<Vec<_>>());
}
