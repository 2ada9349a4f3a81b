//! Rolling-element bearing geometry and its defect frequencies: defined once, in the DSP
//! module of `aiot-actors` (the filter that looks for them), and re-exported here for the
//! physics that makes them.

pub use aiot_actors::dsp::bearing::{defect_frequencies, BearingGeometry, DefectFrequencies};
