//! What each command shows: a table for people and the same rows as JSON for scripts
//! (`--json`), built from the nodes' answers.

use aiot_cluster::admin::{ActorRow, MoveReport, NodeReport, NodeRow, SubtreeRow};
use aiot_cluster::membership::Status;
use aiot_cluster::node::tag_list;
use aiot_runtime::trace::TraceEvent;
use serde::Serialize;

use super::commands::Spec;
use super::render::table;

/// A command's result.
#[derive(Debug)]
pub struct Output {
    pub json: serde_json::Value,
    pub text: String,
    /// Nodes that could not be asked, and why (the rest of the answer stands).
    pub warnings: Vec<String>,
}

impl Output {
    fn new(rows: &impl Serialize, text: String) -> Output {
        let json = serde_json::to_value(rows).expect("answers serialize to JSON");
        Output { json, text, warnings: Vec::new() }
    }

    /// An answer already in JSON.
    pub fn from_json(json: serde_json::Value, text: String) -> Output {
        Output { json, text, warnings: Vec::new() }
    }

    pub fn empty() -> Output {
        Output { json: serde_json::Value::Null, text: String::new(), warnings: Vec::new() }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Output {
        self.warnings = warnings;
        self
    }
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Up => "up",
        Status::Down => "down",
        Status::Left => "left",
    }
}

pub fn nodes(rows: &[NodeRow]) -> Output {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|n| {
            vec![
                format!("{}{}", n.name, if n.answering { " *" } else { "" }),
                n.addr.clone(),
                format!("{}{}", status(n.status), if n.cordoned { " (cordoned)" } else { "" }),
                n.incarnation.to_string(),
                tag_list(&n.tags),
                n.hosts.join(" "),
            ]
        })
        .collect();
    Output::new(&rows, table(&["NODE", "ADDRESS", "STATUS", "INCARNATION", "TAGS", "HOSTS"], &cells))
}

pub fn uncordoned(node: &str) -> Output {
    let json = serde_json::json!({ "node": node, "cordoned": false });
    Output::new(&json, format!("{node} is no longer cordoned: placement and moves may use it again\n"))
}

pub fn tags(rows: &[NodeRow]) -> Output {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|n| {
            let tier = n.tags.get("tier").cloned().unwrap_or_else(|| "-".into());
            let others: Vec<String> =
                n.tags.iter().filter(|(k, _)| *k != "tier").map(|(k, v)| format!("{k}={v}")).collect();
            vec![n.name.clone(), tier, others.join(", ")]
        })
        .collect();
    let json: Vec<serde_json::Value> =
        rows.iter().map(|n| serde_json::json!({ "node": n.name, "tags": n.tags })).collect();
    Output::new(&json, table(&["NODE", "TIER", "OTHER TAGS"], &cells))
}

pub fn actors(rows: &[ActorRow]) -> Output {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            vec![
                a.path.clone(),
                a.node.clone(),
                a.depth.to_string(),
                a.depth_max.to_string(),
                a.handled.to_string(),
                a.failures.to_string(),
                a.restarts.to_string(),
                a.dropped.to_string(),
            ]
        })
        .collect();
    let header = ["PATH", "NODE", "DEPTH", "DEPTH MAX", "HANDLED", "FAILURES", "RESTARTS", "DROPPED"];
    Output::new(&rows, table(&header, &cells))
}

pub fn placement(rows: &[SubtreeRow]) -> Output {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.root.clone(),
                s.node.clone().unwrap_or_else(|| "(unplaced)".into()),
                s.actors.to_string(),
                if s.requires.is_empty() { "-".into() } else { s.requires.join("; ") },
                s.prefers.clone().unwrap_or_else(|| "-".into()),
                if s.fits.is_empty() { "(none up)".into() } else { s.fits.join(" ") },
            ]
        })
        .collect();
    Output::new(&rows, table(&["SUBTREE", "NODE", "ACTORS", "REQUIRES", "PREFERS", "FITS"], &cells))
}

