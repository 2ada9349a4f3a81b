//! The DSP feature vector: named fields, and the same values as a fixed-order array with their
//! names ([`DspFeatures::NAMES`]) for training code. Definitions: the table in [`crate::dsp`].

use serde::{Deserialize, Serialize};

/// Declares the struct, its field count, its names and its array, from one list.
macro_rules! feature_vector {
    ($($(#[doc = $doc:expr])* $name:ident,)*) => {
        /// The features of one raw window (definitions, units and order: the table in
        /// [`crate::dsp`]).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
        pub struct DspFeatures {
            $($(#[doc = $doc])* pub $name: f64,)*
        }

        impl DspFeatures {
            /// Names of the features, in vector order (the field names).
            pub const NAMES: [&'static str; FEATURE_COUNT] = [$(stringify!($name)),*];

            /// The features in [`DspFeatures::NAMES`] order.
            pub fn as_array(&self) -> [f64; FEATURE_COUNT] {
                [$(self.$name),*]
            }
        }
    };
}

/// Length of the DSP feature vector.
pub const FEATURE_COUNT: usize = 28;

feature_vector! {
    /// Current: RMS of the mean-removed signal, A.
    cur_rms,
    /// Current: largest `|x - mean|`, A.
    cur_peak,
    /// Current: peak / RMS.
    cur_crest,
    /// Current: Pearson's kurtosis.
    cur_kurtosis,
    /// Vibration: RMS of the mean-removed signal, g.
    vib_rms,
    /// Vibration: largest `|x - mean|`, g.
    vib_peak,
    /// Vibration: peak / RMS.
    vib_crest,
    /// Vibration: Pearson's kurtosis.
    vib_kurtosis,
    /// Sound: RMS of the mean-removed signal, Pa.
    snd_rms,
    /// Sound: largest `|x - mean|`, Pa.
    snd_peak,
    /// Sound: peak / RMS.
    snd_crest,
    /// Sound: Pearson's kurtosis.
    snd_kurtosis,
    /// Estimated shaft rotation frequency, Hz (the vibration's 1x peak).
    shaft_hz,
    /// Vibration amplitude at `shaft_hz`, g.
    vib_1x_g,
    /// RMS of the mean-removed vibration envelope, g.
    env_rms_g,
    /// Share of the envelope's power at BPFO.
    env_bpfo,
    /// Share of the envelope's power at BPFI.
    env_bpfi,
    /// Share of the envelope's power at BSF.
    env_bsf,
    /// Share of the envelope's power at FTF.
    env_ftf,
    /// Share of the envelope's power at 2 BPFO.
    env_bpfo_2,
    /// Share of the envelope's power at 2 BPFI.
    env_bpfi_2,
    /// Share of the envelope's power at 2 BSF (a ball defect strikes both races).
    env_bsf_2,
    /// Estimated supply frequency, Hz.
    line_hz,
    /// Supply current amplitude (peak), A.
    line_a,
    /// Slip, `1 - pole_pairs * shaft_hz / line_hz`.
    slip,
    /// Current amplitude at `(1 - 2 slip) line_hz` over `line_a`.
    sb_lower,
    /// Current amplitude at `(1 + 2 slip) line_hz` over `line_a`.
    sb_upper,
    /// Temperature: mean, °C.
    temp_mean,
}

impl DspFeatures {
    /// The features in [`DspFeatures::NAMES`] order, as a vector.
    pub fn to_vec(&self) -> Vec<f64> {
        self.as_array().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_fields() {
        let f = DspFeatures { cur_rms: 1.0, shaft_hz: 2.0, temp_mean: 3.0, ..DspFeatures::default() };
        let a = f.as_array();
        assert_eq!((a[0], a[12], a[FEATURE_COUNT - 1]), (1.0, 2.0, 3.0));
        assert_eq!(DspFeatures::NAMES[12], "shaft_hz");
        assert_eq!(f.to_vec().len(), FEATURE_COUNT);
    }
}
