//! Payloads of every frame kind: typed values, their encoders and their borrowed decoders.
//!
//! Layouts are in the [`crate::protocol`] module doc. Decoders check the exact length for the
//! kind and every enumerated or reserved field, so `decode(encode(p)) == p` and a decoded
//! payload re-encodes to the same bytes.

use super::frame::Kind;
use super::wire::{Full, Reader, Writer};
use crate::actuation::{ActuationState, Transition, TransitionCause};
use crate::features::{FeatureVector, FEATURE_COUNT};
use crate::ota::{OtaError, OtaStatus};
use crate::sampling::{Channel, Window, CHANNELS, WINDOW};
use core::fmt;

/// Features payload length.
pub const FEATURES_LEN: usize = 32 + 4 * FEATURE_COUNT;
/// Raw-window payload bytes before the samples.
pub const RAW_WINDOW_HEADER_LEN: usize = 32;
/// Stage-1 event payload length.
pub const STAGE1_EVENT_LEN: usize = 12;
/// OTA receipt payload length.
pub const OTA_RECEIPT_LEN: usize = 16;
/// Down receipt payload length.
pub const DOWN_RECEIPT_LEN: usize = 12;
/// Ack payload length.
pub const ACK_LEN: usize = 12;
/// Command payload length.
pub const COMMAND_LEN: usize = 8;
/// OTA begin (manifest) payload length.
pub const OTA_BEGIN_LEN: usize = 104;
/// OTA chunk payload bytes before the data.
pub const OTA_CHUNK_HEADER_LEN: usize = 4;
/// OTA commit payload length.
pub const OTA_COMMIT_LEN: usize = 4;
/// The largest payload: a raw window of [`WINDOW`] samples on every channel (16 416 bytes).
pub const MAX_PAYLOAD: usize = RAW_WINDOW_HEADER_LEN + 2 * CHANNELS * WINDOW;

/// Why a payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// The payload's length is not one its kind can have.
    Length {
        /// The frame kind.
        kind: Kind,
        /// The length given.
        got: usize,
    },
    /// A field holds a value its kind does not allow.
    BadField {
        /// The frame kind.
        kind: Kind,
        /// The field.
        field: &'static str,
    },
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { kind, got } => write!(f, "{kind:?} payload of {got} bytes has the wrong length"),
            Self::BadField { kind, field } => write!(f, "{kind:?} payload: bad {field}"),
            Self::BufferTooSmall => f.write_str("buffer too small for the payload"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PayloadError {}

impl From<Full> for PayloadError {
    fn from(_: Full) -> Self {
        PayloadError::BufferTooSmall
    }
}

/// The last down frame a mote accepted, as `(epoch, seq)`: down frames are accepted only in
/// increasing order of this pair (replay protection). Reported in every features frame so a
/// sender that lost its counter can start above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DownMark {
    /// The sender's epoch.
    pub epoch: u32,
    /// The sender's sequence number within the epoch.
    pub seq: u32,
}

/// A features frame: one report.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeaturesReport {
    /// Active model version; 0 when the mote has no model.
    pub model_version: u32,
    /// Stage-1 score; present exactly when a model is active.
    pub score: Option<f32>,
    /// Actuation state after this window.
    pub state: ActuationState,
    /// Clipped samples per channel in the window.
    pub clipped: [u16; CHANNELS],
    /// Frames dropped from the resend ring since the mote was provisioned.
    pub ring_dropped: u32,
    /// The last down frame the mote accepted.
    pub down_mark: DownMark,
    /// The feature vector ([`crate::features`]).
    pub features: FeatureVector,
}

/// A raw window: the samples the DSP filter needs (envelope and bearing bands).
#[derive(Clone, Copy, Debug)]
pub struct RawWindow<'a> {
    /// Sample rate, Hz.
    pub sample_rate_hz: u32,
    /// Physical units per count, per channel (finite, > 0).
    pub scale: [f32; CHANNELS],
    /// Clipped samples per channel.
    pub clipped: [u16; CHANNELS],
    samples: Samples<'a>,
}

