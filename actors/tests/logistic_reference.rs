//! The Newton logistic regression against scikit-learn on the breast-cancer data (issue 7).
//!
//! `reference/gen_logistic.py` wrote the standardised data (`breast_cancer_std.csv`) and
//! scikit-learn's fit of it (`logistic_breast_cancer.json`: `LogisticRegression(C=1,
//! solver="newton-cg", tol=1e-10)`). Our fit of the same data must match every coefficient and
//! the intercept within 1e-6, and reach an objective no higher than scikit-learn's.

use aiot_actors::ml::logistic::{fit, LogisticConfig};
use ndarray::{Array1, Array2};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference");

fn data() -> (Vec<String>, Array2<f64>, Array1<f64>) {
    let text = std::fs::read_to_string(format!("{DIR}/breast_cancer_std.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    assert_eq!(header.last().map(String::as_str), Some("label"));
    let d = header.len() - 1;
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for line in lines {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells.len(), d + 1);
        values.extend_from_slice(&cells[..d]);
        labels.push(cells[d]);
    }
    let x = Array2::from_shape_vec((labels.len(), d), values).unwrap();
    (header[..d].to_vec(), x, Array1::from(labels))
}

#[test]
fn newton_matches_scikit_learn_on_breast_cancer() {
    let (columns, x, y) = data();
    assert_eq!(x.dim(), (569, 30));
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/logistic_breast_cancer.json")).unwrap())
            .unwrap();
    let names: Vec<&str> =
        reference["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(names, columns);
    let coefficients: Vec<f64> =
        reference["coefficients"].as_array().unwrap().iter().map(|c| c.as_f64().unwrap()).collect();
    let intercept = reference["intercept"].as_f64().unwrap();
    let objective = reference["objective"].as_f64().unwrap();
    // The figures, so a regenerated fixture cannot drift silently.
    assert!((intercept - 0.2145027174).abs() < 1e-10);
    let first = [-0.3630925319, -0.3876754424, -0.3510621187, -0.4356098033, -0.1618311028];
    for (got, want) in coefficients.iter().zip(first) {
        assert!((got - want).abs() < 1e-10, "{got} vs {want}");
    }

    let config = LogisticConfig { c: 1.0, tol: 1e-10, max_iter: 100 };
    let (model, report) = fit(x.view(), y.view(), &config).unwrap();
    assert!(report.converged, "{report:?}");
    let mut worst = (intercept - model.intercept).abs();
    for (i, (ours, theirs)) in model.coef.iter().zip(&coefficients).enumerate() {
        let diff = (ours - theirs).abs();
        assert!(diff <= 1e-6, "{}: ours {ours}, scikit-learn {theirs}", columns[i]);
        worst = worst.max(diff);
    }
    assert!((intercept - model.intercept).abs() <= 1e-6, "intercept {} vs {intercept}", model.intercept);
    println!(
        "max |ours - scikit-learn| over intercept and 30 coefficients: {worst:.3e}; objective ours \
         {:.15}, scikit-learn {objective:.15}; {} Newton steps",
        report.objective, report.iterations
    );
    assert!(report.objective <= objective * (1.0 + 1e-12), "{} > {objective}", report.objective);
}
