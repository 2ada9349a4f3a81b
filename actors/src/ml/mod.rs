//! The ML loop's pure parts (issue 7): training, metrics, the int8 quantizer, drift statistics.
//!
//! - `logistic`: L2 logistic regression by Newton-Raphson (IRLS), scikit-learn's objective.
//! - `cholesky`: the small symmetric positive definite solve each Newton step needs.
//! - `standardize`: per-feature offset and scale from training data (what the mote applies).
//! - `metrics`: ROC AUC (ties averaged), log loss, accuracy, precision, recall, agreement.
//! - `quantize`: the float model to the firmware's int8 model (`aiot_firmware::model`) and the
//!   quantization quality report (BLUEPRINT section 10, "Quantization quality").
//! - `dataset`: labelled, unflagged windows as a matrix, its hash, a split by motor.
//! - `labels`: training labels from the maintenance log only (failures, inspections).
//! - `scorer`: a float scorer (standardiser + logistic model) and its fit with a validation
//!   split by motor; stage 2 scores with it.
//! - `compare`: the windows a candidate motes' model is compared on with the model in service
//!   (after a drift: the new regime's), and the comparison (AUC, a tie broken by log loss).
//! - `train`: one training run: labelled data, split by motor, fit, validation, int8 image.
//! - `drift`: PSI and two-sample Kolmogorov-Smirnov on feature distributions, Page-Hinkley on
//!   an error-rate stream.
//!
//! No actors here, and nothing that breaks determinism: no wall clock, no threads, no hash maps,
//! no unseeded randomness (`clippy.toml`). The same inputs give the same bits.

pub mod cholesky;
pub mod compare;
pub mod dataset;
pub mod drift;
pub mod labels;
pub mod logistic;
pub mod metrics;
pub mod quantize;
pub mod scorer;
pub mod standardize;
#[cfg(test)]
pub(crate) mod testdata;
pub mod train;
