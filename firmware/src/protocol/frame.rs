//! The frame envelope: header, CRC-32 and HMAC-SHA256 around a payload.
//!
//! Encoding writes into a caller's buffer; decoding borrows. Checks are split so a gateway can
//! count them apart: [`decode_frame`] checks structure and the CRC (corruption) and gives an
//! [`UnverifiedFrame`], whose header may be read (to find the mote and its key) but whose
//! payload is reachable only through [`UnverifiedFrame::verify`] (the MAC: authenticity).

use super::ids::{DedupKey, MoteId, MoteKey};
use super::payload::{Payload, PayloadError, MAX_PAYLOAD};
use super::wire::{Reader, Writer};
use core::fmt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The protocol version this code speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Header bytes before the payload.
pub const HEADER_LEN: usize = 28;
/// CRC-32 bytes.
pub const CRC_LEN: usize = 4;
/// HMAC-SHA256 bytes.
pub const MAC_LEN: usize = 32;
/// Bytes a frame adds to its payload.
pub const FRAME_OVERHEAD: usize = HEADER_LEN + CRC_LEN + MAC_LEN;
/// The largest frame (a raw window).
pub const MAX_FRAME: usize = MAX_PAYLOAD + FRAME_OVERHEAD;

/// CRC-32 (ISO-HDLC, zlib's) by a 1 KiB table, one byte per step, on a microcontroller.
#[cfg(not(feature = "std"))]
fn crc32(bytes: &[u8]) -> u32 {
    const CRC32: crc::Crc<u32, crc::Table<1>> = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
    CRC32.checksum(bytes)
}

/// The same CRC-32 on the host (the gateway checks every frame), by crc32fast: carry-less
/// multiplication where the CPU has it, several times faster than any table.
#[cfg(feature = "std")]
fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The kind of a frame; up kinds are below 0x80, down kinds have the high bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Up: a features report.
    Features = 0x01,
    /// Up: a raw window.
    RawWindow = 0x02,
    /// Up: a stage-1 event.
    Stage1Event = 0x03,
    /// Up: an OTA receipt.
    OtaReceipt = 0x04,
    /// Up: a down receipt.
    DownReceipt = 0x05,
    /// Down: an acknowledgement.
    Ack = 0x81,
    /// Down: a command.
    Command = 0x82,
    /// Down: OTA begin (manifest).
    OtaBegin = 0x83,
    /// Down: OTA chunk.
    OtaChunk = 0x84,
    /// Down: OTA commit.
    OtaCommit = 0x85,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 10] = [
        Kind::Features,
        Kind::RawWindow,
        Kind::Stage1Event,
        Kind::OtaReceipt,
        Kind::DownReceipt,
        Kind::Ack,
        Kind::Command,
        Kind::OtaBegin,
        Kind::OtaChunk,
        Kind::OtaCommit,
    ];

    /// The kind with wire code `code`.
    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == code)
    }

    /// True for cluster-to-mote kinds.
    pub fn is_down(self) -> bool {
        self as u8 & 0x80 != 0
    }

    /// True for the down kinds a mote sends a [`DownReceipt`](super::DownReceipt) for: every
    /// one but the ack.
    pub fn is_receipted(self) -> bool {
        self.is_down() && self != Kind::Ack
    }
}

/// Who sent a frame and when: the header fields besides version, kind, flags and length.
///
/// Up frames: `boot_epoch` is the mote's (persisted, incremented at each boot) and `seq` counts
/// its frames within the boot from 0. Down frames: `mote` is the target, and `(boot_epoch, seq)`
/// is the sender's counter, which must increase from one frame to the next (see
/// [`super::DownMark`]). `capture_ms` is the sender's clock: for up frames, when the window was
/// captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// The mote (sender of up frames, target of down frames).
    pub mote: MoteId,
    /// Boot epoch (up) or sender epoch (down).
    pub boot_epoch: u32,
    /// Sequence number within the epoch.
    pub seq: u32,
    /// Sender's clock, ms.
    pub capture_ms: u64,
}

impl Envelope {
    /// The de-duplication key `(mote, boot_epoch, seq)`.
    pub fn dedup_key(&self) -> DedupKey {
        DedupKey { mote: self.mote, boot_epoch: self.boot_epoch, seq: self.seq }
    }
}

