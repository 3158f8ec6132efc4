// Packed binary matmul for adapters with subgroups (a fixed size of at least 8): the
// contract of binary_matmul.wgsl (MODE, HAS_SCALE, batch strides), with packed rows
// read as vec4<u32>, i.e. 128 bits of K at a time (packed rows are padded to whole
// groups of 4 words, see pack.wgsl).
//
// Each workgroup of 32 invocations computes a 16 x 128 tile; every invocation 16 rows x
// 4 columns. The 16 rows of A are shared by the whole workgroup, so 8 lanes load them
// (2 vec4s each) and subgroupBroadcast hands them out: per 128 bits of K an invocation
// loads 6 vec4s for 16 x 4 x 128 binary multiply-adds.

override MODE: u32 = 0u;
override HAS_SCALE: bool = false;
// Row tiles per workgroup: CPU drivers pay a fixed cost per workgroup that outweighs a
// short K's work.
override ROW_TILES: u32 = 1u;

struct Params {
    m: u32,
    n: u32,
    k: u32,              // bits
    kw: u32,             // words per row (a multiple of 4)
    a_batch_stride: u32, // words between consecutive A matrices
    b_batch_stride: u32, // words between consecutive B matrices (0: shared)
}

@group(0) @binding(0) var<storage, read> a: array<vec4<u32>>;   // [batch, M, KW / 4]
@group(0) @binding(1) var<storage, read> b: array<vec4<u32>>;   // [batch, N, KW / 4]
@group(0) @binding(2) var<storage, read> scale: array<f32>;     // [N]
@group(0) @binding(3) var<storage, read_write> out: array<f32>; // [batch, M, N]
@group(0) @binding(4) var<uniform> p: Params;

const ROWS: u32 = 16u;
const COLS: u32 = 4u;
// Invocations per workgroup (8, 16 or 32): fewer for narrow outputs, whose column tile
// would otherwise be mostly padding.
override WG: u32 = 32u;

fn combine(x: vec4<u32>, y: vec4<u32>) -> vec4<u32> {
    if (MODE == 1u) {
        return x ^ y;
    }
    return x & y;
}

// Word wN of the 4 columns (the 128 bits of B[col .. col+4] at this step, transposed).
struct Words {
    w0: vec4<u32>,
    w1: vec4<u32>,
    w2: vec4<u32>,
    w3: vec4<u32>,
}

fn load_b(base: u32, k4: u32, col: u32) -> Words {
    let kw4 = p.kw / 4u;
    let c0 = b[base + min(col, p.n - 1u) * kw4 + k4];
    let c1 = b[base + min(col + 1u, p.n - 1u) * kw4 + k4];
    let c2 = b[base + min(col + 2u, p.n - 1u) * kw4 + k4];
    let c3 = b[base + min(col + 3u, p.n - 1u) * kw4 + k4];
    return Words(vec4(c0.x, c1.x, c2.x, c3.x), vec4(c0.y, c1.y, c2.y, c3.y),
                 vec4(c0.z, c1.z, c2.z, c3.z), vec4(c0.w, c1.w, c2.w, c3.w));
}

// Row i's 128 bits at this step, as rI.
struct Rows {
    r0: vec4<u32>, r1: vec4<u32>, r2: vec4<u32>, r3: vec4<u32>,
    r4: vec4<u32>, r5: vec4<u32>, r6: vec4<u32>, r7: vec4<u32>,
    r8: vec4<u32>, r9: vec4<u32>, r10: vec4<u32>, r11: vec4<u32>,
    r12: vec4<u32>, r13: vec4<u32>, r14: vec4<u32>, r15: vec4<u32>,
}

// Rows 0..7 come from lanes 0..7's `lo`, rows 8..15 from their `hi`.
fn broadcast_rows(lo: vec4<u32>, hi: vec4<u32>) -> Rows {
    return Rows(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u),
                subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u),
                subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u),
                subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u),
                subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u),
                subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u),
                subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u),
                subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u));
}

// acc[j] += popcount(combine(row, column j)) over the step's 4 words.
fn step(acc: vec4<u32>, row: vec4<u32>, bw: Words) -> vec4<u32> {
    return acc + countOneBits(combine(vec4(row.x), bw.w0)) + countOneBits(combine(vec4(row.y), bw.w1))
               + countOneBits(combine(vec4(row.z), bw.w2)) + countOneBits(combine(vec4(row.w), bw.w3));
}

