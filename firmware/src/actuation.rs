//! The actuation rule: Normal, Derate, Trip, from the stage-1 score of each window.
//!
//! With the model's decision threshold `t` and an [`ActuationConfig`]:
//! - **trip** when the score is `>= t` for `k` consecutive windows (from Normal or Derate);
//! - **derate** (from Normal) when the score is `>= t - derate_margin` for `k` consecutive
//!   windows (trip is checked first, so a run of high scores trips directly);
//! - **leave Derate** for Normal when the score is `< t - derate_margin - hysteresis` for `k`
//!   consecutive windows;
//! - **Trip latches**: only [`Actuator::reset`] (the reset command) leaves it, for Normal.
//!
//! Every change of state is returned as a [`Transition`]. A window without a score (no model)
//! does not reach this rule, so a mote without a model never actuates.

/// The motor's actuation state; the discriminant is its wire code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ActuationState {
    /// Full power.
    #[default]
    Normal = 0,
    /// Reduced power.
    Derate = 1,
    /// Stopped, latched until reset.
    Trip = 2,
}

impl ActuationState {
    /// The state with wire code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Normal),
            1 => Some(Self::Derate),
            2 => Some(Self::Trip),
            _ => None,
        }
    }
}

/// What caused a transition; the discriminant is its wire code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransitionCause {
    /// The score rule.
    Score = 0,
    /// A reset command (Trip to Normal).
    Reset = 1,
}

impl TransitionCause {
    /// The cause with wire code `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Score),
            1 => Some(Self::Reset),
            _ => None,
        }
    }
}

/// A change of actuation state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// State before.
    pub from: ActuationState,
    /// State after.
    pub to: ActuationState,
    /// The score of the window that caused it (for a reset, the last score seen; 0 when there
    /// was none).
    pub score: f32,
    /// Why.
    pub cause: TransitionCause,
}

/// Parameters of the rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActuationConfig {
    /// Consecutive windows a condition must hold (at least 1).
    pub k: u16,
    /// Derate threshold = model threshold - `derate_margin`.
    pub derate_margin: f32,
    /// Leaving Derate needs the score below the derate threshold - `hysteresis`.
    pub hysteresis: f32,
}

impl Default for ActuationConfig {
    /// `k` = 3 windows, `derate_margin` = 0.2, `hysteresis` = 0.1.
    fn default() -> Self {
        Self { k: 3, derate_margin: 0.2, hysteresis: 0.1 }
    }
}

/// The rule's state: the actuation state and the run lengths of each condition.
#[derive(Clone, Debug)]
pub struct Actuator {
    config: ActuationConfig,
    state: ActuationState,
    over_trip: u16,
    over_derate: u16,
    under_clear: u16,
    last_score: f32,
}

impl Actuator {
    /// A rule starting in `state` (a latched Trip survives reboots through this).
    pub fn new(config: ActuationConfig, state: ActuationState) -> Self {
        Self { config, state, over_trip: 0, over_derate: 0, under_clear: 0, last_score: 0.0 }
    }

    /// The current state.
    pub fn state(&self) -> ActuationState {
        self.state
    }

    /// Runs go on across transitions: a run of high scores that began in Normal and went on
    /// through a derate trips at its k-th window, not k windows after the derate.
    fn go(&mut self, to: ActuationState, score: f32, cause: TransitionCause) -> Option<Transition> {
        let from = self.state;
        self.state = to;
        Some(Transition { from, to, score, cause })
    }

    /// Feeds one window's score under decision threshold `threshold`.
    pub fn on_score(&mut self, score: f32, threshold: f32) -> Option<Transition> {
        self.last_score = score;
        if self.state == ActuationState::Trip {
            return None;
        }
        let derate_at = threshold - self.config.derate_margin;
        let bump = |run: &mut u16, cond: bool| *run = if cond { run.saturating_add(1) } else { 0 };
        bump(&mut self.over_trip, score >= threshold);
        bump(&mut self.over_derate, score >= derate_at);
        bump(&mut self.under_clear, score < derate_at - self.config.hysteresis);
        let k = self.config.k.max(1);
        match self.state {
            _ if self.over_trip >= k => self.go(ActuationState::Trip, score, TransitionCause::Score),
            ActuationState::Normal if self.over_derate >= k => {
                self.go(ActuationState::Derate, score, TransitionCause::Score)
            }
            ActuationState::Derate if self.under_clear >= k => {
                self.go(ActuationState::Normal, score, TransitionCause::Score)
            }
            _ => None,
        }
    }

    /// The reset command: Trip to Normal; nothing in other states.
    pub fn reset(&mut self) -> Option<Transition> {
        if self.state != ActuationState::Trip {
            return None;
        }
        // After a reset the rule starts over.
        self.over_trip = 0;
        self.over_derate = 0;
        self.under_clear = 0;
        self.go(ActuationState::Normal, self.last_score, TransitionCause::Reset)
    }
}
