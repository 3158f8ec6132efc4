//! CPU reference of the ReScaW quantizer, its bit-planes and backward, the plane sum and
//! Q-SNN's power-of-two scale (ops::quant). The quantizer works in f32 as the kernel does,
//! so that codes agree except where a value lies within rounding of a code boundary.

/// ReScaW of `w [C_out, K]`: per channel `gamma`, integer codes in `0 .. 2^bits` and the
/// dequantized weights `Q`.
#[derive(Debug, Clone)]
pub struct Rescaw {
    /// gamma per output channel.
    pub gamma: Vec<f32>,
    /// Integer level of each weight.
    pub codes: Vec<u32>,
    /// The quantized weights.
    pub q: Vec<f32>,
}

/// `n = (2^bits - 1) / 2`.
pub fn half_levels(bits: u32) -> f32 {
    ((1u32 << bits) - 1) as f32 * 0.5
}

/// The code of one weight for its channel's `gamma`, and the value `(W~ + 1) n` that was
/// rounded (for telling rounding ties apart in tests).
pub fn code_of(w: f32, gamma: f32, bits: u32) -> (u32, f32) {
    let n = half_levels(bits);
    let wt = if gamma > 0.0 {
        (w / gamma).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let x = (wt + 1.0) * n;
    (x.round_ties_even() as u32, x)
}

/// The dequantized weight of a code.
pub fn dequantize(code: u32, gamma: f32, bits: u32) -> f32 {
    gamma * (code as f32 / half_levels(bits) - 1.0)
}

/// QP-SNN's ReScaW quantization of `w` `[c_out, k]` to `bits` bits.
pub fn rescaw(w: &[f32], c_out: usize, k: usize, bits: u32) -> Rescaw {
    let mut out = Rescaw {
        gamma: Vec::with_capacity(c_out),
        codes: Vec::with_capacity(w.len()),
        q: Vec::with_capacity(w.len()),
    };
    for row in w.chunks(k).take(c_out) {
        let gamma = (row.iter().map(|v| v.abs() as f64).sum::<f64>() / k as f64) as f32;
        for &v in row {
            let (code, _) = code_of(v, gamma, bits);
            out.codes.push(code);
            out.q.push(dequantize(code, gamma, bits));
        }
        out.gamma.push(gamma);
    }
    out
}

/// Bit-planes of codes `[C_out, K]` as signs `[bits * C_out, K]` ({-1,+1}, +1 for a set
/// bit), row `i * C_out + o` for bit i of channel o.
pub fn plane_signs(codes: &[u32], c_out: usize, k: usize, bits: u32) -> Vec<f32> {
    let mut out = Vec::with_capacity(bits as usize * c_out * k);
    for i in 0..bits {
        for &c in &codes[..c_out * k] {
            out.push(if (c >> i) & 1 == 1 { 1.0 } else { -1.0 });
        }
    }
    out
}

/// The weight of plane i in channel o, `[bits * C_out]`: `gamma_o 2^i / (2 n)`.
pub fn plane_scale(gamma: &[f32], bits: u32) -> Vec<f32> {
    let n = half_levels(bits);
    (0..bits)
        .flat_map(|i| {
            gamma
                .iter()
                .map(move |g| g * (1u32 << i) as f32 / (2.0 * n))
        })
        .collect()
}

/// Straight-through gradient: `g` where `|w| <= gamma` of the channel, else 0 (the exact
/// gradient of `clamp(w, -gamma, gamma)` with gamma held fixed).
pub fn rescaw_backward(w: &[f64], gamma: &[f64], g: &[f64], k: usize) -> Vec<f64> {
    w.iter()
        .zip(g)
        .enumerate()
        .map(|(i, (w, g))| if w.abs() <= gamma[i / k] { *g } else { 0.0 })
        .collect()
}

/// The smooth function [`rescaw_backward`] differentiates: `clamp(w, -gamma, gamma)`.
pub fn rescaw_surrogate(w: &[f64], gamma: &[f64], k: usize) -> Vec<f64> {
    w.iter()
        .enumerate()
        .map(|(i, w)| w.clamp(-gamma[i / k], gamma[i / k]))
        .collect()
}

/// `out[r, o] = sum_i scale[i C + o] y[r, i C + o]` for `y [rows, planes C]`.
pub fn sum_planes(y: &[f32], scale: &[f32], rows: usize, c: usize, planes: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * c];
    for r in 0..rows {
        for o in 0..c {
            out[r * c + o] = (0..planes)
                .map(|i| scale[i * c + o] as f64 * y[r * planes * c + i * c + o] as f64)
                .sum::<f64>() as f32;
        }
    }
    out
}

/// Q-SNN's scale `2^round(log2(mean |w_hat|))` per channel, `w_hat` normalized by the
/// channel's mean and unbiased std (see `reference::binarize`).
pub fn pow2_scale(w: &[f64], c_out: usize, k: usize) -> Vec<f64> {
    let b = super::binarize::binarize(w, c_out, k);
    b.w_hat
        .chunks(k)
        .map(|row| {
            let m = row.iter().map(|v| v.abs()).sum::<f64>() / k as f64;
            if m > 0.0 {
                m.log2().round_ties_even().exp2()
            } else {
                1.0
            }
        })
        .collect()
}
