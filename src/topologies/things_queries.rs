//! The things topology's answers to the shell (`AdminRequest::App`), as JSON:
//!
//! - `models`: every model in the registry (lineage and validation metrics) and the current
//!   rollout with each mote's state and receipts, asked of `/registry` and `/deployer`
//!   wherever they run;
//! - `deploy VERSION`: rolls a registered model out (canary first), answers its state;
//! - `rollback`: rolls out again the model the fleet ran before the current rollout;
//! - `loop`: what the ML loop's actors hosted on the asked node did (stage 2's alerts, the
//!   drift monitor with its recent checks, the trainer, the pipeline), from their counters;
//! - `motors`: each motor as the stage-2 replicas on the asked node last saw it (latest DSP
//!   features, probability, alert level, recent history of a few features);
//! - `alerts`: the latest alert records those replicas made.
//!
//! `loop`, `motors` and `alerts` answer from the asked node's own actors: the shell asks every
//! node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aiot_actors::deploy::deployer::{DeployState, DeployerMsg};
use aiot_actors::deploy::rollout::Rollout;
use aiot_actors::dsp::DspFeatures;
use aiot_actors::inference::stage2::CHARTED;
use aiot_actors::inference::InferenceStats;
use aiot_actors::provision::to_hex;
use aiot_actors::registry::artifact::ModelCard;
use aiot_actors::registry::service::RegistryMsg;
use aiot_actors::training::TrainingStats;
use aiot_cluster::node::{AppAnswer, AppQueries, AppQuery};
use aiot_runtime::exec::tokio::TokioSystem;
use aiot_runtime::prelude::*;
use aiot_runtime::Message;
use serde_json::{json, Value};

/// How long a question waits for an actor's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The commands the topology answers.
pub const COMMANDS: &[&str] = &["models", "deploy", "rollback", "loop", "motors", "alerts"];

/// The answers, over the counters of the actors this node hosts.
pub fn queries(inference: InferenceStats, training: TrainingStats) -> AppQueries {
    Arc::new(move |query: AppQuery, system: TokioSystem| -> AppAnswer {
        let (inference, training) = (inference.clone(), training.clone());
        Box::pin(async move {
            let answer = match (query.command.as_str(), query.args.as_slice()) {
                ("models", []) => models(&system).await?,
                ("deploy", [version]) => {
                    let version =
                        version.parse().map_err(|_| format!("{version:?} is not a model version"))?;
                    deploy(&system, version).await?
                }
                ("rollback", []) => rollback(&system).await?,
                ("loop", []) => ml_loop(&inference, &training),
                ("motors", []) => motors(&inference),
                ("alerts", []) => alerts(&inference),
                (command, args) if COMMANDS.contains(&command) => {
                    return Err(format!("unexpected arguments {args:?}"));
                }
                _ => return Err(format!("unknown; the things topology answers {}", COMMANDS.join(", "))),
            };
            Ok(answer.to_string())
        })
    })
}

fn actor<M: Message>(path: &str) -> ActorRef<M> {
    ActorRef::parse(path).expect("a valid path")
}

async fn models(system: &TokioSystem) -> Result<Value, String> {
    let cards: Vec<ModelCard> = system
        .ask(&actor("/registry"), |reply| RegistryMsg::List { reply }, ASK_TIMEOUT)
        .await
        .map_err(|e| format!("the registry did not answer: {e}"))?;
    let rollout = current_rollout(system).await?;
    let models: Vec<Value> = cards
        .iter()
        .map(|card| {
            json!({
                "version": card.version,
                "parent": card.parent,
                "created_ms": card.created_ms,
                "metrics": card.metrics,
                "dataset_sha256": to_hex(&card.dataset_sha256),
                "image_sha256": to_hex(&card.image_sha256),
                "stage2": card.stage2.is_some(),
            })
        })
        .collect();
    Ok(json!({ "models": models, "rollout": rollout.as_ref().map(rollout_json) }))
}

