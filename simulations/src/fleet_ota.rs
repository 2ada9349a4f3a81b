//! The motes' side of `fleet-pm`: over-the-air rollouts of the models it trains, in motor time.
//!
//! Every motor carries a firmware mote (the core `aiot motes` runs, the factory model in its
//! flash, the plant's keys). As in the cluster, the registry holds only the models the
//! pipeline made: the first rollout has no shadow and no rollback target, and the canary
//! judges it on its validation figures. Each motes' model fleet-pm trains is signed as the registry signs
//! it and rolled out by the deployer's own state machine ([`Rollout`]: canary first, judged by
//! [`CanaryRule`](aiot_actors::deploy::canary::CanaryRule), then the fleet, or rolled back).
//! Its transfers are the deployer's command records ([`transfer`]), sealed into down frames
//! as the gateway seals them and checked by each mote's core; the motes' features reports and
//! OTA receipts are opened with their keys and read as the deployer reads them, the canary's
//! shadow model and the fleet's model picked as it picks them.
//!
//! Not modelled: the network (a frame arrives as it is sent; the `ota` scenario measures a
//! transfer over the simulated network and broker: a second or two), the motes' resend rings
//! (nothing is lost here) and their trips' effect on the motors. While a rollout runs, every
//! mote takes a window each report interval (a minute), its motor running or not, as
//! `aiot motes` does; between rollouts the motes are not stepped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aiot_actors::deploy::rollout::{fleet_model, Action, Rollout, RolloutConfig};
use aiot_actors::deploy::transfer::{transfer, CHUNK_LEN};
use aiot_actors::registry::artifact::SignedModel;
use aiot_firmware::actuation::ActuationState;
use aiot_firmware::model::Model;
use aiot_firmware::mote::{Mote, MoteConfig, Persistent};
use aiot_firmware::protocol::{
    encode_frame_raw, open_frame, Envelope, Kind, MoteId, MoteKey, Payload, MAX_FRAME,
};
use aiot_firmware::sampling::Window;

use crate::closed_loop::{factory_flash, signing_key};
use crate::motor::{Fleet, SAMPLE_RATE_HZ, WINDOW_LEN};

/// How often a mote reports while a rollout runs (the firmware's default).
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

/// One mote and what the cluster knows of it.
struct Carried {
    mote: Mote,
    key: MoteKey,
    /// The cluster's down frames to it so far (their sequence numbers).
    down_seq: u32,
}

/// The fleet's motes and the rollouts over them.
pub struct FleetOta {
    motes: Vec<Carried>,
    /// Signed models by version, with their decoded images.
    models: BTreeMap<u32, (SignedModel, Model)>,
    /// The model each mote said it runs, as of its last frame read.
    heard: BTreeMap<u32, u32>,
    /// Motes whose last report said their motor is tripped.
    stopped: BTreeSet<u32>,
    /// A version asked for, until its rollout starts (after a round of reports).
    wanted: Option<u32>,
    rollout: Option<Rollout>,
    /// Rollouts that settled or were replaced, in order.
    pub history: Vec<Rollout>,
    config: RolloutConfig,
    samples: Vec<[f32; 4]>,
    frames: Vec<Vec<u8>>,
    /// Windows the motes took.
    pub windows: u64,
}