fn popcount4(v: vec4<u32>) -> u32 {
    let c = countOneBits(v);
    return c.x + c.y + c.z + c.w;
}

// Counts of the 16 x 4 block at (row0, col) of matrix `batch`, and the popcounts of the
// rows this lane loaded (rows q and q + 8 of the block), shared by both entry points.
struct Tile {
    a0: vec4<u32>, a1: vec4<u32>, a2: vec4<u32>, a3: vec4<u32>,
    a4: vec4<u32>, a5: vec4<u32>, a6: vec4<u32>, a7: vec4<u32>,
    a8: vec4<u32>, a9: vec4<u32>, a10: vec4<u32>, a11: vec4<u32>,
    a12: vec4<u32>, a13: vec4<u32>, a14: vec4<u32>, a15: vec4<u32>,
    ones_lo: u32,
    ones_hi: u32,
}

fn count_tile(batch: u32, row0: u32, col: u32, lane: u32) -> Tile {
    let kw4 = p.kw / 4u;
    let a_base = batch * p.a_batch_stride / 4u;
    let b_base = batch * p.b_batch_stride / 4u;
    let q = lane % 8u;
    let a_lo = a_base + min(row0 + q, p.m - 1u) * kw4;
    let a_hi = a_base + min(row0 + q + 8u, p.m - 1u) * kw4;

    var acc0 = vec4<u32>(0u);
    var acc1 = vec4<u32>(0u);
    var acc2 = vec4<u32>(0u);
    var acc3 = vec4<u32>(0u);
    var acc4 = vec4<u32>(0u);
    var acc5 = vec4<u32>(0u);
    var acc6 = vec4<u32>(0u);
    var acc7 = vec4<u32>(0u);
    var acc8 = vec4<u32>(0u);
    var acc9 = vec4<u32>(0u);
    var acc10 = vec4<u32>(0u);
    var acc11 = vec4<u32>(0u);
    var acc12 = vec4<u32>(0u);
    var acc13 = vec4<u32>(0u);
    var acc14 = vec4<u32>(0u);
    var acc15 = vec4<u32>(0u);
    var ones_lo = 0u; // popcount of the rows this lane loads, for MODE 0
    var ones_hi = 0u;
    for (var k4 = 0u; k4 < kw4; k4++) {
        let bw = load_b(b_base, k4, col);
        let lo = a[a_lo + k4];
        let hi = a[a_hi + k4];
        ones_lo += popcount4(lo);
        ones_hi += popcount4(hi);
        let r = broadcast_rows(lo, hi);
        acc0 = step(acc0, r.r0, bw);
        acc1 = step(acc1, r.r1, bw);
        acc2 = step(acc2, r.r2, bw);
        acc3 = step(acc3, r.r3, bw);
        acc4 = step(acc4, r.r4, bw);
        acc5 = step(acc5, r.r5, bw);
        acc6 = step(acc6, r.r6, bw);
        acc7 = step(acc7, r.r7, bw);
        acc8 = step(acc8, r.r8, bw);
        acc9 = step(acc9, r.r9, bw);
        acc10 = step(acc10, r.r10, bw);
        acc11 = step(acc11, r.r11, bw);
        acc12 = step(acc12, r.r12, bw);
        acc13 = step(acc13, r.r13, bw);
        acc14 = step(acc14, r.r14, bw);
        acc15 = step(acc15, r.r15, bw);
    }

    return Tile(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7, acc8, acc9, acc10, acc11,
                acc12, acc13, acc14, acc15, ones_lo, ones_hi);
}

// The 4 columns' scales (1 without HAS_SCALE), read once rather than per row.
fn column_scales(col: u32) -> vec4<f32> {
    if (HAS_SCALE) {
        return vec4(scale[min(col, p.n - 1u)], scale[min(col + 1u, p.n - 1u)],
                    scale[min(col + 2u, p.n - 1u)], scale[min(col + 3u, p.n - 1u)]);
    }
    return vec4<f32>(1.0);
}

// The 16 rows' outputs, in order (row i = tile field ai).
struct Dots {
    d0: vec4<f32>, d1: vec4<f32>, d2: vec4<f32>, d3: vec4<f32>,
    d4: vec4<f32>, d5: vec4<f32>, d6: vec4<f32>, d7: vec4<f32>,
    d8: vec4<f32>, d9: vec4<f32>, d10: vec4<f32>, d11: vec4<f32>,
    d12: vec4<f32>, d13: vec4<f32>, d14: vec4<f32>, d15: vec4<f32>,
}