#[derive(Clone, Copy, Debug)]
enum Samples<'a> {
    /// A window being encoded.
    Window(&'a Window),
    /// Decoded bytes: `n` samples per channel, channel-major, i16 little-endian.
    Le { n: usize, bytes: &'a [u8] },
}

impl<'a> RawWindow<'a> {
    /// The raw-window payload of `window`.
    pub fn of(window: &'a Window) -> Self {
        Self {
            sample_rate_hz: window.sample_rate_hz,
            scale: window.scale,
            clipped: window.clipped,
            samples: Samples::Window(window),
        }
    }

    /// Samples per channel.
    pub fn len(&self) -> usize {
        match self.samples {
            Samples::Window(_) => WINDOW,
            Samples::Le { n, .. } => n,
        }
    }

    /// True when there are no samples (never, for a decoded payload).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sample `i` of `ch` (a quantised count; multiply by `scale` for physical units), or
    /// `None` past the end.
    pub fn sample(&self, ch: Channel, i: usize) -> Option<i16> {
        match self.samples {
            Samples::Window(w) => w.samples[ch.index()].get(i).copied(),
            Samples::Le { n, bytes } => {
                if i >= n {
                    return None;
                }
                let at = 2 * (ch.index() * n + i);
                Some(i16::from_le_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
            }
        }
    }

    /// Copies the samples of `ch` into `out` and returns them: one pass over the bytes, for
    /// callers that read every sample (the per-sample [`RawWindow::sample`] checks bounds each time).
    pub fn read_channel<'o>(&self, ch: Channel, out: &'o mut [i16; WINDOW]) -> &'o [i16] {
        match self.samples {
            Samples::Window(w) => {
                out.copy_from_slice(&w.samples[ch.index()]);
                &out[..]
            }
            Samples::Le { n, bytes } => {
                let start = 2 * ch.index() * n;
                let channel = bytes.get(start..start + 2 * n).unwrap_or(&[]);
                let mut len = 0;
                for (d, b) in out.iter_mut().zip(channel.chunks_exact(2)) {
                    *d = i16::from_le_bytes([b[0], b[1]]);
                    len += 1;
                }
                &out[..len]
            }
        }
    }

    /// The samples of `ch`, in order.
    pub fn channel(&self, ch: Channel) -> impl Iterator<Item = i16> + '_ {
        (0..self.len()).filter_map(move |i| self.sample(ch, i))
    }

    /// The window again, when it has exactly [`WINDOW`] samples per channel.
    pub fn to_window(&self) -> Option<Window> {
        if self.len() != WINDOW {
            return None;
        }
        let mut w = Window::new(self.sample_rate_hz);
        w.scale = self.scale;
        w.clipped = self.clipped;
        for ch in Channel::ALL {
            for (d, s) in w.samples[ch.index()].iter_mut().zip(self.channel(ch)) {
                *d = s;
            }
        }
        Some(w)
    }
}

impl PartialEq for RawWindow<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.sample_rate_hz == other.sample_rate_hz
            && self.scale == other.scale
            && self.clipped == other.clipped
            && self.len() == other.len()
            && Channel::ALL.iter().all(|&ch| self.channel(ch).eq(other.channel(ch)))
    }
}

/// A stage-1 event: the actuation state changed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage1Event {
    /// The transition.
    pub transition: Transition,
    /// The model version active then (0: none).
    pub model_version: u32,
}

/// An OTA receipt: what the mote's OTA receiver did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtaReceipt {
    /// What happened.
    pub status: OtaStatus,
    /// The image it is about (for a rollback, the version rolled back from).
    pub model_version: u32,
    /// The model active now (0: none).
    pub active_version: u32,
    /// Image bytes received so far in the current transfer.
    pub received: u32,
}

