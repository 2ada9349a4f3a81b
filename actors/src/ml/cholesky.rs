//! Solving `A x = b` for a small symmetric positive definite `A` by Cholesky (`A = L L^T`).
//!
//! The Newton system of a logistic fit is `(d+1) x (d+1)`: a hand-written factorisation is
//! enough, and keeps LAPACK out of the build. A pivot that is not clearly positive (below
//! [`PIVOT_MIN`] times the largest diagonal entry, or not finite) is refused with its index:
//! the caller decides whether to regularise and try again or to give up.

use ndarray::{Array1, Array2};

/// A pivot at or below this fraction of the largest diagonal entry counts as not positive.
pub const PIVOT_MIN: f64 = 1e-13;

/// Why a factorisation failed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NotPositiveDefinite {
    /// The row whose pivot was not positive.
    pub pivot: usize,
    /// The pivot's value (before the square root).
    pub value: f64,
}

impl std::fmt::Display for NotPositiveDefinite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "matrix is not positive definite: pivot {} is {:e}", self.pivot, self.value)
    }
}

impl std::error::Error for NotPositiveDefinite {}

/// Factorises `a` in place: on success its lower triangle holds `L` (the upper triangle is left
/// as it was). `a` must be square; only its lower triangle is read.
pub fn factor(a: &mut Array2<f64>) -> Result<(), NotPositiveDefinite> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "cholesky: matrix must be square");
    let largest = (0..n).map(|i| a[[i, i]].abs()).fold(0.0f64, f64::max);
    let floor = PIVOT_MIN * largest.max(f64::MIN_POSITIVE);
    for j in 0..n {
        let mut pivot = a[[j, j]];
        for k in 0..j {
            pivot -= a[[j, k]] * a[[j, k]];
        }
        if !pivot.is_finite() || pivot <= floor {
            return Err(NotPositiveDefinite { pivot: j, value: pivot });
        }
        let diag = pivot.sqrt();
        a[[j, j]] = diag;
        for i in j + 1..n {
            let mut v = a[[i, j]];
            for k in 0..j {
                v -= a[[i, k]] * a[[j, k]];
            }
            a[[i, j]] = v / diag;
        }
    }
    Ok(())
}

/// Solves `L L^T x = b` in place (`b` becomes `x`), `l` from [`factor`].
pub fn solve_factored(l: &Array2<f64>, b: &mut Array1<f64>) {
    let n = l.nrows();
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= l[[i, k]] * b[k];
        }
        b[i] = v / l[[i, i]];
    }
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= l[[k, i]] * b[k];
        }
        b[i] = v / l[[i, i]];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn solves_a_known_system() {
        let a = array![[4.0, 12.0, -16.0], [12.0, 37.0, -43.0], [-16.0, -43.0, 98.0]];
        let x = array![1.0, -2.0, 0.5];
        let mut b = a.dot(&x);
        let mut l = a.clone();
        factor(&mut l).unwrap();
        assert_eq!(l[[0, 0]], 2.0);
        assert_eq!(l[[1, 0]], 6.0);
        assert_eq!(l[[2, 2]], 3.0);
        solve_factored(&l, &mut b);
        for i in 0..3 {
            assert!((b[i] - x[i]).abs() < 1e-12, "{b}");
        }
    }

    #[test]
    fn refuses_singular_and_indefinite_matrices() {
        let mut singular = array![[1.0, 2.0], [2.0, 4.0]];
        assert_eq!(factor(&mut singular).map_err(|e| e.pivot), Err(1));
        let mut indefinite = array![[1.0, 0.0], [0.0, -1.0]];
        assert_eq!(factor(&mut indefinite).map_err(|e| e.pivot), Err(1));
        let mut nan = array![[f64::NAN]];
        assert_eq!(factor(&mut nan).map_err(|e| e.pivot), Err(0));
    }
}
