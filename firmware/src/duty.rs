//! The duty cycle: which frames a window produces.
//!
//! Every window runs stage 1 (the host may capture windows more often than it reports, for a
//! tighter control loop). A **report** (a features frame) is due on the first window after
//! boot and then when `now_ms >= last_report_ms + report_interval_ms`; [`DutyCycle::next_report_ms`]
//! tells a sleeping host when to wake. A report also carries the **raw window** on the first
//! report after boot and then every `raw_every`-th report (0: never periodically). When stage 1
//! **fires** (a transition into Derate or Trip) the mote reports at once, with the raw window,
//! whatever the schedule, and the schedule restarts from there (the event frame itself is the
//! caller's to send). A raw-window request (command) adds the raw window to the next report and
//! makes that report due at once.

/// Default report interval, ms.
pub const DEFAULT_REPORT_INTERVAL_MS: u64 = 60_000;
/// Default: a raw window every this many reports.
pub const DEFAULT_RAW_EVERY: u32 = 10;

/// What a window sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    /// Send a features frame.
    pub features: bool,
    /// Send the raw window.
    pub raw: bool,
}

/// The schedule's state.
#[derive(Clone, Debug)]
pub struct DutyCycle {
    report_interval_ms: u64,
    raw_every: u32,
    last_report_ms: Option<u64>,
    /// Reports to go until the next periodic raw window (0: the next report carries it).
    until_raw: u32,
    raw_requested: bool,
}

impl DutyCycle {
    /// A schedule that reports every `report_interval_ms` with a raw window every `raw_every`
    /// reports.
    pub fn new(report_interval_ms: u64, raw_every: u32) -> Self {
        Self { report_interval_ms, raw_every, last_report_ms: None, until_raw: 0, raw_requested: false }
    }

    /// Decides what the window captured at `now_ms` sends; `fired` is true when stage 1 fired on
    /// it.
    pub fn plan(&mut self, now_ms: u64, fired: bool) -> Plan {
        let due = match self.last_report_ms {
            None => true,
            Some(last) => now_ms >= last.saturating_add(self.report_interval_ms),
        };
        if !(due || fired || self.raw_requested) {
            return Plan::default();
        }
        self.last_report_ms = Some(now_ms);
        let periodic = self.raw_every > 0 && self.until_raw == 0;
        let raw = fired || self.raw_requested || periodic;
        if raw {
            self.until_raw = self.raw_every.saturating_sub(1);
        } else {
            self.until_raw = self.until_raw.saturating_sub(1);
        }
        self.raw_requested = false;
        Plan { features: true, raw }
    }

    /// When the next report is due (0 before the first).
    pub fn next_report_ms(&self) -> u64 {
        self.last_report_ms.map_or(0, |last| last.saturating_add(self.report_interval_ms))
    }

    /// The report interval, ms.
    pub fn report_interval_ms(&self) -> u64 {
        self.report_interval_ms
    }

    /// A raw window every this many reports (0: never periodically).
    pub fn raw_every(&self) -> u32 {
        self.raw_every
    }

    /// Changes the report interval (from the next report on).
    pub fn set_report_interval_ms(&mut self, ms: u64) {
        self.report_interval_ms = ms;
    }

    /// Changes the raw cadence; the count restarts.
    pub fn set_raw_every(&mut self, n: u32) {
        self.raw_every = n;
        self.until_raw = n.saturating_sub(1);
    }

    /// Sends the raw window with the next window, at once.
    pub fn request_raw(&mut self) {
        self.raw_requested = true;
    }
}
