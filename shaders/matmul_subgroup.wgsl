// f32 matmul for adapters with subgroups (a fixed subgroup size of at least 8): the same
// contract as matmul.wgsl (TRANS_A, TRANS_B, ACCUMULATE, vec4 rows padded to lda4/ldb4
// with zeros along K, batch strides of 0 for shared operands).
//
// Each workgroup of 32 invocations computes a 16 x 128 tile of C; every invocation 16 rows
// x 4 columns. All invocations of a workgroup, hence of any subgroup, share the same 16
// rows, so A is loaded once per subgroup (8 lanes load 2 vec4s each) and handed out with
// subgroupBroadcast: per step of 4 along K an invocation loads 6 vec4s for 256
// multiply-adds, where plain register blocking (matmul.wgsl) loads 12 for 128. Loads
// bound a matmul on CPU drivers, where each vector load is a gather.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;
// Row tiles per workgroup (see `matmul`).
override ROW_TILES: u32 = 1u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    lda4: u32,            // vec4s per stored row of A
    ldb4: u32,            // vec4s per stored row of B
    a_batch_stride4: u32, // vec4s between consecutive A matrices (0: shared)
    b_batch_stride4: u32, // vec4s between consecutive B matrices (0: shared)
}

@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>; // [batch, M, K] or [batch, K, M], rows padded
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>; // [batch, K, N] or [batch, N, K], rows padded
@group(0) @binding(2) var<storage, read_write> c: array<f32>; // [batch, M, N]
@group(0) @binding(3) var<uniform> p: Params;

const ROWS: u32 = 16u; // rows of C per workgroup (and per invocation)
const COLS: u32 = 4u;  // columns of C per invocation
// Invocations per workgroup (8, 16 or 32): fewer for narrow outputs, whose column tile
// would otherwise be mostly padding.
override WG: u32 = 32u;

// Four vec4s, one per k of a step of 4 (kN), or one per row of a 4-row group.
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

// B[k .. k+4][col .. col+4]: field kN holds the 4 columns at k + N.
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
    return Block(select(z, b[base + min(k, p.k - 1u) * p.ldb4 + c4], k < p.k),
                 select(z, b[base + min(k + 1u, p.k - 1u) * p.ldb4 + c4], k + 1u < p.k),
                 select(z, b[base + min(k + 2u, p.k - 1u) * p.ldb4 + c4], k + 2u < p.k),
                 select(z, b[base + min(k + 3u, p.k - 1u) * p.ldb4 + c4], k + 3u < p.k));
}

// The share of the 16 x 4 block A[row0 .. +16][k .. +4] that lane `q` (0..16) loads:
// row q's 4 k values, or (stored [K, M]) the 4 rows of group q / 4 at k + q % 4.
fn load_a_share(base: u32, row0: u32, k: u32, q: u32) -> vec4<f32> {
    if (TRANS_A) {
        let kk = k + q % 4u;
        let r4 = min((row0 + (q / 4u) * 4u) / 4u, p.lda4 - 1u);
        return select(vec4<f32>(0.0), a[base + min(kk, p.k - 1u) * p.lda4 + r4], kk < p.k);
    }
    return a[base + min(row0 + q, p.m - 1u) * p.lda4 + k / 4u];
}

// Row i's 4 k values, as rI.
struct Rows {
    r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>,
    r4: vec4<f32>, r5: vec4<f32>, r6: vec4<f32>, r7: vec4<f32>,
    r8: vec4<f32>, r9: vec4<f32>, r10: vec4<f32>, r11: vec4<f32>,
    r12: vec4<f32>, r13: vec4<f32>, r14: vec4<f32>, r15: vec4<f32>,
}

// Gather the 16 shares from lanes 0..7 (`lo` holds share q, `hi` share q + 8).
fn broadcast_rows(lo: vec4<f32>, hi: vec4<f32>) -> Rows {
    let s0 = subgroupBroadcast(lo, 0u);
    let s1 = subgroupBroadcast(lo, 1u);
    let s2 = subgroupBroadcast(lo, 2u);
    let s3 = subgroupBroadcast(lo, 3u);
    let s4 = subgroupBroadcast(lo, 4u);
    let s5 = subgroupBroadcast(lo, 5u);
    let s6 = subgroupBroadcast(lo, 6u);
    let s7 = subgroupBroadcast(lo, 7u);
    let s8 = subgroupBroadcast(hi, 0u);
    let s9 = subgroupBroadcast(hi, 1u);
    let s10 = subgroupBroadcast(hi, 2u);
    let s11 = subgroupBroadcast(hi, 3u);
    let s12 = subgroupBroadcast(hi, 4u);
    let s13 = subgroupBroadcast(hi, 5u);
    let s14 = subgroupBroadcast(hi, 6u);
    let s15 = subgroupBroadcast(hi, 7u);
    if (TRANS_A) {
        // Share 4g + j holds rows 4g .. 4g+4 at k + j: transpose each group of four.
        let g0 = transpose_block(s0, s1, s2, s3);
        let g1 = transpose_block(s4, s5, s6, s7);
        let g2 = transpose_block(s8, s9, s10, s11);
        let g3 = transpose_block(s12, s13, s14, s15);
        return Rows(g0.k0, g0.k1, g0.k2, g0.k3, g1.k0, g1.k1, g1.k2, g1.k3,
                    g2.k0, g2.k1, g2.k2, g2.k3, g3.k0, g3.k1, g3.k2, g3.k3);
    }
    return Rows(s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15);
}

