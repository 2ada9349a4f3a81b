//! The model registry (BLUEPRINT section 5): versioned, signed models with their lineage,
//! encrypted at rest.
//!
//! - `artifact`: a registered model as stored (card, int8 image, signatures, sealed), and every
//!   check a model must pass to load.
//! - `service`: the `Registry` actor that keeps them in the `models` stream.

pub mod artifact;
pub mod service;
