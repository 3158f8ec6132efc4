// Per-channel reductions and BatchNorm on channel-last tensors [rows, C], where rows
// folds T, B and the spatial or token axes (BN normalizes each channel over all of them).
//
// Reductions run in two passes so that they are parallel over rows:
//   channel_partials: workgroup (channel block, row group) sums `cw` channels over
//     `rows_per_group` rows into partial [groups, 2, C] (two sums per channel), by MODE:
//       0: S0 = sum a                                  (column sums: bias gradients)
//       1: S0 = sum (a - a[0]), S1 = sum (a - a[0])^2  (BN statistics, shifted by the
//                                                       first row for accuracy)
//       2: S0 = sum b, S1 = sum b (a - mean) inv_std   (BN backward: a = x, b = dy)
//   *_finish: one invocation per channel adds the `groups` partials.
//
// BatchNorm (PyTorch semantics): training normalizes with the batch mean and biased
// variance and moves running_mean / running_var (unbiased variance) by `momentum`;
// eval uses the running statistics. Saved for backward: stats [2, C] = (mean, inv_std).
// The affine form y = x scale + shift is precomputed per channel (coef [2, C]).
// C a multiple of 4: the *_vec4 entries do the per-row passes 4 channels at a time.

override MODE: u32 = 0u;
override ACCUMULATE: bool = false;
override EVAL: bool = false;

struct Params {
    rows: u32,
    c: u32,
    groups: u32,         // row groups of channel_partials
    rows_per_group: u32,
    cw: u32,             // channels per workgroup in channel_partials (<= 256)
    total: u32,          // rows * c
    eps: f32,
    momentum: f32,
}

const WG: u32 = 256u;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---- channel_partials --------------------------------------------------------------

@group(0) @binding(0) var<storage, read> cp_a: array<f32>;            // [rows, C]
@group(0) @binding(1) var<storage, read> cp_b: array<f32>;            // [rows, C] (MODE 2)
@group(0) @binding(2) var<storage, read> cp_stats: array<f32>;        // [2, C] (MODE 2)
@group(0) @binding(3) var<storage, read_write> cp_out: array<f32>;    // [groups, 2, C]
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> sum0: array<f32, WG>;
var<workgroup> sum1: array<f32, WG>;

// Grid: (ceil(C / cw), groups). Invocation lid is channel lid % cw of the block and row
// lane lid / cw; the 256 / cw row lanes stride through the group's rows.
@compute @workgroup_size(256)
fn channel_partials(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let lanes = WG / p.cw;
    let cl = lid % p.cw;
    let lane = lid / p.cw;
    let c = wid.x * p.cw + cl;
    let r0 = wid.y * p.rows_per_group;
    let r1 = min(r0 + p.rows_per_group, p.rows);
    var s0 = 0.0;
    var s1 = 0.0;
    if (lane < lanes && c < p.c) {
        var shift = 0.0;
        var mean = 0.0;
        var inv_std = 0.0;
        if (MODE == 1u) {
            shift = cp_a[c];
        }
        if (MODE == 2u) {
            mean = cp_stats[c];
            inv_std = cp_stats[p.c + c];
        }
        for (var r = r0 + lane; r < r1; r += lanes) {
            let v = cp_a[r * p.c + c];
            if (MODE == 0u) {
                s0 += v;
            } else if (MODE == 1u) {
                let d = v - shift;
                s0 += d;
                s1 += d * d;
            } else {
                let g = cp_b[r * p.c + c];
                s0 += g;
                s1 += g * (v - mean) * inv_std;
            }
        }
    }
    sum0[lid] = s0;
    sum1[lid] = s1;
    workgroupBarrier();
    if (lid < p.cw && c < p.c) {
        var t0 = 0.0;
        var t1 = 0.0;
        for (var l = 0u; l < lanes; l++) {
            t0 += sum0[l * p.cw + lid];
            t1 += sum1[l * p.cw + lid];
        }
        cp_out[(wid.y * 2u) * p.c + c] = t0;
        cp_out[(wid.y * 2u + 1u) * p.c + c] = t1;
    }
}