async fn current_rollout(system: &TokioSystem) -> Result<Option<Rollout>, String> {
    system
        .ask(&actor("/deployer"), |reply| DeployerMsg::Rollout { reply }, ASK_TIMEOUT)
        .await
        .map_err(|e| format!("the deployer did not answer: {e}"))
}

fn rollout_json(rollout: &Rollout) -> Value {
    let motes: serde_json::Map<String, Value> = rollout
        .motes
        .iter()
        .map(|(mote, m)| {
            let receipts: Vec<Value> = m
                .receipts
                .iter()
                .map(|r| json!({ "at_ms": r.at_ms, "model": r.model_version, "active": r.active_version, "status": r.status }))
                .collect();
            let state = json!({
                "running": m.running,
                "canary": m.canary,
                "confirmed": m.confirmed,
                "stopped": m.stopped,
                "transfers": m.transfers,
                "receipts": receipts,
            });
            (mote.to_string(), state)
        })
        .collect();
    json!({
        "version": rollout.version,
        "previous": rollout.previous,
        "phase": format!("{:?}", rollout.phase),
        "verdict": rollout.verdict,
        "began_ms": rollout.began_ms,
        "canary_from_ms": rollout.canary_from_ms,
        "decided_ms": rollout.decided_ms,
        "settled_ms": rollout.settled_ms,
        "summary": rollout.summary(),
        "motes": motes,
    })
}

async fn deploy(system: &TokioSystem, version: u32) -> Result<Value, String> {
    let state: DeployState = system
        .ask(&actor("/deployer"), |reply| DeployerMsg::Deploy { version, reply }, ASK_TIMEOUT)
        .await
        .map_err(|e| format!("the deployer did not answer: {e}"))?;
    Ok(json!({ "version": version, "state": format!("{state:?}") }))
}

async fn rollback(system: &TokioSystem) -> Result<Value, String> {
    let rollout = current_rollout(system).await?.ok_or("no rollout to roll back")?;
    let previous = rollout
        .previous
        .ok_or_else(|| format!("model {} was the fleet's first: nothing to go back to", rollout.version))?;
    deploy(system, previous).await
}

fn ml_loop(inference: &InferenceStats, training: &TrainingStats) -> Value {
    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (scoring, monitor, trainer) = (&inference.scoring, &training.monitor, &training.trainer);
    let pipeline = training.pipeline.lock();
    json!({
        "stage2": {
            "model_version": n(&scoring.model_version),
            "scored": n(&scoring.scored),
            "unscored": n(&scoring.unscored),
            "alerts": n(&scoring.alerts),
            // Capture to decision, cluster ms, over the last windows scored with a model.
            "latency_p50_ms": scoring.latency_quantile(0.5),
            "latency_p99_ms": scoring.latency_quantile(0.99),
        },
        "drift": {
            "windows": n(&monitor.windows),
            "checked": n(&monitor.checked),
            "drifts": n(&monitor.drifts),
            "inspections_requested": n(&monitor.inspections_requested),
            "retrains_requested": n(&monitor.retrains_requested),
            "error_alarms": n(&monitor.error_alarms),
            "last": monitor.last.lock().clone(),
            "history": *monitor.history.lock(),
        },
        "trainer": {
            "windows": n(&trainer.windows),
            "outcomes": n(&trainer.outcomes),
            "trainings": n(&trainer.trainings),
            "version": n(&trainer.version),
            "refused": n(&trainer.refused),
            "last": trainer.last.lock().clone(),
        },
        "pipeline": pipeline.line(),
        "dag": *pipeline,
    })
}

fn motors(inference: &InferenceStats) -> Value {
    let motors = inference.scoring.motors.lock();
    json!({
        "features": DspFeatures::NAMES,
        "charted": CHARTED,
        "motors": motors.iter().map(|(mote, view)| (mote.to_string(), json!(view))).collect::<serde_json::Map<_, _>>(),
    })
}

fn alerts(inference: &InferenceStats) -> Value {
    json!({ "alerts": *inference.scoring.recent_alerts.lock() })
}
