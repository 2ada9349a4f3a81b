//! What the application commands show (`models`, `deploy`, `rollback`, `loop`, `motors`,
//! `alerts`): the JSON the topology answered, as is for scripts (per node where every node is
//! asked), and for people a table or a few lines.

use serde_json::Value;

use super::render::table;
use super::views::Output;

/// An answer from the entry node.
pub fn app(command: &str, json: &str) -> Result<Output, String> {
    let value = parse(json)?;
    let text = match command {
        "models" => models(&value),
        _ => format!("model {}: {}", value["version"], text_of(&value["state"])),
    };
    Ok(Output::from_json(value, text))
}

/// Answers from each node (`loop`, `motors`, `alerts`).
pub fn app_per_node(command: &str, answers: &[(String, String)]) -> Result<Output, String> {
    let mut all = serde_json::Map::new();
    let mut lines = Vec::new();
    for (node, json) in answers {
        let value = parse(json)?;
        let line = match command {
            "loop" => Some(ml_loop(node, &value)),
            "motors" => motors(node, &value),
            "alerts" => alerts(node, &value),
            _ => Some(format!("{node}: {value}")),
        };
        lines.extend(line);
        all.insert(node.clone(), value);
    }
    if lines.is_empty() {
        lines.push(format!("no node has {command} to show yet"));
    }
    Ok(Output::from_json(Value::Object(all), lines.join("\n")))
}

