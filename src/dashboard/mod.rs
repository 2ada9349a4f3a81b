//! The web dashboard (`dashboard = "ADDR"` in node.toml; the platform node's in `aiot demo`):
//! one page (`GET /`) that polls `GET /api/state` every second and draws the cluster map, the
//! motors with live feature charts, the alerts, the drift checks, the models with the rollout
//! mote by mote, and the training pipeline's DAG.
//!
//! The state is what the shell would be answered by this node at that moment, in one document
//! ([`state`]): the ML loop's panels show the actors this node hosts (on a platform node, the
//! stages and the training, which run on the platform tier), the models and the cluster map
//! the whole cluster. The dashboard test checks that page, shell `--json` and the metrics
//! endpoint agree. axum on the node's own tokio runtime, as the metrics endpoint
//! (ARCHITECTURE.md says why not actix-web). It has no authentication, unlike the admin
//! protocol: bind it to loopback, or put it behind a proxy that authenticates.

use std::net::SocketAddr;
use std::sync::Arc;

use aiot_cluster::node::Node;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;

mod state;

/// The page: HTML, style and script in one file, nothing fetched from elsewhere.
const PAGE: &str = include_str!("page.html");

/// Binds `addr` and serves the dashboard of `node` there; returns the bound address.
pub async fn serve(addr: SocketAddr, node: Arc<Node>) -> Result<SocketAddr, String> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("dashboard on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = axum::Router::new()
        .route("/", get(|| async { ([(CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }))
        .route(
            "/api/state",
            get(move || {
                let node = Arc::clone(&node);
                async move { ([(CONTENT_TYPE, "application/json")], state::of(&node).await.to_string()) }
            }),
        );
    // Host code: the dashboard's server task.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("dashboard on {bound} stopped: {e}");
        }
    });
    Ok(bound)
}
