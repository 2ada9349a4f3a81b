//! Over-the-air deployment of registered models to the motes (BLUEPRINT sections 5 and 10):
//!
//! - `transfer`: one OTA transfer as command records (manifest, chunks, commit);
//! - `canary`: the canary rule (shadow scoring: decision agreement, score PSI; validation);
//! - `rollout`: one version's rollout as a pure state machine (cohort, phases, retries,
//!   receipts);
//! - `deployer`: the `/deployer` actor that runs rollouts on the streams.
//!
//! `declare` puts the deployer in a topology.

pub mod canary;
pub mod deployer;
pub mod rollout;
pub mod transfer;

use std::sync::Arc;

use aiot_runtime::{Overflow, TopologyBuilder};

use deployer::{DeployStats, Deployer, DeployerConfig};

/// Declares `/deployer` on the platform tier (it needs the event-log port).
pub fn declare(t: &mut TopologyBuilder, config: DeployerConfig, stats: Arc<DeployStats>) {
    t.actor("/deployer", move |_| Deployer::new(config.clone(), Arc::clone(&stats)))
        .requires("tier=platform")
        .mailbox(4096, Overflow::Backpressure);
}

/// What the module's tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use aiot_firmware::features::FEATURE_COUNT;
    use aiot_firmware::model::Model;

    use super::canary::{AUC, COMPARED_AUC, COMPARED_AUC_CURRENT};
    use crate::registry::artifact::ModelCard;

    /// Logit `sum(features) + bias` (weights 10 at 0.1 per step), threshold 0.5.
    pub fn model(bias: f32) -> Model {
        Model {
            version: 1,
            offset: [0.0; FEATURE_COUNT],
            scale: [1.0; FEATURE_COUNT],
            input_scale: 0.1,
            weights: [10; FEATURE_COUNT],
            weight_scale: 0.1,
            bias,
            threshold: 0.5,
        }
    }

    /// Model 2's card (parent 1) with its held-out AUC, and when the current model's AUC is
    /// given, both on the same comparison windows (no log losses).
    pub fn card(auc: f64, current: Option<f64>) -> ModelCard {
        let mut metrics = BTreeMap::from([(AUC.to_string(), auc)]);
        if let Some(current) = current {
            metrics.insert(COMPARED_AUC.to_string(), auc);
            metrics.insert(COMPARED_AUC_CURRENT.to_string(), current);
        }
        ModelCard {
            version: 2,
            parent: Some(1),
            created_ms: 0,
            dataset_sha256: [0; 32],
            params: BTreeMap::new(),
            metrics,
            image_sha256: [0; 32],
            image_len: 0,
            stage2: None,
        }
    }
}