// acc + sum over the step's 4 k of A[row][k] * B[k][cols].
fn step(acc: vec4<f32>, row: vec4<f32>, bt: Block) -> vec4<f32> {
    return acc + row.x * bt.k0 + row.y * bt.k1 + row.z * bt.k2 + row.w * bt.k3;
}

// The 16 rows x 4 columns this invocation computes (row i = field ai).
struct Tile {
    a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
    a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>,
    a8: vec4<f32>, a9: vec4<f32>, a10: vec4<f32>, a11: vec4<f32>,
    a12: vec4<f32>, a13: vec4<f32>, a14: vec4<f32>, a15: vec4<f32>,
}

fn tile(batch: u32, row0: u32, col: u32, lane: u32) -> Tile {
    let a_base = batch * p.a_batch_stride4;
    let b_base = batch * p.b_batch_stride4;
    let q = lane % 8u;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);
    for (var k = 0u; k < p.k; k += 4u) {
        let bt = load_b(b_base, k, col);
        let r = broadcast_rows(load_a_share(a_base, row0, k, q),
                               load_a_share(a_base, row0, k, q + 8u));
        acc0 = step(acc0, r.r0, bt);
        acc1 = step(acc1, r.r1, bt);
        acc2 = step(acc2, r.r2, bt);
        acc3 = step(acc3, r.r3, bt);
        acc4 = step(acc4, r.r4, bt);
        acc5 = step(acc5, r.r5, bt);
        acc6 = step(acc6, r.r6, bt);
        acc7 = step(acc7, r.r7, bt);
        acc8 = step(acc8, r.r8, bt);
        acc9 = step(acc9, r.r9, bt);
        acc10 = step(acc10, r.r10, bt);
        acc11 = step(acc11, r.r11, bt);
        acc12 = step(acc12, r.r12, bt);
        acc13 = step(acc13, r.r13, bt);
        acc14 = step(acc14, r.r14, bt);
        acc15 = step(acc15, r.r15, bt);
    }
    return Tile(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7,
                acc8, acc9, acc10, acc11, acc12, acc13, acc14, acc15);
}

// Each workgroup computes ROW_TILES tiles down the rows: CPU drivers pay a fixed cost per
// workgroup that outweighs a short K's work.
@compute @workgroup_size(WG)
fn matmul(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(local_invocation_index) lid: u32,
          @builtin(subgroup_invocation_id) lane: u32) {
    let col = (wid.x * WG + lid) * COLS;
    let base = wid.z * p.m * p.n;
    for (var rt = 0u; rt < ROW_TILES; rt++) {
        let row0 = (wid.y * ROW_TILES + rt) * ROWS;
        if (row0 >= p.m) {
            return;
        }
        let t = tile(wid.z, row0, col, lane);
        store_row(base, row0, col, t.a0);
        store_row(base, row0 + 1u, col, t.a1);
        store_row(base, row0 + 2u, col, t.a2);
        store_row(base, row0 + 3u, col, t.a3);
        store_row(base, row0 + 4u, col, t.a4);
        store_row(base, row0 + 5u, col, t.a5);
        store_row(base, row0 + 6u, col, t.a6);
        store_row(base, row0 + 7u, col, t.a7);
        store_row(base, row0 + 8u, col, t.a8);
        store_row(base, row0 + 9u, col, t.a9);
        store_row(base, row0 + 10u, col, t.a10);
        store_row(base, row0 + 11u, col, t.a11);
        store_row(base, row0 + 12u, col, t.a12);
        store_row(base, row0 + 13u, col, t.a13);
        store_row(base, row0 + 14u, col, t.a14);
        store_row(base, row0 + 15u, col, t.a15);
    }
}

// The same with N a multiple of 4: each row's 4 outputs go out as one vec4 store, which
// costs CPU drivers about a quarter of four scalar stores.
@group(0) @binding(2) var<storage, read_write> c4: array<vec4<f32>>; // [batch, M, N / 4]

fn store_row4(base4: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    let i = base4 + (row * p.n + col) / 4u;
    if (ACCUMULATE) {
        c4[i] += v;
    } else {
        c4[i] = v;
    }
}

@compute @workgroup_size(WG)
fn matmul_vec4(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(local_invocation_index) lid: u32,
               @builtin(subgroup_invocation_id) lane: u32) {
    let col = (wid.x * WG + lid) * COLS;
    let base4 = wid.z * p.m * p.n / 4u;
    for (var rt = 0u; rt < ROW_TILES; rt++) {
        let row0 = (wid.y * ROW_TILES + rt) * ROWS;
        if (row0 >= p.m) {
            return;
        }
        let t = tile(wid.z, row0, col, lane);
        store_row4(base4, row0, col, t.a0);
        store_row4(base4, row0 + 1u, col, t.a1);
        store_row4(base4, row0 + 2u, col, t.a2);
        store_row4(base4, row0 + 3u, col, t.a3);
        store_row4(base4, row0 + 4u, col, t.a4);
        store_row4(base4, row0 + 5u, col, t.a5);
        store_row4(base4, row0 + 6u, col, t.a6);
        store_row4(base4, row0 + 7u, col, t.a7);
        store_row4(base4, row0 + 8u, col, t.a8);
        store_row4(base4, row0 + 9u, col, t.a9);
        store_row4(base4, row0 + 10u, col, t.a10);
        store_row4(base4, row0 + 11u, col, t.a11);
        store_row4(base4, row0 + 12u, col, t.a12);
        store_row4(base4, row0 + 13u, col, t.a13);
        store_row4(base4, row0 + 14u, col, t.a14);
        store_row4(base4, row0 + 15u, col, t.a15);
    }
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
