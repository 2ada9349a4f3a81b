//! Binary logistic regression with an L2 penalty, fitted by Newton-Raphson (IRLS).
//!
//! **Objective** (scikit-learn's `LogisticRegression(C=c)`, intercept not penalised):
//!
//! ```text
//! f(w, b) = 0.5 * |w|^2 + C * sum_i s_i * logloss(y_i, x_i . w + b)
//! logloss(y, z) = log(1 + exp(z)) - y * z,   y in {0, 1}, s_i the sample weights (default 1)
//! ```
//!
//! **Newton step.** With `p_i = sigmoid(z_i)`, the gradient is `[w; 0] + C X~^T (s (p - y))` and
//! the Hessian `H = I_w + C X~^T diag(s p (1 - p)) X~`, `X~ = [X | 1]` and `I_w` the identity
//! without its intercept entry. `H` is built as `A^T A` with `A` the rows of `X~` pre-scaled by
//! `sqrt(C s p (1 - p))` (one matrix product through ndarray's `matrixmultiply`, no per-row
//! loop), and the `(d+1) x (d+1)` system is solved by Cholesky ([`super::cholesky`]). The buffers
//! (`X~`, `A`, `z`, the step's image `X~ delta`) are allocated once per fit, not per iteration.
//! If `H` is not numerically positive definite (every prediction saturated, so the intercept's
//! curvature vanishes), the step is taken with `H + mu I`, `mu` from `1e-10` times the largest
//! diagonal entry, growing 100x per try for at most [`JITTER_TRIES`] tries (counted in the
//! report); past that the fit fails with [`FitError::NotPositiveDefinite`].
//!
//! **Step length.** The full Newton step first; while the objective does not decrease (beyond a
//! few ulps of rounding), the step is halved, at most [`MAX_HALVINGS`] times. A step that cannot
//! decrease the objective ends the fit (`stalled` in the report).
//!
//! **Convergence** as scikit-learn's `newton-cg` checks it: the largest absolute gradient entry
//! of scikit-learn's own scaling of the objective, `f / (C * sum(s))`, at most `tol`; that is
//! `max |grad f| <= tol * C * sum(s)`. At most `max_iter` Newton steps; a fit that stops
//! before converging still returns its model, with `converged = false` in the report.

use ndarray::linalg::{general_mat_mul, general_mat_vec_mul};
use ndarray::{s, Array1, Array2, ArrayView1, ArrayView2, Axis, Zip};
use serde::{Deserialize, Serialize};

use super::cholesky;

/// At most this many halvings of one Newton step.
pub const MAX_HALVINGS: usize = 40;
/// At most this many regularised retries of one Newton system that is not positive definite.
pub const JITTER_TRIES: usize = 5;

/// Settings of a fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogisticConfig {
    /// Inverse regularisation strength (scikit-learn's `C`), > 0.
    pub c: f64,
    /// Convergence tolerance on the max-norm of scikit-learn's scaled gradient (see the module
    /// doc), >= 0.
    pub tol: f64,
    /// Most Newton steps.
    pub max_iter: usize,
}

impl Default for LogisticConfig {
    /// `C = 1`, `tol = 1e-8`, at most 100 Newton steps (scikit-learn's `max_iter` default; its
    /// default `tol` of 1e-4 is looser than a Newton fit needs: one more step costs little).
    fn default() -> Self {
        LogisticConfig { c: 1.0, tol: 1e-8, max_iter: 100 }
    }
}

/// A fitted model: `p(y = 1 | x) = sigmoid(x . coef + intercept)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogisticModel {
    /// The unpenalised intercept.
    pub intercept: f64,
    /// One coefficient per feature, in column order.
    pub coef: Array1<f64>,
}