// ---- col_sum_finish: out[c] (+)= sum_g S0[g, c] --------------------------------------

@group(0) @binding(0) var<storage, read> cs_partial: array<f32>;      // [groups, 2, C]
@group(0) @binding(1) var<storage, read_write> cs_out: array<f32>;    // [C]
@group(0) @binding(2) var<uniform> p2: Params;

@compute @workgroup_size(256)
fn col_sum_finish(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= p2.c) {
        return;
    }
    var s = 0.0;
    for (var g = 0u; g < p2.groups; g++) {
        s += cs_partial[g * 2u * p2.c + c];
    }
    if (ACCUMULATE) {
        cs_out[c] += s;
    } else {
        cs_out[c] = s;
    }
}

// ---- bn_stats_finish: batch mean / inv_std, running statistics update ---------------

@group(0) @binding(0) var<storage, read> st_x: array<f32>;                // [rows, C] (row 0: the shift)
@group(0) @binding(1) var<storage, read> st_partial: array<f32>;          // [groups, 2, C]
@group(0) @binding(2) var<storage, read_write> st_saved: array<f32>;      // [2, C]: mean, inv_std
@group(0) @binding(3) var<storage, read_write> st_running_mean: array<f32>; // [C]
@group(0) @binding(4) var<storage, read_write> st_running_var: array<f32>;  // [C]
@group(0) @binding(5) var<uniform> p5: Params;

@compute @workgroup_size(256)
fn bn_stats_finish(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= p5.c) {
        return;
    }
    var s0 = 0.0;
    var s1 = 0.0;
    for (var g = 0u; g < p5.groups; g++) {
        s0 += st_partial[g * 2u * p5.c + c];
        s1 += st_partial[(g * 2u + 1u) * p5.c + c];
    }
    let n = f32(p5.rows);
    let d = s0 / n;
    let var_b = max(s1 / n - d * d, 0.0);
    let mean = st_x[c] + d;
    st_saved[c] = mean;
    st_saved[p5.c + c] = 1.0 / sqrt(var_b + p5.eps);
    let var_u = var_b * n / (n - 1.0);
    st_running_mean[c] = (1.0 - p5.momentum) * st_running_mean[c] + p5.momentum * mean;
    st_running_var[c] = (1.0 - p5.momentum) * st_running_var[c] + p5.momentum * var_u;
}

// ---- bn_affine: coef [2, C] = (weight inv_std, bias - mean weight inv_std) ----------
// Training (EVAL = false): mean and inv_std from the saved stats, bound to both
// statistics bindings. Eval: mean = running_mean, inv_std = 1 / sqrt(running_var + eps).

@group(0) @binding(0) var<storage, read> af_mean: array<f32>;          // saved [2, C] or running_mean [C]
@group(0) @binding(1) var<storage, read> af_second: array<f32>;        // saved [2, C] or running_var [C]
@group(0) @binding(2) var<storage, read> af_weight: array<f32>;        // [C]
@group(0) @binding(3) var<storage, read> af_bias: array<f32>;          // [C]
@group(0) @binding(4) var<storage, read_write> af_coef: array<f32>;       // [2, C]: scale, shift
// (binding 5 is `p5`)

@compute @workgroup_size(256)
fn bn_affine(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= p5.c) {
        return;
    }
    let mean = af_mean[c];
    var inv_std = 0.0;
    if (EVAL) {
        inv_std = 1.0 / sqrt(af_second[c] + p5.eps);
    } else {
        inv_std = af_second[p5.c + c];
    }
    let scale = af_weight[c] * inv_std;
    af_coef[c] = scale;
    af_coef[p5.c + c] = af_bias[c] - mean * scale;
}

