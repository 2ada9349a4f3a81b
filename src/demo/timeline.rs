//! The demo's timeline: each line stamped with the plant's day and hour, from what the nodes
//! report (their events) and what the application answers the shell (`loop`, `models`),
//! printed when it changes; and the milestones the summary checks.

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
    /// Versions in the registry.
    pub models: Vec<u64>,
    /// The latest rollout: its version and phase.
    pub rollout: Option<(u64, String)>,
    /// The registered model every mote runs, installed over the air (each mote's receipts
    /// and reports say which it runs), once they all run the same.
    pub installed_everywhere: Option<u64>,
    /// The move midway: its report, or why it failed.
    pub migrated: Option<Result<String, String>>,
    /// Stage 2's capture-to-decision latency p50 and p99 (cluster ms), over the last windows
    /// it scored with a model.
    pub latency_ms: Option<(u64, u64)>,
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
            if !self.milestones.models.contains(&version) {
                self.milestones.models.push(version);
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
        let running: Vec<u64> = rollout["motes"].as_object().map_or_else(Vec::new, |motes| {
            motes.values().map(|m| m["running"].as_u64().unwrap_or(0)).collect()
        });
        if running.len() >= self.motes && running[0] > 0 && running.iter().all(|v| *v == running[0]) {
            self.milestones.installed_everywhere = Some(running[0]);
        }
        if self.phase_seen.as_ref() != Some(&(version, phase.clone())) {
            self.say(elapsed, "deployer", rollout["summary"].as_str().unwrap_or(""));
            self.phase_seen = Some((version, phase.clone()));
        }
        self.milestones.rollout = Some((version, phase));
    }
}
