//! The demo's timeline: each line stamped with the plant's day and hour, from what the nodes
//! report (their events) and what the application answers the shell (`loop`, `models`),
//! printed when it changes; and the milestones the summary checks.

use std::collections::BTreeMap;
use std::time::Duration;

use aiot_actors::deploy::canary::AUC;
use aiot_cluster::node::NodeEvent;
use serde_json::Value;

/// What the demo sets out to show, as far as it got.
#[derive(Debug, Default)]
pub struct Milestones {
    pub alerts: u64,
    pub drifts: u64,
    pub trainings: u64,
    /// Versions in the registry, and when each was made (cluster ms).
    pub models: BTreeMap<u64, u64>,
    /// The latest rollout: its version and phase.
    pub rollout: Option<(u64, String)>,
    /// The registered model every mote runs, installed over the air (each mote's receipts
    /// and reports say which it runs), once they all run the same.
    pub installed_everywhere: Option<u64>,
    /// The load shift the drift monitor should find (cluster ms; the run sets it).
    pub shift_ms: Option<u64>,
    /// The first drift found: the time of the last window of the batch that drifted (cluster
    /// ms).
    pub drift_ms: Option<u64>,
    /// Each model every mote came to run, and when its last mote confirmed it (cluster ms).
    pub fleet_installs: BTreeMap<u64, u64>,
    /// Each rollout's canary, by version.
    pub canaries: BTreeMap<u64, Canary>,
    /// The move midway: its report, or why it failed.
    pub migrated: Option<Result<String, String>>,
    /// Stage 2's capture-to-decision latency p50 and p99 (cluster ms), over the last windows
    /// it scored with a model.
    pub latency_ms: Option<(u64, u64)>,
}

/// A rollout's canary as the deployer last reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Canary {
    /// When its clock started and when its verdict came (cluster ms).
    pub from_ms: Option<u64>,
    pub decided_ms: Option<u64>,
    pub verdict: Option<String>,
}

pub struct Timeline {
    warp: f64,
    motes: usize,
    loop_seen: Value,
    phase_seen: Option<(u64, String)>,
    alerts_printed: Option<Duration>,
    /// The alert count the last such line gave.
    alerts_said: u64,
    pub milestones: Milestones,
}

/// Alerts are summed up at most this often.
const ALERTS_EVERY: Duration = Duration::from_secs(15);

impl Timeline {
    pub fn new(warp: u32, motes: u32) -> Timeline {
        Timeline {
            warp: f64::from(warp),
            motes: motes as usize,
            loop_seen: Value::Null,
            phase_seen: None,
            alerts_printed: None,
            alerts_said: 0,
            milestones: Milestones::default(),
        }
    }

    /// Stage 2's capture-to-decision latency for the summary: in wall time (cluster time runs
    /// `warp` times faster, and both ends of the interval are cluster-time stamps).
    pub fn latency(&self) -> String {
        match self.milestones.latency_ms {
            Some((p50, p99)) => format!(
                "p50 {:.1} ms, p99 {:.1} ms wall ({p50} and {p99} ms of cluster time at warp {})",
                p50 as f64 / self.warp,
                p99 as f64 / self.warp,
                self.warp
            ),
            None => "not measured: no window was scored with a model".into(),
        }
    }

    /// From the load shift to a model trained after the drift running on every mote, in plant
    /// hours; whether the loop closed.
    pub fn drift_to_fleet(&self) -> (bool, String) {
        let m = &self.milestones;
        let hours = |from: u64, to: u64| (to as f64 - from as f64) / 3_600_000.0;
        let Some(drift_ms) = m.drift_ms else { return (false, "no drift detected".into()) };
        let detected = match m.shift_ms {
            Some(shift_ms) => {
                format!("drift detected {:.1} h after the load shift", hours(shift_ms, drift_ms))
            }
            None => "drift detected".into(),
        };
        // Each model made since the drift, up to the first that reached every mote: a canary
        // may have rolled earlier ones back (the model in service did as well on the new regime).
        let mut said = vec![detected];
        for (version, created) in m.models.iter().filter(|(_, created)| **created >= drift_ms) {
            let trained = format!("model {version} trained {:.1} h after it", hours(drift_ms, *created));
            let canary = m.canaries.get(version).cloned().unwrap_or_default();
            if let Some(installed) = m.fleet_installs.get(version) {
                let judged = match (canary.from_ms, canary.decided_ms) {
                    (Some(from), Some(decided)) => format!(
                        ", on its canary {:.1} h and promoted {:.1} h after it",
                        hours(drift_ms, from),
                        hours(drift_ms, decided)
                    ),
                    _ => String::new(),
                };
                said.push(format!(
                    "{trained}{judged}, on every mote {:.1} h after it",
                    hours(drift_ms, *installed)
                ));
                return (true, said.join("; "));
            }
            let why = canary.verdict.as_deref().and_then(|v| v.strip_prefix("rolled back: "));
            if let (Some(decided), Some(why)) = (canary.decided_ms, why) {
                said.push(format!(
                    "{trained}, rolled back {:.1} h after it ({why})",
                    hours(drift_ms, decided)
                ));
            }
        }
        said.push("no model trained since is on every mote yet".into());
        (false, said.join("; "))
    }

