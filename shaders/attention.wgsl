// Spiking self-attention: the elementwise and fused parts around the (binary) matmuls of
// the attention forms (SSA, BESTformer binary attention, SSA_Bin, A2OS2A). The products
// themselves run on matmul.wgsl / binary_matmul.wgsl; this file holds
//   lif_map            LIF over T of every attention-map element, map packed to bits
//   lif_map_backward   its BPTT with the Sigmoid surrogate
//   threshold_map      SSA_Bin's B(x) = x > Delta[h], map packed to bits
//   shift_mean         SSA_Bin's out = kappa * BV - mean[h, e]
//   running_update     running statistics: state = mu state + (1 - mu) factor sum
//   softmax_surrogate  SSA_Bin's dB/dx = p (1 - p), p = softmax over the key axis
//   pack_spikes        f32 [batch, R, C] -> bits along C or (transposed) along R
//   unpack_bits        bits [rows, C] -> f32 {0,1} [rows, C]
//   scale_heads        y = x * s * factor[t, h]
//   lambda_grad        d lambda[t, h] = s * sum_{b, i, e} dy * prod
//   count_nonzero      count of non-zero elements (map density, on demand)
// Packed rows follow pack.wgsl: bits along the last axis, LSB first, each row padded to
// `wpr` words (a multiple of 4) with zero bits. Counts of ones and sums of integers are
// kept exactly as 64-bit (lo, hi) pairs of u32 atomics: the add that wraps `lo` carries
// into `hi`. Every 1-D grid rebuilds its linear index as wid.x + wid.y * nwg.x.

// ------------------------------------------------------------------------------------
// lif_map: for every map element, over t = 0 .. T-1 (state V from 0):
//   H = V + (X - V) / tau   (decay_input)
//   S = H >= v_th
//   V = H - v_th S          (soft reset)
// Each invocation owns one packed word (32 consecutive columns of one row) for every t,
// so its 32 membrane potentials live in 8 vec4 registers across the time loop. A
// workgroup covers 64 words of one map; padding words are written as zero.

struct LifParams {
    steps: u32,          // T
    maps: u32,           // maps per time step (B * heads)
    rows: u32,           // rows of a map
    cols: u32,           // columns of a map (bits per packed row)
    wpr: u32,            // words per packed row
    groups_per_map: u32, // ceil(rows * wpr / 64)
    tau: f32,
    v_th: f32,
}

@group(0) @binding(0) var<storage, read> lif_x: array<f32>;                // [T, maps, rows, cols]
@group(0) @binding(1) var<storage, read_write> lif_bits: array<u32>;       // [T, maps, rows, wpr]
@group(0) @binding(2) var<storage, read_write> lif_ones: array<atomic<u32>>; // [2] (lo, hi)
@group(0) @binding(3) var<uniform> lp: LifParams;

const MAP_WG: u32 = 64u;
var<workgroup> wg_count: atomic<u32>;
var<workgroup> wg_sum: atomic<u32>;

// x[base + j .. base + j + 4], zero past column n of the word.
fn lif_load4(base: u32, j: u32, n: u32) -> vec4<f32> {
    let last = base + n - 1u;
    return vec4<f32>(select(0.0, lif_x[min(base + j, last)], j < n),
                     select(0.0, lif_x[min(base + j + 1u, last)], j + 1u < n),
                     select(0.0, lif_x[min(base + j + 2u, last)], j + 2u < n),
                     select(0.0, lif_x[min(base + j + 3u, last)], j + 3u < n));
}

// One LIF step of 4 elements; returns their spikes as the low 4 bits.
fn lif_step4(v: ptr<function, vec4<f32>>, x: vec4<f32>) -> u32 {
    let h = *v + (x - *v) / lp.tau;
    let s = h >= vec4<f32>(lp.v_th);
    *v = h - select(vec4<f32>(0.0), vec4<f32>(lp.v_th), s);
    return select(0u, 1u, s.x) | select(0u, 2u, s.y) | select(0u, 4u, s.z) | select(0u, 8u, s.w);
}

fn low_bits(n: u32) -> u32 {
    return select((1u << n) - 1u, 0xffffffffu, n >= 32u);
}