/// How a fit went.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitReport {
    /// Newton steps taken.
    pub iterations: usize,
    /// The objective at the returned model (the module doc's `f`).
    pub objective: f64,
    /// `max |grad f| / (C * sum(s))` at the returned model (what `tol` bounds).
    pub gradient_max: f64,
    /// Whether `gradient_max <= tol`.
    pub converged: bool,
    /// A step could not decrease the objective even after [`MAX_HALVINGS`] halvings.
    pub stalled: bool,
    /// Halvings over all steps.
    pub halvings: usize,
    /// Newton systems that needed a diagonal shift to be positive definite.
    pub regularised_steps: usize,
}

/// Why a fit was refused.
#[derive(Clone, Debug, PartialEq)]
pub enum FitError {
    /// No rows.
    Empty,
    /// `C`, `tol` or `max_iter` out of range.
    BadConfig(&'static str),
    /// The labels (or weights) are not one per row.
    Length {
        /// What has the wrong length.
        what: &'static str,
        /// Rows of `x`.
        rows: usize,
        /// Its length.
        got: usize,
    },
    /// A feature value is NaN or infinite.
    NotFinite {
        /// Row index (0-based).
        row: usize,
        /// Column index (0-based).
        column: usize,
    },
    /// A label is not 0 or 1.
    BadLabel {
        /// Row index (0-based).
        row: usize,
        /// The label.
        value: f64,
    },
    /// A sample weight is negative, NaN or infinite.
    BadWeight {
        /// Row index (0-based).
        row: usize,
        /// The weight.
        value: f64,
    },
    /// Every row (of positive weight) has the same label.
    SingleClass {
        /// That label.
        label: f64,
    },
    /// A Newton system stayed not positive definite after every regularised retry.
    NotPositiveDefinite {
        /// The Newton step (0-based).
        iteration: usize,
        /// The failing pivot.
        pivot: usize,
    },
    /// The objective became NaN or infinite.
    Diverged {
        /// The Newton step (0-based).
        iteration: usize,
    },
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("no training rows"),
            Self::BadConfig(why) => write!(f, "bad setting: {why}"),
            Self::Length { what, rows, got } => write!(f, "{got} {what} for {rows} rows"),
            Self::NotFinite { row, column } => {
                write!(f, "feature value at row {row}, column {column} is NaN or infinite")
            }
            Self::BadLabel { row, value } => write!(f, "label at row {row} is {value}, not 0 or 1"),
            Self::BadWeight { row, value } => {
                write!(f, "sample weight at row {row} is {value}, not finite and >= 0")
            }
            Self::SingleClass { label } => {
                write!(f, "every label is {label}: training needs both classes")
            }
            Self::NotPositiveDefinite { iteration, pivot } => write!(
                f,
                "Newton step {iteration}: the Hessian is not positive definite (pivot {pivot}), \
                 even after {JITTER_TRIES} regularised retries"
            ),
            Self::Diverged { iteration } => {
                write!(f, "Newton step {iteration}: the objective is not finite")
            }
        }
    }
}

impl std::error::Error for FitError {}

/// `log(1 + exp(z))` without overflow.
pub fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// `1 / (1 + exp(-z))` without overflow.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

impl LogisticModel {
    /// The logit `x . coef + intercept` of one row.
    pub fn logit(&self, row: ArrayView1<'_, f64>) -> f64 {
        row.dot(&self.coef) + self.intercept
    }

    /// The logits of every row of `x`.
    pub fn decision_function(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        let mut z = x.dot(&self.coef);
        z += self.intercept;
        z
    }

    /// `p(y = 1)` for every row of `x`.
    pub fn predict_proba(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        self.decision_function(x).mapv_into(sigmoid)
    }

    /// The module doc's objective on (`x`, `y`, unit weights) at regularisation `c`.
    pub fn objective(&self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>, c: f64) -> f64 {
        let z = self.decision_function(x);
        let loss: f64 = z.iter().zip(y).map(|(&z, &y)| softplus(z) - y * z).sum();
        0.5 * self.coef.dot(&self.coef) + c * loss
    }
}

/// Fits with unit sample weights. See [`fit_weighted`].
pub fn fit(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    config: &LogisticConfig,
) -> Result<(LogisticModel, FitReport), FitError> {
    fit_weighted(x, y, None, config)
}

