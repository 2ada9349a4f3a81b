//! What the application commands show (`models`, `deploy`, `rollback`, `loop`): the JSON the
//! topology answered, as is for scripts, and for people a table or a few lines.

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

/// Answers from each node (`loop`).
pub fn app_per_node(command: &str, answers: &[(String, String)]) -> Result<Output, String> {
    let mut all = serde_json::Map::new();
    let mut lines = Vec::new();
    for (node, json) in answers {
        let value = parse(json)?;
        lines.push(match command {
            "loop" => ml_loop(node, &value),
            _ => format!("{node}: {value}"),
        });
        all.insert(node.clone(), value);
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
        "{node}:\n  stage 2: model {}, {} windows scored, {} unscored, {} alerts\n  drift: {} windows checked, {} drifts, {} inspections and {} retrains requested; {}\n  trainer: {} windows, {} outcomes, {} trainings (last version {}), {} refused; {}\n  pipeline: {}",
        s["model_version"], s["scored"], s["unscored"], s["alerts"],
        d["checked"], d["drifts"], d["inspections_requested"], d["retrains_requested"], text_of(&d["last"]),
        t["windows"], t["outcomes"], t["trainings"], t["version"], t["refused"], text_of(&t["last"]),
        text_of(&v["pipeline"]),
    )
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
        assert!(output.text.contains("3     2     yes     yes        1         confirmed"), "{}", output.text);
        let none = app("models", r#"{"models":[],"rollout":null}"#).unwrap();
        assert_eq!(none.text, "no models registered\nno rollout");
        assert!(app("models", "not json").unwrap_err().contains("not JSON"));
    }

    #[test]
    fn loop_answers_are_kept_per_node() {
        let answers = [("p".to_string(), r#"{"stage2":{"alerts":3},"drift":{},"trainer":{},"pipeline":"idle"}"#.to_string())];
        let output = app_per_node("loop", &answers).unwrap();
        assert_eq!(output.json["p"]["stage2"]["alerts"], 3);
        assert!(output.text.starts_with("p:\n  stage 2: model null"), "{}", output.text);
        assert!(output.text.contains("3 alerts"), "{}", output.text);
    }
}