/// A down receipt: the mote accepted the down frame `mark` (of `kind`) and applied it. Sent
/// at once for every accepted command and OTA frame (never for an ack, which has no mark, nor
/// for a refused frame: a replay must not make a mote talk), so a sender learns of a delivery
/// without waiting for the next features report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DownReceipt {
    /// The accepted frame's kind: a down kind other than [`Kind::Ack`].
    pub kind: Kind,
    /// The accepted frame's `(epoch, seq)`: the mote's down mark from then on.
    pub mark: DownMark,
}

/// An acknowledgement: the cluster holds these frames durably; the mote may forget them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The boot epoch the frames were sent in.
    pub boot_epoch: u32,
    /// First acknowledged sequence number.
    pub first_seq: u32,
    /// Last acknowledged sequence number (inclusive, `>= first_seq`).
    pub last_seq: u32,
}

/// A command to a mote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Report every this many seconds (at least 1).
    SetReportInterval {
        /// Seconds.
        seconds: u32,
    },
    /// Send the raw window every this many reports (0: only when stage 1 fires or on request).
    SetRawEvery {
        /// Reports.
        reports: u32,
    },
    /// Leave a latched Trip.
    ResetTrip,
    /// Send the next window raw, at once.
    RequestRaw,
}

/// An OTA manifest: what image follows and its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OtaManifest {
    /// The model version inside the image.
    pub model_version: u32,
    /// Image size, bytes.
    pub size: u32,
    /// SHA-256 of the image.
    pub sha256: [u8; 32],
    /// ed25519 signature over [`crate::ota::signed_message`].
    pub signature: [u8; 64],
}

/// A piece of an OTA image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OtaChunk<'a> {
    /// Where the bytes go in the image.
    pub offset: u32,
    /// The bytes.
    pub data: &'a [u8],
}

/// The end of an OTA transfer: verify and activate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OtaCommit {
    /// Must match the manifest.
    pub model_version: u32,
}