/// Fits `y` (0 or 1 per row) on the rows of `x`, optionally with per-row weights (>= 0).
pub fn fit_weighted(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    weights: Option<ArrayView1<'_, f64>>,
    config: &LogisticConfig,
) -> Result<(LogisticModel, FitReport), FitError> {
    let weight_sum = check_inputs(x, y, weights, config)?;
    let mut fit = Newton::new(x, y, weights, config.c);
    let mut report = FitReport {
        iterations: 0,
        objective: fit.initial_objective(),
        gradient_max: f64::INFINITY,
        converged: false,
        stalled: false,
        halvings: 0,
        regularised_steps: 0,
    };
    let grad_scale = config.c * weight_sum;
    loop {
        fit.gradient_and_weights();
        report.gradient_max = fit.grad.iter().fold(0.0f64, |m, g| m.max(g.abs())) / grad_scale;
        report.converged = report.gradient_max <= config.tol;
        if report.converged || report.iterations >= config.max_iter {
            break;
        }
        report.regularised_steps += fit.newton_direction(report.iterations)?;
        match fit.step(report.objective) {
            Step::Taken { objective, halvings } => {
                report.objective = objective;
                report.halvings += halvings;
            }
            Step::Stalled => {
                report.stalled = true;
                break;
            }
            Step::NotFinite => return Err(FitError::Diverged { iteration: report.iterations }),
        }
        report.iterations += 1;
    }
    let d = x.ncols();
    let model = LogisticModel { intercept: fit.beta[d], coef: fit.beta.slice(s![..d]).to_owned() };
    Ok((model, report))
}

/// Checks shapes, values and settings; returns the sum of the weights.
fn check_inputs(
    x: ArrayView2<'_, f64>,
    y: ArrayView1<'_, f64>,
    weights: Option<ArrayView1<'_, f64>>,
    config: &LogisticConfig,
) -> Result<f64, FitError> {
    if !(config.c > 0.0 && config.c.is_finite()) {
        return Err(FitError::BadConfig("C must be finite and > 0"));
    }
    if !(config.tol >= 0.0 && config.tol.is_finite()) {
        return Err(FitError::BadConfig("tol must be finite and >= 0"));
    }
    let rows = x.nrows();
    if rows == 0 {
        return Err(FitError::Empty);
    }
    if y.len() != rows {
        return Err(FitError::Length { what: "labels", rows, got: y.len() });
    }
    if let Some(w) = weights {
        if w.len() != rows {
            return Err(FitError::Length { what: "weights", rows, got: w.len() });
        }
    }
    for (row, values) in x.rows().into_iter().enumerate() {
        if let Some(column) = values.iter().position(|v| !v.is_finite()) {
            return Err(FitError::NotFinite { row, column });
        }
    }
    let (mut seen0, mut seen1, mut sum) = (false, false, 0.0);
    for (row, &label) in y.iter().enumerate() {
        let weight = weights.map_or(1.0, |w| w[row]);
        if !(weight >= 0.0 && weight.is_finite()) {
            return Err(FitError::BadWeight { row, value: weight });
        }
        if label != 0.0 && label != 1.0 {
            return Err(FitError::BadLabel { row, value: label });
        }
        if weight > 0.0 {
            seen0 |= label == 0.0;
            seen1 |= label == 1.0;
        }
        sum += weight;
    }
    if !(seen0 && seen1) {
        return Err(FitError::SingleClass { label: if seen1 { 1.0 } else { 0.0 } });
    }
    Ok(sum)
}

enum Step {
    Taken { objective: f64, halvings: usize },
    Stalled,
    NotFinite,
}