@compute @workgroup_size(64)
fn lif_map(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= lp.maps * lp.groups_per_map) {
        return;
    }
    if (lid == 0u) {
        atomicStore(&wg_count, 0u);
    }
    workgroupBarrier();
    let map = g / lp.groups_per_map;
    let w = (g % lp.groups_per_map) * MAP_WG + lid; // word within the map
    let map_words = lp.rows * lp.wpr;
    var ones = 0u;
    if (w < map_words) {
        let row = w / lp.wpr;
        let col0 = (w % lp.wpr) * 32u;
        let out0 = map * map_words + w;
        let step_words = lp.maps * map_words;
        if (col0 >= lp.cols) {
            for (var t = 0u; t < lp.steps; t++) {
                lif_bits[t * step_words + out0] = 0u;
            }
        } else {
            let n = min(32u, lp.cols - col0);
            let in0 = (map * lp.rows + row) * lp.cols + col0;
            let step_elems = lp.maps * lp.rows * lp.cols;
            var v0 = vec4<f32>(0.0);
            var v1 = vec4<f32>(0.0);
            var v2 = vec4<f32>(0.0);
            var v3 = vec4<f32>(0.0);
            var v4 = vec4<f32>(0.0);
            var v5 = vec4<f32>(0.0);
            var v6 = vec4<f32>(0.0);
            var v7 = vec4<f32>(0.0);
            for (var t = 0u; t < lp.steps; t++) {
                let base = t * step_elems + in0;
                var word = lif_step4(&v0, lif_load4(base, 0u, n));
                if (n > 4u) { word |= lif_step4(&v1, lif_load4(base, 4u, n)) << 4u; }
                if (n > 8u) { word |= lif_step4(&v2, lif_load4(base, 8u, n)) << 8u; }
                if (n > 12u) { word |= lif_step4(&v3, lif_load4(base, 12u, n)) << 12u; }
                if (n > 16u) { word |= lif_step4(&v4, lif_load4(base, 16u, n)) << 16u; }
                if (n > 20u) { word |= lif_step4(&v5, lif_load4(base, 20u, n)) << 20u; }
                if (n > 24u) { word |= lif_step4(&v6, lif_load4(base, 24u, n)) << 24u; }
                if (n > 28u) { word |= lif_step4(&v7, lif_load4(base, 28u, n)) << 28u; }
                word &= low_bits(n);
                ones += countOneBits(word);
                lif_bits[t * step_words + out0] = word;
            }
        }
    }
    atomicAdd(&wg_count, ones);
    workgroupBarrier();
    if (lid == 0u) {
        let c = atomicLoad(&wg_count);
        let old = atomicAdd(&lif_ones[0], c);
        if (old + c < old) {
            atomicAdd(&lif_ones[1], 1u);
        }
    }
}

// ------------------------------------------------------------------------------------
// lif_map_backward: BPTT of lif_map per element with the Sigmoid surrogate, detached
// soft reset (dV/dH = 1), no gradient into the state sequence:
//   sg = sigmoid(alpha (H_t - v_th)),  g_s = alpha sg (1 - sg)
//   grad_h = grad_S[t] g_s + grad_h (1 - 1/tau),  grad_X[t] = grad_h / tau
// H_t is recomputed from X in a forward sweep and parked in grad_X until the backward
// sweep overwrites it.

struct LifBackParams {
    steps: u32, // T
    len: u32,   // elements per time step
    tau: f32,
    v_th: f32,
    alpha: f32,
}

@group(0) @binding(0) var<storage, read> lb_x: array<f32>;        // [T, len]
@group(0) @binding(1) var<storage, read> lb_gs: array<f32>;       // [T, len] dL/dS
@group(0) @binding(2) var<storage, read_write> lb_gx: array<f32>; // [T, len] dL/dX
@group(0) @binding(3) var<uniform> lbp: LifBackParams;

@compute @workgroup_size(256)
fn lif_map_backward(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (e >= lbp.len) {
        return;
    }
    var v = 0.0;
    for (var t = 0u; t < lbp.steps; t++) {
        let i = t * lbp.len + e;
        let h = v + (lb_x[i] - v) / lbp.tau;
        lb_gx[i] = h;
        v = h - select(0.0, lbp.v_th, h >= lbp.v_th);
    }
    let keep = 1.0 - 1.0 / lbp.tau;
    var gh = 0.0;
    for (var t = lbp.steps; t > 0u; t--) {
        let i = (t - 1u) * lbp.len + e;
        let sg = 1.0 / (1.0 + exp(-lbp.alpha * (lb_gx[i] - lbp.v_th)));
        gh = lb_gs[i] * lbp.alpha * sg * (1.0 - sg) + gh * keep;
        lb_gx[i] = gh / lbp.tau;
    }
}

