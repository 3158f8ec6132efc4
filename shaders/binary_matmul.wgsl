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
