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
}

const WG: u32 = 256u;
var<workgroup> scratch: array<f32, WG>;

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

@compute @workgroup_size(256)
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

@compute @workgroup_size(256)
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
