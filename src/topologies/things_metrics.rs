//! The things topology's Prometheus metrics (registered with the node's): the MQTT gateway's
//! frames in, forwarded and refused by reason, and acknowledgements; the bridge's records
//! appended and waiting for the log (the uplink's lag into the stream), and frames refused
//! while too many waited; the command relay's commands read, delivered, given up and pending;
//! where the deployer runs, the model each mote says it runs.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use aiot_actors::deploy::deployer::DeployStats;
use aiot_actors::streams::bridge::BridgeStats;
use aiot_actors::streams::command_relay::RelayStats;
use aiot_actors::things::gateway::{GatewayStats, Refusal};
use aiot_cluster::node::metrics::{family, Labels};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType::{Counter, Gauge};

#[derive(Debug)]
pub struct ThingsMetrics {
    pub node: String,
    pub gateway: Arc<GatewayStats>,
    pub bridge: Arc<BridgeStats>,
    pub relay: Arc<RelayStats>,
    /// The deployer's view (a node with the registry's keys).
    pub deploy: Option<Arc<DeployStats>>,
}

impl Collector for ThingsMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let at_node = |value: u64| -> [(Labels, u64); 1] { [(vec![("node", self.node.clone())], value)] };
        let (g, b, r) = (&self.gateway, &self.bridge, &self.relay);
        let counters = [
            ("mqtt_frames_in", "Messages the gateway took from the broker", g.frames_in.load(Relaxed)),
            (
                "mqtt_frames_forwarded",
                "Verified frames the gateway routed to their proxy",
                g.forwarded.load(Relaxed),
            ),
            (
                "mqtt_frames_held",
                "Times the gateway held frames while their proxies could not be reached",
                g.held.load(Relaxed),
            ),
            (
                "mqtt_frames_undeliverable",
                "Verified frames the gateway dropped with too many held (the motes resend them)",
                g.undeliverable.load(Relaxed),
            ),
            ("mqtt_acks_sent", "Acknowledgements published to the motes", g.acks_sent.load(Relaxed)),
            (
                "mqtt_subscriptions_acknowledged",
                "Subscriptions of the gateway the broker acknowledged (again after each reconnect)",
                g.subscriptions_acknowledged.load(Relaxed),
            ),
            (
                "stream_records_appended",
                "Records the bridge got durable in the log",
                b.appends.appended.load(Relaxed),
            ),
            (
                "stream_refused_full",
                "Frames refused while too many records waited",
                b.refused_full.load(Relaxed),
            ),
            ("commands_read", "Commands the relay read from the commands stream", r.read.load(Relaxed)),
            ("commands_delivered", "Commands a mote applied", r.delivered.load(Relaxed)),
            ("commands_given_up", "Commands the relay gave up on", r.given_up.load(Relaxed)),
        ];
        for (name, help, value) in counters {
            family(&mut encoder, name, help, Counter, at_node(value))?;
        }
        let refused = Refusal::ALL
            .map(|why| (vec![("node", self.node.clone()), ("reason", format!("{why:?}"))], g.refused(why)));
        family(
            &mut encoder,
            "mqtt_frames_refused",
            "Messages the gateway refused, by reason",
            Counter,
            refused,
        )?;
        let waiting = b.appends.waiting.load(Relaxed);
        family(
            &mut encoder,
            "stream_records_waiting",
            "Records waiting to be durable in the log (uplink lag)",
            Gauge,
            at_node(waiting),
        )?;
        let pending = r.in_flight.load(Relaxed);
        family(
            &mut encoder,
            "commands_pending",
            "Commands asked of the gateway, not yet settled",
            Gauge,
            at_node(pending),
        )?;
        if let Some(deploy) = &self.deploy {
            let running: Vec<(Labels, u64)> = deploy
                .running
                .lock()
                .iter()
                .map(|(mote, version)| {
                    (vec![("node", self.node.clone()), ("mote", mote.to_string())], u64::from(*version))
                })
                .collect();
            family(
                &mut encoder,
                "mote_model_version",
                "The model each mote last said it runs (0: none), as the deployer read it on this node",
                Gauge,
                running,
            )?;
        }
        Ok(())
    }
}