// ---- bn_apply: y = x scale[c] + shift[c] -------------------------------------------

@group(0) @binding(0) var<storage, read> ap_x: array<f32>;             // [rows, C]
@group(0) @binding(1) var<storage, read> ap_coef: array<f32>;          // [2, C]
@group(0) @binding(2) var<storage, read_write> ap_y: array<f32>;       // [rows, C]
@group(0) @binding(3) var<uniform> p3: Params;

@compute @workgroup_size(256)
fn bn_apply(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p3.total) {
        return;
    }
    let c = i % p3.c;
    ap_y[i] = ap_x[i] * ap_coef[c] + ap_coef[p3.c + c];
}

// ---- bn_backward_finish ------------------------------------------------------------
// With S0 = sum dy, S1 = sum dy xhat, xhat = (x - mean) inv_std:
//   dweight += S1, dbias += S0,
//   dx = weight inv_std (dy - S0 / n - xhat S1 / n) = A dy + B (x - mean) + C0,
//   coef [4, C] = (A, B, C0, mean): A = weight inv_std, B = -A inv_std S1 / n, C0 = -A S0 / n.

@group(0) @binding(0) var<storage, read> bf_partial: array<f32>;           // [groups, 2, C]
@group(0) @binding(1) var<storage, read> bf_saved: array<f32>;             // [2, C]: mean, inv_std
@group(0) @binding(2) var<storage, read> bf_weight: array<f32>;            // [C]
@group(0) @binding(3) var<storage, read_write> bf_dweight: array<f32>;     // [C] (accumulated)
@group(0) @binding(4) var<storage, read_write> bf_dbias: array<f32>;       // [C] (accumulated)
@group(0) @binding(5) var<storage, read_write> bf_coef: array<f32>;        // [4, C]
@group(0) @binding(6) var<uniform> p6: Params;

@compute @workgroup_size(256)
fn bn_backward_finish(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let c = linear_index(wid, nwg, lid);
    if (c >= p6.c) {
        return;
    }
    var s0 = 0.0;
    var s1 = 0.0;
    for (var g = 0u; g < p6.groups; g++) {
        s0 += bf_partial[g * 2u * p6.c + c];
        s1 += bf_partial[(g * 2u + 1u) * p6.c + c];
    }
    bf_dweight[c] += s1;
    bf_dbias[c] += s0;
    let n = f32(p6.rows);
    let inv_std = bf_saved[p6.c + c];
    let a = bf_weight[c] * inv_std;
    bf_coef[c] = a;
    bf_coef[p6.c + c] = -a * inv_std * s1 / n;
    bf_coef[2u * p6.c + c] = -a * s0 / n;
    bf_coef[3u * p6.c + c] = bf_saved[c];
}

// ---- bn_backward_dx: dx = A dy + B (x - mean) + C0 ---------------------------------

@group(0) @binding(0) var<storage, read> bd_x: array<f32>;             // [rows, C]
@group(0) @binding(1) var<storage, read> bd_dy: array<f32>;            // [rows, C]
@group(0) @binding(2) var<storage, read> bd_coef: array<f32>;          // [4, C]
@group(0) @binding(3) var<storage, read_write> bd_dx: array<f32>;      // [rows, C]
// (binding 4 is `p`)

@compute @workgroup_size(256)
fn bn_backward_dx(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let c = i % p.c;
    bd_dx[i] = bd_coef[c] * bd_dy[i] + bd_coef[p.c + c] * (bd_x[i] - bd_coef[3u * p.c + c])
        + bd_coef[2u * p.c + c];
}

// ---- 4 channels per invocation (C a multiple of 4) ----------------------------------
// The same passes over [rows, C] with vec4 loads and stores, a quarter of the memory
// instructions that bound them; `total` counts vec4s, `cw` vec4 channels per workgroup.

