//! The mote protocol, shared by motes and the cluster's actors (BLUEPRINT section 10).
//!
//! # Topics
//! A mote `MoteId(17)` is `mote-17`. It publishes frames on `aiot/mote-17/up` and subscribes to
//! `aiot/mote-17/down` (acks, commands, OTA). [`MoteId::up_topic`], [`MoteId::down_topic`] and
//! [`parse_topic`] build and read them; [`UP_TOPIC_FILTER`] subscribes to every mote.
//!
//! # Frame layout (little-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version u8 = [`PROTOCOL_VERSION`] (1) |
//! | 1 | 1 | kind u8 ([`Kind`]: up 0x01..0x05, down 0x81..0x85) |
//! | 2 | 2 | flags u16, must be 0 (none defined) |
//! | 4 | 4 | mote id u32 |
//! | 8 | 4 | boot epoch u32 (down frames: the sender's epoch) |
//! | 12 | 4 | seq u32 (within the epoch) |
//! | 16 | 8 | capture_ms u64 (sender's clock) |
//! | 24 | 4 | payload_len u32 (at most [`MAX_PAYLOAD`] = 16 416) |
//! | 28 | L | payload |
//! | 28+L | 4 | CRC-32/ISO-HDLC (the zlib/Ethernet CRC) of bytes `0..28+L` |
//! | 32+L | 32 | HMAC-SHA256 under the mote's 32-byte key of bytes `0..32+L` |
//!
//! A frame is exactly `64 + L` bytes. Up and down frames share the envelope and the MAC under
//! the same per-mote key, so a mote never obeys a frame the cluster did not send, and nobody
//! but the mote (or the cluster) can publish as it. [`decode_frame`] checks structure and CRC
//! (counted as corruption), [`UnverifiedFrame::verify`] the MAC (counted as forgery or a wrong
//! key), separately. De-duplication key of up frames: [`DedupKey`] `(mote, boot_epoch, seq)`.
//! Down frames are accepted only when `(epoch, seq)` is above the last accepted pair
//! ([`DownMark`], starting at `(0, 0)`, kept in flash and reported in every features frame): a
//! replayed command or OTA frame is refused. A sender numbers its down frames from `(1, 1)`
//! upwards, and after a restart (or losing its counter) continues with an epoch above the mark
//! the mote last reported. Each accepted command or OTA frame is answered at once by a
//! [`DownReceipt`] naming its pair, so the sender need not wait for the next report.
//!
//! # Payloads (little-endian; `n` = [`FEATURE_COUNT`](crate::features::FEATURE_COUNT) = 11)
//!
//! **Features (0x01)**, `32 + 4n` = 76 bytes: model_version u32 (0: no model) | score f32 (0
//! when absent) | state u8 (0 Normal, 1 Derate, 2 Trip) | has_score u8 (1 exactly when
//! model_version != 0) | n u8 | reserved u8 = 0 | clipped u16 x 4 | ring_dropped u32 |
//! down_mark epoch u32 | down_mark seq u32 | features f32 x n (order of
//! [`FEATURE_NAMES`](crate::features::FEATURE_NAMES)).
//!
//! **RawWindow (0x02)**, `32 + 8n` bytes, `1 <= n <= 2048`: sample_rate_hz u32 | n u32 | scale
//! f32 x 4 (units per count, > 0) | clipped u16 x 4 | samples i16, channel-major: n current,
//! then n vibration, n sound, n temperature. A full window is 16 416 bytes.
//!
//! **Stage1Event (0x03)**, 12 bytes: from u8 | to u8 | cause u8 (0 score, 1 reset command) |
//! reserved u8 = 0 | score f32 | model_version u32.
//!
//! **OtaReceipt (0x04)**, 16 bytes: status u8 (1 receiving, 2 activated on trial, 3 confirmed,
//! 4 rolled back, 5 refused) | error u8 ([`OtaError`](crate::ota::OtaError) code when refused,
//! else 0) | reserved u16 = 0 | model_version u32 | active_version u32 | received u32.
//!
//! **DownReceipt (0x05)**, 12 bytes: kind u8 (the accepted down frame's, 0x82..0x85) |
//! reserved [u8; 3] = 0 | mark epoch u32 | mark seq u32: the mote accepted and applied the
//! down frame `(epoch, seq)`. Sent at once for every accepted command and OTA frame, before
//! any frame applying it causes; never for an ack or a refused frame.
//!
//! **Ack (0x81)**, 12 bytes: boot_epoch u32 | first_seq u32 | last_seq u32 (inclusive,
//! first <= last): the frames `(mote, boot_epoch, first..=last)` are durable in the cluster.
//!
//! **Command (0x82)**, 8 bytes: tag u8 | reserved [u8; 3] = 0 | arg u32. Tags: 1 set report
//! interval (arg seconds, >= 1), 2 set raw_every (arg reports, 0 = only on events/requests),
//! 3 reset trip (arg 0), 4 request raw now (arg 0).
//!
//! **OtaBegin (0x83)**, 104 bytes: model_version u32 | size u32 | sha256 [u8; 32] | ed25519
//! signature [u8; 64] (see [`crate::ota`] for the signed message).
//!
//! **OtaChunk (0x84)**, `4 + m` bytes: offset u32 | m image bytes.
//!
//! **OtaCommit (0x85)**, 4 bytes: model_version u32.

mod frame;
mod ids;
mod payload;
mod wire;

pub use frame::{
    decode_frame, encode_frame, encode_frame_raw, open_frame, Envelope, Frame, FrameError, Kind,
    UnverifiedFrame, CRC_LEN, FRAME_OVERHEAD, HEADER_LEN, MAC_LEN, MAX_FRAME, PROTOCOL_VERSION,
};
pub use ids::{
    parse_topic, BadMoteId, DedupKey, Direction, MoteId, MoteKey, TopicName, DOWN_TOPIC_FILTER, TOPIC_MAX,
    UP_TOPIC_FILTER,
};
pub use payload::{
    Ack, Command, DownMark, DownReceipt, FeaturesReport, OtaChunk, OtaCommit, OtaManifest, OtaReceipt,
    Payload, PayloadError, RawWindow, Stage1Event, ACK_LEN, COMMAND_LEN, DOWN_RECEIPT_LEN, FEATURES_LEN,
    MAX_PAYLOAD, OTA_BEGIN_LEN, OTA_CHUNK_HEADER_LEN, OTA_COMMIT_LEN, OTA_RECEIPT_LEN, RAW_WINDOW_HEADER_LEN,
    STAGE1_EVENT_LEN,
};
