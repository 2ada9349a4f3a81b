//! The model registry (BLUEPRINT section 5): versioned, signed models with their lineage,
//! encrypted at rest.
//!
//! - `artifact`: a registered model as stored (card, int8 image, signatures, sealed), and every
//!   check a model must pass to load. The `Registry` actor that keeps them is still to come.

pub mod artifact;
