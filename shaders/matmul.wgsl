// f32 matmul, batched over a leading dimension: C[b] = op(A[b]) op(B[b]).
//   TRANS_A = false: A is [M, K];  true: A is [K, M] (the A^T B of weight gradients)
//   TRANS_B = false: B is [K, N];  true: B is [N, K] (the A B^T of linear layers)
//   ACCUMULATE = true adds into C (parameter gradients accumulate).
// Operands are read as vec4 along their contiguous axis, so each stored row is padded to
// a multiple of 4 floats (lda4 / ldb4 vec4s per row; the host pads when needed) and the
// padding along K is zero. A batch stride of 0 broadcasts that operand.
//
// Register blocking, no workgroup memory: each invocation computes an 8 x 4 block of C
// from 4 x 4 blocks of A and B per step of 4 along K. Loads, not arithmetic, bound a
// matmul on CPU drivers (each vector load is a gather there), and this keeps 10.7
// multiply-adds per vec4 load while staying portable to any adapter.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    lda4: u32,           // vec4s per stored row of A
    ldb4: u32,           // vec4s per stored row of B
    a_batch_stride4: u32, // vec4s between consecutive A matrices (0: shared)
    b_batch_stride4: u32, // vec4s between consecutive B matrices (0: shared)
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>; // [batch, M, K] or [batch, K, M], rows padded
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>; // [batch, K, N] or [batch, N, K], rows padded
@group(0) @binding(2) var<storage, read_write> c: array<f32>; // [batch, M, N]
@group(0) @binding(3) var<uniform> p: Params;

const ROWS: u32 = 8u; // rows of C per invocation
const COLS: u32 = 4u; // columns of C per invocation
const WG_X: u32 = 8u;
const WG_Y: u32 = 8u;

// A 4 x 4 block: element [kk][t] is A[row + t][k + kk] (one vec4 per k over 4 rows).
// Plain structs, not arrays: a dynamically indexed private array becomes per-lane
// scratch memory on CPU drivers.
struct Block {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
    k3: vec4<f32>,
}

fn transpose_block(r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) -> Block {
    return Block(vec4(r0.x, r1.x, r2.x, r3.x), vec4(r0.y, r1.y, r2.y, r3.y),
                 vec4(r0.z, r1.z, r2.z, r3.z), vec4(r0.w, r1.w, r2.w, r3.w));
}

// Rows of A past K (stored [K, M]) or of B past K (stored [K, N]) read as zero.
fn k_row(base: u32, k: u32, ld4: u32, i4: u32) -> u32 {
    return base + min(k, p.k - 1u) * ld4 + i4;
}

fn load_a(base: u32, row: u32, k: u32) -> Block {
    if (TRANS_A) {
        let r4 = min(row / 4u, p.lda4 - 1u);
        let z = vec4<f32>(0.0);
        return Block(select(z, a[k_row(base, k, p.lda4, r4)], k < p.k),
                     select(z, a[k_row(base, k + 1u, p.lda4, r4)], k + 1u < p.k),
                     select(z, a[k_row(base, k + 2u, p.lda4, r4)], k + 2u < p.k),
                     select(z, a[k_row(base, k + 3u, p.lda4, r4)], k + 3u < p.k));
    }
    let k4 = k / 4u;
    return transpose_block(a[base + min(row, p.m - 1u) * p.lda4 + k4],
                           a[base + min(row + 1u, p.m - 1u) * p.lda4 + k4],
                           a[base + min(row + 2u, p.m - 1u) * p.lda4 + k4],
                           a[base + min(row + 3u, p.m - 1u) * p.lda4 + k4]);
}

// B 4 x 4 block: element [kk][j] is B[k + kk][col + j] (one vec4 per k over 4 columns).
fn load_b(base: u32, k: u32, col: u32) -> Block {
    if (TRANS_B) {
        let k4 = k / 4u;
        return transpose_block(b[base + min(col, p.n - 1u) * p.ldb4 + k4],
                               b[base + min(col + 1u, p.n - 1u) * p.ldb4 + k4],
                               b[base + min(col + 2u, p.n - 1u) * p.ldb4 + k4],
                               b[base + min(col + 3u, p.n - 1u) * p.ldb4 + k4]);
    }
    let c4 = min(col / 4u, p.ldb4 - 1u);
    let z = vec4<f32>(0.0);
    return Block(select(z, b[k_row(base, k, p.ldb4, c4)], k < p.k),
                 select(z, b[k_row(base, k + 1u, p.ldb4, c4)], k + 1u < p.k),
                 select(z, b[k_row(base, k + 2u, p.ldb4, c4)], k + 2u < p.k),
                 select(z, b[k_row(base, k + 3u, p.ldb4, c4)], k + 3u < p.k));
}

@compute @workgroup_size(8, 8)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let batch = wid.z;
    let row = (wid.y * WG_Y + lid.y) * ROWS;
    let col = (wid.x * WG_X + lid.x) * COLS;
    let a_base = batch * p.a_batch_stride4;
    let b_base = batch * p.b_batch_stride4;

    // acc_i = C[row + i][col .. col + 4]
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k += 4u) {
        let bt = load_b(b_base, k, col);
        let lo = load_a(a_base, row, k);
        let hi = load_a(a_base, row + 4u, k);
        acc0 += lo.k0.x * bt.k0 + lo.k1.x * bt.k1 + lo.k2.x * bt.k2 + lo.k3.x * bt.k3;
        acc1 += lo.k0.y * bt.k0 + lo.k1.y * bt.k1 + lo.k2.y * bt.k2 + lo.k3.y * bt.k3;
        acc2 += lo.k0.z * bt.k0 + lo.k1.z * bt.k1 + lo.k2.z * bt.k2 + lo.k3.z * bt.k3;
        acc3 += lo.k0.w * bt.k0 + lo.k1.w * bt.k1 + lo.k2.w * bt.k2 + lo.k3.w * bt.k3;
        acc4 += hi.k0.x * bt.k0 + hi.k1.x * bt.k1 + hi.k2.x * bt.k2 + hi.k3.x * bt.k3;
        acc5 += hi.k0.y * bt.k0 + hi.k1.y * bt.k1 + hi.k2.y * bt.k2 + hi.k3.y * bt.k3;
        acc6 += hi.k0.z * bt.k0 + hi.k1.z * bt.k1 + hi.k2.z * bt.k2 + hi.k3.z * bt.k3;
        acc7 += hi.k0.w * bt.k0 + hi.k1.w * bt.k1 + hi.k2.w * bt.k2 + hi.k3.w * bt.k3;
    }

    let c_base = batch * p.m * p.n;
    store_row(c_base, row, col, acc0);
    store_row(c_base, row + 1u, col, acc1);
    store_row(c_base, row + 2u, col, acc2);
    store_row(c_base, row + 3u, col, acc3);
    store_row(c_base, row + 4u, col, acc4);
    store_row(c_base, row + 5u, col, acc5);
    store_row(c_base, row + 6u, col, acc6);
    store_row(c_base, row + 7u, col, acc7);
}

fn store_one(i: u32, v: f32) {
    if (ACCUMULATE) {
        c[i] += v;
    } else {
        c[i] = v;
    }
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let i = base + row * p.n + col;
    if (col < p.n) { store_one(i, v.x); }
    if (col + 1u < p.n) { store_one(i + 1u, v.y); }
    if (col + 2u < p.n) { store_one(i + 2u, v.z); }
    if (col + 3u < p.n) { store_one(i + 3u, v.w); }
}
