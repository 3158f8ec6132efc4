// f32 matmul for discrete GPUs, tiled through workgroup memory: the same contract as
// matmul.wgsl (TRANS_A, TRANS_B, ACCUMULATE, vec4 rows padded to lda4 / ldb4 with zeros
// along K, batch strides of 0 for shared operands).
//
// Each workgroup of 16 x 16 invocations computes a 64 x 64 tile of C; every invocation a
// 4 x 4 block of it. K advances in steps of 16: the workgroup stages A[64 rows][16 k] and
// B[16 k][64 columns] in workgroup memory, each invocation loading one vec4 of each along
// the operand's STORED rows (neighbouring invocations read neighbouring vec4s, whatever
// the form), so a transposed operand costs no more than a plain one: it is transposed
// while being written to workgroup memory, which holds both tiles k-major. The next
// step's vec4s are loaded into registers before the current step is computed, so global
// memory latency overlaps the arithmetic. On CPU drivers, whose barriers and workgroup
// memory are slow, matmul.wgsl and matmul_subgroup.wgsl run instead.

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;

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

const TILE: u32 = 64u;  // rows and columns of C per workgroup
const STEP: u32 = 16u;  // K per staged step
const SIDE: u32 = 16u;  // invocations along each side of the workgroup
const TILE4: u32 = 16u; // vec4s across a tile's 64 rows or columns

// Tile A at 0: tiles[kk * TILE4 + r4] = A[row0 + 4 r4 .. + 4][k0 + kk]; tile B at TILE_B
// likewise over columns. One array, so that one `stage` writes either.
var<workgroup> tiles: array<vec4<f32>, 512>;
const TILE_B: u32 = 256u;

// A and B as workgroup-memory steps: the vec4 invocation `t` (0..256) loads of a 64 x 16
// block, and where it goes in tile A / tile B. Past K an operand reads zero; past M or N
// rows and columns are clamped (their products land outside C, and are not stored).

// A[row0 .. + 64][k0 .. + 16]: stored [M, K], row t / 4 at k 4 (t % 4) .. + 4; stored
// [K, M], k t / 16 at rows 4 (t % 16) .. + 4.
fn load_a(base: u32, row0: u32, k0: u32, t: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (TRANS_A) {
        let k = k0 + t / TILE4;
        if (k < p.k) {
            v = a[base + k * p.lda4 + min(row0 / 4u + t % TILE4, p.lda4 - 1u)];
        }
    } else {
        let k = k0 + 4u * (t % 4u);
        if (k < p.k) {
            v = a[base + min(row0 + t / 4u, p.m - 1u) * p.lda4 + k / 4u];
        }
    }
    return v;
}

// B[k0 .. + 16][col0 .. + 64]: stored [K, N], k t / 16 at columns 4 (t % 16) .. + 4;
// stored [N, K], column t / 4 at k 4 (t % 4) .. + 4.
fn load_b(base: u32, col0: u32, k0: u32, t: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (TRANS_B) {
        let k = k0 + 4u * (t % 4u);
        if (k < p.k) {
            v = b[base + min(col0 + t / 4u, p.n - 1u) * p.ldb4 + k / 4u];
        }
    } else {
        let k = k0 + t / TILE4;
        if (k < p.k) {
            v = b[base + k * p.ldb4 + min(col0 / 4u + t % TILE4, p.ldb4 - 1u)];
        }
    }
    return v;
}

// Write invocation t's vec4 into a tile. Loaded along K (A stored [M, K], B stored
// [N, K]), its 4 k values go to 4 tile rows, at the invocation's row. These scalar stores
// meet 4-way bank conflicts (a warp covers 8 rows); the mapping keeps the global reads
// coalesced instead, which matters more, and they happen once per step against 16 steps
// of arithmetic. Loaded along M or N, the vec4 is already a tile row's 4 entries.
fn stage(tile: u32, v: vec4<f32>, t: u32, along_k: bool) {
    if (!along_k) {
        tiles[tile + t] = v;
        return;
    }
    let r = t / 4u;
    let i = tile + 4u * (t % 4u) * TILE4 + r / 4u;
    tiles[i][r % 4u] = v.x;
    tiles[i + TILE4][r % 4u] = v.y;
    tiles[i + 2u * TILE4][r % 4u] = v.z;
    tiles[i + 3u * TILE4][r % 4u] = v.w;
}

// Row i of an invocation's 4 x 4 block of C, as field rI.
struct Block {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
}

// The invocation's block C[row0 + 4 ty .. + 4][col0 + 4 tx .. + 4] (t = 16 ty + tx).
fn block(batch: u32, row0: u32, col0: u32, t: u32) -> Block {
    let a_base = batch * p.a_batch_stride4;
    let b_base = batch * p.b_batch_stride4;
    let tx = t % SIDE;
    let ty = t / SIDE;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var next_a = load_a(a_base, row0, 0u, t);
    var next_b = load_b(b_base, col0, 0u, t);
    for (var k0 = 0u; k0 < p.k; k0 += STEP) {
        stage(0u, next_a, t, !TRANS_A);
        stage(TILE_B, next_b, t, TRANS_B);
        workgroupBarrier();
        next_a = load_a(a_base, row0, k0 + STEP, t);
        next_b = load_b(b_base, col0, k0 + STEP, t);
        for (var kk = 0u; kk < STEP; kk++) {
            let av = tiles[kk * TILE4 + ty];
            let bv = tiles[TILE_B + kk * TILE4 + tx];
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }
    return Block(acc0, acc1, acc2, acc3);
}

@compute @workgroup_size(256)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(local_invocation_index) t: u32) {
    let row = wid.y * TILE + 4u * (t / SIDE);
    let col = wid.x * TILE + 4u * (t % SIDE);
    let blk = block(wid.z, wid.y * TILE, wid.x * TILE, t);
    let base = wid.z * p.m * p.n;
    store_row(base, row, col, blk.r0);
    store_row(base, row + 1u, col, blk.r1);
    store_row(base, row + 2u, col, blk.r2);
    store_row(base, row + 3u, col, blk.r3);
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

// The same with N a multiple of 4: each row's 4 outputs go out as one vec4 store.
@group(0) @binding(2) var<storage, read_write> c4: array<vec4<f32>>; // [batch, M, N / 4]

@compute @workgroup_size(256)
fn matmul_tiled_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(local_invocation_index) t: u32) {
    let row = wid.y * TILE + 4u * (t / SIDE);
    let col = wid.x * TILE + 4u * (t % SIDE);
    let blk = block(wid.z, wid.y * TILE, wid.x * TILE, t);
    let base4 = wid.z * p.m * p.n / 4u;
    store_row4(base4, row, col, blk.r0);
    store_row4(base4, row + 1u, col, blk.r1);
    store_row4(base4, row + 2u, col, blk.r2);
    store_row4(base4, row + 3u, col, blk.r3);
}

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
