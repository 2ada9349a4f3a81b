//! `aiot node --config node.toml`: a cluster node. Today it loads and checks its configuration
//! and certificate, binds its QUIC endpoint, joins its seeds and authenticates every peer
//! (membership, the directory and actors come with the rest of issue 3). Each event is one line
//! on stdout; refusals say why.

// The node is host code: it spawns the tasks that drive its endpoint (actor code never does).
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aiot_cluster::config::{tag_report, NodeConfig, Seed};
use aiot_cluster::transport::quic::{accept, connect, Endpoint, NodeTls};

/// How long a node waits before trying an unreachable seed again.
const SEED_RETRY: Duration = Duration::from_secs(1);

pub struct Options {
    pub config: PathBuf,
    /// Check the configuration and certificate, print the identity, and exit.
    pub check: bool,
}

pub fn run(options: Options) -> Result<(), String> {
    let config = NodeConfig::load(&options.config).map_err(|e| e.to_string())?;
    let tls = NodeTls::load(&config.tls.ca, &config.tls.cert, &config.tls.key).map_err(|e| e.to_string())?;
    let report = tag_report(&config.tags, &tls.me.tags);
    let tags: Vec<String> = report.attested.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("node {} with attested tags [{}]", tls.me.name, tags.join(", "));
    for (key, value) in &report.unattested {
        println!(
            "ignored tag {key}={value}: claimed in {} but not attested by the certificate",
            options.config.display()
        );
    }
    if options.check {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start tokio: {e}"))?;
    runtime.block_on(serve(config, Arc::new(tls)))
}

async fn serve(config: NodeConfig, tls: Arc<NodeTls>) -> Result<(), String> {
    let endpoint = tls.bind(config.listen).map_err(|e| e.to_string())?;
    println!("listening on {}", endpoint.local_addr().map_err(|e| e.to_string())?);
    for seed in config.seeds.clone() {
        let (endpoint, tls) = (endpoint.clone(), tls.clone());
        tokio::spawn(async move { join_seed(&endpoint, &tls, seed).await });
    }
    loop {
        tokio::select! {
            accepted = accept(&endpoint, &tls) => match accepted {
                Some(Ok(peer)) => {
                    let tags: Vec<String> = peer.identity.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    println!("peer {} authenticated [{}]", peer.identity.name, tags.join(", "));
                }
                Some(Err(e)) => println!("refused a connection: {e}"),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                println!("stopping");
                endpoint.close(0u32.into(), b"node stopping");
                return Ok(());
            }
        }
    }
}

/// Connects to a seed, retrying while it is unreachable or refusing.
async fn join_seed(endpoint: &Endpoint, tls: &NodeTls, seed: Seed) {
    loop {
        match connect(endpoint, tls, seed.addr, &seed.name).await {
            Ok(peer) => {
                let tags: Vec<String> = peer.identity.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("joined seed {} at {} [{}]", peer.identity.name, seed.addr, tags.join(", "));
                return;
            }
            Err(e) => {
                println!("seed {}@{} not joined yet: {e}", seed.name, seed.addr);
                tokio::time::sleep(SEED_RETRY).await;
            }
        }
    }
}