fn parse(json: &str) -> Result<Value, String> {
    serde_json::from_str(json).map_err(|e| format!("the node answered something that is not JSON: {e}"))
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn models(value: &Value) -> String {
    let empty = Vec::new();
    let cells: Vec<Vec<String>> = value["models"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|m| {
            let metrics = m["metrics"].as_object().map_or_else(String::new, |metrics| {
                metrics
                    .iter()
                    .map(|(k, v)| format!("{k}={:.3}", v.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            vec![text_of(&m["version"]), text_of(&m["parent"]), text_of(&m["created_ms"]), metrics]
        })
        .collect();
    let mut text = if cells.is_empty() {
        "no models registered".to_string()
    } else {
        table(&["VERSION", "PARENT", "CREATED (CLUSTER MS)", "VALIDATION"], &cells)
    };
    let rollout = &value["rollout"];
    if rollout.is_null() {
        text.push_str("\nno rollout");
        return text;
    }
    text.push_str(&format!("\nrollout: {}", text_of(&rollout["summary"])));
    let motes: Vec<Vec<String>> = rollout["motes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(mote, m)| {
            let receipts = m["receipts"].as_array().map_or(0, Vec::len);
            let last =
                m["receipts"].as_array().and_then(|r| r.last()).map_or("-".into(), |r| text_of(&r["status"]));
            let yes = |v: &Value| if v.as_bool() == Some(true) { "yes" } else { "-" }.to_string();
            vec![
                mote.clone(),
                text_of(&m["running"]),
                yes(&m["canary"]),
                yes(&m["confirmed"]),
                receipts.to_string(),
                last,
            ]
        })
        .collect();
    text.push('\n');
    text.push_str(&table(&["MOTE", "RUNS", "CANARY", "CONFIRMED", "RECEIPTS", "LAST RECEIPT"], &motes));
    text
}

fn ml_loop(node: &str, v: &Value) -> String {
    let (s, d, t) = (&v["stage2"], &v["drift"], &v["trainer"]);
    format!(
        "{node}:\n  stage 2: model {}, {} windows scored, {} unscored, {} alerts; capture to decision {}\n  drift: {} windows checked, {} drifts, {} inspections and {} retrains requested; {}\n  trainer: {} windows, {} outcomes, {} trainings (last version {}), {} refused; {}\n  pipeline: {}",
        s["model_version"], s["scored"], s["unscored"], s["alerts"], latency(s),
        d["checked"], d["drifts"], d["inspections_requested"], d["retrains_requested"], text_of(&d["last"]),
        t["windows"], t["outcomes"], t["trainings"], t["version"], t["refused"], text_of(&t["last"]),
        text_of(&v["pipeline"]),
    )
}

/// Stage 2's capture-to-decision latency quantiles (cluster time).
fn latency(stage2: &Value) -> String {
    match (stage2["latency_p50_ms"].as_u64(), stage2["latency_p99_ms"].as_u64()) {
        (Some(p50), Some(p99)) => format!("p50 {p50} ms, p99 {p99} ms (cluster time)"),
        _ => "not measured yet (no window scored with a model)".into(),
    }
}

/// A node's motors as a table (none if its stage 2 saw none).
fn motors(node: &str, v: &Value) -> Option<String> {
    let motors = v["motors"].as_object().filter(|m| !m.is_empty())?;
    let names: Vec<&str> = v["charted"].as_array()?.iter().filter_map(Value::as_str).collect();
    let features: Vec<&str> = v["features"].as_array()?.iter().filter_map(Value::as_str).collect();
    let cells: Vec<Vec<String>> = motors
        .iter()
        .map(|(mote, m)| {
            let mut row = vec![mote.clone(), text_of(&m["time_ms"])];
            row.push(m["probability"].as_f64().map_or("-".into(), |p| format!("{p:.3}")));
            let alert = &m["alert"];
            row.push(match alert.is_null() {
                true => "-".into(),
                false => format!("{} {}", text_of(&alert["kind"]), text_of(&alert["level"])),
            });
            for name in &names {
                let value = features.iter().position(|f| f == name).and_then(|i| m["features"][i].as_f64());
                row.push(value.map_or("-".into(), |x| format!("{x:.4}")));
            }
            row
        })
        .collect();
    let mut headers = vec!["MOTE", "WINDOW (CLUSTER MS)", "P(FAULT)", "ALERT"];
    headers.extend(names.iter().copied());
    Some(format!("{node}:\n{}", table(&headers, &cells)))
}

/// A node's latest alerts as a table (none if it made none).
fn alerts(node: &str, v: &Value) -> Option<String> {
    let alerts = v["alerts"].as_array().filter(|a| !a.is_empty())?;
    let cells: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            let evidence = a["evidence"].as_array().map_or_else(String::new, |e| {
                e.iter().filter_map(|pair| pair[0].as_str()).collect::<Vec<_>>().join(", ")
            });
            vec![
                text_of(&a["time_ms"]),
                text_of(&a["mote"]),
                text_of(&a["kind"]),
                text_of(&a["level"]),
                a["probability"].as_f64().map_or("-".into(), |p| format!("{p:.3}")),
                text_of(&a["model_version"]),
                evidence,
            ]
        })
        .collect();
    let headers = ["TIME (CLUSTER MS)", "MOTE", "KIND", "LEVEL", "P(FAULT)", "MODEL", "EVIDENCE"];
    Some(format!("{node}:\n{}", table(&headers, &cells)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_show_the_registry_and_the_rollout_mote_by_mote() {
        let answer = r#"{"models":[{"version":2,"parent":1,"created_ms":5,"metrics":{"auc":0.91234}}],
            "rollout":{"version":2,"summary":"model 2 Canary: ...","motes":{"3":{"running":2,"canary":true,
            "confirmed":true,"receipts":[{"model":2,"status":"confirmed"}]}}}}"#;
        let output = app("models", answer).unwrap();
        assert_eq!(output.json["models"][0]["version"], 2);
        assert!(output.text.contains("2        1       5                     auc=0.912"), "{}", output.text);
        assert!(output.text.contains("rollout: model 2 Canary: ..."), "{}", output.text);
        assert!(
            output.text.contains("3     2     yes     yes        1         confirmed"),
            "{}",
            output.text
        );
        let none = app("models", r#"{"models":[],"rollout":null}"#).unwrap();
        assert_eq!(none.text, "no models registered\nno rollout");
        assert!(app("models", "not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn loop_answers_are_kept_per_node() {
        let answers = [(
            "p".to_string(),
            r#"{"stage2":{"alerts":3},"drift":{},"trainer":{},"pipeline":"idle"}"#.to_string(),
        )];
        let output = app_per_node("loop", &answers).unwrap();
        assert_eq!(output.json["p"]["stage2"]["alerts"], 3);
        assert!(output.text.starts_with("p:\n  stage 2: model null"), "{}", output.text);
        assert!(output.text.contains("3 alerts"), "{}", output.text);
    }

    #[test]
    fn motors_and_alerts_show_only_the_nodes_that_have_them() {
        let motors = r#"{"features":["vib_rms","temp_mean"],"charted":["temp_mean"],
            "motors":{"4":{"time_ms":9,"features":[0.5,41.25],"probability":0.125,"alert":{"kind":"Machine","level":"Raised"},"history":[]}}}"#;
        let empty = r#"{"features":["vib_rms","temp_mean"],"charted":["temp_mean"],"motors":{}}"#;
        let answers = [("p".to_string(), motors.to_string()), ("t".to_string(), empty.to_string())];
        let output = app_per_node("motors", &answers).unwrap();
        assert_eq!(output.json["p"]["motors"]["4"]["probability"], 0.125);
        assert!(output.text.starts_with("p:\nMOTE"), "{}", output.text);
        assert!(
            output.text.contains("4     9                    0.125     Machine Raised  41.2500"),
            "{}",
            output.text
        );
        assert!(!output.text.contains("t:"), "{}", output.text);
        let alerts = r#"{"alerts":[{"time_ms":7,"mote":4,"kind":"Machine","level":"Escalated","probability":0.75,
            "model_version":2,"evidence":[["env_bpfo",1.5],["vib_rms",0.25]]}]}"#;
        let output = app_per_node("alerts", &[("p".to_string(), alerts.to_string())]).unwrap();
        assert!(
            output
                .text
                .contains("7                  4     Machine  Escalated  0.750     2      env_bpfo, vib_rms"),
            "{}",
            output.text
        );
        let none = app_per_node("alerts", &[("t".to_string(), r#"{"alerts":[]}"#.to_string())]).unwrap();
        assert_eq!(none.text, "no node has alerts to show yet");
    }
}