fn dots(t: Tile, s: vec4<f32>) -> Dots {
    let lo = t.ones_lo;
    let hi = t.ones_hi;
    return Dots(
        dot_row(t.a0, subgroupBroadcast(lo, 0u), s), dot_row(t.a1, subgroupBroadcast(lo, 1u), s),
        dot_row(t.a2, subgroupBroadcast(lo, 2u), s), dot_row(t.a3, subgroupBroadcast(lo, 3u), s),
        dot_row(t.a4, subgroupBroadcast(lo, 4u), s), dot_row(t.a5, subgroupBroadcast(lo, 5u), s),
        dot_row(t.a6, subgroupBroadcast(lo, 6u), s), dot_row(t.a7, subgroupBroadcast(lo, 7u), s),
        dot_row(t.a8, subgroupBroadcast(hi, 0u), s), dot_row(t.a9, subgroupBroadcast(hi, 1u), s),
        dot_row(t.a10, subgroupBroadcast(hi, 2u), s), dot_row(t.a11, subgroupBroadcast(hi, 3u), s),
        dot_row(t.a12, subgroupBroadcast(hi, 4u), s), dot_row(t.a13, subgroupBroadcast(hi, 5u), s),
        dot_row(t.a14, subgroupBroadcast(hi, 6u), s), dot_row(t.a15, subgroupBroadcast(hi, 7u), s));
}

// The dot products of one row with the 4 columns, scaled.
fn dot_row(counts: vec4<u32>, ones: u32, s: vec4<f32>) -> vec4<f32> {
    let c = vec4<f32>(counts);
    if (MODE == 0u) {
        return (2.0 * c - f32(ones)) * s;
    } else if (MODE == 1u) {
        return (f32(p.k) - 2.0 * c) * s;
    }
    return c * s;
}

@compute @workgroup_size(WG)
fn binary_matmul(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let col = (wid.x * WG + lid) * COLS;
    let base = wid.z * p.m * p.n;
    for (var rt = 0u; rt < ROW_TILES; rt++) {
        let row0 = (wid.y * ROW_TILES + rt) * ROWS;
        if (row0 >= p.m) {
            return;
        }
        let d = dots(count_tile(wid.z, row0, col, lane), column_scales(col));
        store_row(base, row0, col, d.d0);
        store_row(base, row0 + 1u, col, d.d1);
        store_row(base, row0 + 2u, col, d.d2);
        store_row(base, row0 + 3u, col, d.d3);
        store_row(base, row0 + 4u, col, d.d4);
        store_row(base, row0 + 5u, col, d.d5);
        store_row(base, row0 + 6u, col, d.d6);
        store_row(base, row0 + 7u, col, d.d7);
        store_row(base, row0 + 8u, col, d.d8);
        store_row(base, row0 + 9u, col, d.d9);
        store_row(base, row0 + 10u, col, d.d10);
        store_row(base, row0 + 11u, col, d.d11);
        store_row(base, row0 + 12u, col, d.d12);
        store_row(base, row0 + 13u, col, d.d13);
        store_row(base, row0 + 14u, col, d.d14);
        store_row(base, row0 + 15u, col, d.d15);
    }
}

// The same with N a multiple of 4: each row's 4 outputs go out as one vec4 store, which
// costs CPU drivers about a quarter of four scalar stores.
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>; // [batch, M, N / 4]

fn store_row4(base4: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row < p.m && col < p.n) {
        out4[base4 + (row * p.n + col) / 4u] = v;
    }
}

