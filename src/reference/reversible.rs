//! CPU reference of the fixed-point coupling (ops::reversible): the same integer
//! arithmetic, wrapping like WGSL's i32, with the parity bits as one `bool` per value.

use crate::ops::reversible::STREAM_FRACTION_BITS;

const SCALE: f32 = (1u32 << STREAM_FRACTION_BITS) as f32;
const LIMIT: f32 = (1u32 << 30) as f32;

/// `round(a 2^20)` (ties to even), clamped to +-2^30.
pub fn quantize(a: f32) -> i32 {
    (a * SCALE).round_ties_even().clamp(-LIMIT, LIMIT) as i32
}

/// The f32 value of a fixed-point count.
pub fn value_of(fixed: i32) -> f32 {
    fixed as f32 / SCALE
}

/// `q(x)` per value.
pub fn to_stream(x: &[f32]) -> Vec<i32> {
    x.iter().copied().map(quantize).collect()
}

/// `q(a) + p` (`r` None) or `q(a) + floor((p + r) / 2)` with the parity `(p + r) & 1`.
pub fn couple(a: &[f32], p: &[i32], r: Option<&[i32]>) -> (Vec<i32>, Vec<bool>) {
    match r {
        None => (
            a.iter()
                .zip(p)
                .map(|(&a, &p)| quantize(a).wrapping_add(p))
                .collect(),
            Vec::new(),
        ),
        Some(r) => a
            .iter()
            .zip(p.iter().zip(r))
            .map(|(&a, (&p, &r))| {
                let sum = p.wrapping_add(r);
                (quantize(a).wrapping_add(sum >> 1), sum & 1 == 1)
            })
            .unzip(),
    }
}

/// The inverse of [`couple`]: `p` from `out`, `a` and (with `r`) the parity bits.
pub fn uncouple(out: &[i32], a: &[f32], mean: Option<(&[i32], &[bool])>) -> Vec<i32> {
    (0..out.len())
        .map(|i| {
            let rest = out[i].wrapping_sub(quantize(a[i]));
            match mean {
                None => rest,
                Some((r, parity)) => rest
                    .wrapping_mul(2)
                    .wrapping_add(parity[i] as i32)
                    .wrapping_sub(r[i]),
            }
        })
        .collect()
}
