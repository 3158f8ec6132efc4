//! Helpers of the layer tests: f64 <-> f32 conversions, GPU-vs-f64-reference
//! comparisons and central finite-difference checks of the f64 references' backward.
#![allow(dead_code)]

use crate::common::assert_close;

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

pub fn to32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A GPU result against an f64 reference within `eps` (absolute + relative).
pub fn assert_close64(what: &str, got: &[f32], want: &[f64], eps: f32) {
    assert_close(what, got, &to32(want), eps);
}

/// `sum_i a_i b_i`: the scalar loss `L = <y, r>` whose gradient dy is `r`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: lengths");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Compare the analytic gradient `grad` of `f` at `x` with central differences of step
/// `h` at every index, within `tol` absolute + relative.
pub fn check_gradient(
    what: &str,
    x: &[f64],
    grad: &[f64],
    f: impl Fn(&[f64]) -> f64,
    h: f64,
    tol: f64,
) {
    assert_eq!(x.len(), grad.len(), "{what}: gradient length");
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + h;
        let up = f(&xp);
        xp[i] = x[i] - h;
        let down = f(&xp);
        xp[i] = x[i];
        let fd = (up - down) / (2.0 * h);
        let err = (fd - grad[i]).abs();
        assert!(
            err <= tol * (1.0 + fd.abs()),
            "{what}: index {i}: analytic {}, finite difference {fd}",
            grad[i]
        );
    }
}