@compute @workgroup_size(WG)
fn binary_matmul_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32,
                      @builtin(subgroup_invocation_id) lane: u32) {
    let col = (wid.x * WG + lid) * COLS;
    let base4 = wid.z * p.m * p.n / 4u;
    for (var rt = 0u; rt < ROW_TILES; rt++) {
        let row0 = (wid.y * ROW_TILES + rt) * ROWS;
        if (row0 >= p.m) {
            return;
        }
        let d = dots(count_tile(wid.z, row0, col, lane), column_scales(col));
        store_row4(base4, row0, col, d.d0);
        store_row4(base4, row0 + 1u, col, d.d1);
        store_row4(base4, row0 + 2u, col, d.d2);
        store_row4(base4, row0 + 3u, col, d.d3);
        store_row4(base4, row0 + 4u, col, d.d4);
        store_row4(base4, row0 + 5u, col, d.d5);
        store_row4(base4, row0 + 6u, col, d.d6);
        store_row4(base4, row0 + 7u, col, d.d7);
        store_row4(base4, row0 + 8u, col, d.d8);
        store_row4(base4, row0 + 9u, col, d.d9);
        store_row4(base4, row0 + 10u, col, d.d10);
        store_row4(base4, row0 + 11u, col, d.d11);
        store_row4(base4, row0 + 12u, col, d.d12);
        store_row4(base4, row0 + 13u, col, d.d13);
        store_row4(base4, row0 + 14u, col, d.d14);
        store_row4(base4, row0 + 15u, col, d.d15);
    }
}

fn store_row(base: u32, row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let i = base + row * p.n + col;
    if (col < p.n) { out[i] = v.x; }
    if (col + 1u < p.n) { out[i + 1u] = v.y; }
    if (col + 2u < p.n) { out[i + 2u] = v.z; }
    if (col + 3u < p.n) { out[i + 3u] = v.w; }
}

// Form (c): f32 activations x packed sign weights, out[b, m, n] =
// scale[n] * sum_k x[m, k] * (bit ? +1 : -1). X is [batch, M, K] f32 with rows padded to
// a multiple of 4 floats (zeros past K), bound at binding 0 and read through bitcast,
// since this module's binding 0 is declared as words. The same 16 x 4 blocking: per
// step of 4 along K an invocation loads 2 vec4s of X (shared through the subgroup) and
// takes the column signs from words loaded once per 128 k.

// The signs of the 4 columns at k + N, as kN.
struct Signs {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
    k3: vec4<f32>,
}

fn signs_at(word: vec4<u32>, bit: u32) -> vec4<f32> {
    return vec4<f32>((word >> vec4(bit)) & vec4(1u)) * 2.0 - 1.0;
}

fn step_real(acc: vec4<f32>, row_bits: vec4<u32>, sg: Signs) -> vec4<f32> {
    let x = bitcast<vec4<f32>>(row_bits);
    return acc + x.x * sg.k0 + x.y * sg.k1 + x.z * sg.k2 + x.w * sg.k3;
}

struct Acc {
    a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>,
    a4: vec4<f32>, a5: vec4<f32>, a6: vec4<f32>, a7: vec4<f32>,
    a8: vec4<f32>, a9: vec4<f32>, a10: vec4<f32>, a11: vec4<f32>,
    a12: vec4<f32>, a13: vec4<f32>, a14: vec4<f32>, a15: vec4<f32>,
}

fn accumulate(acc: Acc, r: Rows, sg: Signs) -> Acc {
    return Acc(step_real(acc.a0, r.r0, sg), step_real(acc.a1, r.r1, sg),
               step_real(acc.a2, r.r2, sg), step_real(acc.a3, r.r3, sg),
               step_real(acc.a4, r.r4, sg), step_real(acc.a5, r.r5, sg),
               step_real(acc.a6, r.r6, sg), step_real(acc.a7, r.r7, sg),
               step_real(acc.a8, r.r8, sg), step_real(acc.a9, r.r9, sg),
               step_real(acc.a10, r.r10, sg), step_real(acc.a11, r.r11, sg),
               step_real(acc.a12, r.r12, sg), step_real(acc.a13, r.r13, sg),
               step_real(acc.a14, r.r14, sg), step_real(acc.a15, r.r15, sg));
}

