//! Pipelines: DAGs of step actors declared in code, with retries per step and a status that
//! can be queried (BLUEPRINT section 5, the MLOps flow).
//!
//! - `dag`: a pipeline's shape (steps, what each comes after, timeouts, retry policies);
//! - `run`: one run's progress as pure state (what starts, retries, skips, how it ended);
//! - `coordinator`: the actor that runs them, and the builder that declares a pipeline.

pub mod coordinator;
pub mod dag;
pub mod run;
