//! The mote, sans-IO: windows and down frames in, frames out, time passed in.
//!
//! State is split the way a microcontroller splits it. [`Persistent`] is flash: boot epoch, the
//! resend ring, the OTA slots, the last accepted down frame, the commanded report settings, and
//! a latched trip. The host keeps it across reboots ([`Mote::into_persistent`], then
//! [`Mote::boot`]; or [`Mote::reboot`] in place). Everything else (sequence number, actuation run
//! lengths, duty-cycle position, counters) is RAM and starts over at each boot.
//!
//! Boot: the epoch increments; a model still on trial is rolled back (a receipt goes out with
//! the next window); the active model is loaded; a latched trip is restored; every kept frame
//! becomes due for resending.
//!
//! [`Mote::on_window`]: features, score (when a model is active), actuation rule, trial
//! confirmation, then the frames the duty cycle calls for, in this order: pending OTA receipt,
//! stage-1 event, features, raw window. Every frame goes into the resend ring as it goes out.
//!
//! [`Mote::on_down`]: structure and CRC, then "is a down kind", "is for this mote", MAC under
//! this mote's key, payload, replay (`(epoch, seq)` above the last accepted; acks are exempt,
//! since they only name frames already stored, and leave the mark alone); only then is it
//! applied: acks remove frames from the ring; every other accepted frame is answered at once
//! by a down receipt naming its `(epoch, seq)`, then commands apply (a trip reset sends its
//! stage-1 event at once) and OTA frames drive the receiver (OTA receipts for a begin, a
//! commit, and every refusal). Each refusal is counted by cause.
//!
//! [`Mote::resend`]: kept frames not sent for `resend_after_ms`, oldest first, a batch at a
//! time. The host calls it whenever it is awake and connected, and tells the core when it
//! connects ([`Mote::on_connected`]): every kept frame is then due at once.

use crate::actuation::{ActuationConfig, ActuationState, Actuator, Transition};
use crate::duty::{DutyCycle, DEFAULT_RAW_EVERY, DEFAULT_REPORT_INTERVAL_MS};
use crate::features::{extract, FeatureVector};
use crate::model::Model;
use crate::ota::{OtaError, OtaStatus, OtaStore};
use crate::protocol::{
    decode_frame, encode_frame, Ack, Command, DownMark, DownReceipt, Envelope, FeaturesReport, FrameError,
    Kind, MoteId, MoteKey, OtaChunk, OtaCommit, OtaManifest, OtaReceipt, Payload, PayloadError, RawWindow,
    Stage1Event, MAX_FRAME,
};
use crate::resend::{ResendRing, RingStats};
use crate::sampling::Window;
use core::fmt;

/// Provisioned identity and tunables.
#[derive(Clone, Debug)]
pub struct MoteConfig {
    /// The mote's id.
    pub id: MoteId,
    /// Its HMAC key (shared with the cluster).
    pub key: MoteKey,
    /// The model-signing ed25519 public key.
    pub model_signing_key: [u8; 32],
    /// The actuation rule.
    pub actuation: ActuationConfig,
    /// A kept frame is resent when it has not been sent for this long (default 30 s).
    pub resend_after_ms: u64,
    /// At most this many frames per [`Mote::resend`] call (default 16).
    pub resend_batch: usize,
    /// Windows scored by a new model before the core confirms it (default 3).
    pub confirm_after_windows: u32,
}

impl MoteConfig {
    /// A configuration with the defaults.
    pub fn new(id: MoteId, key: MoteKey, model_signing_key: [u8; 32]) -> Self {
        Self {
            id,
            key,
            model_signing_key,
            actuation: ActuationConfig::default(),
            resend_after_ms: 30_000,
            resend_batch: 16,
            confirm_after_windows: 3,
        }
    }
}

/// What survives a reboot ("flash").
#[derive(Clone, Debug)]
pub struct Persistent<const FRAMES: usize = 256, const ARENA: usize = 131_072> {
    boot_epoch: u32,
    down_mark: DownMark,
    report_interval_ms: u64,
    raw_every: u32,
    tripped: bool,
    ring: ResendRing<FRAMES, ARENA>,
    ota: OtaStore,
}