    /// Prints `what` by `who` at wall time `elapsed` since the start.
    pub fn say(&self, elapsed: Duration, who: &str, what: &str) {
        let plant_s = elapsed.as_secs_f64() * self.warp;
        let day = (plant_s / 86_400.0).floor();
        let minutes = ((plant_s - day * 86_400.0) / 60.0) as u64;
        println!(
            "{:>6.1}s  day {day:.0} {:02}:{:02}  {who:<12} {what}",
            elapsed.as_secs_f64(),
            minutes / 60,
            minutes % 60
        );
    }

    /// A node's event worth a line: membership, leases, moves and placements after the start.
    pub fn event(&self, elapsed: Duration, node: &str, event: &NodeEvent) {
        match event {
            NodeEvent::Member(_)
            | NodeEvent::Lease(_)
            | NodeEvent::Moved { .. }
            | NodeEvent::MoveAborted { .. }
            | NodeEvent::Restored { .. }
            | NodeEvent::Hosting(_)
            | NodeEvent::Stopped { .. }
            | NodeEvent::Unplaced(_)
            | NodeEvent::Refused(_) => self.say(elapsed, node, &event.to_string()),
            _ => {}
        }
    }

    /// The platform node's answer to `loop`: stage 2, the drift monitor, the trainer.
    pub fn ml_loop(&mut self, elapsed: Duration, now: Value) {
        let count = |v: &Value, section: &str, key: &str| v[section][key].as_u64().unwrap_or(0);
        let was = std::mem::replace(&mut self.loop_seen, Value::Null);
        let grew = |section: &str, key: &str| count(&now, section, key) > count(&was, section, key);
        let last = |section: &str| now[section]["last"].as_str().unwrap_or("").to_string();
        if grew("trainer", "trainings") {
            self.say(elapsed, "trainer", &format!("model trained and installed: {}", last("trainer")));
        }
        if grew("trainer", "refused") {
            self.say(elapsed, "trainer", &format!("no model this run: {}", last("trainer")));
        }
        if grew("drift", "drifts") {
            self.say(elapsed, "drift", &format!("DRIFT detected: {}", last("drift")));
        }
        if grew("drift", "inspections_requested") {
            let n = count(&now, "drift", "inspections_requested");
            self.say(
                elapsed,
                "drift",
                &format!("{n} inspections requested so far, to label post-drift data"),
            );
        }
        let alerts = count(&now, "stage2", "alerts");
        let due = self.alerts_printed.is_none_or(|at| elapsed >= at + ALERTS_EVERY);
        if alerts > self.alerts_said && due {
            let scored = count(&now, "stage2", "scored");
            self.say(elapsed, "stage 2", &format!("{alerts} alerts so far ({scored} windows scored)"));
            self.alerts_printed = Some(elapsed);
            self.alerts_said = alerts;
        }
        self.milestones.alerts = alerts;
        self.milestones.drifts = count(&now, "drift", "drifts");
        if self.milestones.drift_ms.is_none() {
            let history = now["drift"]["history"].as_array().into_iter().flatten();
            let mut drifts = history.filter(|point| point["drift"].as_bool() == Some(true));
            self.milestones.drift_ms = drifts.next().and_then(|point| point["time_ms"].as_u64());
        }
        self.milestones.trainings = count(&now, "trainer", "trainings");
        let latency = |q: &str| now["stage2"][q].as_u64();
        if let (Some(p50), Some(p99)) = (latency("latency_p50_ms"), latency("latency_p99_ms")) {
            self.milestones.latency_ms = Some((p50, p99));
        }
        self.loop_seen = now;
    }

