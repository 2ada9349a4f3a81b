//! The record frame in a segment file, and scanning a segment's bytes into frames.
//!
//! ```text
//! len u32 LE | crc u32 LE (CRC-32C of the body) | body (len bytes):
//!   offset u64 LE | timestamp_ms u64 LE | generation u32 LE | sequence u64 LE |
//!   sealed(key_len u32 LE | key | payload)   (XChaCha20-Poly1305, 16-byte tag)
//! ```
//!
//! Offsets and timestamps stay in the clear (recovery and `Start::Time` need them without the
//! key) but are authenticated with the record's place. A scan stops at a torn tail (a frame
//! running past the end of the bytes, or only zeros left, with no good frame after it); damage
//! in the middle (a flipped byte, in a body or a length) is reported and skipped, so the frames
//! after it stay readable (`scan`).

use crate::ports::eventlog::{Record, TopicPartition};

use super::crypto::{NonceId, Sealer, TAG_LEN};

/// Bytes before the body: length and CRC.
pub const HEAD_LEN: usize = 8;
const FIXED_LEN: usize = 28;
/// The largest key plus payload a record may have.
pub const MAX_RECORD: usize = 1 << 20;
const MIN_BODY: usize = FIXED_LEN + 4 + TAG_LEN;
const MAX_BODY: usize = MIN_BODY + MAX_RECORD;

const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// What a frame says about itself, read without the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub offset: u64,
    pub timestamp_ms: u64,
    /// Where the frame starts in its file, and its whole length (head included).
    pub pos: u64,
    pub len: u32,
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every byte belonged to a frame.
    Clean,
    /// An incomplete frame (or zeros) from this position to the end: a write cut short.
    Torn { at: u64 },
    /// A length no frame can have at this position: the rest cannot be framed.
    Unreadable { at: u64 },
}

/// The frames found in a segment's bytes, the damaged ones, and how it ended.
#[derive(Debug, Default)]
pub struct Scan {
    pub frames: Vec<FrameInfo>,
    /// Position and reason of each complete frame that failed its CRC.
    pub corrupt: Vec<(u64, String)>,
    pub ending: Option<Ending>,
}

fn aad(place: &TopicPartition, offset: u64, timestamp_ms: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(place.topic.len() + 20);
    aad.extend_from_slice(place.topic.as_bytes());
    aad.extend_from_slice(&place.partition.to_le_bytes());
    aad.extend_from_slice(&offset.to_le_bytes());
    aad.extend_from_slice(&timestamp_ms.to_le_bytes());
    aad
}