impl<const FRAMES: usize, const ARENA: usize> Default for Persistent<FRAMES, ARENA> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const FRAMES: usize, const ARENA: usize> Persistent<FRAMES, ARENA> {
    /// Freshly provisioned flash: epoch 0 (the first boot makes it 1), default report settings,
    /// empty ring, no model.
    pub fn new() -> Self {
        Self {
            boot_epoch: 0,
            down_mark: DownMark::default(),
            report_interval_ms: DEFAULT_REPORT_INTERVAL_MS,
            raw_every: DEFAULT_RAW_EVERY,
            tripped: false,
            ring: ResendRing::new(),
            ota: OtaStore::new(),
        }
    }

    /// Freshly provisioned flash with other report settings: a report every
    /// `report_interval_ms`, a raw window every `raw_every`-th (what `SetReportInterval` and
    /// `SetRawEvery` would set later).
    pub fn with_cadence(mut self, report_interval_ms: u64, raw_every: u32) -> Self {
        self.report_interval_ms = report_interval_ms;
        self.raw_every = raw_every;
        self
    }

    /// Factory flashing of the first model (see [`OtaStore::flash`]: signature and all checked).
    pub fn flash_model(
        &mut self,
        manifest: &OtaManifest,
        image: &[u8],
        public_key: &[u8; 32],
    ) -> Result<u32, OtaError> {
        self.ota.flash(manifest, image, public_key).map(|m| m.version)
    }

    /// The boot epoch.
    pub fn boot_epoch(&self) -> u32 {
        self.boot_epoch
    }

    /// The resend ring.
    pub fn ring(&self) -> &ResendRing<FRAMES, ARENA> {
        &self.ring
    }

    /// The OTA slots.
    pub fn ota(&self) -> &OtaStore {
        &self.ota
    }

    /// The last accepted down frame.
    pub fn down_mark(&self) -> DownMark {
        self.down_mark
    }
}

/// Counters since boot (the ring's drop counters persist).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    /// Windows processed.
    pub windows: u64,
    /// Frames sent for the first time.
    pub frames_sent: u64,
    /// Frames resent.
    pub frames_resent: u64,
    /// Frames the mote could not encode (a host-built window with invalid scales).
    pub frames_unencodable: u64,
    /// Down frames accepted.
    pub down_accepted: u64,
    /// Down frames with a bad CRC.
    pub down_bad_crc: u64,
    /// Down frames with a bad MAC.
    pub down_bad_mac: u64,
    /// Down frames for another mote.
    pub down_wrong_mote: u64,
    /// Down frames at or below the last accepted `(epoch, seq)`.
    pub down_replayed: u64,
    /// Other refused down frames: short, bad version, length, kind, flags, up kinds, payload.
    pub down_malformed: u64,
    /// OTA refusals.
    pub ota_refused: u64,
    /// The resend ring's drops (since provisioning).
    pub ring: RingStats,
}

/// Why a down frame was refused (nothing was applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownError {
    /// Structure, CRC or MAC.
    Frame(FrameError),
    /// An up kind.
    NotDown(Kind),
    /// Addressed to another mote.
    WrongMote(MoteId),
    /// `(epoch, seq)` not above the last accepted pair.
    Replayed(DownMark),
    /// Authentic, but the payload is malformed.
    Payload(PayloadError),
}

impl fmt::Display for DownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => write!(f, "down frame refused: {e}"),
            Self::NotDown(k) => write!(f, "down frame refused: {k:?} is an up kind"),
            Self::WrongMote(m) => write!(f, "down frame refused: addressed to {m}"),
            Self::Replayed(m) => write!(f, "down frame refused: ({}, {}) already seen", m.epoch, m.seq),
            Self::Payload(e) => write!(f, "down frame refused: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DownError {}

/// What an accepted down frame did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownApplied {
    /// An ack removed this many frames from the ring.
    Ack {
        /// Frames removed.
        removed: usize,
    },
    /// A command was applied.
    Command(Command),
    /// An OTA frame: what the receiver did (`Receiving` also for a stored chunk).
    Ota(OtaStatus),
}

/// What a window did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowOutcome {
    /// The feature vector.
    pub features: FeatureVector,
    /// The stage-1 score (`None` without a model).
    pub score: Option<f32>,
    /// Actuation state after the window.
    pub state: ActuationState,
    /// The transition, if the state changed.
    pub transition: Option<Transition>,
    /// Frames handed out.
    pub frames: usize,
}

/// A verified down payload.
enum Down<'a> {
    Ack(Ack),
    Command(Command),
    OtaBegin(OtaManifest),
    OtaChunk(OtaChunk<'a>),
    OtaCommit(OtaCommit),
}