/// Why a frame was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than a frame with an empty payload.
    Short {
        /// Bytes given.
        len: usize,
    },
    /// A protocol version this code does not speak.
    BadVersion(u8),
    /// The declared payload is larger than [`MAX_PAYLOAD`].
    Oversized {
        /// The declared payload length.
        payload_len: usize,
    },
    /// The declared length and the bytes given disagree (truncated, or trailing bytes).
    LengthMismatch {
        /// Frame length the header declares.
        declared: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The CRC-32 does not match: corrupted in transit.
    BadCrc,
    /// An unknown kind code (the CRC matched).
    UnknownKind(u8),
    /// Flags set that this version does not define (none are defined: must be 0).
    BadFlags(u16),
    /// The HMAC does not match under the key tried: forged, or another mote's key.
    BadMac,
    /// Encoding: the output buffer is too small.
    BufferTooSmall {
        /// Bytes the frame needs.
        needed: usize,
    },
    /// Encoding: the payload was refused.
    Payload(PayloadError),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Short { len } => write!(f, "frame too short ({len} bytes, at least {FRAME_OVERHEAD})"),
            Self::BadVersion(v) => write!(f, "unsupported protocol version {v}"),
            Self::Oversized { payload_len } => {
                write!(f, "payload of {payload_len} bytes exceeds {MAX_PAYLOAD}")
            }
            Self::LengthMismatch { declared, actual } => {
                write!(f, "frame declares {declared} bytes, {actual} given")
            }
            Self::BadCrc => f.write_str("bad CRC"),
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k:#04x}"),
            Self::BadFlags(x) => write!(f, "undefined flags {x:#06x}"),
            Self::BadMac => f.write_str("bad MAC"),
            Self::BufferTooSmall { needed } => write!(f, "buffer too small: the frame needs {needed} bytes"),
            Self::Payload(e) => write!(f, "payload: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FrameError {}

/// HMAC-SHA256 of `data` under `key`.
fn mac(key: &MoteKey, data: &[u8]) -> Hmac<Sha256> {
    // A 32-byte key is zero-padded to SHA-256's 64-byte block by HMAC's definition, so keying
    // with the padded block is the same function, and cannot fail.
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&key.0);
    let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&block.into());
    m.update(data);
    m
}

/// Writes header, CRC and MAC around the `payload_len` payload bytes already at
/// `out[HEADER_LEN..]`.
fn seal(
    kind: Kind,
    env: &Envelope,
    payload_len: usize,
    key: &MoteKey,
    out: &mut [u8],
) -> Result<usize, FrameError> {
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::Oversized { payload_len });
    }
    let total = payload_len + FRAME_OVERHEAD;
    let too_small = FrameError::BufferTooSmall { needed: total };
    let out = out.get_mut(..total).ok_or(too_small)?;
    let mut w = Writer::new(&mut out[..HEADER_LEN]);
    let header = (|| {
        w.u8(PROTOCOL_VERSION)?;
        w.u8(kind as u8)?;
        w.u16(0)?;
        w.u32(env.mote.0)?;
        w.u32(env.boot_epoch)?;
        w.u32(env.seq)?;
        w.u64(env.capture_ms)?;
        w.u32(payload_len as u32)
    })();
    header.map_err(|_| too_small)?;
    let crc_at = HEADER_LEN + payload_len;
    let crc = crc32(&out[..crc_at]);
    out[crc_at..crc_at + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
    let mac_at = crc_at + CRC_LEN;
    let tag = mac(key, &out[..mac_at]).finalize().into_bytes();
    out[mac_at..].copy_from_slice(&tag);
    Ok(total)
}

/// Encodes a frame carrying `payload` from (or to) `env.mote`, MAC'd under `key`; returns its
/// length.
pub fn encode_frame(
    env: &Envelope,
    payload: &Payload<'_>,
    key: &MoteKey,
    out: &mut [u8],
) -> Result<usize, FrameError> {
    let len = payload.encoded_len();
    if len > MAX_PAYLOAD {
        return Err(FrameError::Oversized { payload_len: len });
    }
    let needed = len + FRAME_OVERHEAD;
    let body = out.get_mut(HEADER_LEN..HEADER_LEN + len).ok_or(FrameError::BufferTooSmall { needed })?;
    let len = payload.encode(body).map_err(FrameError::Payload)?;
    seal(payload.kind(), env, len, key, out)
}

