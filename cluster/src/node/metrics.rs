//! The node's Prometheus metrics (`Node::metrics_text`, served by `aiot node` at
//! `GET /metrics`): per actor its mailbox depth, deepest depth, messages handled (a counter:
//! `rate()` gives messages/s), drops, failures and restarts; per node dead letters, remote
//! messages and bytes each way, lane backpressure, duplicates and refused frames, placements,
//! hosted subtrees, the lease, members by status and refused connections by reason. Hosts add
//! their own collectors (`Node::register_metrics`) for what the application knows (MQTT, the
//! streams, models on the motes).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::Shared;
use crate::membership::Status;

/// Labels of one sample.
pub type Labels = Vec<(&'static str, String)>;

/// Writes one metric family: a counter (the text format adds `_total`) or a gauge.
pub fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// Reads the node's counters at each scrape.
pub(crate) struct NodeCollector {
    pub(crate) shared: Weak<Shared>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeCollector")
    }
}

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(shared) = self.shared.upgrade() else { return Ok(()) };
        let node = shared.name.clone();
        let mut actors = shared.system.core().metrics();
        actors.sort_by(|a, b| a.0.cmp(&b.0));
        let per_actor = |value: fn(&aiot_runtime::MetricsSnapshot) -> u64| {
            actors
                .iter()
                .map(|(path, m)| (vec![("node", node.clone()), ("actor", path.to_string())], value(m)))
                .collect::<Vec<_>>()
        };
        use MetricType::{Counter, Gauge};
        family(
            &mut encoder,
            "mailbox_depth",
            "Messages in the actor's mailbox now",
            Gauge,
            per_actor(|m| m.depth),
        )?;
        family(
            &mut encoder,
            "mailbox_depth_max",
            "Deepest the actor's mailbox has been",
            Gauge,
            per_actor(|m| m.depth_max),
        )?;
        family(
            &mut encoder,
            "messages_handled",
            "Messages the actor handled",
            Counter,
            per_actor(|m| m.handled),
        )?;
        family(
            &mut encoder,
            "messages_dropped",
            "Messages dropped (drop-oldest) or refused (reject) at the actor's full mailbox",
            Counter,
            per_actor(|m| m.dropped_oldest + m.rejected),
        )?;
        family(
            &mut encoder,
            "actor_failures",
            "Handler errors and panics",
            Counter,
            per_actor(|m| m.failures),
        )?;
        family(
            &mut encoder,
            "actor_restarts",
            "Restarts by the actor's supervisor",
            Counter,
            per_actor(|m| m.restarts),
        )?;

        let at_node = |value: u64| [(vec![("node", node.clone())], value)];
        let stats = shared.stats_snapshot();
        let counters: [(&str, &str, u64); 19] = [
            ("dead_letters", "Messages that found no live receiver", shared.system.core().dead_letters()),
            ("remote_messages_sent", "Messages and replies put on a lane to another node", stats.remote_sent),
            (
                "remote_messages_received",
                "Messages and replies delivered from other nodes",
                stats.remote_received,
            ),
            ("remote_bytes_sent", "Message bytes put on lanes to other nodes", stats.remote_bytes_sent),
            (
                "remote_bytes_received",
                "Message bytes delivered from other nodes",
                stats.remote_bytes_received,
            ),
            ("lane_full", "Sends that found a lane to a peer full", stats.lane_full),
            (
                "remote_duplicates_dropped",
                "Retried frames dropped as already delivered",
                stats.duplicates_dropped,
            ),
            (
                "frames_refused",
                "Connections closed for a malformed, oversized or unknown-version frame",
                stats.frames_refused,
            ),
            ("decode_errors", "Frames whose bytes were not their path's message type", stats.decode_errors),
            ("placements", "Subtrees started on this node", stats.placements),
            ("migrations", "Subtrees moved from this node to another (live migration)", stats.migrations),
            (
                "checkpoints_sent",
                "Checkpoints of subtrees hosted here sent to a keeper",
                stats.checkpoints_sent,
            ),
            (
                "checkpoints_unreplicated",
                "Checkpoints taken while no other platform-tier node was reachable",
                stats.checkpoints_unreplicated,
            ),
            (
                "checkpoints_failed",
                "Checkpoints not taken (no snapshot, or too large)",
                stats.checkpoints_failed,
            ),
            ("checkpoints_kept", "Checkpoints of other nodes' subtrees kept here", stats.checkpoints_kept),
            (
                "checkpoints_stale",
                "Checkpoints refused as no newer than the one kept",
                stats.checkpoints_stale,
            ),
            (
                "checkpoint_disk_errors",
                "Checkpoints not saved on, or loaded from, this node's disk",
                stats.checkpoint_disk_errors,
            ),
            (
                "fences_given_up",
                "Moves whose senders stopped waiting for earlier frames (order not guaranteed)",
                stats.fences_given_up,
            ),
            (
                "checkpoint_starts",
                "Subtrees started here from a checkpoint (failover)",
                stats.checkpoint_starts,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut encoder, name, help, Counter, at_node(value))?;
        }
        let (hosted, lease, members) = {
            let coordinator = shared.coordinator.lock();
            (coordinator.hosted().len() as u64, coordinator.holds_lease(), coordinator.member_infos())
        };
        family(
            &mut encoder,
            "hosted_subtrees",
            "Top-level subtrees running on this node",
            Gauge,
            at_node(hosted),
        )?;
        family(
            &mut encoder,
            "lease_held",
            "1 while a majority acknowledges this node",
            Gauge,
            at_node(u64::from(lease)),
        )?;
        let by_status = [Status::Up, Status::Down, Status::Left].map(|status| {
            let count = members.iter().filter(|m| m.status == status).count() as u64;
            (vec![("node", node.clone()), ("status", format!("{status:?}").to_lowercase())], count)
        });
        family(
            &mut encoder,
            "members",
            "Members this node knows (itself included), by status",
            Gauge,
            by_status,
        )?;
        let transport = &shared.tls.stats;
        let refused = transport
            .refusals()
            .map(|(why, n)| (vec![("node", node.clone()), ("reason", why.to_string())], n));
        family(&mut encoder, "connections_refused", "Connections refused, by reason", Counter, refused)?;
        family(
            &mut encoder,
            "admin_connections",
            "Admin (shell) connections accepted",
            Counter,
            at_node(transport.accepted_admin.load(Relaxed)),
        )?;
        Ok(())
    }
}
