//! `aiot-bench train`: our Newton logistic regression (`aiot_actors::ml::logistic`) against
//! scikit-learn's `LogisticRegression(solver="newton-cg")` on the same data, same objective,
//! same tolerance (BLUEPRINT section 10: train's baseline is scikit-learn).
//!
//! - **Data**: 100 000 x 16 (`--quick`: 10 000 x 16), seeded: features with AR(1) correlation
//!   0.6 between neighbouring columns, each with its own mean and scale, labels drawn from a
//!   logistic ground truth (about a third positive). Written to `.npy` files in a temporary
//!   directory for scikit-learn, which loads them exactly (no text round trip).
//! - **Fits**: `C = 1`, `tol = 1e-8` on both sides (the same convergence test: the largest
//!   entry of scikit-learn's scaled gradient), at most 100 iterations. Ours times `fit` on the
//!   data in memory; scikit-learn's runs in a Python subprocess that times only `fit`
//!   (`time.perf_counter` around it) and prints the time back. Both single-threaded: the
//!   subprocess runs with `OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and `MKL_NUM_THREADS` = 1.
//! - **Check**: both must reach the same objective `0.5 |w|^2 + C sum logloss` (computed here,
//!   with the same code, from each side's coefficients) within a relative 1e-6, or the run fails.
//! - **Runs**: one warm-up fit each, then `--runs` (default 3), ours and scikit-learn's
//!   interleaved (one subprocess per run, warming up before its timed fit); medians printed,
//!   with the ratio ours/scikit-learn (lower is better).
//!
//! Python: `$AIOT_SKLEARN_PYTHON` if set, else `target/ml-venv/bin/python` in the workspace,
//! created with `python3 -m venv` and `pip install scikit-learn` when it cannot import sklearn
//! (`tools/test` installs it there first).

// Host code (a benchmark): it reads the wall clock.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use aiot_actors::ml::logistic::{fit, sigmoid, LogisticConfig, LogisticModel};
use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `aiot-bench train` takes `stream`'s options: `--runs N` (timed fits per side, median shown)
/// and `--quick` (10 000 rows, one run: a smoke test).
pub use crate::stream::Args;

const FEATURES: usize = 16;
const SEED: u64 = 7;
const C: f64 = 1.0;
const TOL: f64 = 1e-8;
const MAX_ITER: usize = 100;
/// Both sides must reach the same objective within this relative difference.
const OBJECTIVE_AGREEMENT: f64 = 1e-6;

/// What the Python side prints back (one JSON object per subprocess).
struct SklearnRun {
    seconds: f64,
    n_iter: u64,
    model: LogisticModel,
    versions: String,
}

const SCRIPT: &str = r#"
import json, sys, time
import numpy as np, scipy, sklearn
from sklearn.linear_model import LogisticRegression
x = np.load(sys.argv[1]); y = np.load(sys.argv[2])
def one_fit():
    model = LogisticRegression(C=float(sys.argv[3]), solver="newton-cg", tol=float(sys.argv[4]),
                               max_iter=int(sys.argv[5]))
    start = time.perf_counter()
    model.fit(x, y)
    return time.perf_counter() - start, model
one_fit()  # warm-up
seconds, model = one_fit()
print(json.dumps({
    "seconds": seconds,
    "n_iter": int(model.n_iter_[0]),
    "intercept": float(model.intercept_[0]),
    "coef": [float(v) for v in model.coef_[0]],
    "versions": f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, scipy {scipy.__version__}",
}))
"#;

pub fn run(args: &Args) -> Result<(), String> {
    let (rows, runs) = if args.quick { (10_000, 1) } else { (100_000, args.runs.max(1)) };
    let python = sklearn_python()?;
    let (x, y) = data(rows);
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let (x_path, y_path, script) =
        (dir.path().join("x.npy"), dir.path().join("y.npy"), dir.path().join("fit.py"));
    write_npy(&x_path, x.as_slice().expect("standard layout"), &[rows, FEATURES])?;
    write_npy(&y_path, y.as_slice().expect("standard layout"), &[rows])?;
    std::fs::write(&script, SCRIPT).map_err(|e| format!("{}: {e}", script.display()))?;

    let config = LogisticConfig { c: C, tol: TOL, max_iter: MAX_ITER };
    ours(&x, &y, &config)?; // warm-up
    let (mut our_times, mut their_times) = (Vec::new(), Vec::new());
    let (mut our_last, mut their_last) = (None, None);
    for _ in 0..runs {
        let (seconds, model, report) = ours(&x, &y, &config)?;
        our_times.push(seconds);
        our_last = Some((model, report));
        let theirs = sklearn(&python, &script, &x_path, &y_path)?;
        their_times.push(theirs.seconds);
        their_last = Some(theirs);
    }
    let (model, report) = our_last.expect("at least one run");
    let theirs = their_last.expect("at least one run");
    let our_objective = model.objective(x.view(), y.view(), C);
    let their_objective = theirs.model.objective(x.view(), y.view(), C);
    let relative = (our_objective - their_objective).abs() / their_objective.abs();
    let coef_diff = (&model.coef - &theirs.model.coef)
        .iter()
        .chain([&(model.intercept - theirs.model.intercept)])
        .fold(0.0f64, |m, d| m.max(d.abs()));

    let (ours_ms, theirs_ms) = (median(&mut our_times) * 1e3, median(&mut their_times) * 1e3);
    println!(
        "train: {rows} x {FEATURES} synthetic (seed {SEED}), C = {C}, tol {TOL:e}; fit time only, \
         single-threaded; median of {runs} run(s)"
    );
    println!("  baseline: {}", theirs.versions);
    println!("{:<34} {:>14} {:>18} {:>8}", "figure", "aiot Newton", "sklearn newton-cg", "ratio");
    println!(
        "{:<34} {:>14.2} {:>18.2} {:>8.2} (ours/sklearn, lower is better)",
        "fit time (ms)",
        ours_ms,
        theirs_ms,
        ours_ms / theirs_ms
    );
    println!("{:<34} {:>14} {:>18}", "iterations", report.iterations, theirs.n_iter);
    println!("{:<34} {:>14.9} {:>18.9}", "objective", our_objective, their_objective);
    println!(
        "objective relative difference {relative:.2e}; largest |coefficient difference| {coef_diff:.2e}"
    );
    if relative.is_nan() || relative > OBJECTIVE_AGREEMENT {
        return Err(format!(
            "the fits disagree: objective {our_objective} (ours) vs {their_objective} (scikit-learn), \
             relative difference {relative:e} > {OBJECTIVE_AGREEMENT:e}"
        ));
    }
    if !report.converged {
        return Err(format!("our fit did not converge: {report:?}"));
    }
    Ok(())
}

