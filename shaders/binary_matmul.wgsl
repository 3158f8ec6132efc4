// Packed binary matmul, batched over a leading dimension. Operands are bit rows packed
// along K (pack.wgsl): A is [batch, M, KW], B is [batch, N, KW] with KW = ceil(K / 32),
// padding bits zero. Out[b, m, n] = scale[n] * dot(a_m, b_n), where by MODE:
//   0: spikes {0,1} x signs {-1,+1}:  dot = 2 popcount(a & b) - popcount(a)
//   1: signs {-1,+1} x signs {-1,+1}: dot = K - 2 popcount(a ^ b)         (XNOR-popcount)
//   2: spikes {0,1} x spikes {0,1}:   dot = popcount(a & b)               (spike Q K^T)
// HAS_SCALE = false ignores `scale` (bind any buffer). A batch stride of 0 shares B.
// Each workgroup computes a 64 x 64 tile, each invocation a 4 x 4 block, staging K eight
// words (256 bits) at a time through workgroup memory.

override MODE: u32 = 0u;
override HAS_SCALE: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,              // bits
    kw: u32,             // words per row
    a_batch_stride: u32, // words between consecutive A matrices
    b_batch_stride: u32, // words between consecutive B matrices (0: shared)
}

@group(0) @binding(0) var<storage, read> a: array<u32>;         // [batch, M, KW]
@group(0) @binding(1) var<storage, read> b: array<u32>;         // [batch, N, KW]
@group(0) @binding(2) var<storage, read> scale: array<f32>;     // [N]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [batch, M, N]
@group(0) @binding(4) var<uniform> p: Params;

const TILE: u32 = 64u;
const KT: u32 = 8u;
var<workgroup> a_tile: array<vec4<u32>, 128>; // [KT][TILE / 4]
var<workgroup> b_tile: array<vec4<u32>, 128>; // [KT][TILE / 4]

fn combine(x: vec4<u32>, y: vec4<u32>) -> vec4<u32> {
    if (MODE == 1u) {
        return x ^ y;
    }
    return x & y;
}

@compute @workgroup_size(16, 16)
fn binary_matmul(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let tid = lid.y * 16u + lid.x;
    let a_base = batch * p.a_batch_stride;
    let b_base = batch * p.b_batch_stride;

    var acc0 = vec4<u32>(0u);
    var acc1 = vec4<u32>(0u);
    var acc2 = vec4<u32>(0u);
    var acc3 = vec4<u32>(0u);
    var ones = vec4<u32>(0u); // popcount(a) of the 4 rows, for MODE 0

    for (var k0 = 0u; k0 < p.kw; k0 += KT) {
        for (var r = 0u; r < 2u; r++) {
            let e = tid + r * 256u;
            let i = e / KT;
            let kk = e % KT;
            var va = 0u;
            if (row0 + i < p.m && k0 + kk < p.kw) {
                va = a[a_base + (row0 + i) * p.kw + k0 + kk];
            }
            a_tile[kk * 16u + i / 4u][i % 4u] = va;
            var vb = 0u;
            if (col0 + i < p.n && k0 + kk < p.kw) {
                vb = b[b_base + (col0 + i) * p.kw + k0 + kk];
            }
            b_tile[kk * 16u + i / 4u][i % 4u] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let bv = b_tile[kk * 16u + lid.x];
            acc0 += countOneBits(combine(vec4<u32>(av.x), bv));
            acc1 += countOneBits(combine(vec4<u32>(av.y), bv));
            acc2 += countOneBits(combine(vec4<u32>(av.z), bv));
            acc3 += countOneBits(combine(vec4<u32>(av.w), bv));
            ones += countOneBits(av);
        }
        workgroupBarrier();
    }

    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    let base = batch * p.m * p.n;
    store_row(base, row, col, acc0, ones.x);
    store_row(base, row + 1u, col, acc1, ones.y);
    store_row(base, row + 2u, col, acc2, ones.z);
    store_row(base, row + 3u, col, acc3, ones.w);
}

fn store_row(base: u32, row: u32, col: u32, counts: vec4<u32>, ones: u32) {
    if (row >= p.m) {
        return;
    }
    let c = vec4<f32>(counts);
    var dot: vec4<f32>;
    if (MODE == 0u) {
        dot = 2.0 * c - f32(ones);
    } else if (MODE == 1u) {
        dot = f32(p.k) - 2.0 * c;
    } else {
        dot = c;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            var s = 1.0;
            if (HAS_SCALE) {
                s = scale[col + j];
            }
            out[base + row * p.n + col + j] = dot[j] * s;
        }
    }
}

// Form (c): f32 activations x packed sign weights. X is [batch, M, K] f32, B as above;
// Out[b, m, n] = scale[n] * sum_k x[m, k] * (bit ? +1 : -1). K is staged one word
// (32 values) at a time.
var<workgroup> x_tile: array<vec4<f32>, 512>; // [32][TILE / 4]
var<workgroup> w_tile: array<vec4<u32>, 16>;  // [TILE / 4]