@compute @workgroup_size(WG)
fn matmul_f32_bits(@builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
    let batch = wid.z;
    let col = (wid.x * WG + lid) * COLS;
    for (var rt = 0u; rt < ROW_TILES; rt++) {
        let row0 = (wid.y * ROW_TILES + rt) * ROWS;
        if (row0 >= p.m) {
            return;
        }
        let lda4 = (p.k + 3u) / 4u;
        let x_base = batch * p.a_batch_stride / 4u;
        let b_base = batch * p.b_batch_stride / 4u;
        let q = lane % 8u;
        let x_lo = x_base + min(row0 + q, p.m - 1u) * lda4;
        let x_hi = x_base + min(row0 + q + 8u, p.m - 1u) * lda4;

        let z = vec4<f32>(0.0);
        var acc = Acc(z, z, z, z, z, z, z, z, z, z, z, z, z, z, z, z);
        for (var k4 = 0u; k4 < p.kw / 4u; k4++) {
            let words = load_b(b_base, k4, col);
            for (var w = 0u; w < 4u; w++) {
                let word = select(select(words.w0, words.w1, w == 1u),
                                  select(words.w2, words.w3, w == 3u), w >= 2u);
                for (var bit = 0u; bit < 32u; bit += 4u) {
                    let k = k4 * 128u + w * 32u + bit;
                    if (k >= p.k) {
                        break;
                    }
                    let sg = Signs(signs_at(word, bit), signs_at(word, bit + 1u),
                                   signs_at(word, bit + 2u), signs_at(word, bit + 3u));
                    let r = broadcast_rows(a[x_lo + k / 4u], a[x_hi + k / 4u]);
                    acc = accumulate(acc, r, sg);
                }
            }
        }

        let s = column_scales(col);
        let base = batch * p.m * p.n;
        store_row(base, row0, col, acc.a0 * s);
        store_row(base, row0 + 1u, col, acc.a1 * s);
        store_row(base, row0 + 2u, col, acc.a2 * s);
        store_row(base, row0 + 3u, col, acc.a3 * s);
        store_row(base, row0 + 4u, col, acc.a4 * s);
        store_row(base, row0 + 5u, col, acc.a5 * s);
        store_row(base, row0 + 6u, col, acc.a6 * s);
        store_row(base, row0 + 7u, col, acc.a7 * s);
        store_row(base, row0 + 8u, col, acc.a8 * s);
        store_row(base, row0 + 9u, col, acc.a9 * s);
        store_row(base, row0 + 10u, col, acc.a10 * s);
        store_row(base, row0 + 11u, col, acc.a11 * s);
        store_row(base, row0 + 12u, col, acc.a12 * s);
        store_row(base, row0 + 13u, col, acc.a13 * s);
        store_row(base, row0 + 14u, col, acc.a14 * s);
        store_row(base, row0 + 15u, col, acc.a15 * s);
    }
}

// The weight gradient of a layer fed spikes (binary_matmul.wgsl's spike_weight_grad,
// the same contract, O a multiple of 4): dw[s, o, k] = sum over chunk s's rows m of
// dy[m, o] * bit(x[m], k). A workgroup of 8 owns 16 outputs o (its y) and one word of
// bits (its x), an invocation 4 of the bits: per row, 4 lanes load a vec4 of dy each
// and subgroupBroadcast hands the 16 values to every lane, which loads its word and
// adds dy times its 4 bits into 16 x 4 sums (2 loads for 64 multiply-adds).

struct SpikeGradParams {
    m: u32,           // rows
    o: u32,           // dy columns (dW rows), a multiple of 4
    k: u32,           // bits (dW columns)
    kw: u32,          // words per packed row
    chunk_rows: u32,  // rows per chunk
}

@group(0) @binding(0) var<storage, read> sg_dy: array<vec4<f32>>;   // [M, O / 4]
@group(0) @binding(1) var<storage, read> sg_bits: array<u32>;       // [M, KW]
@group(0) @binding(2) var<storage, read_write> sg_dw: array<f32>;   // [S, O, K]
@group(0) @binding(3) var<uniform> sgp: SpikeGradParams;