/// Encodes a frame of `kind` around payload bytes taken as they are (not validated): for
/// relaying and for tests that need a well-sealed frame with a malformed payload.
pub fn encode_frame_raw(
    kind: Kind,
    env: &Envelope,
    payload: &[u8],
    key: &MoteKey,
    out: &mut [u8],
) -> Result<usize, FrameError> {
    let needed = payload.len() + FRAME_OVERHEAD;
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::Oversized { payload_len: payload.len() });
    }
    let body =
        out.get_mut(HEADER_LEN..HEADER_LEN + payload.len()).ok_or(FrameError::BufferTooSmall { needed })?;
    body.copy_from_slice(payload);
    seal(kind, env, payload.len(), key, out)
}

/// A frame whose structure and CRC are sound but whose MAC is not checked yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnverifiedFrame<'a> {
    /// The kind.
    pub kind: Kind,
    /// The envelope (unauthenticated until verified: use it only to find the key).
    pub envelope: Envelope,
    bytes: &'a [u8],
}

/// A frame whose MAC checked under the mote's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The kind.
    pub kind: Kind,
    /// The envelope.
    pub envelope: Envelope,
    /// The payload bytes.
    pub payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Decodes the payload according to the kind.
    pub fn decode_payload(&self) -> Result<Payload<'a>, PayloadError> {
        Payload::decode(self.kind, self.payload)
    }
}

/// Checks a frame's structure and CRC (not its MAC). Order of checks: length at least
/// [`FRAME_OVERHEAD`], version, declared payload length (at most [`MAX_PAYLOAD`], and the frame
/// exactly that long), CRC, kind, flags.
pub fn decode_frame(bytes: &[u8]) -> Result<UnverifiedFrame<'_>, FrameError> {
    let short = FrameError::Short { len: bytes.len() };
    if bytes.len() < FRAME_OVERHEAD {
        return Err(short);
    }
    let mut r = Reader::new(bytes);
    let (version, kind, flags) = (r.u8().ok_or(short)?, r.u8().ok_or(short)?, r.u16().ok_or(short)?);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::BadVersion(version));
    }
    let envelope = Envelope {
        mote: MoteId(r.u32().ok_or(short)?),
        boot_epoch: r.u32().ok_or(short)?,
        seq: r.u32().ok_or(short)?,
        capture_ms: r.u64().ok_or(short)?,
    };
    let payload_len = r.u32().ok_or(short)? as usize;
    if payload_len > MAX_PAYLOAD {
        return Err(FrameError::Oversized { payload_len });
    }
    let declared = payload_len + FRAME_OVERHEAD;
    if declared != bytes.len() {
        return Err(FrameError::LengthMismatch { declared, actual: bytes.len() });
    }
    let crc_at = HEADER_LEN + payload_len;
    let crc = u32::from_le_bytes([bytes[crc_at], bytes[crc_at + 1], bytes[crc_at + 2], bytes[crc_at + 3]]);
    if crc32(&bytes[..crc_at]) != crc {
        return Err(FrameError::BadCrc);
    }
    let kind = Kind::from_code(kind).ok_or(FrameError::UnknownKind(kind))?;
    if flags != 0 {
        return Err(FrameError::BadFlags(flags));
    }
    Ok(UnverifiedFrame { kind, envelope, bytes })
}

impl<'a> UnverifiedFrame<'a> {
    /// Checks the MAC under `key` (constant time).
    pub fn verify(&self, key: &MoteKey) -> Result<Frame<'a>, FrameError> {
        let mac_at = self.bytes.len() - MAC_LEN;
        mac(key, &self.bytes[..mac_at])
            .verify_slice(&self.bytes[mac_at..])
            .map_err(|_| FrameError::BadMac)?;
        Ok(Frame {
            kind: self.kind,
            envelope: self.envelope,
            payload: &self.bytes[HEADER_LEN..mac_at - CRC_LEN],
        })
    }
}

/// [`decode_frame`] then [`UnverifiedFrame::verify`].
pub fn open_frame<'a>(bytes: &'a [u8], key: &MoteKey) -> Result<Frame<'a>, FrameError> {
    decode_frame(bytes)?.verify(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_key_is_hmac_of_the_short_key() {
        let key = MoteKey(core::array::from_fn(|i| i as u8 * 7));
        let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).unwrap();
        reference.update(b"aiot");
        assert_eq!(mac(&key, b"aiot").finalize().into_bytes(), reference.finalize().into_bytes());
    }

    #[test]
    fn crc_is_iso_hdlc() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        let long: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let table = crc::Crc::<u32, crc::Table<1>>::new(&crc::CRC_32_ISO_HDLC);
        assert_eq!(crc32(&long), table.checksum(&long), "the host's CRC is the microcontroller's");
    }
}