impl Down<'_> {
    fn kind(&self) -> Kind {
        match self {
            Down::Ack(_) => Kind::Ack,
            Down::Command(_) => Kind::Command,
            Down::OtaBegin(_) => Kind::OtaBegin,
            Down::OtaChunk(_) => Kind::OtaChunk,
            Down::OtaCommit(_) => Kind::OtaCommit,
        }
    }
}

/// The mote core.
pub struct Mote<const FRAMES: usize = 256, const ARENA: usize = 131_072> {
    config: MoteConfig,
    p: Persistent<FRAMES, ARENA>,
    model: Option<Model>,
    actuator: Actuator,
    duty: DutyCycle,
    seq: u32,
    counters: Counters,
    pending_receipt: Option<OtaReceipt>,
    frame: [u8; MAX_FRAME],
}

impl<const FRAMES: usize, const ARENA: usize> Mote<FRAMES, ARENA> {
    /// Boots a mote from its flash.
    pub fn boot(config: MoteConfig, persistent: Persistent<FRAMES, ARENA>) -> Self {
        let mut m = Self {
            actuator: Actuator::new(config.actuation, ActuationState::Normal),
            config,
            p: persistent,
            model: None,
            duty: DutyCycle::new(0, 0),
            seq: 0,
            counters: Counters::default(),
            pending_receipt: None,
            frame: [0; MAX_FRAME],
        };
        m.start();
        m
    }

    /// A power cycle in place: RAM state is lost, flash is kept, and the mote boots.
    pub fn reboot(&mut self) {
        self.start();
    }

    fn start(&mut self) {
        self.p.boot_epoch = self.p.boot_epoch.wrapping_add(1);
        self.seq = 0;
        self.counters = Counters::default();
        self.p.ring.make_all_due();
        self.pending_receipt = self.p.ota.boot().map(|from| OtaReceipt {
            status: OtaStatus::RolledBack,
            model_version: from,
            active_version: self.p.ota.active_version(),
            received: 0,
        });
        self.model = self.p.ota.active_model();
        let state = if self.p.tripped { ActuationState::Trip } else { ActuationState::Normal };
        self.actuator = Actuator::new(self.config.actuation, state);
        self.duty = DutyCycle::new(self.p.report_interval_ms, self.p.raw_every);
    }

    /// The flash, for the host to keep across a power cut.
    pub fn into_persistent(self) -> Persistent<FRAMES, ARENA> {
        self.p
    }

    /// The flash, read-only.
    pub fn persistent(&self) -> &Persistent<FRAMES, ARENA> {
        &self.p
    }

    /// The configuration.
    pub fn config(&self) -> &MoteConfig {
        &self.config
    }

    /// The actuation state the motor must follow.
    pub fn state(&self) -> ActuationState {
        self.actuator.state()
    }

    /// The active model's version (0: none).
    pub fn model_version(&self) -> u32 {
        self.model.map_or(0, |m| m.version)
    }

    /// The current boot epoch.
    pub fn boot_epoch(&self) -> u32 {
        self.p.boot_epoch
    }

    /// When the next report is due (a sleeping host wakes then).
    pub fn next_report_ms(&self) -> u64 {
        self.duty.next_report_ms()
    }

    /// The current report interval, ms.
    pub fn report_interval_ms(&self) -> u64 {
        self.duty.report_interval_ms()
    }

    /// The current raw-window cadence, reports.
    pub fn raw_every(&self) -> u32 {
        self.duty.raw_every()
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        Counters { ring: self.p.ring.stats(), ..self.counters }
    }

    /// Encodes, hands out and keeps one frame.
    fn emit(&mut self, now_ms: u64, payload: &Payload<'_>, out: &mut impl FnMut(&[u8])) {
        let env = Envelope {
            mote: self.config.id,
            boot_epoch: self.p.boot_epoch,
            seq: self.seq,
            capture_ms: now_ms,
        };
        let Ok(n) = encode_frame(&env, payload, &self.config.key, &mut self.frame) else {
            self.counters.frames_unencodable += 1;
            return;
        };
        let bytes = &self.frame[..n];
        out(bytes);
        self.counters.frames_sent += 1;
        self.p.ring.push(env.boot_epoch, env.seq, bytes, now_ms);
        if self.seq == u32::MAX {
            // Sequence numbers are exhausted: continue in a fresh epoch, as after a boot.
            self.p.boot_epoch = self.p.boot_epoch.wrapping_add(1);
            self.seq = 0;
        } else {
            self.seq += 1;
        }
    }