// ------------------------------------------------------------------------------------
// threshold_map (SSA_Bin): bit = x > delta[h] for the scores x = Q K^T of map
// (t, b, h), h = map % heads. Counts the ones; with TRAINING also sums the (integer)
// scores per head for the running threshold. One invocation per packed word, a
// workgroup within one map, so one atomic pair per workgroup and statistic.

override TRAINING: bool = false;

struct ThresholdParams {
    maps: u32, // T * B * heads
    heads: u32,
    rows: u32,
    cols: u32,
    wpr: u32,
    groups_per_map: u32,
}

@group(0) @binding(0) var<storage, read> th_x: array<f32>;                 // [maps, rows, cols]
@group(0) @binding(1) var<storage, read> th_delta: array<f32>;             // [heads]
@group(0) @binding(2) var<storage, read_write> th_bits: array<u32>;        // [maps, rows, wpr]
@group(0) @binding(3) var<storage, read_write> th_ones: array<atomic<u32>>; // [2]
@group(0) @binding(4) var<storage, read_write> th_sums: array<atomic<u32>>; // [heads, 2]
@group(0) @binding(5) var<uniform> tp: ThresholdParams;

@compute @workgroup_size(64)
fn threshold_map(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= tp.maps * tp.groups_per_map) {
        return;
    }
    if (lid == 0u) {
        atomicStore(&wg_count, 0u);
        atomicStore(&wg_sum, 0u);
    }
    workgroupBarrier();
    let map = g / tp.groups_per_map;
    let head = map % tp.heads;
    let w = (g % tp.groups_per_map) * MAP_WG + lid;
    let map_words = tp.rows * tp.wpr;
    var ones = 0u;
    var sum = 0u;
    if (w < map_words) {
        let row = w / tp.wpr;
        let col0 = (w % tp.wpr) * 32u;
        var word = 0u;
        if (col0 < tp.cols) {
            let n = min(32u, tp.cols - col0);
            let base = (map * tp.rows + row) * tp.cols + col0;
            let delta = th_delta[head];
            for (var j = 0u; j < n; j++) {
                let x = th_x[base + j];
                word |= select(0u, 1u << j, x > delta);
                sum += u32(max(x, 0.0) + 0.5);
            }
        }
        ones = countOneBits(word);
        th_bits[map * map_words + w] = word;
    }
    atomicAdd(&wg_count, ones);
    if (TRAINING) {
        atomicAdd(&wg_sum, sum);
    }
    workgroupBarrier();
    if (lid == 0u) {
        let c = atomicLoad(&wg_count);
        let old = atomicAdd(&th_ones[0], c);
        if (old + c < old) {
            atomicAdd(&th_ones[1], 1u);
        }
        if (TRAINING) {
            let s = atomicLoad(&wg_sum);
            let old_s = atomicAdd(&th_sums[2u * head], s);
            if (old_s + s < old_s) {
                atomicAdd(&th_sums[2u * head + 1u], 1u);
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// shift_mean (SSA_Bin): out = kappa * bv - mean[h, e] for bv = B V (integer counts) of
// map (t, b, h); with TRAINING also sums bv per (h, e) for the running mean. One
// workgroup per map; invocation e walks the rows of column e.

struct ShiftParams {
    maps: u32, // T * B * heads
    heads: u32,
    rows: u32, // N
    cols: u32, // d
    kappa: f32,
}

@group(0) @binding(0) var<storage, read> sh_bv: array<f32>;                 // [maps, rows, cols]
@group(0) @binding(1) var<storage, read> sh_mean: array<f32>;               // [heads, cols]
@group(0) @binding(2) var<storage, read_write> sh_out: array<f32>;          // [maps, rows, cols]
@group(0) @binding(3) var<storage, read_write> sh_sums: array<atomic<u32>>; // [heads, cols, 2]
@group(0) @binding(4) var<uniform> shp: ShiftParams;

@compute @workgroup_size(64)
fn shift_mean(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let map = wid.x + wid.y * nwg.x;
    if (map >= shp.maps) {
        return;
    }
    let head = map % shp.heads;
    for (var e = lid; e < shp.cols; e += MAP_WG) {
        let m = sh_mean[head * shp.cols + e];
        var sum = 0u;
        for (var i = 0u; i < shp.rows; i++) {
            let k = (map * shp.rows + i) * shp.cols + e;
            let x = sh_bv[k];
            sh_out[k] = shp.kappa * x - m;
            sum += u32(max(x, 0.0) + 0.5);
        }
        if (TRAINING) {
            let s = 2u * (head * shp.cols + e);
            let old = atomicAdd(&sh_sums[s], sum);
            if (old + sum < old) {
                atomicAdd(&sh_sums[s + 1u], 1u);
            }
        }
    }
}

// ------------------------------------------------------------------------------------
// running_update: state[i] = mu state[i] + (1 - mu) factor sum[i], sum a (lo, hi) pair.

struct UpdateParams {
    len: u32,
    momentum: f32,
    factor: f32,
}

@group(0) @binding(0) var<storage, read> ru_sums: array<u32>;        // [len, 2]
@group(0) @binding(1) var<storage, read_write> ru_state: array<f32>; // [len]
@group(0) @binding(2) var<uniform> rup: UpdateParams;

@compute @workgroup_size(64)
fn running_update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= rup.len) {
        return;
    }
    let sum = f32(ru_sums[2u * i + 1u]) * 4294967296.0 + f32(ru_sums[2u * i]);
    ru_state[i] = rup.momentum * ru_state[i] + (1.0 - rup.momentum) * rup.factor * sum;
}

// ------------------------------------------------------------------------------------
// softmax_surrogate (SSA_Bin backward): grad_x = grad_b * p (1 - p) with
// p = softmax(x) along each row (the key axis). One invocation per row.

struct SurrogateParams {
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<storage, read> ss_x: array<f32>;        // [rows, cols] scores
@group(0) @binding(1) var<storage, read> ss_gb: array<f32>;       // [rows, cols] dL/dB
@group(0) @binding(2) var<storage, read_write> ss_gx: array<f32>; // [rows, cols] dL/dx
@group(0) @binding(3) var<uniform> ssp: SurrogateParams;

@compute @workgroup_size(64)
fn softmax_surrogate(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let row = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (row >= ssp.rows) {
        return;
    }
    let base = row * ssp.cols;
    var m = ss_x[base];
    for (var j = 1u; j < ssp.cols; j++) {
        m = max(m, ss_x[base + j]);
    }
    var z = 0.0;
    for (var j = 0u; j < ssp.cols; j++) {
        z += exp(ss_x[base + j] - m);
    }
    let inv = 1.0 / z;
    for (var j = 0u; j < ssp.cols; j++) {
        let p = exp(ss_x[base + j] - m) * inv;
        ss_gx[base + j] = ss_gb[base + j] * p * (1.0 - p);
    }
}

// ------------------------------------------------------------------------------------
// pack_spikes: spikes x [batch, R, C] (bit = x > 0) packed along either axis, one
// invocation per word (its 32 values read in a loop, the word built in a register: no
// workgroup memory, no barrier, several times faster than the cooperative pack.wgsl on
// CPU drivers). Output bits [batch, rows, wpr], element j of word w of row r being
//   x[b * batch_stride + r * row_stride + (w * 32 + j) * bit_stride]:
// along C (as pack.wgsl): rows = R, bits = C, row_stride = C, bit_stride = 1;
// along R (transposed):   rows = C, bits = R, row_stride = 1, bit_stride = C.

struct PackParams {
    batch: u32,
    rows: u32,         // packed rows per batch entry
    bits: u32,         // length of the packed axis
    wpr: u32,          // words per packed row
    batch_stride: u32, // elements between batch entries
    row_stride: u32,
    bit_stride: u32,
}

@group(0) @binding(0) var<storage, read> pk_x: array<f32>;          // [batch, R, C]
@group(0) @binding(1) var<storage, read_write> pk_bits: array<u32>; // [batch, rows, wpr]
@group(0) @binding(2) var<uniform> pkp: PackParams;

@compute @workgroup_size(256)
fn pack_spikes(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= pkp.batch * pkp.rows * pkp.wpr) {
        return;
    }
    let w = i % pkp.wpr;
    let r = (i / pkp.wpr) % pkp.rows;
    let b = i / (pkp.wpr * pkp.rows);
    let j0 = w * 32u;
    var word = 0u;
    if (j0 < pkp.bits) {
        let n = min(32u, pkp.bits - j0);
        let base = b * pkp.batch_stride + r * pkp.row_stride + j0 * pkp.bit_stride;
        for (var j = 0u; j < n; j++) {
            word |= select(0u, 1u << j, pk_x[base + j * pkp.bit_stride] > 0.0);
        }
    }
    pk_bits[i] = word;
}

// ------------------------------------------------------------------------------------
// unpack_bits: bits [rows, wpr] -> {0,1} f32 [rows, cols]. One invocation per word.

struct UnpackParams {
    rows: u32,
    cols: u32,
    wpr: u32,
}

@group(0) @binding(0) var<storage, read> up_bits: array<u32>;      // [rows, wpr]
@group(0) @binding(1) var<storage, read_write> up_out: array<f32>; // [rows, cols]
@group(0) @binding(2) var<uniform> upp: UnpackParams;

@compute @workgroup_size(256)
fn unpack_bits(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= upp.rows * upp.wpr) {
        return;
    }
    let r = i / upp.wpr;
    let c0 = (i % upp.wpr) * 32u;
    if (c0 >= upp.cols) {
        return;
    }
    let word = up_bits[i];
    let base = r * upp.cols + c0;
    let n = min(32u, upp.cols - c0);
    for (var j = 0u; j < n; j++) {
        up_out[base + j] = f32((word >> j) & 1u);
    }
}

