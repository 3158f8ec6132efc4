// Tiled f32 matmul, batched over a leading dimension: C[b] = op(A[b]) op(B[b]).
//   TRANS_A = false: A is [M, K];  true: A is [K, M] (the A^T B of weight gradients)
//   TRANS_B = false: B is [K, N];  true: B is [N, K] (the A B^T of linear layers)
//   ACCUMULATE = true adds into C (parameter gradients accumulate).
// A batch stride of 0 broadcasts that operand over the batch.
// Each workgroup computes a 64 x 64 tile of C, each invocation a 4 x 4 block, with the
// K dimension staged through workgroup memory 16 at a time.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_batch_stride: u32, // elements between consecutive A matrices (0: shared)
    b_batch_stride: u32, // elements between consecutive B matrices (0: shared)
}

@group(0) @binding(0) var<storage, read> a: array<f32>;       // [batch, M, K] or [batch, K, M]
@group(0) @binding(1) var<storage, read> b: array<f32>;       // [batch, K, N] or [batch, N, K]
@group(0) @binding(2) var<storage, read_write> c: array<f32>; // [batch, M, N]
@group(0) @binding(3) var<uniform> p: Params;

const TILE: u32 = 64u;
const KT: u32 = 16u;
// [KT][TILE / 4] vec4s: a_tile holds 4 consecutive rows of C, b_tile 4 consecutive columns.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

fn load_a(base: u32, row: u32, kk: u32) -> f32 {
    if (row >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (TRANS_A) {
        return a[base + kk * p.m + row];
    }
    return a[base + row * p.k + kk];
}

fn load_b(base: u32, col: u32, kk: u32) -> f32 {
    if (col >= p.n || kk >= p.k) {
        return 0.0;
    }
    if (TRANS_B) {
        return b[base + col * p.k + kk];
    }
    return b[base + kk * p.n + col];
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>,
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

    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        // Stage 64 x 16 of each operand; the index order follows each layout's
        // contiguous axis so that neighbouring invocations read neighbouring floats.
        for (var r = 0u; r < 4u; r++) {
            let e = tid + r * 256u;
            var row: u32;
            var ka: u32;
            if (TRANS_A) {
                row = e % TILE;
                ka = e / TILE;
            } else {
                row = e / KT;
                ka = e % KT;
            }
            a_tile[ka * 16u + row / 4u][row % 4u] = load_a(a_base, row0 + row, k0 + ka);
            var col: u32;
            var kb: u32;
            if (TRANS_B) {
                col = e / KT;
                kb = e % KT;
            } else {
                col = e % TILE;
                kb = e / TILE;
            }
            b_tile[kb * 16u + col / 4u][col % 4u] = load_b(b_base, col0 + col, k0 + kb);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let bv = b_tile[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }

    let row = row0 + lid.y * 4u;
    let col = col0 + lid.x * 4u;
    let c_base = batch * p.m * p.n;
    store_row(c_base, row, col, acc0);
    store_row(c_base, row + 1u, col, acc1);
    store_row(c_base, row + 2u, col, acc2);
    store_row(c_base, row + 3u, col, acc3);
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < p.n) {
            let i = base + row * p.n + col + j;
            if (ACCUMULATE) {
                c[i] += v[j];
            } else {
                c[i] = v[j];
            }
        }
    }
}