/// A decoded (or to-be-encoded) payload of any kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Payload<'a> {
    /// Up: a report.
    Features(FeaturesReport),
    /// Up: raw samples.
    RawWindow(RawWindow<'a>),
    /// Up: an actuation transition.
    Stage1Event(Stage1Event),
    /// Up: an OTA outcome.
    OtaReceipt(OtaReceipt),
    /// Up: a down frame accepted.
    DownReceipt(DownReceipt),
    /// Down: acknowledgement.
    Ack(Ack),
    /// Down: a command.
    Command(Command),
    /// Down: start of an OTA transfer.
    OtaBegin(OtaManifest),
    /// Down: OTA image bytes.
    OtaChunk(OtaChunk<'a>),
    /// Down: end of an OTA transfer.
    OtaCommit(OtaCommit),
}

fn bad(kind: Kind, field: &'static str) -> PayloadError {
    PayloadError::BadField { kind, field }
}

impl<'a> Payload<'a> {
    /// The frame kind that carries this payload.
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Features(_) => Kind::Features,
            Payload::RawWindow(_) => Kind::RawWindow,
            Payload::Stage1Event(_) => Kind::Stage1Event,
            Payload::OtaReceipt(_) => Kind::OtaReceipt,
            Payload::DownReceipt(_) => Kind::DownReceipt,
            Payload::Ack(_) => Kind::Ack,
            Payload::Command(_) => Kind::Command,
            Payload::OtaBegin(_) => Kind::OtaBegin,
            Payload::OtaChunk(_) => Kind::OtaChunk,
            Payload::OtaCommit(_) => Kind::OtaCommit,
        }
    }

    /// The encoded length, bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Payload::Features(_) => FEATURES_LEN,
            Payload::RawWindow(r) => RAW_WINDOW_HEADER_LEN + 2 * CHANNELS * r.len(),
            Payload::Stage1Event(_) => STAGE1_EVENT_LEN,
            Payload::OtaReceipt(_) => OTA_RECEIPT_LEN,
            Payload::DownReceipt(_) => DOWN_RECEIPT_LEN,
            Payload::Ack(_) => ACK_LEN,
            Payload::Command(_) => COMMAND_LEN,
            Payload::OtaBegin(_) => OTA_BEGIN_LEN,
            Payload::OtaChunk(c) => OTA_CHUNK_HEADER_LEN + c.data.len(),
            Payload::OtaCommit(_) => OTA_COMMIT_LEN,
        }
    }

    /// Encodes into `out`; returns the length written. Values the decoder would refuse are
    /// refused here too.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, PayloadError> {
        let kind = self.kind();
        if out.len() < self.encoded_len() {
            return Err(PayloadError::BufferTooSmall);
        }
        let mut w = Writer::new(out);
        match self {
            Payload::Features(r) => {
                if r.score.is_some() != (r.model_version != 0) || !r.score.unwrap_or(0.0).is_finite() {
                    return Err(bad(kind, "score"));
                }
                w.u32(r.model_version)?;
                w.f32(r.score.unwrap_or(0.0))?;
                w.u8(r.state as u8)?;
                w.u8(u8::from(r.score.is_some()))?;
                w.u8(FEATURE_COUNT as u8)?;
                w.u8(0)?;
                for c in r.clipped {
                    w.u16(c)?;
                }
                w.u32(r.ring_dropped)?;
                w.u32(r.down_mark.epoch)?;
                w.u32(r.down_mark.seq)?;
                for f in r.features {
                    w.f32(f)?;
                }
            }
            Payload::RawWindow(r) => {
                if r.is_empty() || r.len() > WINDOW {
                    return Err(bad(kind, "n"));
                }
                if !r.scale.iter().all(|s| s.is_finite() && *s > 0.0) {
                    return Err(bad(kind, "scale"));
                }
                w.u32(r.sample_rate_hz)?;
                w.u32(r.len() as u32)?;
                for s in r.scale {
                    w.f32(s)?;
                }
                for c in r.clipped {
                    w.u16(c)?;
                }
                for ch in Channel::ALL {
                    for s in r.channel(ch) {
                        w.i16(s)?;
                    }
                }
            }
            Payload::Stage1Event(e) => {
                if !e.transition.score.is_finite() {
                    return Err(bad(kind, "score"));
                }
                w.u8(e.transition.from as u8)?;
                w.u8(e.transition.to as u8)?;
                w.u8(e.transition.cause as u8)?;
                w.u8(0)?;
                w.f32(e.transition.score)?;
                w.u32(e.model_version)?;
            }
            Payload::OtaReceipt(r) => {
                let (status, error) = r.status.codes();
                w.u8(status)?;
                w.u8(error)?;
                w.u16(0)?;
                w.u32(r.model_version)?;
                w.u32(r.active_version)?;
                w.u32(r.received)?;
            }
            Payload::DownReceipt(r) => {
                if !r.kind.is_receipted() {
                    return Err(bad(kind, "kind"));
                }
                w.u8(r.kind as u8)?;
                w.bytes(&[0; 3])?;
                w.u32(r.mark.epoch)?;
                w.u32(r.mark.seq)?;
            }
            Payload::Ack(a) => {
                if a.first_seq > a.last_seq {
                    return Err(bad(kind, "seq range"));
                }
                w.u32(a.boot_epoch)?;
                w.u32(a.first_seq)?;
                w.u32(a.last_seq)?;
            }
            Payload::Command(c) => {
                let (tag, arg) = match *c {
                    Command::SetReportInterval { seconds } => {
                        if seconds == 0 {
                            return Err(bad(kind, "interval"));
                        }
                        (1, seconds)
                    }
                    Command::SetRawEvery { reports } => (2, reports),
                    Command::ResetTrip => (3, 0),
                    Command::RequestRaw => (4, 0),
                };
                w.u8(tag)?;
                w.bytes(&[0; 3])?;
                w.u32(arg)?;
            }
            Payload::OtaBegin(m) => {
                w.u32(m.model_version)?;
                w.u32(m.size)?;
                w.bytes(&m.sha256)?;
                w.bytes(&m.signature)?;
            }
            Payload::OtaChunk(c) => {
                w.u32(c.offset)?;
                w.bytes(c.data)?;
            }
            Payload::OtaCommit(c) => w.u32(c.model_version)?,
        }
        Ok(w.len())
    }

    /// Decodes the payload of a frame of `kind`, borrowing from `bytes`.
    pub fn decode(kind: Kind, bytes: &'a [u8]) -> Result<Payload<'a>, PayloadError> {
        let len_err = PayloadError::Length { kind, got: bytes.len() };
        let fixed = |n: usize| if bytes.len() == n { Ok(()) } else { Err(len_err) };
        let mut r = Reader::new(bytes);
        // A read past the end is a length error.
        macro_rules! get {
            ($e:expr) => {
                $e.ok_or(len_err)?
            };
        }
        let p = match kind {
            Kind::Features => {
                fixed(FEATURES_LEN)?;
                let model_version = get!(r.u32());
                let score = get!(r.f32());
                let state = ActuationState::from_code(get!(r.u8())).ok_or(bad(kind, "state"))?;
                let has_score = get!(r.u8());
                let consistent = match has_score {
                    0 => model_version == 0 && score.to_bits() == 0,
                    1 => model_version != 0 && score.is_finite(),
                    _ => false,
                };
                if !consistent {
                    return Err(bad(kind, "score"));
                }
                if usize::from(get!(r.u8())) != FEATURE_COUNT {
                    return Err(bad(kind, "n_features"));
                }
                if get!(r.u8()) != 0 {
                    return Err(bad(kind, "reserved"));
                }
                let mut clipped = [0u16; CHANNELS];
                for c in &mut clipped {
                    *c = get!(r.u16());
                }
                let ring_dropped = get!(r.u32());
                let down_mark = DownMark { epoch: get!(r.u32()), seq: get!(r.u32()) };
                let mut features = [0f32; FEATURE_COUNT];
                for f in &mut features {
                    *f = get!(r.f32());
                }
                Payload::Features(FeaturesReport {
                    model_version,
                    score: (has_score == 1).then_some(score),
                    state,
                    clipped,
                    ring_dropped,
                    down_mark,
                    features,
                })
            }
            Kind::RawWindow => {
                let sample_rate_hz = get!(r.u32());
                let n = get!(r.u32()) as usize;
                if n == 0 || n > WINDOW {
                    return Err(bad(kind, "n"));
                }
                fixed(RAW_WINDOW_HEADER_LEN + 2 * CHANNELS * n)?;
                let mut scale = [0f32; CHANNELS];
                for s in &mut scale {
                    *s = get!(r.f32());
                    if !(s.is_finite() && *s > 0.0) {
                        return Err(bad(kind, "scale"));
                    }
                }
                let mut clipped = [0u16; CHANNELS];
                for c in &mut clipped {
                    *c = get!(r.u16());
                }
                Payload::RawWindow(RawWindow {
                    sample_rate_hz,
                    scale,
                    clipped,
                    samples: Samples::Le { n, bytes: r.rest() },
                })
            }
            Kind::Stage1Event => {
                fixed(STAGE1_EVENT_LEN)?;
                let from = ActuationState::from_code(get!(r.u8())).ok_or(bad(kind, "from"))?;
                let to = ActuationState::from_code(get!(r.u8())).ok_or(bad(kind, "to"))?;
                let cause = TransitionCause::from_code(get!(r.u8())).ok_or(bad(kind, "cause"))?;
                if get!(r.u8()) != 0 {
                    return Err(bad(kind, "reserved"));
                }
                let score = get!(r.f32());
                if !score.is_finite() {
                    return Err(bad(kind, "score"));
                }
                let model_version = get!(r.u32());
                Payload::Stage1Event(Stage1Event {
                    transition: Transition { from, to, score, cause },
                    model_version,
                })
            }
            Kind::OtaReceipt => {
                fixed(OTA_RECEIPT_LEN)?;
                let status = OtaStatus::from_codes(get!(r.u8()), get!(r.u8())).ok_or(bad(kind, "status"))?;
                if get!(r.u16()) != 0 {
                    return Err(bad(kind, "reserved"));
                }
                Payload::OtaReceipt(OtaReceipt {
                    status,
                    model_version: get!(r.u32()),
                    active_version: get!(r.u32()),
                    received: get!(r.u32()),
                })
            }
            Kind::DownReceipt => {
                fixed(DOWN_RECEIPT_LEN)?;
                let accepted =
                    Kind::from_code(get!(r.u8())).filter(|k| k.is_receipted()).ok_or(bad(kind, "kind"))?;
                if get!(r.array::<3>()) != [0; 3] {
                    return Err(bad(kind, "reserved"));
                }
                let mark = DownMark { epoch: get!(r.u32()), seq: get!(r.u32()) };
                Payload::DownReceipt(DownReceipt { kind: accepted, mark })
            }
            Kind::Ack => {
                fixed(ACK_LEN)?;
                let a = Ack { boot_epoch: get!(r.u32()), first_seq: get!(r.u32()), last_seq: get!(r.u32()) };
                if a.first_seq > a.last_seq {
                    return Err(bad(kind, "seq range"));
                }
                Payload::Ack(a)
            }
            Kind::Command => {
                fixed(COMMAND_LEN)?;
                let tag = get!(r.u8());
                if get!(r.array::<3>()) != [0; 3] {
                    return Err(bad(kind, "reserved"));
                }
                let arg = get!(r.u32());
                let c = match (tag, arg) {
                    (1, seconds) if seconds > 0 => Command::SetReportInterval { seconds },
                    (2, reports) => Command::SetRawEvery { reports },
                    (3, 0) => Command::ResetTrip,
                    (4, 0) => Command::RequestRaw,
                    (1 | 3 | 4, _) => return Err(bad(kind, "argument")),
                    _ => return Err(bad(kind, "command")),
                };
                Payload::Command(c)
            }
            Kind::OtaBegin => {
                fixed(OTA_BEGIN_LEN)?;
                Payload::OtaBegin(OtaManifest {
                    model_version: get!(r.u32()),
                    size: get!(r.u32()),
                    sha256: get!(r.array()),
                    signature: get!(r.array()),
                })
            }
            Kind::OtaChunk => {
                let offset = get!(r.u32());
                Payload::OtaChunk(OtaChunk { offset, data: r.rest() })
            }
            Kind::OtaCommit => {
                fixed(OTA_COMMIT_LEN)?;
                Payload::OtaCommit(OtaCommit { model_version: get!(r.u32()) })
            }
        };
        Ok(p)
    }
}

impl OtaStatus {
    fn codes(self) -> (u8, u8) {
        match self {
            OtaStatus::Receiving => (1, 0),
            OtaStatus::Activated => (2, 0),
            OtaStatus::Confirmed => (3, 0),
            OtaStatus::RolledBack => (4, 0),
            OtaStatus::Refused(e) => (5, e as u8),
        }
    }

    fn from_codes(status: u8, error: u8) -> Option<Self> {
        Some(match (status, error) {
            (1, 0) => OtaStatus::Receiving,
            (2, 0) => OtaStatus::Activated,
            (3, 0) => OtaStatus::Confirmed,
            (4, 0) => OtaStatus::RolledBack,
            (5, e) => OtaStatus::Refused(OtaError::from_code(e)?),
            _ => return None,
        })
    }
}