/// The state of one fit: every buffer it needs, allocated once.
struct Newton<'a> {
    y: ArrayView1<'a, f64>,
    /// `C * s_i`.
    cw: Array1<f64>,
    /// `[X | 1]`, rows.
    xa: Array2<f64>,
    /// `xa` with each row scaled by `sqrt(C s p (1 - p))`.
    scaled: Array2<f64>,
    /// `(w, b)`.
    beta: Array1<f64>,
    /// `xa . beta`, and `exp(-|z|)` (shared by the loss and the probabilities).
    z: Array1<f64>,
    expneg: Array1<f64>,
    /// The Newton step `H^-1 grad`; then `xa . step` in `image`.
    step: Array1<f64>,
    image: Array1<f64>,
    trial_z: Array1<f64>,
    trial_expneg: Array1<f64>,
    trial_beta: Array1<f64>,
    /// Per row: `C s (p - y)`, then `sqrt(C s p (1 - p))`.
    residual: Array1<f64>,
    root_curvature: Array1<f64>,
    grad: Array1<f64>,
    hessian: Array2<f64>,
}

impl<'a> Newton<'a> {
    fn new(
        x: ArrayView2<'_, f64>,
        y: ArrayView1<'a, f64>,
        weights: Option<ArrayView1<'_, f64>>,
        c: f64,
    ) -> Self {
        let (n, d) = x.dim();
        let mut xa = Array2::<f64>::ones((n, d + 1));
        xa.slice_mut(s![.., ..d]).assign(&x);
        let cw = match weights {
            Some(w) => w.mapv(|w| c * w),
            None => Array1::from_elem(n, c),
        };
        Newton {
            y,
            cw,
            scaled: Array2::zeros((n, d + 1)),
            xa,
            beta: Array1::zeros(d + 1),
            z: Array1::zeros(n),
            expneg: Array1::ones(n),
            step: Array1::zeros(d + 1),
            image: Array1::zeros(n),
            trial_z: Array1::zeros(n),
            trial_expneg: Array1::ones(n),
            trial_beta: Array1::zeros(d + 1),
            residual: Array1::zeros(n),
            root_curvature: Array1::zeros(n),
            grad: Array1::zeros(d + 1),
            hessian: Array2::zeros((d + 1, d + 1)),
        }
    }

    fn penalty(beta: &Array1<f64>) -> f64 {
        let w = beta.slice(s![..beta.len() - 1]);
        0.5 * w.dot(&w)
    }

    /// The loss at logits `z`, filling `expneg` with `exp(-|z|)`:
    /// `softplus(z) = max(z, 0) + ln_1p(exp(-|z|))`, one `exp` per row shared with `sigmoid`.
    fn loss(
        z: ArrayView1<'_, f64>,
        expneg: &mut Array1<f64>,
        y: ArrayView1<'_, f64>,
        cw: &Array1<f64>,
    ) -> f64 {
        let mut loss = 0.0;
        Zip::from(expneg).and(&z).and(&y).and(cw).for_each(|e, &z, &y, &cw| {
            *e = (-z.abs()).exp();
            loss += cw * (z.max(0.0) + e.ln_1p() - y * z);
        });
        loss
    }

    fn initial_objective(&mut self) -> f64 {
        Self::penalty(&self.beta) + Self::loss(self.z.view(), &mut self.expneg, self.y, &self.cw)
    }

    /// The gradient at `beta`, and the per-row factors of the Hessian.
    fn gradient_and_weights(&mut self) {
        Zip::from(&mut self.residual)
            .and(&mut self.root_curvature)
            .and(&self.z)
            .and(&self.expneg)
            .and(&self.y)
            .and(&self.cw)
            .for_each(|r, h, &z, &e, &y, &cw| {
                let p = if z >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
                *r = cw * (p - y);
                *h = (cw * p * (1.0 - p)).sqrt();
            });
        // grad = xa^T r as a (1 x n) (n x d+1) product: matrixmultiply reads xa by rows, where a
        // matrix-vector product on the transposed view would walk each column with a stride.
        general_mat_mul(
            1.0,
            &self.residual.view().insert_axis(Axis(0)),
            &self.xa,
            0.0,
            &mut self.grad.view_mut().insert_axis(Axis(0)),
        );
        let d = self.grad.len() - 1;
        let w = self.beta.slice(s![..d]);
        self.grad.slice_mut(s![..d]).scaled_add(1.0, &w);
    }

