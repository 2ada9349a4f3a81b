//! `aiot node`'s metrics endpoint: `GET /metrics` answers the node's metrics in the Prometheus
//! text format (`aiot_cluster::node::metrics` says which). axum on the node's own tokio
//! runtime (rumqttd already builds axum for its endpoint, so this costs no new stack).

use std::net::SocketAddr;
use std::sync::Arc;

use aiot_cluster::node::Node;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` and serves the node's metrics there; returns the bound address.
pub async fn serve(addr: SocketAddr, node: Arc<Node>) -> Result<SocketAddr, String> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("metrics endpoint on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let node = Arc::clone(&node);
            async move { ([(CONTENT_TYPE, TEXT_FORMAT)], node.metrics_text()) }
        }),
    );
    // Host code: the endpoint's server task.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("metrics endpoint on {bound} stopped: {e}");
        }
    });
    Ok(bound)
}