/// Appends the frame of `record` at `offset` to `out`.
pub fn encode(
    sealer: &Sealer,
    place: &TopicPartition,
    offset: u64,
    record: &Record,
    id: NonceId,
    out: &mut Vec<u8>,
) {
    let mut plain = Vec::with_capacity(4 + record.key.len() + record.payload.len());
    plain.extend_from_slice(&(record.key.len() as u32).to_le_bytes());
    plain.extend_from_slice(&record.key);
    plain.extend_from_slice(&record.payload);
    let sealed = sealer.seal(id, &aad(place, offset, record.timestamp_ms), &plain);
    let start = out.len();
    out.extend_from_slice(&((FIXED_LEN + sealed.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    out.extend_from_slice(&id.generation.to_le_bytes());
    out.extend_from_slice(&id.sequence.to_le_bytes());
    out.extend_from_slice(&sealed);
    let crc = CRC.checksum(&out[start + HEAD_LEN..]);
    out[start + 4..start + HEAD_LEN].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks one whole frame's CRC; says why not.
fn check(frame: &[u8]) -> Result<(), String> {
    let (stored, actual) = (u32_at(frame, 4), CRC.checksum(&frame[HEAD_LEN..]));
    if stored == actual {
        Ok(())
    } else {
        Err(format!("CRC mismatch (stored {stored:08x}, computed {actual:08x})"))
    }
}

/// What lies at a position of a segment.
enum Probe {
    Frame(FrameInfo),
    /// A sane length whose frame runs past the end.
    Incomplete,
    /// A length no frame can have.
    Insane,
    /// A complete frame of this length whose CRC fails.
    Damaged(usize, String),
}

fn probe(bytes: &[u8], at: usize) -> Probe {
    let rest = &bytes[at..];
    if rest.len() < HEAD_LEN {
        return Probe::Incomplete;
    }
    let body = u32_at(rest, 0) as usize;
    if !(MIN_BODY..=MAX_BODY).contains(&body) {
        return Probe::Insane;
    }
    if rest.len() < HEAD_LEN + body {
        return Probe::Incomplete;
    }
    let frame = &rest[..HEAD_LEN + body];
    match check(frame) {
        Ok(()) => Probe::Frame(FrameInfo {
            offset: u64_at(frame, HEAD_LEN),
            timestamp_ms: u64_at(frame, HEAD_LEN + 8),
            pos: at as u64,
            len: frame.len() as u32,
        }),
        Err(why) => Probe::Damaged(frame.len(), why),
    }
}

/// The first position after `at` where a whole frame with a good CRC starts.
fn resync(bytes: &[u8], at: usize) -> Option<usize> {
    (at + 1..bytes.len().saturating_sub(HEAD_LEN)).find(|&p| matches!(probe(bytes, p), Probe::Frame(_)))
}

/// Scans `bytes` (a segment from its start) into frames. Damage is skipped: a frame whose CRC
/// fails by its length when a good frame (or the end) follows, otherwise up to the next position
/// where a good frame starts. Only when no good frame follows does the scan end: as a torn tail
/// if the damage is an incomplete frame or zeros, as unreadable otherwise.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0usize;
    while at < bytes.len() {
        let (torn_here, why) = match probe(bytes, at) {
            Probe::Frame(info) => {
                scan.frames.push(info);
                at += info.len as usize;
                continue;
            }
            Probe::Damaged(len, why) => {
                let next = at + len;
                if next == bytes.len() || matches!(probe(bytes, next), Probe::Frame(_)) {
                    scan.corrupt.push((at as u64, format!("{why}; {len} bytes skipped")));
                    at = next;
                    continue;
                }
                (false, why)
            }
            Probe::Incomplete => (true, "an incomplete frame".to_string()),
            Probe::Insane => (bytes[at..].iter().all(|b| *b == 0), "a length no frame can have".to_string()),
        };
        match resync(bytes, at) {
            Some(next) => {
                scan.corrupt
                    .push((at as u64, format!("{why}; {} bytes skipped to the next good frame", next - at)));
                at = next;
            }
            None if torn_here => {
                scan.ending = Some(Ending::Torn { at: at as u64 });
                return scan;
            }
            None => {
                scan.ending = Some(Ending::Unreadable { at: at as u64 });
                return scan;
            }
        }
    }
    scan.ending = Some(Ending::Clean);
    scan
}

/// Decodes one whole frame of `place`: its offset and record, or why it cannot be trusted.
pub fn decode(sealer: &Sealer, place: &TopicPartition, frame: &[u8]) -> Result<(u64, Record), String> {
    if frame.len() < HEAD_LEN + MIN_BODY || frame.len() != HEAD_LEN + u32_at(frame, 0) as usize {
        return Err(format!("a frame of {} bytes does not match its length field", frame.len()));
    }
    check(frame)?;
    let (offset, timestamp_ms) = (u64_at(frame, HEAD_LEN), u64_at(frame, HEAD_LEN + 8));
    let id = NonceId { generation: u32_at(frame, HEAD_LEN + 16), sequence: u64_at(frame, HEAD_LEN + 20) };
    let plain = sealer
        .open(id, &aad(place, offset, timestamp_ms), &frame[HEAD_LEN + FIXED_LEN..])
        .ok_or("authentication failed (altered, moved, or another key)")?;
    let key_len = u32_at(&plain, 0) as usize;
    if 4 + key_len > plain.len() {
        return Err(format!("a key length of {key_len} exceeds the record"));
    }
    let record = Record {
        topic: place.topic.clone(),
        key: plain[4..4 + key_len].to_vec(),
        payload: plain[4 + key_len..].to_vec(),
        timestamp_ms,
    };
    Ok((offset, record))
}

#[cfg(test)]
mod tests {
    use super::super::crypto::{LogKey, SALT_LEN};
    use super::*;

    fn frames(count: u64) -> (Sealer, TopicPartition, Vec<u8>) {
        let sealer = Sealer::new(&LogKey([3; 32]), [5; SALT_LEN]);
        let place = TopicPartition::new("t", 1);
        let mut bytes = Vec::new();
        for offset in 0..count {
            let record = Record::new("t", format!("k{offset}"), vec![offset as u8; 100], 1_000 + offset);
            encode(&sealer, &place, offset, &record, NonceId { generation: 1, sequence: offset }, &mut bytes);
        }
        (sealer, place, bytes)
    }

    #[test]
    fn frames_round_trip_and_scan() {
        let (sealer, place, bytes) = frames(3);
        let scan = scan(&bytes);
        assert_eq!(scan.ending, Some(Ending::Clean));
        assert_eq!(scan.frames.iter().map(|f| f.offset).collect::<Vec<_>>(), vec![0, 1, 2]);
        let last = scan.frames[2];
        let frame = &bytes[last.pos as usize..(last.pos + u64::from(last.len)) as usize];
        let (offset, record) = decode(&sealer, &place, frame).expect("decodes");
        assert_eq!((offset, record), (2, Record::new("t", "k2", vec![2u8; 100], 1_002)));
        let elsewhere = TopicPartition::new("t", 0);
        assert!(decode(&sealer, &elsewhere, frame).is_err(), "a frame opened in another partition");
    }

    #[test]
    fn a_cut_is_a_torn_tail_and_flips_in_a_body_or_a_length_are_skipped() {
        let (_, _, bytes) = frames(3);
        let second = scan(&bytes).frames[1];
        let cut = scan(&bytes[..bytes.len() - 1]);
        assert_eq!(
            (cut.frames.len(), cut.ending),
            (2, Some(Ending::Torn { at: second.pos + u64::from(second.len) }))
        );
        let mut flipped = bytes.clone();
        flipped[second.pos as usize + 40] ^= 0x10;
        let scanned = scan(&flipped);
        assert_eq!(scanned.frames.iter().map(|f| f.offset).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(scanned.corrupt.len(), 1);
        assert_eq!(scanned.corrupt[0].0, second.pos);
        let mut bad_length = bytes.clone();
        bad_length[second.pos as usize + 3] = 0xff;
        let scanned = scan(&bad_length);
        assert_eq!(scanned.frames.iter().map(|f| f.offset).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(scanned.corrupt[0].0, second.pos);
        assert_eq!(scanned.ending, Some(Ending::Clean));
        let last = scan(&bytes).frames[2];
        let mut bad_last_length = bytes.clone();
        bad_last_length[last.pos as usize + 3] = 0xff;
        let scanned = scan(&bad_last_length);
        assert_eq!(scanned.ending, Some(Ending::Unreadable { at: last.pos }), "nothing good follows");
        let mut zeros = bytes[..last.pos as usize].to_vec();
        zeros.extend_from_slice(&[0; 64]);
        assert_eq!(scan(&zeros).ending, Some(Ending::Torn { at: last.pos }), "a zero-filled tail is torn");
    }
}