    /// Solves `H step = grad`; returns how many regularised retries it took (0 or 1).
    fn newton_direction(&mut self, iteration: usize) -> Result<usize, FitError> {
        Zip::from(&mut self.scaled)
            .and(&self.xa)
            .and_broadcast(self.root_curvature.view().insert_axis(Axis(1)))
            .for_each(|a, &x, &h| *a = x * h);
        general_mat_mul(1.0, &self.scaled.t(), &self.scaled, 0.0, &mut self.hessian);
        let d = self.grad.len() - 1;
        for i in 0..d {
            self.hessian[[i, i]] += 1.0;
        }
        let largest = (0..=d).map(|i| self.hessian[[i, i]]).fold(0.0f64, f64::max);
        let mut factor = self.hessian.clone();
        let mut shift = 0.0;
        let mut tries = 0;
        loop {
            match cholesky::factor(&mut factor) {
                Ok(()) => break,
                Err(e) if tries == JITTER_TRIES => {
                    return Err(FitError::NotPositiveDefinite { iteration, pivot: e.pivot })
                }
                Err(_) => {
                    tries += 1;
                    shift = if shift == 0.0 { 1e-10 * largest.max(1.0) } else { shift * 100.0 };
                    factor.assign(&self.hessian);
                    for i in 0..=d {
                        factor[[i, i]] += shift;
                    }
                }
            }
        }
        self.step.assign(&self.grad);
        cholesky::solve_factored(&factor, &mut self.step);
        general_mat_vec_mul(1.0, &self.xa, &self.step, 0.0, &mut self.image);
        Ok(usize::from(tries > 0))
    }

