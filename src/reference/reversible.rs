//! CPU reference of the fixed-point coupling (ops::reversible): the same 64-bit integer
//! arithmetic, wrapping like the kernel's, with the parity bits as one `bool` per value.

use crate::ops::reversible::STREAM_FRACTION_BITS;

const TWO_32: f32 = (1u64 << STREAM_FRACTION_BITS) as f32;
const LIMIT: f32 = (1u32 << 30) as f32;

/// `a` in counts of 2^-32, clamped to +-2^30 and rounded toward zero: the whole part and
/// the fraction of `|a|` are split exactly and converted exactly (the fraction truncated).
pub fn quantize(a: f32) -> i64 {
    let m = a.clamp(-LIMIT, LIMIT).abs();
    let whole = m.floor();
    let magnitude = (((whole as u32 as u64) << 32) | ((m - whole) * TWO_32) as u32 as u64) as i64;
    if a < 0.0 {
        magnitude.wrapping_neg()
    } else {
        magnitude
    }
}

/// The f32 value of a fixed-point count, as the kernel rounds it: `f32(whole) +
/// f32(fraction) 2^-32` of the magnitude.
pub fn value_of(fixed: i64) -> f32 {
    let m = fixed.unsigned_abs();
    let v = (m >> 32) as u32 as f32 + (m as u32) as f32 / TWO_32;
    if fixed < 0 {
        -v
    } else {
        v
    }
}

/// `q(x)` per value.
pub fn to_stream(x: &[f32]) -> Vec<i64> {
    x.iter().copied().map(quantize).collect()
}

/// `q(a) + p` (`r` None) or `q(a) + floor((p + r) / 2)` with the parity `(p + r) & 1`.
pub fn couple(a: &[f32], p: &[i64], r: Option<&[i64]>) -> (Vec<i64>, Vec<bool>) {
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
pub fn uncouple(out: &[i64], a: &[f32], mean: Option<(&[i64], &[bool])>) -> Vec<i64> {
    (0..out.len())
        .map(|i| {
            let rest = out[i].wrapping_sub(quantize(a[i]));
            match mean {
                None => rest,
                Some((r, parity)) => rest
                    .wrapping_mul(2)
                    .wrapping_add(parity[i] as i64)
                    .wrapping_sub(r[i]),
            }
        })
        .collect()
}