// ------------------------------------------------------------------------------------
// scale_heads: y = x * scale * factor[t, h] over x [T, B, heads, inner] (HAS_FACTOR);
// without a factor, y = x * scale.

override HAS_FACTOR: bool = false;

struct ScaleParams {
    len: u32,
    inner: u32,     // elements per (t, b, h)
    heads: u32,
    step_len: u32,  // elements per t (B * heads * inner)
    scale: f32,
}

@group(0) @binding(0) var<storage, read> sc_x: array<f32>;        // [T, B, heads, inner]
@group(0) @binding(1) var<storage, read> sc_factor: array<f32>;   // [T, heads]
@group(0) @binding(2) var<storage, read_write> sc_y: array<f32>;  // [T, B, heads, inner]
@group(0) @binding(3) var<uniform> scp: ScaleParams;

@compute @workgroup_size(256)
fn scale_heads(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= scp.len) {
        return;
    }
    var s = scp.scale;
    if (HAS_FACTOR) {
        let t = i / scp.step_len;
        let h = (i / scp.inner) % scp.heads;
        s *= sc_factor[t * scp.heads + h];
    }
    sc_y[i] = sc_x[i] * s;
}

// ------------------------------------------------------------------------------------
// lambda_grad: out[t, h] = scale * sum_{b, k} dy[t, b, h, k] * prod[t, b, h, k].
// One workgroup per (t, h), reduced through workgroup memory.

