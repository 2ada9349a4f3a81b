//! The dashboard's document: this node's answers to the shell's questions, gathered at one
//! moment. `nodes` and `actors` are the cluster's `AdminResponse`s as the shell's
//! `--json` shows them; `app` holds the application's answers (`models`, `loop`, `motors`,
//! `alerts`) or, for each it could not give, `{"error": why}`.

use aiot_cluster::admin::{AdminRequest, AdminResponse};
use aiot_cluster::node::{AppQuery, Node};
use serde_json::{json, Value};

/// The application questions the page shows.
const APP: [&str; 4] = ["models", "loop", "motors", "alerts"];

/// The document, now.
pub async fn of(node: &Node) -> Value {
    let mut app = serde_json::Map::new();
    for command in APP {
        let query = AppQuery { command: command.to_string(), args: Vec::new() };
        let answer = match node.ask_app(query).await {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| json!({ "error": e.to_string() })),
            Err(why) => json!({ "error": why }),
        };
        app.insert(command.to_string(), answer);
    }
    json!({
        "node": node.name(),
        "nodes": admin(node, AdminRequest::Nodes),
        "actors": admin(node, AdminRequest::Actors { prefix: "/".into() }),
        "app": app,
    })
}

/// The node's answer to `request`, its payload as JSON.
fn admin(node: &Node, request: AdminRequest) -> Value {
    match node.answer(&request) {
        AdminResponse::Nodes(rows) => json!(rows),
        AdminResponse::Actors(rows) => json!(rows),
        AdminResponse::Refused(why) => json!({ "error": why }),
        other => json!({ "error": format!("unexpected answer {other:?}") }),
    }
}