    /// Moves `beta` along `-step`, halving until the objective decreases.
    fn step(&mut self, objective: f64) -> Step {
        // A few ulps of slack: at the optimum rounding alone decides the comparison.
        let limit = objective + 8.0 * f64::EPSILON * objective.abs();
        let mut t = 1.0;
        for halvings in 0..=MAX_HALVINGS {
            Zip::from(&mut self.trial_z).and(&self.z).and(&self.image).for_each(|tz, &z, &u| {
                *tz = z - t * u;
            });
            Zip::from(&mut self.trial_beta).and(&self.beta).and(&self.step).for_each(|tb, &b, &s| {
                *tb = b - t * s;
            });
            let trial = Self::penalty(&self.trial_beta)
                + Self::loss(self.trial_z.view(), &mut self.trial_expneg, self.y, &self.cw);
            if !trial.is_finite() {
                return Step::NotFinite;
            }
            if trial <= limit {
                std::mem::swap(&mut self.z, &mut self.trial_z);
                std::mem::swap(&mut self.expneg, &mut self.trial_expneg);
                std::mem::swap(&mut self.beta, &mut self.trial_beta);
                return Step::Taken { objective: trial, halvings };
            }
            t *= 0.5;
        }
        Step::Stalled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn toy() -> (Array2<f64>, Array1<f64>) {
        let x = array![[0.5, 1.0], [1.5, -0.5], [-1.0, 0.3], [2.0, 2.0], [-0.7, -1.2], [0.1, 0.4]];
        let y = array![0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        (x, y)
    }

    #[test]
    fn the_gradient_vanishes_at_the_fit() {
        let (x, y) = toy();
        let config = LogisticConfig { c: 2.0, tol: 1e-12, max_iter: 50 };
        let (model, report) = fit(x.view(), y.view(), &config).unwrap();
        assert!(report.converged && !report.stalled, "{report:?}");
        // Independent gradient: w + C X^T (p - y), and C sum (p - y) for the intercept.
        let p = model.predict_proba(x.view());
        let r = (&p - &y) * config.c;
        let gw = &model.coef + &x.t().dot(&r);
        assert!(gw.iter().all(|g| g.abs() < 1e-9), "{gw}");
        assert!(r.sum().abs() < 1e-9);
        let expected = model.objective(x.view(), y.view(), config.c);
        assert!((report.objective - expected).abs() < 1e-12);
        // Nudging any coefficient raises the objective.
        for i in 0..2 {
            let mut nudged = model.clone();
            nudged.coef[i] += 1e-4;
            assert!(nudged.objective(x.view(), y.view(), config.c) > expected);
        }
    }

    #[test]
    fn weights_act_as_repeated_rows() {
        let (x, y) = toy();
        let config = LogisticConfig { tol: 1e-12, ..LogisticConfig::default() };
        let w = array![1.0, 2.0, 1.0, 3.0, 1.0, 1.0];
        let (weighted, _) = fit_weighted(x.view(), y.view(), Some(w.view()), &config).unwrap();
        let rows: Vec<usize> = vec![0, 1, 1, 2, 3, 3, 3, 4, 5];
        let xr = x.select(Axis(0), &rows);
        let yr = y.select(Axis(0), &rows);
        let (repeated, _) = fit(xr.view(), yr.view(), &config).unwrap();
        assert!((weighted.intercept - repeated.intercept).abs() < 1e-9);
        assert!((&weighted.coef - &repeated.coef).iter().all(|d| d.abs() < 1e-9));
    }

    #[test]
    fn separable_data_stays_finite_under_the_penalty() {
        let x = array![[-2.0], [-1.0], [1.0], [2.0]];
        let y = array![0.0, 0.0, 1.0, 1.0];
        let config = LogisticConfig { c: 1e6, tol: 1e-10, max_iter: 200 };
        let (model, report) = fit(x.view(), y.view(), &config).unwrap();
        assert!(report.converged, "{report:?}");
        assert!(model.coef[0].is_finite() && model.coef[0] > 5.0);
    }

    #[test]
    fn bad_inputs_are_refused_with_their_place() {
        let (x, y) = toy();
        let config = LogisticConfig::default();
        let empty = Array2::<f64>::zeros((0, 2));
        assert_eq!(fit(empty.view(), Array1::zeros(0).view(), &config), Err(FitError::Empty));
        let mut nan = x.clone();
        nan[[3, 1]] = f64::NAN;
        assert_eq!(fit(nan.view(), y.view(), &config), Err(FitError::NotFinite { row: 3, column: 1 }));
        let mut label = y.clone();
        label[2] = 0.5;
        assert_eq!(fit(x.view(), label.view(), &config), Err(FitError::BadLabel { row: 2, value: 0.5 }));
        let ones = Array1::ones(6);
        assert_eq!(fit(x.view(), ones.view(), &config), Err(FitError::SingleClass { label: 1.0 }));
        let short = Array1::zeros(5);
        assert_eq!(
            fit(x.view(), short.view(), &config),
            Err(FitError::Length { what: "labels", rows: 6, got: 5 })
        );
        let bad_c = LogisticConfig { c: 0.0, ..config };
        assert!(matches!(fit(x.view(), y.view(), &bad_c), Err(FitError::BadConfig(_))));
        let w = array![1.0, -1.0, 1.0, 1.0, 1.0, 1.0];
        assert_eq!(
            fit_weighted(x.view(), y.view(), Some(w.view()), &config),
            Err(FitError::BadWeight { row: 1, value: -1.0 })
        );
    }

    #[test]
    fn an_iteration_cap_returns_the_model_unconverged() {
        let (x, y) = toy();
        let config = LogisticConfig { c: 1.0, tol: 0.0, max_iter: 1 };
        let (_, report) = fit(x.view(), y.view(), &config).unwrap();
        assert_eq!(report.iterations, 1);
        assert!(!report.converged);
    }

    #[test]
    fn numerics_do_not_overflow() {
        assert_eq!(softplus(-1000.0), 0.0);
        assert_eq!(softplus(1000.0), 1000.0);
        assert!((softplus(0.0) - std::f64::consts::LN_2).abs() < 1e-16);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
    }
}