@compute @workgroup_size(8)
fn spike_weight_grad(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32,
                     @builtin(subgroup_invocation_id) lane: u32) {
    let word = wid.x;
    let k0 = word * 32u + lid * 4u;
    let shift = vec4(lid * 4u) + vec4(0u, 1u, 2u, 3u);
    let o4s = sgp.o / 4u;
    let o0 = wid.y * 16u;
    // The vec4 of dy this lane loads (past O: clamped, never stored).
    let q = min(wid.y * 4u + lane % 4u, o4s - 1u);
    let chunk = wid.z;
    let first = chunk * sgp.chunk_rows;
    let end = min(first + sgp.chunk_rows, sgp.m);

    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    var a4 = vec4<f32>(0.0);
    var a5 = vec4<f32>(0.0);
    var a6 = vec4<f32>(0.0);
    var a7 = vec4<f32>(0.0);
    var a8 = vec4<f32>(0.0);
    var a9 = vec4<f32>(0.0);
    var a10 = vec4<f32>(0.0);
    var a11 = vec4<f32>(0.0);
    var a12 = vec4<f32>(0.0);
    var a13 = vec4<f32>(0.0);
    var a14 = vec4<f32>(0.0);
    var a15 = vec4<f32>(0.0);
    // Two rows a step (the second past the chunk's end adds zeros): twice the work per
    // loop iteration for CPU drivers to overlap loads with.
    for (var row = first; row < end; row += 2u) {
        let next = min(row + 1u, end - 1u);
        let d = sg_dy[row * o4s + q];
        let e = sg_dy[next * o4s + q];
        let bits = vec4<f32>((vec4(sg_bits[row * sgp.kw + word]) >> shift) & vec4(1u));
        let live = f32(row + 1u < end);
        let bits2 = live * vec4<f32>((vec4(sg_bits[next * sgp.kw + word]) >> shift) & vec4(1u));
        let d0 = subgroupBroadcast(d, 0u);
        let e0 = subgroupBroadcast(e, 0u);
        let d1 = subgroupBroadcast(d, 1u);
        let e1 = subgroupBroadcast(e, 1u);
        let d2 = subgroupBroadcast(d, 2u);
        let e2 = subgroupBroadcast(e, 2u);
        let d3 = subgroupBroadcast(d, 3u);
        let e3 = subgroupBroadcast(e, 3u);
        a0 = fma(vec4(d0.x), bits, fma(vec4(e0.x), bits2, a0));
        a1 = fma(vec4(d0.y), bits, fma(vec4(e0.y), bits2, a1));
        a2 = fma(vec4(d0.z), bits, fma(vec4(e0.z), bits2, a2));
        a3 = fma(vec4(d0.w), bits, fma(vec4(e0.w), bits2, a3));
        a4 = fma(vec4(d1.x), bits, fma(vec4(e1.x), bits2, a4));
        a5 = fma(vec4(d1.y), bits, fma(vec4(e1.y), bits2, a5));
        a6 = fma(vec4(d1.z), bits, fma(vec4(e1.z), bits2, a6));
        a7 = fma(vec4(d1.w), bits, fma(vec4(e1.w), bits2, a7));
        a8 = fma(vec4(d2.x), bits, fma(vec4(e2.x), bits2, a8));
        a9 = fma(vec4(d2.y), bits, fma(vec4(e2.y), bits2, a9));
        a10 = fma(vec4(d2.z), bits, fma(vec4(e2.z), bits2, a10));
        a11 = fma(vec4(d2.w), bits, fma(vec4(e2.w), bits2, a11));
        a12 = fma(vec4(d3.x), bits, fma(vec4(e3.x), bits2, a12));
        a13 = fma(vec4(d3.y), bits, fma(vec4(e3.y), bits2, a13));
        a14 = fma(vec4(d3.z), bits, fma(vec4(e3.z), bits2, a14));
        a15 = fma(vec4(d3.w), bits, fma(vec4(e3.w), bits2, a15));
    }
    let base = chunk * sgp.o * sgp.k;
    sg_store(base, o0, k0, a0);
    sg_store(base, o0 + 1u, k0, a1);
    sg_store(base, o0 + 2u, k0, a2);
    sg_store(base, o0 + 3u, k0, a3);
    sg_store(base, o0 + 4u, k0, a4);
    sg_store(base, o0 + 5u, k0, a5);
    sg_store(base, o0 + 6u, k0, a6);
    sg_store(base, o0 + 7u, k0, a7);
    sg_store(base, o0 + 8u, k0, a8);
    sg_store(base, o0 + 9u, k0, a9);
    sg_store(base, o0 + 10u, k0, a10);
    sg_store(base, o0 + 11u, k0, a11);
    sg_store(base, o0 + 12u, k0, a12);
    sg_store(base, o0 + 13u, k0, a13);
    sg_store(base, o0 + 14u, k0, a14);
    sg_store(base, o0 + 15u, k0, a15);
}

// dW[o, k .. k + 4] (those inside O and K).
fn sg_store(base: u32, o: u32, k: u32, v: vec4<f32>) {
    if (o >= sgp.o) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (k + j < sgp.k) {
            sg_dw[base + o * sgp.k + k + j] = v[j];
        }
    }
}