impl FleetOta {
    /// `motors` motes (ids 1..), each with the factory model (version 1) in its flash.
    pub fn new(motors: usize, config: RolloutConfig) -> Result<FleetOta, String> {
        let public = signing_key().verifying_key().to_bytes();
        let credentials = crate::plant::fleet(motors as u32).motes;
        let motes = credentials
            .iter()
            .map(|c| {
                let key = c.key().map_err(|e| format!("mote {}: {e:?}", c.mote))?;
                let mut persistent = Persistent::new();
                factory_flash(&mut persistent);
                let mote = Mote::boot(MoteConfig::new(MoteId(c.mote), key.clone(), public), persistent);
                Ok(Carried { mote, key, down_seq: 0 })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(FleetOta {
            motes,
            models: BTreeMap::new(),
            heard: BTreeMap::new(),
            stopped: BTreeSet::new(),
            wanted: None,
            rollout: None,
            history: Vec::new(),
            config,
            samples: vec![[0.0; 4]; WINDOW_LEN],
            frames: Vec::new(),
            windows: 0,
        })
    }

    /// The model most motes were heard running, when the registry has it.
    pub fn fleet_model(&self) -> Option<&Model> {
        let version = fleet_model(self.heard.values().copied(), 0)?;
        self.models.get(&version).map(|(_, model)| model)
    }

    /// Rolls `signed` out, replacing a rollout in progress; it starts once every mote has
    /// reported (at the next [`FleetOta::step`]).
    pub fn deploy(&mut self, signed: SignedModel) -> Result<(), String> {
        let version = signed.card.version;
        let model = Model::decode(&signed.image).map_err(|e| format!("model {version}: {e:?}"))?;
        self.models.insert(version, (signed, model));
        self.wanted = Some(version);
        Ok(())
    }

    /// A rollout is asked for or running.
    pub fn busy(&self) -> bool {
        self.wanted.is_some() || self.rollout.is_some()
    }

    /// The model each mote's core runs, by mote id.
    pub fn mote_models(&self) -> BTreeMap<u32, u32> {
        self.motes.iter().map(|c| (c.mote.config().id.0, c.mote.model_version())).collect()
    }

    /// The rollout running (or the last one that did).
    pub fn latest(&self) -> Option<&Rollout> {
        self.rollout.as_ref().or(self.history.last())
    }

    /// One report interval at motor time `t`: every mote takes a window and reports, then the
    /// rollout steps and its transfers are delivered.
    pub fn step(&mut self, fleet: &mut Fleet, t: Duration) -> Result<(), String> {
        let now_ms = t.as_millis() as u64;
        for i in 0..self.motes.len() {
            fleet.capture(i, t, SAMPLE_RATE_HZ, &mut self.samples);
            let window =
                Window::from_physical(SAMPLE_RATE_HZ as u32, &self.samples).map_err(|e| format!("{e:?}"))?;
            let frames = &mut self.frames;
            self.motes[i].mote.on_window(now_ms, &window, &mut |bytes| frames.push(bytes.to_vec()));
            self.windows += 1;
            self.read(i, now_ms)?;
        }
        if let Some(version) = self.wanted.take() {
            self.start(version);
        }
        // Transfers arrive at once, so the rollout steps again at the same instant until it
        // asks for nothing more (a verdict's transfers, then the phase they complete).
        while let Some(rollout) = self.rollout.as_mut() {
            let actions = rollout.step(now_ms, &self.models[&rollout.version].0.card);
            if rollout.phase.settled() {
                self.history.extend(self.rollout.take());
            }
            if actions.is_empty() {
                break;
            }
            for Action::Send { mote, version } in actions {
                self.send(mote, version, now_ms)?;
            }
        }
        Ok(())
    }

    /// Starts the rollout of `version`, its shadow the model most motes run.
    fn start(&mut self, version: u32) {
        let previous =
            fleet_model(self.heard.values().copied(), version).filter(|v| self.models.contains_key(v));
        self.history.extend(self.rollout.take());
        self.rollout = Some(Rollout::new(version, previous, &self.heard, &self.stopped, self.config));
    }

    /// Delivers one transfer of `version` to `mote`, command by command, and reads what the
    /// mote answers.
    fn send(&mut self, mote: u32, version: u32, now_ms: u64) -> Result<(), String> {
        let Some((signed, _)) = self.models.get(&version) else { return Ok(()) };
        let i = mote as usize - 1;
        let mut buffer = [0u8; MAX_FRAME];
        for record in transfer(mote, signed, CHUNK_LEN)? {
            let carried = &mut self.motes[i];
            carried.down_seq += 1;
            let kind = Kind::from_code(record.command.kind).ok_or("a command of no kind")?;
            let envelope =
                Envelope { mote: MoteId(mote), boot_epoch: 1, seq: carried.down_seq, capture_ms: now_ms };
            let len = encode_frame_raw(kind, &envelope, &record.command.payload, &carried.key, &mut buffer)
                .map_err(|e| format!("sealing a down frame: {e:?}"))?;
            let frames = &mut self.frames;
            // A refusal is the mote's to report (its receipt), as over the air.
            let _ = carried.mote.on_down(&buffer[..len], now_ms, &mut |bytes| frames.push(bytes.to_vec()));
            self.read(i, now_ms)?;
        }
        Ok(())
    }

    /// Reads mote `i`'s frames as the deployer reads its telemetry.
    fn read(&mut self, i: usize, now_ms: u64) -> Result<(), String> {
        let mote = i as u32 + 1;
        for bytes in std::mem::take(&mut self.frames) {
            let frame =
                open_frame(&bytes, &self.motes[i].key).map_err(|e| format!("mote-{mote}'s frame: {e:?}"))?;
            match frame.decode_payload().map_err(|e| format!("mote-{mote}'s frame: {e:?}"))? {
                Payload::Features(report) => {
                    let was_running = self.heard.contains_key(&mote) && !self.stopped.contains(&mote);
                    let stopped = report.state == ActuationState::Trip;
                    self.heard.insert(mote, report.model_version);
                    if stopped {
                        self.stopped.insert(mote);
                    } else {
                        self.stopped.remove(&mote);
                    }
                    let Some(rollout) = self.rollout.as_mut() else { continue };
                    let models = rollout.is_canary_window(mote, report.model_version).then(|| {
                        let model = |v: u32| self.models.get(&v).map(|(_, m)| m);
                        (model(rollout.version), rollout.previous.and_then(model))
                    });
                    let models = models.and_then(|(candidate, shadow)| Some((candidate?, shadow)));
                    rollout.on_features(mote, &report, stopped && was_running, models);
                }
                Payload::OtaReceipt(receipt) => {
                    self.heard.insert(mote, receipt.active_version);
                    if let Some(rollout) = self.rollout.as_mut() {
                        rollout.on_receipt(mote, &receipt, now_ms);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motor::MotorParams;
    use crate::ota::{models, GOOD, REGRESSION};
    use aiot_actors::deploy::canary::CanaryRule;
    use aiot_actors::deploy::rollout::Phase;

    const MOTES: usize = 20;

    /// Steps `ota` a report interval at a time from `t` until its rollout settles (at most a
    /// day); returns when, and checks `each` after every step.
    fn settle(
        ota: &mut FleetOta,
        fleet: &mut Fleet,
        mut t: Duration,
        each: &mut dyn FnMut(&FleetOta),
    ) -> Duration {
        let until = t + Duration::from_secs(24 * 3600);
        while ota.busy() {
            assert!(t < until, "not settled in a day: {:?}", ota.latest().map(Rollout::summary));
            ota.step(fleet, t).unwrap();
            each(ota);
            t += REPORT_EVERY;
        }
        t
    }

    #[test]
    fn a_good_model_reaches_every_mote_through_its_canary_and_a_regression_is_rolled_back() {
        let mut fleet = Fleet::new(3, MOTES, &MotorParams::default());
        let canary =
            CanaryRule { period: Duration::from_secs(600), min_windows: 10, ..CanaryRule::default() };
        let mut ota = FleetOta::new(MOTES, RolloutConfig { canary, ..RolloutConfig::default() }).unwrap();
        assert!(ota.mote_models().values().all(|&v| v == 1), "the factory model");
        let [_, good, regression] = <[SignedModel; 3]>::try_from(models()).unwrap();

        let start = Duration::from_secs(60 * 24 * 3600);
        ota.deploy(good).unwrap();
        let t = settle(&mut ota, &mut fleet, start, &mut |_| {});
        let r = ota.latest().unwrap();
        assert_eq!((r.version, r.phase), (GOOD, Phase::Installed), "{}", r.summary());
        assert_eq!(r.previous, None, "the factory model is not in the registry: no shadow");
        assert!(r.evidence.windows() >= 10 && r.canary_ms >= 600_000, "{}", r.summary());
        assert_eq!(r.motes.values().filter(|m| m.canary).count(), 2, "10% of 20 motes");
        assert!(ota.mote_models().values().all(|&v| v == GOOD), "{:?}", ota.mote_models());
        assert!(r.motes.values().all(|m| m.confirmed && m.receipts.iter().any(|x| x.status == "confirmed")));

        // The regression (a sign error) trips the cohort's healthy motors, which the good
        // model scores under its threshold: rolled back at once, and only the cohort ran it.
        let mut ran_it = Vec::new();
        ota.deploy(regression).unwrap();
        settle(&mut ota, &mut fleet, t, &mut |ota| {
            ran_it.extend(ota.mote_models().into_iter().filter(|(_, v)| *v == REGRESSION).map(|(m, _)| m));
        });
        let r = ota.latest().unwrap();
        assert_eq!(
            (r.version, r.previous, r.phase),
            (REGRESSION, Some(GOOD), Phase::Restored),
            "{}",
            r.summary()
        );
        let verdict = r.verdict.clone().unwrap_or_default();
        println!("{verdict}");
        assert!(verdict.contains("tripped the motors of"), "{verdict}");
        assert!(r.decided_ms < Some(t.as_millis() as u64 + 600_000), "at once, before the period ended");
        assert!(!ran_it.is_empty(), "the cohort ran it");
        assert!(ran_it.iter().all(|m| r.motes[m].canary), "only the cohort: {ran_it:?}");
        assert!(ota.mote_models().values().all(|&v| v == GOOD), "{:?}", ota.mote_models());
        assert_eq!(ota.history.len(), 2);
    }
}
