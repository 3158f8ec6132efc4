// Weight binarization as BESTformer's IRConv2d / IRConv1d / IRLinear do it, per output
// channel o over its K = fan-in weights (one workgroup per channel):
//   w_hat = (w - mean_o) / std_o   (std unbiased, as torch.std: divides by K - 1)
//   w_b   = sign(w_hat), with sign(0) = +1 (torch.sign gives 0, which no bit can code;
//           the packed and the f32 weights agree on +1). A channel of equal weights
//           (std 0) binarizes to +1 and gets a zero gradient (PyTorch would give NaN).
// binarize writes the f32 signs [C_out, K], the same signs packed along K
// (PackedBits [C_out, K], bit 1 = +1, rows padded to 128-bit groups) and the
// statistics [C_out, 2] = (mean, std) for the backward.
// binarize_backward: straight-through from d w_b to d w_hat, then through the
// normalization: dw += (1 / std) (g - mean(g) - w_hat sum(g w_hat) / (K - 1)).

struct Params {
    c_out: u32,
    k: u32,
    words_per_row: u32,
    bits: u32, // rescaw only
}

// Invocations per channel's workgroup (a power of two up to 256): the host takes 8 on CPU
// drivers, where a workgroup wider than one SIMD batch pays a context switch per barrier
// and the reductions' barriers cost more than the channel's arithmetic.
override WG: u32 = 256u;
// The elementwise kernels' workgroup size.
const ELEMENTWISE_WG: u32 = 256u;
var<workgroup> scratch: array<f32, 256>;

// Sum of `v` over the workgroup (called in uniform control flow by all invocations).
fn workgroup_sum(v: f32, lid: u32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s /= 2u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    workgroupBarrier();
    return total;
}

fn inverse_std(sd: f32) -> f32 {
    return select(0.0, 1.0 / sd, sd > 0.0);
}

@group(0) @binding(0) var<storage, read> w: array<f32>;              // [C_out, K]
@group(0) @binding(1) var<storage, read_write> signs: array<f32>;    // [C_out, K]
@group(0) @binding(2) var<storage, read_write> bits: array<u32>;     // [C_out, words_per_row]
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;    // [C_out, 2]: mean, std
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn binarize(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let o = wid.x + wid.y * nwg.x;
    if (o >= p.c_out) {
        return;
    }
    let base = o * p.k;
    var s = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        s += w[base + j];
    }
    let mean = workgroup_sum(s, lid) / f32(p.k);
    var q = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        let d = w[base + j] - mean;
        q += d * d;
    }
    let sd = sqrt(workgroup_sum(q, lid) / f32(p.k - 1u));
    let inv = inverse_std(sd);
    for (var word = lid; word < p.words_per_row; word += WG) {
        var packed = 0u;
        for (var b = 0u; b < 32u; b++) {
            let j = word * 32u + b;
            if (j < p.k) {
                let on = (w[base + j] - mean) * inv >= 0.0;
                signs[base + j] = select(-1.0, 1.0, on);
                packed |= select(0u, 1u << b, on);
            }
        }
        bits[o * p.words_per_row + word] = packed;
    }
    if (lid == 0u) {
        stats[2u * o] = mean;
        stats[2u * o + 1u] = sd;
    }
}

@group(0) @binding(0) var<storage, read> bw_w: array<f32>;           // [C_out, K]
@group(0) @binding(1) var<storage, read> bw_stats: array<f32>;       // [C_out, 2]: mean, std
@group(0) @binding(2) var<storage, read> bw_g: array<f32>;           // [C_out, K]: d w_b
@group(0) @binding(3) var<storage, read_write> bw_dw: array<f32>;    // [C_out, K] (accumulated)
// (binding 4 is `p`)

@compute @workgroup_size(WG)
fn binarize_backward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let o = wid.x + wid.y * nwg.x;
    if (o >= p.c_out) {
        return;
    }
    let base = o * p.k;
    let mean = bw_stats[2u * o];
    let inv = inverse_std(bw_stats[2u * o + 1u]);
    var sg = 0.0;
    var sgw = 0.0;
    for (var j = lid; j < p.k; j += WG) {
        let g = bw_g[base + j];
        sg += g;
        sgw += g * (bw_w[base + j] - mean) * inv;
    }
    let g_mean = workgroup_sum(sg, lid) / f32(p.k);
    let gw = workgroup_sum(sgw, lid) / f32(p.k - 1u);
    for (var j = lid; j < p.k; j += WG) {
        let w_hat = (bw_w[base + j] - mean) * inv;
        bw_dw[base + j] += inv * (bw_g[base + j] - g_mean - w_hat * gw);
    }
}

// ---- multi-bit weights ---------------------------------------------------------------
// Multi-bit weights on bit-planes (QP-SNN's ReScaW quantizer) and Q-SNN's power-of-two
// binary scale.
//
// rescaw: per output channel o over its K fan-in weights (one workgroup per channel):
//   gamma_o = mean |w|                         (detached: no gradient flows through it)
//   w~      = clamp(w / gamma_o, -1, 1)        (w~ = 0 for a channel of zeros)
//   code    = round((w~ + 1) n), n = (2^b - 1) / 2, so code is in 0 .. 2^b - 1
//   Q       = gamma_o (code / n - 1)
// Written: Q f32 [C_out, K]; the codes as b bit-planes PackedBits [b * C_out, K] (row
// i * C_out + o holds bit i of channel o's codes); gamma [C_out]; and the plane scales
// [b * C_out]. With each bit read as a sign s_i = 2 bit_i - 1, code - n = sum_i 2^i s_i / 2,
// so Q = gamma / (2 n) sum_i 2^i s_i: the zero-point cancels and a b-bit matmul is b sign
// matmuls (binary_matmul.wgsl) weighted by plane_scale[i, o] = gamma_o 2^i / (2 n).
// round() is ties-to-even, as torch.round.
//
// rescaw_backward: straight-through round with gamma detached: the gradient of
// clamp(w, -gamma, gamma), i.e. dw += g where |w| <= gamma_o, else nothing.
//
// sum_planes: out[r, o] = sum_i plane_scale[i * C + o] * y[r, i * C + o] (y the b plane
// matmuls side by side along the last axis).
//
// pow2_scale: Q-SNN's binary scale per channel, s_o = 2^round(log2(mean_o |w_hat|)),
// w_hat = (w - mean_o) / std_o from binarize.wgsl's statistics.

