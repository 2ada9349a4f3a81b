//! The dashboard in headless Chromium: what the page shows once its script ran (the DOM
//! Chromium dumps) against what the shell's `--json` and the node's metrics endpoint report
//! right after. Live values are matched by identity, not by timing: a motor's latest window on
//! the page (its time and features) must be one of that motor's recent windows the shell
//! reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::common::{aiot, http_get};

/// Debian's browser, or `$AIOT_CHROMIUM`.
fn chromium() -> Command {
    let program = std::env::var("AIOT_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut command = Command::new(program);
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chromium-profile");
    command.args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000"]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// The page's DOM after its script ran (a few refreshes of virtual time).
fn dump_dom(url: &str) -> String {
    let out =
        chromium().args(["--dump-dom", url]).output().expect("chromium runs (apt-get install chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Saves a screenshot of the page to `path`.
pub fn screenshot(url: &str, path: &Path) {
    let out = chromium()
        .args(["--window-size=1400,2400", &format!("--screenshot={}", path.display()), url])
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "the screenshot {} has {size} bytes", path.display());
}

/// The attributes of every start tag that has attribute `marker`.
fn tags_with(dom: &str, marker: &str) -> Vec<BTreeMap<String, String>> {
    let needle = format!(" {marker}=\"");
    dom.split('<')
        .filter_map(|tag| tag.split_once('>').map(|(inside, _)| inside))
        .filter(|inside| inside.contains(&needle))
        .map(|inside| {
            let mut attrs = BTreeMap::new();
            let mut rest = inside;
            while let Some((name, after)) = rest.split_once("=\"") {
                let (value, next) = after.split_once('"').expect("a closed attribute value");
                let name = name.rsplit(' ').next().unwrap().to_string();
                attrs.insert(name, value.replace("&amp;", "&"));
                rest = next;
            }
            attrs
        })
        .collect()
}

/// What the shell reports.
struct Reported {
    nodes: Value,
    /// Every node's motors.
    motors: BTreeMap<String, Value>,
    /// The features each motor's history keeps.
    charted: Vec<String>,
    models: Value,
}

/// Asks the shell for nodes, motors and models.
fn shell_reports(connect: &[String]) -> Result<Reported, String> {
    let out = aiot().args(connect).args(["--json", "-c", "nodes; motors; models"]).output().unwrap();
    if !out.status.success() {
        return Err(format!("the shell failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let [nodes, motors, models] = answers.as_slice() else { panic!("three answers: {text}") };
    let per_node = motors.as_object().unwrap().values();
    let merged = per_node.clone().flat_map(|node| node["motors"].as_object().unwrap().clone()).collect();
    // The same list from every node, in the order of each motor's history.
    let charted = per_node
        .take(1)
        .flat_map(|node| node["charted"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
        .collect();
    Ok(Reported { nodes: nodes.clone(), motors: merged, charted, models: models.clone() })
}

/// The model version per mote the metrics endpoint reports.
fn metric_versions(metrics: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("aiot_mote_model_version{"))
        .map(|l| {
            let mote = l.split("mote=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
            (mote, l.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .collect()
}

/// Loads the page and compares; `Err` says what differed (the caller tries again, as values
/// may change between the reads), `Ok` what was compared.
pub fn agrees(url: &str, metrics: &str, connect: &[String]) -> Result<String, String> {
    let dom = dump_dom(url);
    let refreshes = tags_with(&dom, "data-refreshes");
    let refreshed = refreshes.first().and_then(|b| b["data-refreshes"].parse::<u32>().ok()).unwrap_or(0);
    if refreshed == 0 {
        return Err(format!("the page never loaded its state:\n{dom}"));
    }
    let Reported { nodes, motors, charted, models } = shell_reports(connect)?;
    let versions = metric_versions(&http_get(metrics, "/metrics"));

    // The cluster map: each node, its status and the subtrees it hosts.
    let page_nodes: BTreeSet<(String, String, String)> = tags_with(&dom, "data-node")
        .into_iter()
        .map(|n| (n["data-node"].clone(), n["data-status"].clone(), n["data-hosts"].clone()))
        .collect();
    let shell_nodes: BTreeSet<(String, String, String)> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let mut hosts: Vec<&str> =
                n["hosts"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
            hosts.sort_unstable();
            (n["name"].as_str().unwrap().into(), n["status"].as_str().unwrap().into(), hosts.join(","))
        })
        .collect();
    if page_nodes != shell_nodes {
        return Err(format!("nodes: the page shows {page_nodes:?}, the shell {shell_nodes:?}"));
    }

    // Motors: the latest window of each, as a recent window the shell knows.
    let rows: Vec<_> = tags_with(&dom, "data-time");
    let page_motes: BTreeSet<&String> = rows.iter().map(|r| &r["data-mote"]).collect();
    let shell_motes: BTreeSet<&String> = motors.keys().collect();
    if rows.is_empty() || page_motes != shell_motes {
        return Err(format!("motors: the page shows {page_motes:?}, the shell {shell_motes:?}"));
    }
    for row in &rows {
        let mote = &row["data-mote"];
        let time = row["data-time"].parse::<u64>().map_err(|e| format!("mote {mote}'s time: {e}"))?;
        let vib_rms: f64 = row["data-vib_rms"].parse().map_err(|e| format!("mote {mote}'s vib_rms: {e}"))?;
        let index = charted.iter().position(|n| n == "vib_rms").ok_or("vib_rms is not charted")?;
        let known =
            motors[mote]["history"].as_array().unwrap().iter().any(|p| {
                p["time_ms"].as_u64() == Some(time) && p["charted"][index].as_f64() == Some(vib_rms)
            });
        if !known {
            return Err(format!(
                "mote {mote}: the page's window at {time} (vib_rms {vib_rms}) is not among the shell's"
            ));
        }
    }

    // Models: the registry's versions, and the model each mote runs.
    let page_models: Vec<String> =
        tags_with(&dom, "data-version").into_iter().map(|m| m["data-version"].clone()).collect();
    let shell_models: Vec<String> =
        models["models"].as_array().unwrap().iter().map(|m| m["version"].to_string()).collect();
    if page_models != shell_models {
        return Err(format!("models: the page shows {page_models:?}, the shell {shell_models:?}"));
    }
    let page_running: BTreeMap<String, u64> = tags_with(&dom, "data-running")
        .into_iter()
        .map(|r| (r["data-mote"].clone(), r["data-running"].parse().unwrap()))
        .collect();
    let shell_running: BTreeMap<String, u64> = models["rollout"]["motes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(mote, m)| (mote.clone(), m["running"].as_u64().unwrap()))
        .collect();
    let metric_running: BTreeMap<String, u64> =
        versions.into_iter().filter(|(mote, _)| page_running.contains_key(mote)).collect();
    if page_running.is_empty() || page_running != shell_running || page_running != metric_running {
        return Err(format!(
            "model per mote: the page shows {page_running:?}, the shell {shell_running:?}, the metrics {metric_running:?}"
        ));
    }
    Ok(format!(
        "{} nodes, {} motors, {} models, {} motes' model versions agree",
        page_nodes.len(),
        rows.len(),
        page_models.len(),
        page_running.len()
    ))
}