/// The seeded data set of the module doc.
fn data(rows: usize) -> (Array2<f64>, Array1<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let gauss = |rng: &mut ChaCha8Rng| {
        // Box-Muller, one of the pair.
        let (u, v): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    let means: Vec<f64> = (0..FEATURES).map(|_| rng.random_range(-1.0..1.0)).collect();
    let scales: Vec<f64> = (0..FEATURES).map(|_| rng.random_range(0.5..2.0)).collect();
    let weights: Vec<f64> = (0..FEATURES).map(|j| 0.6 * gauss(&mut rng) / scales[j]).collect();
    let shift: f64 = (0..FEATURES).map(|j| weights[j] * means[j]).sum();
    let rho: f64 = 0.6;
    let mut x = Array2::zeros((rows, FEATURES));
    let mut y = Array1::zeros(rows);
    for (i, mut row) in x.rows_mut().into_iter().enumerate() {
        let mut a = gauss(&mut rng);
        let mut logit = -0.8 - shift;
        for j in 0..FEATURES {
            if j > 0 {
                a = rho * a + (1.0 - rho * rho).sqrt() * gauss(&mut rng);
            }
            row[j] = means[j] + scales[j] * a;
            logit += weights[j] * row[j];
        }
        y[i] = f64::from(u8::from(rng.random::<f64>() < sigmoid(logit)));
    }
    (x, y)
}

fn ours(
    x: &Array2<f64>,
    y: &Array1<f64>,
    config: &LogisticConfig,
) -> Result<(f64, LogisticModel, aiot_actors::ml::logistic::FitReport), String> {
    let start = Instant::now();
    let (model, report) = fit(x.view(), y.view(), config).map_err(|e| format!("our fit: {e}"))?;
    Ok((start.elapsed().as_secs_f64(), model, report))
}

fn sklearn(python: &Path, script: &Path, x: &Path, y: &Path) -> Result<SklearnRun, String> {
    let out = Command::new(python)
        .arg(script)
        .args([x, y])
        .args([C.to_string(), TOL.to_string(), MAX_ITER.to_string()])
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!("scikit-learn failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|e| format!("scikit-learn's answer {text:?}: {e}"))?;
    let number = |v: &serde_json::Value| v.as_f64().ok_or_else(|| format!("not a number in {text}"));
    let coef: Vec<f64> =
        json["coef"].as_array().ok_or("no coef")?.iter().map(number).collect::<Result<_, _>>()?;
    Ok(SklearnRun {
        seconds: number(&json["seconds"])?,
        n_iter: json["n_iter"].as_u64().unwrap_or(0),
        model: LogisticModel { intercept: number(&json["intercept"])?, coef: Array1::from(coef) },
        versions: json["versions"].as_str().unwrap_or("?").to_owned(),
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A little-endian f64 `.npy` file (format 1.0), C order.
fn write_npy(path: &Path, values: &[f64], shape: &[usize]) -> Result<(), String> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header, padded with spaces to 64 bytes, then '\n'.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 8 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let mut file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The Python that runs scikit-learn (module doc).
fn sklearn_python() -> Result<PathBuf, String> {
    let imports = |python: &Path| {
        Command::new(python).args(["-c", "import sklearn"]).output().is_ok_and(|o| o.status.success())
    };
    if let Some(python) = std::env::var_os("AIOT_SKLEARN_PYTHON") {
        let python = PathBuf::from(python);
        if !imports(&python) {
            return Err(format!("$AIOT_SKLEARN_PYTHON={} cannot import sklearn", python.display()));
        }
        println!("train: scikit-learn from $AIOT_SKLEARN_PYTHON ({})", python.display());
        return Ok(python);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("benches/ is in the workspace");
    let venv = root.join("target/ml-venv");
    let python = venv.join("bin/python");
    if imports(&python) {
        println!("train: scikit-learn from {}", python.display());
        return Ok(python);
    }
    println!(
        "train: creating {} with scikit-learn (python3 -m venv, pip install scikit-learn; once)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    let step = |program: &Path, args: &[&str]| -> Result<(), String> {
        let out =
            Command::new(program).args(args).output().map_err(|e| format!("{}: {e}", program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{} {}: {}", program.display(), args.join(" "), String::from_utf8_lossy(&out.stderr)))
        }
    };
    let venv_arg = venv.to_str().ok_or("workspace path is not UTF-8")?;
    step(Path::new("python3"), &["-m", "venv", venv_arg])?;
    step(&python, &["-m", "pip", "install", "-q", "--disable-pip-version-check", "scikit-learn"])?;
    if imports(&python) {
        Ok(python)
    } else {
        Err(format!("{} still cannot import sklearn", python.display()))
    }
}