fn half_levels(bits: u32) -> f32 {
    return f32((1u << bits) - 1u) * 0.5;
}

fn code_of(w: f32, gamma: f32, n: f32) -> u32 {
    let wt = select(0.0, clamp(w / gamma, -1.0, 1.0), gamma > 0.0);
    return u32(round((wt + 1.0) * n));
}

// (binding 0 is binarize's `w`)
@group(0) @binding(1) var<storage, read_write> q: array<f32>;             // [C_out, K]
@group(0) @binding(2) var<storage, read_write> planes: array<u32>;        // [bits * C_out, words_per_row]
@group(0) @binding(3) var<storage, read_write> plane_scale: array<f32>;   // [bits * C_out]
@group(0) @binding(4) var<storage, read_write> gammas: array<f32>;        // [C_out]
@group(0) @binding(5) var<uniform> rp: Params;

@compute @workgroup_size(WG)
fn rescaw(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let o = wid.x + wid.y * nwg.x;
    if (o >= rp.c_out) {
        return;
    }
    let base = o * rp.k;
    var s = 0.0;
    for (var j = lid; j < rp.k; j += WG) {
        s += abs(w[base + j]);
    }
    let gamma = workgroup_sum(s, lid) / f32(rp.k);
    let n = half_levels(rp.bits);
    for (var word = lid; word < rp.words_per_row; word += WG) {
        var packed = array<u32, 8>(0u, 0u, 0u, 0u, 0u, 0u, 0u, 0u);
        for (var b = 0u; b < 32u; b++) {
            let j = word * 32u + b;
            if (j < rp.k) {
                let code = code_of(w[base + j], gamma, n);
                q[base + j] = gamma * (f32(code) / n - 1.0);
                for (var i = 0u; i < rp.bits; i++) {
                    packed[i] |= ((code >> i) & 1u) << b;
                }
            }
        }
        for (var i = 0u; i < rp.bits; i++) {
            planes[(i * rp.c_out + o) * rp.words_per_row + word] = packed[i];
        }
    }
    if (lid == 0u) {
        gammas[o] = gamma;
        for (var i = 0u; i < rp.bits; i++) {
            plane_scale[i * rp.c_out + o] = gamma * f32(1u << i) / (2.0 * n);
        }
    }
}

struct ElemParams {
    len: u32,
    k: u32,
    c: u32,
    bits: u32,
}

// (bindings 0, 2 and 3 are binarize_backward's bw_w, bw_g = dQ and bw_dw)
@group(0) @binding(1) var<storage, read> bw_gamma: array<f32>;      // [C_out]
@group(0) @binding(4) var<uniform> ep: ElemParams;

@compute @workgroup_size(256)
fn rescaw_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * ELEMENTWISE_WG;
    if (i >= ep.len) {
        return;
    }
    let inside = abs(bw_w[i]) <= bw_gamma[i / ep.k];
    bw_dw[i] += select(0.0, bw_g[i], inside);
}

@group(0) @binding(0) var<storage, read> sp_y: array<f32>;          // [rows, bits * C]
@group(0) @binding(1) var<storage, read> sp_scale: array<f32>;      // [bits * C]
@group(0) @binding(2) var<storage, read_write> sp_out: array<f32>;  // [rows, C]
@group(0) @binding(3) var<uniform> sp: ElemParams;  // len = rows * C, c = C, bits

@compute @workgroup_size(256)
fn sum_planes(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * ELEMENTWISE_WG;
    if (e >= sp.len) {
        return;
    }
    let r = e / sp.c;
    let o = e % sp.c;
    let row = r * sp.bits * sp.c;
    var acc = 0.0;
    for (var i = 0u; i < sp.bits; i++) {
        acc += sp_scale[i * sp.c + o] * sp_y[row + i * sp.c + o];
    }
    sp_out[e] = acc;
}

@group(0) @binding(0) var<storage, read> ps_w: array<f32>;          // [C_out, K]
@group(0) @binding(1) var<storage, read> ps_stats: array<f32>;      // [C_out, 2]: mean, std
@group(0) @binding(2) var<storage, read_write> ps_scale: array<f32>; // [C_out]
@group(0) @binding(3) var<uniform> pp: Params;

@compute @workgroup_size(WG)
fn pow2_scale(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let o = wid.x + wid.y * nwg.x;
    if (o >= pp.c_out) {
        return;
    }
    let mean = ps_stats[2u * o];
    let sd = ps_stats[2u * o + 1u];
    let inv = inverse_std(sd);
    var s = 0.0;
    for (var j = lid; j < pp.k; j += WG) {
        s += abs(ps_w[o * pp.k + j] - mean) * inv;
    }
    let m = workgroup_sum(s, lid) / f32(pp.k);
    if (lid == 0u) {
        ps_scale[o] = select(1.0, exp2(round(log2(m))), m > 0.0);
    }
}