pub fn moves(rows: &[MoveReport]) -> Output {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|m| {
            vec![
                m.root.clone(),
                m.from.clone(),
                m.to.clone(),
                format!("{} ms", m.took_ms),
                m.actors.to_string(),
                m.messages.to_string(),
                m.bytes.to_string(),
            ]
        })
        .collect();
    let header = ["MOVED", "FROM", "TO", "TOOK", "ACTORS", "MESSAGES CARRIED", "BYTES"];
    let mut text = table(&header, &cells);
    if rows.is_empty() {
        text = "nothing to move".into();
    }
    Output::new(&rows, text)
}

pub fn stats(rows: &[NodeReport]) -> Output {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.node.clone(),
                if r.lease { "held" } else { "LOST" }.into(),
                format!("{:.0}s", r.uptime_ms as f64 / 1000.0),
                r.actors.to_string(),
                r.dead_letters.to_string(),
                r.remote.remote_sent.to_string(),
                r.remote.remote_received.to_string(),
                r.remote.duplicates_dropped.to_string(),
                r.remote.lane_full.to_string(),
                (r.remote.frames_refused + r.remote.decode_errors).to_string(),
                r.refused.values().sum::<u64>().to_string(),
                format!("{}/{}", r.remote.checkpoints_sent, r.remote.checkpoints_kept),
            ]
        })
        .collect();
    let header = [
        "NODE",
        "LEASE",
        "UPTIME",
        "ACTORS",
        "DEAD LETTERS",
        "SENT",
        "RECEIVED",
        "DUPLICATES",
        "LANE FULL",
        "BAD FRAMES",
        "REFUSED CONNECTIONS",
        "CHECKPOINTS SENT/KEPT",
    ];
    Output::new(&rows, table(&header, &cells))
}

pub fn help(commands: &[Spec], command: Option<&str>) -> Result<Output, String> {
    let chosen: Vec<&Spec> = match command {
        None => commands.iter().collect(),
        Some(name) => {
            let spec = commands
                .iter()
                .find(|s| s.name == name)
                .ok_or_else(|| format!("no command {name:?} (help lists the commands)"))?;
            vec![spec]
        }
    };
    let cells: Vec<Vec<String>> =
        chosen.iter().map(|s| vec![s.usage.to_string(), s.help.to_string()]).collect();
    let json: Vec<serde_json::Value> =
        chosen.iter().map(|s| serde_json::json!({ "usage": s.usage, "help": s.help })).collect();
    let mut text = table(&["COMMAND", "WHAT IT DOES"], &cells);
    if command.is_none() {
        text.push_str("\n\nSeparate commands with ';'. --json prints each answer as one JSON line.");
    }
    Ok(Output::new(&json, text))
}

/// One traced message, for people.
pub fn trace_line(node: &str, event: &TraceEvent) -> String {
    format!(
        "{:>6}  {:>12.3} ms  {node:<12} {:<11} {}",
        event.seq,
        event.at_us as f64 / 1000.0,
        event.kind,
        event.message
    )
}

/// The messages `trace` saw (each with the node that ran the actor then): already printed
/// when `printed`, else as lines; JSON rows for scripts.
pub fn trace(path: &str, events: &[(String, TraceEvent)], printed: bool) -> Output {
    let rows: Vec<serde_json::Value> = events
        .iter()
        .map(|(node, e)| serde_json::json!({ "node": node, "seq": e.seq, "at_us": e.at_us, "kind": e.kind, "message": e.message }))
        .collect();
    let mut text: Vec<String> = match printed {
        true => Vec::new(),
        false => events.iter().map(|(node, e)| trace_line(node, e)).collect(),
    };
    text.push(format!("{} messages handled by {path}", events.len()));
    Output::from_json(serde_json::Value::Array(rows), text.join("\n"))
}