@group(0) @binding(0) var<storage, read> cp4_a: array<vec4<f32>>;          // [rows, C / 4]
@group(0) @binding(1) var<storage, read> cp4_b: array<vec4<f32>>;          // [rows, C / 4] (MODE 2)
@group(0) @binding(2) var<storage, read> cp4_stats: array<vec4<f32>>;      // [2, C / 4] (MODE 2)
@group(0) @binding(3) var<storage, read_write> cp4_out: array<vec4<f32>>;  // [groups, 2, C / 4]
// (binding 4 is `p`)

var<workgroup> sum0_4: array<vec4<f32>, WG>;
var<workgroup> sum1_4: array<vec4<f32>, WG>;

@compute @workgroup_size(256)
fn channel_partials_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(local_invocation_index) lid: u32) {
    let c4 = p.c / 4u;
    let lanes = WG / p.cw;
    let cl = lid % p.cw;
    let lane = lid / p.cw;
    let c = wid.x * p.cw + cl;
    let r0 = wid.y * p.rows_per_group;
    let r1 = min(r0 + p.rows_per_group, p.rows);
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    if (lane < lanes && c < c4) {
        var shift = vec4<f32>(0.0);
        var mean = vec4<f32>(0.0);
        var inv_std = vec4<f32>(0.0);
        if (MODE == 1u) {
            shift = cp4_a[c];
        }
        if (MODE == 2u) {
            mean = cp4_stats[c];
            inv_std = cp4_stats[c4 + c];
        }
        for (var r = r0 + lane; r < r1; r += lanes) {
            let v = cp4_a[r * c4 + c];
            if (MODE == 0u) {
                s0 += v;
            } else if (MODE == 1u) {
                let d = v - shift;
                s0 += d;
                s1 += d * d;
            } else {
                let g = cp4_b[r * c4 + c];
                s0 += g;
                s1 += g * (v - mean) * inv_std;
            }
        }
    }
    sum0_4[lid] = s0;
    sum1_4[lid] = s1;
    workgroupBarrier();
    if (lid < p.cw && c < c4) {
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        for (var l = 0u; l < lanes; l++) {
            t0 += sum0_4[l * p.cw + lid];
            t1 += sum1_4[l * p.cw + lid];
        }
        cp4_out[(wid.y * 2u) * c4 + c] = t0;
        cp4_out[(wid.y * 2u + 1u) * c4 + c] = t1;
    }
}

@group(0) @binding(0) var<storage, read> ap4_x: array<vec4<f32>>;          // [rows, C / 4]
@group(0) @binding(1) var<storage, read> ap4_coef: array<vec4<f32>>;       // [2, C / 4]
@group(0) @binding(2) var<storage, read_write> ap4_y: array<vec4<f32>>;    // [rows, C / 4]
// (binding 3 is `p3`)

@compute @workgroup_size(256)
fn bn_apply_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p3.total) {
        return;
    }
    let c4 = p3.c / 4u;
    let c = i % c4;
    ap4_y[i] = ap4_x[i] * ap4_coef[c] + ap4_coef[c4 + c];
}

@group(0) @binding(0) var<storage, read> bd4_x: array<vec4<f32>>;          // [rows, C / 4]
@group(0) @binding(1) var<storage, read> bd4_dy: array<vec4<f32>>;         // [rows, C / 4]
@group(0) @binding(2) var<storage, read> bd4_coef: array<vec4<f32>>;       // [4, C / 4]
@group(0) @binding(3) var<storage, read_write> bd4_dx: array<vec4<f32>>;   // [rows, C / 4]
// (binding 4 is `p`)

@compute @workgroup_size(256)
fn bn_backward_dx_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let c4 = p.c / 4u;
    let c = i % c4;
    bd4_dx[i] = bd4_coef[c] * bd4_dy[i] + bd4_coef[c4 + c] * (bd4_x[i] - bd4_coef[3u * c4 + c])
        + bd4_coef[2u * c4 + c];
}
