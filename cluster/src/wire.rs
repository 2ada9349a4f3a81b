//! The wire codec between nodes: length-prefixed, versioned bincode frames with a maximum size.
//! Sans-IO: the decoder takes bytes as they arrive and hands out whole frames; it never reads a
//! socket. The transport closes a connection on any `WireError`, giving its `Display` as reason.
//!
//! ```text
//! +----------------+-----------------+---------------------------------+
//! | len: u32 (BE)  | version: u16 BE | body: bincode (standard config) |
//! +----------------+-----------------+---------------------------------+
//!   len counts the version and the body; 2 <= len <= FRAME_LEN_MAX
//! ```

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The wire version this build speaks. A peer with another version is refused, not guessed at.
pub const WIRE_VERSION: u16 = 2;

/// Largest frame (version + body), in bytes. A raw window (4 channels x 2048 samples x 4 B =
/// 32 KiB) or an OTA chunk fits many times over; the bound caps what one connection can make a
/// node buffer before the frame is refused.
pub const FRAME_LEN_MAX: usize = 1 << 20;

const LEN_BYTES: usize = 4;
const VERSION_BYTES: usize = 2;

/// Why a frame was refused. Any of these ends the connection (with this text as the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A frame longer than `FRAME_LEN_MAX` (refused from its length prefix, before buffering).
    Oversized { len: usize, max: usize },
    /// A frame shorter than its version field.
    TooShort { len: usize },
    /// The peer speaks another wire version.
    Version { got: u16, want: u16 },
    /// The body does not decode as the expected message, or has bytes left over.
    Malformed(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Oversized { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            WireError::TooShort { len } => {
                write!(f, "frame of {len} bytes is shorter than its version field")
            }
            WireError::Version { got, want } => {
                write!(f, "peer speaks wire version {got}, this node speaks {want}: upgrade one side")
            }
            WireError::Malformed(why) => write!(f, "malformed frame: {why}"),
        }
    }
}

impl std::error::Error for WireError {}

/// bincode, with a decode limit so a forged length inside a body cannot make us allocate more
/// than a frame may hold.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<FRAME_LEN_MAX>()
}

/// Appends `msg` as one frame to `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; LEN_BYTES]);
    out.extend_from_slice(&WIRE_VERSION.to_be_bytes());
    // Straight into `out`: no intermediate buffer per frame.
    if let Err(e) = bincode::serde::encode_into_std_write(msg, out, config()) {
        out.truncate(start);
        return Err(WireError::Malformed(e.to_string()));
    }
    let len = out.len() - start - LEN_BYTES;
    if len > FRAME_LEN_MAX {
        out.truncate(start);
        return Err(WireError::Oversized { len, max: FRAME_LEN_MAX });
    }
    let len = u32::try_from(len).expect("bounded by FRAME_LEN_MAX");
    out[start..start + LEN_BYTES].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Reassembles frames from bytes as they arrive.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Where the first byte not yet consumed is in `buf` (consumed bytes are dropped in bulk,
    /// not per frame).
    start: usize,
    /// Set once a frame was refused: the stream is unusable after that.
    failed: Option<WireError>,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame decoded as `T`; `Ok(None)` until enough bytes have arrived. After
    /// an error every call returns the same error (the connection is to be closed).
    pub fn next_frame<T: DeserializeOwned>(&mut self) -> Result<Option<T>, WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.take_frame();
        if let Err(e) = &result {
            self.failed = Some(e.clone());
            self.buf = Vec::new();
            self.start = 0;
        }
        let Some(range) = result? else { return Ok(None) };
        let body = &self.buf[range];
        let decoded = bincode::serde::decode_from_slice::<T, _>(body, config());
        let outcome = match decoded {
            Ok((msg, used)) if used == body.len() => Ok(Some(msg)),
            Ok((_, used)) => Err(WireError::Malformed(format!("{} bytes left over", body.len() - used))),
            Err(e) => Err(WireError::Malformed(e.to_string())),
        };
        if let Err(e) = &outcome {
            self.failed = Some(e.clone());
        }
        outcome
    }

    /// Consumes the next frame once it has fully arrived; returns where its body is in `buf`.
    fn take_frame(&mut self) -> Result<Option<std::ops::Range<usize>>, WireError> {
        let at = self.start;
        let pending = &self.buf[at..];
        let Some(prefix) = pending.get(..LEN_BYTES) else { return Ok(None) };
        let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
        if len > FRAME_LEN_MAX {
            return Err(WireError::Oversized { len, max: FRAME_LEN_MAX });
        }
        if len < VERSION_BYTES {
            return Err(WireError::TooShort { len });
        }
        if pending.len() >= LEN_BYTES + VERSION_BYTES {
            let version = u16::from_be_bytes([pending[LEN_BYTES], pending[LEN_BYTES + 1]]);
            if version != WIRE_VERSION {
                return Err(WireError::Version { got: version, want: WIRE_VERSION });
            }
        }
        if pending.len() < LEN_BYTES + len {
            return Ok(None);
        }
        self.start = at + LEN_BYTES + len;
        Ok(Some(at + LEN_BYTES + VERSION_BYTES..self.start))
    }

    /// Bytes received but not yet part of a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}