@compute @workgroup_size(16, 16)
fn matmul_f32_bits(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let tid = lid.y * 16u + lid.x;
    let a_base = batch * p.a_batch_stride;
    let b_base = batch * p.b_batch_stride;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var w = 0u; w < p.kw; w++) {
        for (var r = 0u; r < 8u; r++) {
            let e = tid + r * 256u;
            let i = e / 32u;
            let kk = e % 32u;
            var v = 0.0;
            if (row0 + i < p.m && w * 32u + kk < p.k) {
                v = bitcast<f32>(a[a_base + (row0 + i) * p.k + w * 32u + kk]);
            }
            x_tile[kk * 16u + i / 4u][i % 4u] = v;
        }
        if (tid < TILE) {
            var vb = 0u;
            if (col0 + tid < p.n) {
                vb = b[b_base + (col0 + tid) * p.kw + w];
            }
            w_tile[tid / 4u][tid % 4u] = vb;
        }
        workgroupBarrier();
        let wv = w_tile[lid.x];
        for (var kk = 0u; kk < 32u; kk++) {
            let xv = x_tile[kk * 16u + lid.y];
            // +1 for a set bit, -1 for a clear one; padded x values are zero.
            let sign = vec4<f32>((wv >> vec4<u32>(kk)) & vec4<u32>(1u)) * 2.0 - 1.0;
            acc0 = fma(vec4<f32>(xv.x), sign, acc0);
            acc1 = fma(vec4<f32>(xv.y), sign, acc1);
            acc2 = fma(vec4<f32>(xv.z), sign, acc2);
            acc3 = fma(vec4<f32>(xv.w), sign, acc3);
        }
        workgroupBarrier();
    }

    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    let base = batch * p.m * p.n;
    store_real(base, row, col, acc0);
    store_real(base, row + 1u, col, acc1);
    store_real(base, row + 2u, col, acc2);
    store_real(base, row + 3u, col, acc3);
}

fn store_real(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            var s = 1.0;
            if (HAS_SCALE) {
                s = scale[col + j];
            }
            out[base + row * p.n + col + j] = v[j] * s;
        }
    }
}

// The weight gradient of a layer fed spikes, from the spikes the forward packed:
//   dw[s, o, k] = sum over the rows m of chunk s of dy[m, o] * bit(x[m], k),
// a masked sum of dY's rows, with no f32 spike matrix and no transposed copy. Chunks of
// rows run side by side (the host sums the S partial products); each invocation owns a
// 4 x 8 block of dW (outputs o..o+3, bits k..k+7) and walks its chunk's rows, adding
// dy's 4 values wherever a bit is set. (binary_matmul_subgroup.wgsl shares dy's loads
// across a subgroup instead.)

struct SpikeGradParams {
    m: u32,           // rows
    o: u32,           // dy columns (dW rows)
    k: u32,           // bits (dW columns)
    kw: u32,          // words per packed row
    chunk_rows: u32,  // rows per chunk
}

@group(0) @binding(0) var<storage, read> sg_dy: array<f32>;         // [M, O]
@group(0) @binding(1) var<storage, read> sg_bits: array<u32>;       // [M, KW]
@group(0) @binding(2) var<storage, read_write> sg_dw: array<f32>;   // [S, O, K]
@group(0) @binding(3) var<uniform> sgp: SpikeGradParams;

// dy[row, o0 .. o0 + 4], columns past O clamped (their sums are never stored).
fn sg_dy4(row: u32, o0: u32) -> vec4<f32> {
    let base = row * sgp.o;
    let last = sgp.o - 1u;
    return vec4(sg_dy[base + min(o0, last)], sg_dy[base + min(o0 + 1u, last)],
                sg_dy[base + min(o0 + 2u, last)], sg_dy[base + min(o0 + 3u, last)]);
}

fn sg_add(acc: vec4<f32>, d: vec4<f32>, byte: u32, j: u32) -> vec4<f32> {
    return select(acc, acc + d, ((byte >> j) & 1u) != 0u);
}

@compute @workgroup_size(64)
fn spike_weight_grad(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let k8s = (sgp.k + 7u) / 8u;
    let block = wid.x * 64u + lid;
    if (block >= k8s * ((sgp.o + 3u) / 4u)) {
        return;
    }
    // Neighbouring invocations take neighbouring bytes of the same words.
    let k8 = block % k8s;
    let o0 = (block / k8s) * 4u;
    let chunk = wid.z;
    let first = chunk * sgp.chunk_rows;
    let end = min(first + sgp.chunk_rows, sgp.m);
    let word = k8 / 4u;
    let shift = (k8 % 4u) * 8u;

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    for (var row = first; row < end; row++) {
        let byte = (sg_bits[row * sgp.kw + word] >> shift) & 0xffu;
        let d = sg_dy4(row, o0);
        a0 = sg_add(a0, d, byte, 0u);
        a1 = sg_add(a1, d, byte, 1u);
        a2 = sg_add(a2, d, byte, 2u);
        a3 = sg_add(a3, d, byte, 3u);
        a4 = sg_add(a4, d, byte, 4u);
        a5 = sg_add(a5, d, byte, 5u);
        a6 = sg_add(a6, d, byte, 6u);
        a7 = sg_add(a7, d, byte, 7u);
    }
    let base = chunk * sgp.o * sgp.k;
    let k0 = k8 * 8u;
    sg_store(base, o0, k0, a0);
    sg_store(base, o0, k0 + 1u, a1);
    sg_store(base, o0, k0 + 2u, a2);
    sg_store(base, o0, k0 + 3u, a3);
    sg_store(base, o0, k0 + 4u, a4);
    sg_store(base, o0, k0 + 5u, a5);
    sg_store(base, o0, k0 + 6u, a6);
    sg_store(base, o0, k0 + 7u, a7);
}

// Column k of dW's rows o0 .. o0 + 4 (those inside O and K).
fn sg_store(base: u32, o0: u32, k: u32, v: vec4<f32>) {
    if (k >= sgp.k) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (o0 + j < sgp.o) {
            sg_dw[base + (o0 + j) * sgp.k + k] = v[j];
        }
    }
}