    /// The answer to `models`: new registry versions and the rollout's phase.
    pub fn models(&mut self, elapsed: Duration, now: &Value) {
        for model in now["models"].as_array().into_iter().flatten() {
            let version = model["version"].as_u64().unwrap_or(0);
            let created_ms = model["created_ms"].as_u64().unwrap_or(0);
            if let std::collections::btree_map::Entry::Vacant(entry) = self.milestones.models.entry(version) {
                entry.insert(created_ms);
                let auc = model["metrics"][AUC]
                    .as_f64()
                    .map(|a| format!(", int8 validation AUC {a:.3}"))
                    .unwrap_or_default();
                self.say(elapsed, "registry", &format!("model {version} registered, signed{auc}"));
            }
        }
        let rollout = &now["rollout"];
        let Some(version) = rollout["version"].as_u64() else { return };
        let phase = rollout["phase"].as_str().unwrap_or("?").to_string();
        let canary = Canary {
            from_ms: rollout["canary_from_ms"].as_u64(),
            decided_ms: rollout["decided_ms"].as_u64(),
            verdict: rollout["verdict"].as_str().map(str::to_string),
        };
        self.milestones.canaries.insert(version, canary);
        let running: Vec<u64> = rollout["motes"].as_object().map_or_else(Vec::new, |motes| {
            motes.values().map(|m| m["running"].as_u64().unwrap_or(0)).collect()
        });
        if running.len() >= self.motes && running[0] > 0 && running.iter().all(|v| *v == running[0]) {
            self.milestones.installed_everywhere = Some(running[0]);
            if let Some(at_ms) = confirmed_everywhere(rollout, running[0]) {
                self.milestones.fleet_installs.entry(running[0]).or_insert(at_ms);
            }
        }
        if self.phase_seen.as_ref() != Some(&(version, phase.clone())) {
            self.say(elapsed, "deployer", rollout["summary"].as_str().unwrap_or(""));
            self.phase_seen = Some((version, phase.clone()));
        }
        self.milestones.rollout = Some((version, phase));
    }
}

/// When the last mote confirmed running `version` (cluster ms): the latest receipt of each mote
/// that shows it active; none while a mote has no such receipt.
fn confirmed_everywhere(rollout: &Value, version: u64) -> Option<u64> {
    let motes = rollout["motes"].as_object()?;
    let confirmed = motes.values().map(|mote| {
        let receipts = mote["receipts"].as_array().into_iter().flatten();
        let active = receipts.filter(|r| r["active"].as_u64() == Some(version));
        active.filter_map(|r| r["at_ms"].as_u64()).max()
    });
    confirmed.collect::<Option<Vec<u64>>>()?.into_iter().max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn drift_to_fleet_takes_the_first_model_since_the_drift_that_reached_every_mote() {
        let mut timeline = Timeline::new(1440, 2);
        assert_eq!(timeline.drift_to_fleet(), (false, "no drift detected".into()));
        let m = &mut timeline.milestones;
        m.shift_ms = Some(10 * HOUR);
        m.drift_ms = Some(10 * HOUR + HOUR / 2);
        m.models = BTreeMap::from([(3, 2 * HOUR), (4, 12 * HOUR), (6, 36 * HOUR)]);
        m.fleet_installs = BTreeMap::from([(3, 3 * HOUR)]);
        let (closed, text) = timeline.drift_to_fleet();
        assert!(!closed && text.contains("0.5 h after the load shift; no model"), "{text}");
        // Model 4 was rolled back by its canary; model 6 reached every mote.
        timeline.milestones.fleet_installs.insert(6, 37 * HOUR);
        let (closed, text) = timeline.drift_to_fleet();
        assert!(closed, "{text}");
        assert!(
            text.ends_with(
                "after the load shift; model 6 trained 25.5 h after it, on every mote 26.5 h after it"
            ),
            "{text}"
        );
        // With the canaries' times and verdicts from the rollouts.
        let canary = |from: u64, decided: u64, verdict: &str| Canary {
            from_ms: Some(from),
            decided_ms: Some(decided),
            verdict: Some(verdict.into()),
        };
        let m = &mut timeline.milestones;
        m.canaries.insert(4, canary(12 * HOUR, 13 * HOUR, "rolled back: not better than the current model"));
        m.canaries.insert(6, canary(36 * HOUR + HOUR / 4, 36 * HOUR + HOUR / 2, "promoted: 20 windows"));
        let (_, text) = timeline.drift_to_fleet();
        assert!(
            text.ends_with("after the load shift; model 4 trained 1.5 h after it, rolled back 2.5 h after it (not better than the current model); model 6 trained 25.5 h after it, on its canary 25.8 h and promoted 26.0 h after it, on every mote 26.5 h after it"),
            "{text}"
        );
    }

    #[test]
    fn a_model_is_confirmed_everywhere_once_each_mote_has_a_receipt_showing_it_active() {
        let receipt = |at_ms: u64, active: u64| json!({ "at_ms": at_ms, "active": active });
        let mut rollout = json!({ "motes": {
            "1": { "receipts": [receipt(5, 1), receipt(9, 2)] },
            "2": { "receipts": [receipt(7, 1)] },
        }});
        assert_eq!(confirmed_everywhere(&rollout, 2), None, "mote 2 does not run it yet");
        rollout["motes"]["2"]["receipts"] = json!([receipt(7, 1), receipt(12, 2)]);
        assert_eq!(confirmed_everywhere(&rollout, 2), Some(12));
    }
}