    fn emit_receipt(
        &mut self,
        now_ms: u64,
        status: OtaStatus,
        model_version: u32,
        out: &mut impl FnMut(&[u8]),
    ) {
        if let OtaStatus::Refused(_) = status {
            self.counters.ota_refused += 1;
        }
        let receipt = OtaReceipt {
            status,
            model_version,
            active_version: self.p.ota.active_version(),
            received: self.p.ota.received(),
        };
        self.emit(now_ms, &Payload::OtaReceipt(receipt), out);
    }

    fn emit_event(&mut self, now_ms: u64, transition: Transition, out: &mut impl FnMut(&[u8])) {
        let event = Stage1Event { transition, model_version: self.model_version() };
        self.emit(now_ms, &Payload::Stage1Event(event), out);
    }

    /// Processes one captured window (see the module doc); frames go to `out`.
    pub fn on_window(&mut self, now_ms: u64, window: &Window, out: &mut impl FnMut(&[u8])) -> WindowOutcome {
        self.counters.windows += 1;
        let sent_before = self.counters.frames_sent;
        let features = extract(window);
        let scored = self.model.map(|m| (m, m.score(&features)));
        let mut transition = None;
        let mut confirmed = None;
        if let Some((m, score)) = scored {
            transition = self.actuator.on_score(score, m.threshold);
            if self.p.ota.on_good_window(self.config.confirm_after_windows) {
                confirmed = Some(m.version);
            }
        }
        self.p.tripped = self.actuator.state() == ActuationState::Trip;
        let fired = transition.is_some_and(|t| t.to != ActuationState::Normal);
        let plan = self.duty.plan(now_ms, fired);

        if let Some(r) = self.pending_receipt.take() {
            self.emit(now_ms, &Payload::OtaReceipt(r), out);
        }
        if let Some(version) = confirmed {
            self.emit_receipt(now_ms, OtaStatus::Confirmed, version, out);
        }
        if let Some(t) = transition {
            self.emit_event(now_ms, t, out);
        }
        if plan.features {
            let report = FeaturesReport {
                model_version: self.model_version(),
                score: scored.map(|(_, s)| s),
                state: self.actuator.state(),
                clipped: window.clipped,
                ring_dropped: self.p.ring.stats().total() as u32,
                down_mark: self.p.down_mark,
                features,
            };
            self.emit(now_ms, &Payload::Features(report), out);
        }
        if plan.raw {
            self.emit(now_ms, &Payload::RawWindow(RawWindow::of(window)), out);
        }
        WindowOutcome {
            features,
            score: scored.map(|(_, s)| s),
            state: self.actuator.state(),
            transition,
            frames: (self.counters.frames_sent - sent_before) as usize,
        }
    }

    /// Verifies and applies one down frame (see the module doc); frames it causes go to `out`.
    pub fn on_down(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        out: &mut impl FnMut(&[u8]),
    ) -> Result<DownApplied, DownError> {
        let payload = match self.check_down(bytes) {
            Ok(p) => p,
            Err(e) => {
                let c = &mut self.counters;
                match e {
                    DownError::Frame(FrameError::BadCrc) => c.down_bad_crc += 1,
                    DownError::Frame(FrameError::BadMac) => c.down_bad_mac += 1,
                    DownError::WrongMote(_) => c.down_wrong_mote += 1,
                    DownError::Replayed(_) => c.down_replayed += 1,
                    _ => c.down_malformed += 1,
                }
                return Err(e);
            }
        };
        self.counters.down_accepted += 1;
        if payload.kind() != Kind::Ack {
            // `check_down` moved the mark to this frame's pair.
            let receipt = DownReceipt { kind: payload.kind(), mark: self.p.down_mark };
            self.emit(now_ms, &Payload::DownReceipt(receipt), out);
        }
        Ok(self.apply(payload, now_ms, out))
    }

