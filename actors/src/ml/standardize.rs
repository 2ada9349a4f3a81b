//! Per-feature standardisation: `z = (x - offset) / scale`, fitted on training data.
//!
//! `offset` is the column mean and `scale` the population standard deviation (divisor `n`, as
//! scikit-learn's `StandardScaler`); a constant column gets scale 1, so it standardises to 0
//! rather than to NaN. The mote applies exactly this (its model image carries both, as f32).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// Offsets and scales, one per feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    /// The training mean of each feature.
    pub offset: Array1<f64>,
    /// The training (population) standard deviation of each feature; 1 for a constant one.
    pub scale: Array1<f64>,
}

impl Standardizer {
    /// Fits on the rows of `x` (at least one row; values finite).
    pub fn fit(x: ArrayView2<'_, f64>) -> Standardizer {
        assert!(x.nrows() > 0, "standardize: no rows");
        let offset = x.mean_axis(Axis(0)).expect("rows checked above");
        let scale = x.std_axis(Axis(0), 0.0).mapv(|s| if s > 0.0 && s.is_finite() { s } else { 1.0 });
        Standardizer { offset, scale }
    }

    /// The identity (offset 0, scale 1) for `d` features.
    pub fn identity(d: usize) -> Standardizer {
        Standardizer { offset: Array1::zeros(d), scale: Array1::ones(d) }
    }

    /// Standardises every row of `x`.
    pub fn transform(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        (&x - &self.offset) / &self.scale
    }

    /// Standardises one row.
    pub fn transform_row(&self, row: ArrayView1<'_, f64>) -> Array1<f64> {
        (&row - &self.offset) / &self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn population_moments_and_constant_columns() {
        let x = array![[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]];
        let s = Standardizer::fit(x.view());
        assert_eq!(s.offset, array![3.0, 5.0]);
        assert!((s.scale[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(s.scale[1], 1.0);
        let z = s.transform(x.view());
        assert!(z.column(0).sum().abs() < 1e-15);
        assert_eq!(z.column(1), array![0.0, 0.0, 0.0]);
        assert_eq!(s.transform_row(x.row(2)), z.row(2));
    }
}
