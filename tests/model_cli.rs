//! End to end: `aiot model train` on the committed breast-cancer fixture against scikit-learn's
//! fit (`actors/tests/reference/`), in text and JSON, and its refusals of bad input.

use std::process::{Command, Output};

const REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/actors/tests/reference");

fn aiot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aiot")).args(args).output().expect("aiot runs")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// scikit-learn's (columns, intercept, coefficients).
fn sklearn() -> (Vec<String>, f64, Vec<f64>) {
    let text = std::fs::read_to_string(format!("{REFERENCE}/logistic_breast_cancer.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let columns =
        json["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let coefficients = json["coefficients"].as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).collect();
    (columns, json["intercept"].as_f64().unwrap(), coefficients)
}

fn fixture() -> String {
    format!("{REFERENCE}/breast_cancer_std.csv")
}

#[test]
fn text_output_matches_scikit_learn_within_1e_6() {
    let out = stdout(&aiot(&["model", "train", "--csv", &fixture(), "--label", "label", "--c", "1.0"]));
    let (columns, intercept, coefficients) = sklearn();
    let mut lines = out.lines().filter(|l| l.starts_with("intercept ") || l.starts_with("coef "));
    let first = lines.next().unwrap();
    let ours: f64 = first.strip_prefix("intercept ").unwrap().parse().unwrap();
    assert!((ours - intercept).abs() <= 1e-6, "{first} vs {intercept}");
    let coef: Vec<(String, f64)> = lines
        .map(|l| {
            let mut parts = l.split_whitespace().skip(1);
            (parts.next().unwrap().to_owned(), parts.next().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(coef.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), columns, "column order");
    for ((name, ours), theirs) in coef.iter().zip(&coefficients) {
        assert!((ours - theirs).abs() <= 1e-6, "{name}: {ours} vs {theirs}");
    }
    assert!(out.contains("fit: converged after "), "{out}");
    assert!(out.contains("on the training data (not held out): log loss "), "{out}");
    assert!(out.contains("ROC AUC 0.99"), "{out}");
}

#[test]
fn json_output_matches_scikit_learn_within_1e_6() {
    let out = stdout(&aiot(&["model", "train", "--csv", &fixture(), "--label", "label", "--json"]));
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let (columns, intercept, coefficients) = sklearn();
    assert_eq!(json["columns"], serde_json::json!(columns));
    assert!((json["intercept"].as_f64().unwrap() - intercept).abs() <= 1e-6);
    let ours = json["coefficients"].as_array().unwrap();
    assert_eq!(ours.len(), 30);
    for (ours, theirs) in ours.iter().zip(&coefficients) {
        assert!((ours.as_f64().unwrap() - theirs).abs() <= 1e-6);
    }
    assert_eq!(json["fit"]["converged"], true);
    assert_eq!(json["training_metrics"]["held_out"], false);
    assert!(json["training_metrics"]["accuracy"].as_f64().unwrap() > 0.95);
}

#[test]
fn the_label_may_be_any_column_and_features_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.csv");
    let rows = "b,y,a\n0.5,0,1\n1.5,1,-0.5\n-1,0,0.3\n2,1,2\n-0.7,0,-1.2\n0.1,1,0.4\n";
    std::fs::write(&path, rows).unwrap();
    let out = stdout(&aiot(&["model", "train", "--csv", path.to_str().unwrap(), "--label", "y", "--c", "2"]));
    let names: Vec<&str> =
        out.lines().filter_map(|l| l.strip_prefix("coef ")).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["b", "a"]);
}

#[test]
fn bad_input_is_refused_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("nolabel.csv", "a,b\n1,0\n", "line 1: no column \"y\" in the header (columns: a, b)"),
        ("text.csv", "a,b,y\n1,2,0\n3,oops,1\n", "line 3, column \"b\": \"oops\" is not a finite number"),
        ("nan.csv", "a,b,y\n1,NaN,0\n3,4,1\n", "line 2, column \"b\": \"NaN\" is not a finite number"),
        ("label.csv", "a,b,y\n1,2,0\n3,4,2\n", "line 3, column \"y\": label \"2\" is not 0 or 1"),
        ("ragged.csv", "a,b,y\n1,2,0\n3,4\n5,6,1\n", "line 3: 2 fields, the header has 3"),
        ("long.csv", "a,b,y\n1,2,0\n3,4,1,9\n", "line 3: 4 fields, the header has 3"),
        (
            "oneclass.csv",
            "a,b,y\n1,2,1\n3,4,1\n",
            "every label in column \"y\" is 1: training needs both classes",
        ),
        ("empty.csv", "a,b,y\n", "no data rows after the header"),
    ];
    for (name, text, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap();
        let out = aiot(&["model", "train", "--csv", path, "--label", "y"]);
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(path) && err.contains(expected), "{name}: {err}");
    }
    let missing = aiot(&["model", "train", "--csv", "/nonexistent/x.csv", "--label", "y"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/x.csv"));
}