    /// Every check before a down frame may act; advances the down mark.
    fn check_down<'a>(&mut self, bytes: &'a [u8]) -> Result<Down<'a>, DownError> {
        let frame = decode_frame(bytes).map_err(DownError::Frame)?;
        if !frame.kind.is_down() {
            return Err(DownError::NotDown(frame.kind));
        }
        if frame.envelope.mote != self.config.id {
            return Err(DownError::WrongMote(frame.envelope.mote));
        }
        let frame = frame.verify(&self.config.key).map_err(DownError::Frame)?;
        let mark = DownMark { epoch: frame.envelope.boot_epoch, seq: frame.envelope.seq };
        let payload = frame.decode_payload().map_err(DownError::Payload)?;
        // An ack is exempt from replay protection and leaves the mark alone: it names frames by
        // (epoch, seq), unique over the mote's life, and the cluster acks only frames it stored,
        // so a replayed ack can only remove frames that are already safe. Exempting acks lets
        // a gateway that lost its counter (a failover) acknowledge at once.
        if let Payload::Ack(a) = payload {
            return Ok(Down::Ack(a));
        }
        if mark <= self.p.down_mark {
            return Err(DownError::Replayed(self.p.down_mark));
        }
        let down = match payload {
            Payload::Ack(a) => Down::Ack(a),
            Payload::Command(c) => Down::Command(c),
            Payload::OtaBegin(m) => Down::OtaBegin(m),
            Payload::OtaChunk(c) => Down::OtaChunk(c),
            Payload::OtaCommit(c) => Down::OtaCommit(c),
            up => return Err(DownError::NotDown(up.kind())),
        };
        self.p.down_mark = mark;
        Ok(down)
    }

    fn apply(&mut self, down: Down<'_>, now_ms: u64, out: &mut impl FnMut(&[u8])) -> DownApplied {
        match down {
            Down::Ack(a) => {
                DownApplied::Ack { removed: self.p.ring.ack(a.boot_epoch, a.first_seq, a.last_seq) }
            }
            Down::Command(c) => {
                match c {
                    Command::SetReportInterval { seconds } => {
                        let ms = u64::from(seconds) * 1000;
                        self.duty.set_report_interval_ms(ms);
                        self.p.report_interval_ms = ms;
                    }
                    Command::SetRawEvery { reports } => {
                        self.duty.set_raw_every(reports);
                        self.p.raw_every = reports;
                    }
                    Command::ResetTrip => {
                        if let Some(t) = self.actuator.reset() {
                            self.p.tripped = false;
                            self.emit_event(now_ms, t, out);
                        }
                    }
                    Command::RequestRaw => self.duty.request_raw(),
                }
                DownApplied::Command(c)
            }
            Down::OtaBegin(m) => {
                let status = self.p.ota.begin(&m).map_or_else(OtaStatus::Refused, |()| OtaStatus::Receiving);
                self.emit_receipt(now_ms, status, m.model_version, out);
                DownApplied::Ota(status)
            }
            Down::OtaChunk(c) => {
                let version = self.p.ota.receiving_version();
                match self.p.ota.chunk(c.offset, c.data) {
                    Ok(()) => DownApplied::Ota(OtaStatus::Receiving),
                    Err(e) => self.ota_refused(now_ms, e, version, out),
                }
            }
            Down::OtaCommit(c) => match self.p.ota.commit(c.model_version, &self.config.model_signing_key) {
                Ok(model) => {
                    self.model = Some(model);
                    self.emit_receipt(now_ms, OtaStatus::Activated, model.version, out);
                    DownApplied::Ota(OtaStatus::Activated)
                }
                Err(e) => self.ota_refused(now_ms, e, c.model_version, out),
            },
        }
    }

    fn ota_refused(
        &mut self,
        now_ms: u64,
        e: OtaError,
        version: u32,
        out: &mut impl FnMut(&[u8]),
    ) -> DownApplied {
        self.emit_receipt(now_ms, OtaStatus::Refused(e), version, out);
        DownApplied::Ota(OtaStatus::Refused(e))
    }

    /// The host connected (again): every kept frame is due for resending at once, since what
    /// went out while disconnected, or on the connection that ended, may never have arrived.
    pub fn on_connected(&mut self) {
        self.p.ring.make_all_due();
    }

    /// When `resend` next has a frame to hand out (mote clock, ms; 0: now), or None when no
    /// frame is kept.
    pub fn next_resend_ms(&self) -> Option<u64> {
        self.p.ring.next_due_ms(self.config.resend_after_ms)
    }

    /// Hands out kept frames that are due for resending (see the module doc); returns how many.
    pub fn resend(&mut self, now_ms: u64, out: &mut impl FnMut(&[u8])) -> usize {
        let n = self.p.ring.resend_due(now_ms, self.config.resend_after_ms, self.config.resend_batch, out);
        self.counters.frames_resent += n as u64;
        n
    }
}