struct LambdaParams {
    batch: u32, // B
    heads: u32,
    inner: u32, // elements per (t, b, h)
    scale: f32,
}

@group(0) @binding(0) var<storage, read> lg_dy: array<f32>;        // [T, B, heads, inner]
@group(0) @binding(1) var<storage, read> lg_prod: array<f32>;      // [T, B, heads, inner]
@group(0) @binding(2) var<storage, read_write> lg_out: array<f32>; // [T, heads]
@group(0) @binding(3) var<uniform> lgp: LambdaParams;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn lambda_grad(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let t = wid.y;
    let h = wid.x;
    var acc = 0.0;
    for (var b = 0u; b < lgp.batch; b++) {
        let base = ((t * lgp.batch + b) * lgp.heads + h) * lgp.inner;
        for (var k = lid; k < lgp.inner; k += 256u) {
            acc += lg_dy[base + k] * lg_prod[base + k];
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] += partial[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        lg_out[t * lgp.heads + h] = lgp.scale * partial[0];
    }
}

// ------------------------------------------------------------------------------------
// count_nonzero: the number of x != 0, added to a (lo, hi) pair.

struct CountParams {
    len: u32,
}

@group(0) @binding(0) var<storage, read> cn_x: array<f32>;                 // [len]
@group(0) @binding(1) var<storage, read_write> cn_count: array<atomic<u32>>; // [2]
@group(0) @binding(2) var<uniform> cnp: CountParams;

@compute @workgroup_size(256)
fn count_nonzero(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (lid == 0u) {
        atomicStore(&wg_count, 0u);
    }
    workgroupBarrier();
    // Each invocation counts 4 elements.
    let i = (g * 256u + lid) * 4u;
    var c = 0u;
    for (var j = 0u; j < 4u; j++) {
        if (i + j < cnp.len && cn_x[i + j] != 0.0) {
            c += 1u;
        }
    }
    atomicAdd(&wg_count, c);
    workgroupBarrier();
    if (lid == 0u) {
        let n = atomicLoad(&wg_count);
        let old = atomicAdd(&cn_count[0], n);
        if (old + n < old) {
            atomicAdd(&cn_count[1], 1u);
        }
    }
}
