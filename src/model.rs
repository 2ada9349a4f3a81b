//! `aiot model train`: fits the Newton logistic regression (`aiot_actors::ml::logistic`) on a
//! CSV file and prints the model and its training metrics.
//!
//! The CSV has a header row; the features are every column but the label, in column order, used
//! as given (no scaling here: standardise beforehand if the model should see standardised data).
//! Labels are 0 or 1. Any refusal names the file, the line and the column.

use std::path::{Path, PathBuf};

use aiot_actors::ml::logistic::{fit, FitReport, LogisticConfig, LogisticModel};
use aiot_actors::ml::metrics::{self, Confusion};
use clap::Subcommand;
use ndarray::{Array1, Array2};

/// The decision threshold the training accuracy is taken at.
const THRESHOLD: f64 = 0.5;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Fits a logistic regression (L2, scikit-learn's objective) on a CSV file with a header row.
    Train {
        /// The CSV file: a header row, then one row per sample.
        #[arg(long)]
        csv: PathBuf,
        /// The label column's name (values 0 or 1); every other column is a feature.
        #[arg(long)]
        label: String,
        /// Inverse regularisation strength (scikit-learn's C).
        #[arg(long, default_value_t = 1.0)]
        c: f64,
        /// Convergence tolerance on the largest gradient entry (scikit-learn's newton-cg scaling).
        #[arg(long, default_value_t = 1e-10)]
        tol: f64,
        /// Most Newton steps.
        #[arg(long, default_value_t = 100)]
        max_iter: usize,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ModelCommand) -> Result<(), String> {
    match command {
        ModelCommand::Train { csv, label, c, tol, max_iter, json } => {
            train(&csv, &label, &LogisticConfig { c, tol, max_iter }, json)
        }
    }
}

/// A training set read from CSV.
struct Training {
    columns: Vec<String>,
    x: Array2<f64>,
    y: Array1<f64>,
}

fn read(path: &Path, label: &str) -> Result<Training, String> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| format!("{file}: {e}"))?;
    let header: Vec<String> =
        reader.headers().map_err(|e| format!("{file}: header: {e}"))?.iter().map(str::to_owned).collect();
    let label_at = header.iter().position(|h| h == label).ok_or_else(|| {
        format!("{file} line 1: no column {label:?} in the header (columns: {})", header.join(", "))
    })?;
    let columns: Vec<String> = header.iter().filter(|&h| h != label).cloned().collect();
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    let mut seen = [false; 2];
    for record in reader.records() {
        let record = record.map_err(|e| format!("{file}: {e}"))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(format!(
                "{file} line {line}: {} fields, the header has {}",
                record.len(),
                header.len()
            ));
        }
        for (i, cell) in record.iter().enumerate() {
            let column = &header[i];
            let value: f64 = cell.parse().ok().filter(|v: &f64| v.is_finite()).ok_or_else(|| {
                format!("{file} line {line}, column {column:?}: {cell:?} is not a finite number")
            })?;
            if i != label_at {
                values.push(value);
            } else if value == 0.0 || value == 1.0 {
                seen[usize::from(value == 1.0)] = true;
                labels.push(value);
            } else {
                return Err(format!("{file} line {line}, column {column:?}: label {cell:?} is not 0 or 1"));
            }
        }
    }
    match seen {
        [false, false] => Err(format!("{file}: no data rows after the header")),
        [true, false] | [false, true] => Err(format!(
            "{file}: every label in column {label:?} is {}: training needs both classes",
            u8::from(seen[1])
        )),
        [true, true] => {
            let x = Array2::from_shape_vec((labels.len(), columns.len()), values)
                .map_err(|e| format!("{file}: {e}"))?;
            Ok(Training { columns, x, y: Array1::from(labels) })
        }
    }
}

/// Training-data metrics (not held out: a check of the fit, not of the model).
struct TrainingMetrics {
    log_loss: f64,
    accuracy: f64,
    roc_auc: f64,
}

fn training_metrics(model: &LogisticModel, data: &Training) -> Result<TrainingMetrics, String> {
    let p = model.predict_proba(data.x.view()).to_vec();
    let labels: Vec<bool> = data.y.iter().map(|&y| y == 1.0).collect();
    let e = |e: metrics::MetricError| e.to_string();
    Ok(TrainingMetrics {
        log_loss: metrics::log_loss(&p, &labels).map_err(e)?,
        accuracy: Confusion::at(&p, &labels, THRESHOLD).map_err(e)?.accuracy(),
        roc_auc: metrics::roc_auc(&p, &labels).map_err(e)?,
    })
}

/// What a training run prints.
struct Outcome<'a> {
    path: &'a Path,
    label: &'a str,
    config: &'a LogisticConfig,
    data: &'a Training,
    model: &'a LogisticModel,
    report: &'a FitReport,
    metrics: TrainingMetrics,
}

fn train(path: &Path, label: &str, config: &LogisticConfig, json: bool) -> Result<(), String> {
    let data = read(path, label)?;
    let (model, report) =
        fit(data.x.view(), data.y.view(), config).map_err(|e| format!("{}: {e}", path.display()))?;
    let metrics = training_metrics(&model, &data)?;
    let outcome = Outcome { path, label, config, data: &data, model: &model, report: &report, metrics };
    if json {
        print_json(&outcome);
    } else {
        print_text(&outcome);
    }
    if report.converged {
        Ok(())
    } else {
        Err(format!(
            "did not converge: after {} Newton steps the gradient is {:e} (tol {:e}){}",
            report.iterations,
            report.gradient_max,
            config.tol,
            if report.stalled { ", and no step decreases the objective" } else { "" }
        ))
    }
}

fn print_text(o: &Outcome<'_>) {
    let Outcome { path, label, config, data, model, report, metrics: m } = o;
    println!(
        "logistic regression on {}: {} rows, {} features, label {label:?}, C = {:?}",
        path.display(),
        data.x.nrows(),
        data.columns.len(),
        config.c
    );
    println!("intercept {:?}", model.intercept);
    for (name, w) in data.columns.iter().zip(&model.coef) {
        println!("coef {name} {w:?}");
    }
    println!(
        "fit: {} after {} Newton steps, objective {:?}, largest scaled gradient {:e} (tol {:e})",
        if report.converged { "converged" } else { "NOT converged" },
        report.iterations,
        report.objective,
        report.gradient_max,
        config.tol
    );
    println!(
        "on the training data (not held out): log loss {:.6}, accuracy {:.6} at p >= {THRESHOLD}, ROC AUC {:.6}",
        m.log_loss, m.accuracy, m.roc_auc
    );
}

fn print_json(o: &Outcome<'_>) {
    let Outcome { path, label, config, data, model, report, metrics: m } = o;
    let value = serde_json::json!({
        "file": path.display().to_string(),
        "rows": data.x.nrows(),
        "label": label,
        "c": config.c,
        "tol": config.tol,
        "columns": data.columns,
        "intercept": model.intercept,
        "coefficients": model.coef.to_vec(),
        "fit": {
            "converged": report.converged,
            "iterations": report.iterations,
            "objective": report.objective,
            "gradient_max": report.gradient_max,
        },
        "training_metrics": {
            "held_out": false,
            "threshold": THRESHOLD,
            "log_loss": m.log_loss,
            "accuracy": m.accuracy,
            "roc_auc": m.roc_auc,
        },
    });
    println!("{value}");
}
