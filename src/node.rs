//! `aiot node --config node.toml`: a cluster node. It loads and checks its configuration and
//! certificate, then runs `aiot_cluster::node::Node` with the topology the configuration names:
//! membership, leases, placement, the directory and remote messages over mutual-TLS QUIC.
//! Each event is one line on stdout; refusals say why. Ctrl-C leaves the cluster gracefully.

use std::path::PathBuf;

use aiot_cluster::config::{tag_report, NodeConfig};
use aiot_cluster::membership::MembershipConfig;
use aiot_cluster::node::{tag_list, Node, NodeSetup};
use aiot_cluster::transport::quic::NodeTls;
use aiot_runtime::Topology;

pub struct Options {
    pub config: PathBuf,
    /// Check the configuration and certificate, print the identity, and exit.
    pub check: bool,
}

pub fn run(options: Options) -> Result<(), String> {
    let config = NodeConfig::load(&options.config).map_err(|e| e.to_string())?;
    let tls = NodeTls::load(&config.tls.ca, &config.tls.cert, &config.tls.key).map_err(|e| e.to_string())?;
    let name = tls.me.name.clone();
    let topology = match &config.topology {
        Some(topology) => crate::topologies::by_name(topology, &name)
            .map_err(|e| format!("{}: topology: {e}", options.config.display()))?,
        None => Topology::builder().build().map_err(|e| e.to_string())?,
    };
    println!("node {name} with attested tags [{}]", tag_list(&tls.me.tags));
    if options.check {
        for (key, value) in tag_report(&config.tags, &tls.me.tags).unattested {
            println!(
                "ignored tag {key}={value}: claimed in the configuration but not attested by the certificate"
            );
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(serve(config, tls, topology))
}

/// This process's incarnation: later starts get higher numbers (milliseconds since the epoch;
/// host code, so reading the wall clock is right here).
fn incarnation() -> u64 {
    #[allow(clippy::disallowed_methods)]
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

async fn serve(config: NodeConfig, tls: NodeTls, topology: Topology) -> Result<(), String> {
    let incarnation = incarnation();
    let setup = NodeSetup {
        tls,
        listen: config.listen,
        seeds: config.seeds.clone(),
        membership: MembershipConfig::default(),
        topology,
        seed: incarnation,
        incarnation,
        claimed_tags: config.tags.clone(),
    };
    let (node, mut events) = Node::start(setup)?;
    println!("listening on {}", node.addr());
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => println!("{event}"),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                node.leave().await;
                println!("left the cluster");
                return Ok(());
            }
        }
    }
}
