//! The resend ring: bounds, drop counting, acks, resend timing, reboot.

use aiot_firmware::resend::{Pushed, ResendRing, RingStats};

fn frame(seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn seqs<const F: usize, const A: usize>(r: &ResendRing<F, A>) -> Vec<(u32, u32)> {
    r.iter().map(|p| (p.boot_epoch, p.seq)).collect()
}

fn intact<const F: usize, const A: usize>(r: &ResendRing<F, A>, len: usize) {
    for p in r.iter() {
        assert_eq!(p.bytes, frame(p.seq, len), "frame {} kept intact", p.seq);
    }
}

#[test]
fn drops_the_oldest_when_the_frame_count_is_reached() {
    let mut r: ResendRing<4, 4096> = ResendRing::new();
    for seq in 0..4 {
        assert_eq!(r.push(1, seq, &frame(seq, 10), 0), Pushed::Kept { dropped: 0 });
    }
    assert_eq!(r.push(1, 4, &frame(4, 10), 0), Pushed::Kept { dropped: 1 });
    r.push(1, 5, &frame(5, 10), 0);
    assert_eq!(seqs(&r), [(1, 2), (1, 3), (1, 4), (1, 5)]);
    assert_eq!(r.stats(), RingStats { dropped_full: 2, dropped_arena: 0, too_large: 0 });
    intact(&r, 10);
}

#[test]
fn drops_the_oldest_when_the_arena_is_full() {
    let mut r: ResendRing<16, 1000> = ResendRing::new();
    for seq in 0..3 {
        r.push(1, seq, &frame(seq, 300), 0);
    }
    assert_eq!(r.bytes_used(), 900);
    assert_eq!(r.push(1, 3, &frame(3, 300), 0), Pushed::Kept { dropped: 1 });
    assert_eq!(r.push(1, 4, &frame(4, 650), 0), Pushed::Kept { dropped: 2 });
    assert_eq!(seqs(&r), [(1, 3), (1, 4)]);
    assert_eq!(r.stats().dropped_arena, 3);
    assert_eq!(r.push(1, 5, &frame(5, 1001), 0), Pushed::TooLarge);
    assert_eq!(r.stats().too_large, 1);
    assert_eq!(r.stats().total(), 4);
    assert_eq!(r.len(), 2);
}

#[test]
fn an_ack_removes_exactly_its_range_of_its_epoch() {
    let mut r: ResendRing<16, 4096> = ResendRing::new();
    for seq in 0..6 {
        r.push(1, seq, &frame(seq, 20 + seq as usize), 0);
    }
    r.push(2, 0, &frame(0, 20), 0);
    assert_eq!(r.ack(2, 1, 3), 0, "no such frames in epoch 2");
    assert_eq!(r.ack(1, 1, 3), 3);
    assert_eq!(seqs(&r), [(1, 0), (1, 4), (1, 5), (2, 0)]);
    for p in r.iter() {
        let len = if p.boot_epoch == 1 { 20 + p.seq as usize } else { 20 };
        assert_eq!(p.bytes, frame(p.seq, len), "compaction kept frame ({}, {}) intact", p.boot_epoch, p.seq);
    }
    assert_eq!(r.bytes_used(), 20 + 24 + 25 + 20);
    assert_eq!(r.ack(1, 0, u32::MAX), 3);
    assert_eq!(r.ack(2, 0, 0), 1);
    assert!(r.is_empty());
    assert_eq!(r.bytes_used(), 0);
}

#[test]
fn resends_what_is_due_oldest_first_in_batches() {
    let mut r: ResendRing<16, 4096> = ResendRing::new();
    for seq in 0..5 {
        r.push(1, seq, &frame(seq, 8), seq as u64 * 1_000);
    }
    let mut out = Vec::new();
    assert_eq!(r.resend_due(30_500, 30_000, 16, &mut |f: &[u8]| out.push(f.to_vec())), 1);
    assert_eq!(out, [frame(0, 8)]);
    out.clear();
    assert_eq!(r.resend_due(40_000, 30_000, 2, &mut |f: &[u8]| out.push(f.to_vec())), 2);
    assert_eq!(out, [frame(1, 8), frame(2, 8)]);
    // After a reboot the clock may start from 0: everything is due at once.
    r.make_all_due();
    out.clear();
    assert_eq!(r.resend_due(0, 30_000, 16, &mut |f: &[u8]| out.push(f.to_vec())), 5);
    assert_eq!(r.resend_due(1, 30_000, 16, &mut |_| {}), 0);
}

#[test]
fn the_next_resend_is_due_when_the_oldest_sent_frame_comes_of_age() {
    let mut r: ResendRing<16, 4096> = ResendRing::new();
    assert_eq!(r.next_due_ms(30_000), None, "nothing kept, nothing due");
    for seq in 0..3 {
        r.push(1, seq, &frame(seq, 8), 1_000 + seq as u64 * 1_000);
    }
    assert_eq!(r.next_due_ms(30_000), Some(31_000));
    // Nothing is handed out before that time, and the first frame is at it.
    assert_eq!(r.resend_due(30_999, 30_000, 16, &mut |_| {}), 0);
    assert_eq!(r.resend_due(31_000, 30_000, 16, &mut |_| {}), 1);
    assert_eq!(r.next_due_ms(30_000), Some(32_000));
    r.ack(1, 1, 1);
    assert_eq!(r.next_due_ms(30_000), Some(33_000), "an acknowledged frame is not waited for");
    r.make_all_due();
    assert_eq!(r.next_due_ms(30_000), Some(0), "frames made due are due now");
}
