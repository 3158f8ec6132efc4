// Spiking self-attention: the fused and elementwise parts of the attention forms (SSA,
// BESTformer binary attention, SSA_Bin, A2OS2A). The f32 products run on matmul.wgsl;
// the binary maps are built here straight from packed spikes:
//   score_lif_map            A = LIF over T of X Y^T (AND-popcount), packed
//   score_lif_backward       its BPTT with the Sigmoid surrogate
//   score_threshold_map      SSA_Bin's B = X Y^T > Delta[h], packed
//   score_softmax_surrogate  SSA_Bin's dB/dS = p (1 - p), p = softmax over the key axis
//   bits_product             y = s * factor[t, h] * (A V) from packed A and V^T, or
//                            SSA_Bin's out = kappa * B V - mean[h, e] (SHIFTED)
//   running_update           running statistics: state = mu state + (1 - mu) factor sum
//   pack_spikes              f32 [batch, R, C] -> bits along C or (transposed) along R
//   unpack_bits              bits [rows, C] -> f32 {0,1} [rows, C]
//   scale_all                y = x * s
//   lambda_grad              d lambda[t, h] = s * sum of the map backward's partials
//   count_nonzero            count of non-zero elements (map density, on demand)
// Packed rows follow pack.wgsl: bits along the last axis, LSB first, each row padded to
// `wpr` words (a multiple of 4) with zero bits. Counts of ones and sums of integers are
// kept exactly as 64-bit (lo, hi) pairs of u32 atomics: the add that wraps `lo` carries
// into `hi`. Every 1-D grid rebuilds its linear index as wid.x + wid.y * nwg.x.

// ------------------------------------------------------------------------------------
// Scores on packed bits. The binary attention maps are built from S = X Y^T with both
// operands spikes packed along the contracted axis: X [maps, rows, chunks] and
// Y [maps, cols, chunks] in vec4 words (a packed row is a multiple of 4 words), so
// S[r, c] = popcount(X[r] & Y[c]), exact. The map kernels below compute each score where
// they consume it: the f32 score matrix never reaches memory, and the backward kernels
// recompute the scores from the same packed operands instead of reading them back.
//
// Layout for CPU drivers: inside loops, lavapipe reads storage lane by lane, element by
// element, even at workgroup-uniform addresses, so a score costs mostly its operand
// reads. The kernels therefore compute scores on 4 x 4 tiles (score_tile: 4 rows of an
// invocation against 4 columns), each operand row read serving 4 scores.

@group(0) @binding(0) var<storage, read> sx: array<vec4<u32>>; // [maps, rows, chunks]
@group(0) @binding(1) var<storage, read> sy: array<vec4<u32>>; // [maps, cols, chunks]

fn hsum(v: vec4<u32>) -> u32 {
    return v.x + v.y + v.z + v.w;
}

// The words of chunk 0 that can hold bits: 1 or 2 when the packed rows are at most 32
// or 64 bits (the rest is zero padding, whose popcounts the CPU drivers would otherwise
// pay for: half of the work at d = 48), else 4.
override SCORE_WORDS: u32 = 4u;

// popcount(a & b) over the words of chunk 0 that hold bits.
fn count_chunk0(a: vec4<u32>, b: vec4<u32>) -> u32 {
    let m = a & b;
    if (SCORE_WORDS == 1u) {
        return countOneBits(m.x);
    }
    if (SCORE_WORDS == 2u) {
        return countOneBits(m.x) + countOneBits(m.y);
    }
    return hsum(countOneBits(m));
}

// A 4 x 4 tile of scores: 4 rows of a map (past its last row, the last row again) by
// 4 columns, every operand row read serving 4 scores instead of 1.
struct TileRows {
    xa: vec4<u32>, // chunk-0 addresses of the 4 rows
    ya: u32,       // address of column 0 of the map
    cols: u32,
    chunks: u32,
}

fn tile_rows(map: u32, first: u32, rows: u32, cols: u32, chunks: u32) -> TileRows {
    let r = min(vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(rows - 1u));
    return TileRows((vec4<u32>(map * rows) + r) * chunks, map * cols * chunks, cols, chunks);
}

// The scores of one row (chunk 0 at xa) against the columns at c (chunk 0 words y).
fn tile_row(xa: u32, c: vec4<u32>, y: array<vec4<u32>, 4>, chunks: u32) -> vec4<f32> {
    let x0 = sx[xa];
    var s = vec4<u32>(count_chunk0(x0, y[0]), count_chunk0(x0, y[1]),
                      count_chunk0(x0, y[2]), count_chunk0(x0, y[3]));
    for (var k = 1u; k < chunks; k++) {
        let x = sx[xa + k];
        s += vec4<u32>(hsum(countOneBits(x & sy[c.x + k])), hsum(countOneBits(x & sy[c.y + k])),
                       hsum(countOneBits(x & sy[c.z + k])), hsum(countOneBits(x & sy[c.w + k])));
    }
    return vec4<f32>(s);
}

// The tile's scores for columns j .. j+3 (columns at or past cols repeat the last one):
// row k of the tile is column k of the result.
fn score_tile(t: TileRows, j: u32) -> mat4x4<f32> {
    let c = vec4<u32>(t.ya) + min(vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u),
                                  vec4<u32>(t.cols - 1u)) * t.chunks;
    let y = array<vec4<u32>, 4>(sy[c.x], sy[c.y], sy[c.z], sy[c.w]);
    return mat4x4<f32>(tile_row(t.xa.x, c, y, t.chunks), tile_row(t.xa.y, c, y, t.chunks),
                       tile_row(t.xa.z, c, y, t.chunks), tile_row(t.xa.w, c, y, t.chunks));
}

// One LIF step of 4 elements (decay_input, soft reset); their spikes as the low 4 bits.
fn lif_step4(v: ptr<function, vec4<f32>>, x: vec4<f32>, tau: f32, v_th: f32) -> u32 {
    let h = *v + (x - *v) / tau;
    let s = h >= vec4<f32>(v_th);
    *v = h - select(vec4<f32>(0.0), vec4<f32>(v_th), s);
    return select(0u, 1u, s.x) | select(0u, 2u, s.y) | select(0u, 4u, s.z) | select(0u, 8u, s.w);
}

fn low_bits(n: u32) -> u32 {
    return select((1u << n) - 1u, 0xffffffffu, n >= 32u);
}

var<workgroup> wg_count: atomic<u32>;

// ------------------------------------------------------------------------------------
// score_lif_map: the binary map A = LIF over T of S = X Y^T, packed. For every map
// element, over t = 0 .. T-1 (state V from 0):
//   H = V + (S_t - V) / tau   (decay_input)
//   A_t = H >= v_th
//   V = H - v_th A_t          (soft reset)
// Each invocation owns one packed word (32 consecutive columns) of 4 rows (a score tile's,
// see score_tile) for every t; the invocations are flattened over (map, word, group of 4
// rows). The invocation of a row's last word also zeroes the row's padding words. The
// operands are [T * maps, ...] with T leading, as is the map.

struct ScoreLifParams {
    steps: u32,  // T
    maps: u32,   // maps per time step (B * heads)
    rows: u32,   // rows of a map
    cols: u32,   // columns of a map (bits per packed row)
    chunks: u32, // vec4 words per operand row
    wpr: u32,    // words per packed map row
    words: u32,  // words holding columns: ceil(cols / 32)
    groups: u32, // ceil(rows / 4)
    tau: f32,
    v_th: f32,
}

@group(0) @binding(2) var<storage, read_write> sl_bits: array<u32>;         // [T, maps, rows, wpr]
@group(0) @binding(3) var<storage, read_write> sl_ones: array<atomic<u32>>; // [2] (lo, hi)
@group(0) @binding(4) var<uniform> slp: ScoreLifParams;

// Write (the first 4 columns of the word) or OR in a row's spikes for one t; the ones
// that are new.
fn put_spikes(o: u32, first: bool, bits: u32) -> u32 {
    if (first) {
        sl_bits[o] = bits;
    } else {
        sl_bits[o] |= bits;
    }
    return countOneBits(bits);
}

@compute @workgroup_size(64)
fn score_lif_map(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    if (lid == 0u) {
        atomicStore(&wg_count, 0u);
    }
    workgroupBarrier();
    let g = (wid.x + wid.y * nwg.x) * 64u + lid;
    var ones = 0u;
    if (g < slp.maps * slp.words * slp.groups) {
        let map = g / (slp.words * slp.groups);
        let word = (g / slp.groups) % slp.words;
        let first = (g % slp.groups) * 4u;
        let live = min(4u, slp.rows - first); // rows of the group that exist
        let col0 = word * 32u;
        let n = min(32u, slp.cols - col0);
        let valid = low_bits(n);
        let step_words = slp.maps * slp.rows * slp.wpr;
        // Output word of row `first` at t = 0; the group's rows follow at stride wpr.
        let out0 = (map * slp.rows + first) * slp.wpr + word;
        // Columns in groups of 4, the potentials of the tile carried over T in 4 vec4s;
        // the words of every t are assembled in place (this invocation owns them).
        for (var j = 0u; j < n; j += 4u) {
            var v0 = vec4<f32>(0.0);
            var v1 = vec4<f32>(0.0);
            var v2 = vec4<f32>(0.0);
            var v3 = vec4<f32>(0.0);
            for (var t = 0u; t < slp.steps; t++) {
                let tile = tile_rows(t * slp.maps + map, first, slp.rows, slp.cols, slp.chunks);
                let s = score_tile(tile, col0 + j);
                let o = t * step_words + out0;
                let b0 = (lif_step4(&v0, s[0], slp.tau, slp.v_th) << j) & valid;
                let b1 = (lif_step4(&v1, s[1], slp.tau, slp.v_th) << j) & valid;
                let b2 = (lif_step4(&v2, s[2], slp.tau, slp.v_th) << j) & valid;
                let b3 = (lif_step4(&v3, s[3], slp.tau, slp.v_th) << j) & valid;
                ones += put_spikes(o, j == 0u, b0);
                if (live > 1u) {
                    ones += put_spikes(o + slp.wpr, j == 0u, b1);
                }
                if (live > 2u) {
                    ones += put_spikes(o + 2u * slp.wpr, j == 0u, b2);
                }
                if (live > 3u) {
                    ones += put_spikes(o + 3u * slp.wpr, j == 0u, b3);
                }
            }
        }
        if (word + 1u == slp.words) {
            for (var t = 0u; t < slp.steps; t++) {
                for (var r = 0u; r < live; r++) {
                    let o = t * step_words + out0 + r * slp.wpr;
                    for (var p = 1u; word + p < slp.wpr; p++) {
                        sl_bits[o + p] = 0u;
                    }
                }
            }
        }
    }
    atomicAdd(&wg_count, ones);
    workgroupBarrier();
    if (lid == 0u) {
        let c = atomicLoad(&wg_count);
        let old = atomicAdd(&sl_ones[0], c);
        if (old + c < old) {
            atomicAdd(&sl_ones[1], 1u);
        }
    }
}

// ------------------------------------------------------------------------------------
// score_lif_backward: BPTT of score_lif_map per element with the Sigmoid surrogate,
// detached soft reset (dV/dH = 1), no gradient into the state sequence:
//   sg = sigmoid(alpha (H_t - v_th)),  g_s = alpha sg (1 - sg)
//   grad_h = s_t grad_A[t] g_s + grad_h (1 - 1/tau),  grad_S[t] = grad_h / tau
// where s_t = scale * factor[t, h] is the output scale of the map's product, folded in
// here so that backward never scales dY in a pass of its own. The gradient of factor
// (BESTformer's lambda) is scale * sum A_t grad_A[t] / s_t over the map elements (the
// dot of dY with the product): each invocation adds up its elements' share per t, for
// lambda_grad to reduce. H_t is recomputed from the packed operands in a forward sweep
// and parked in grad_S until the backward sweep overwrites it. The invocations of
// score_lif_map (a word of 32 columns of 4 rows, on score tiles), each walking its
// columns 4 at a time, reading and writing them as one vec4 per row
// (score_lif_backward_vec4, cols a multiple of 4) or element by element.

struct ScoreLifBackParams {
    steps: u32, // T
    maps: u32,  // maps per time step
    rows: u32,
    cols: u32,
    chunks: u32,
    words: u32,
    groups: u32, // ceil(rows / 4)
    heads: u32,
    scale: f32,
    tau: f32,
    v_th: f32,
    alpha: f32,
}

@group(0) @binding(2) var<storage, read> slb_factor: array<f32>;              // [T, heads]
@group(0) @binding(3) var<storage, read> slb_ga: array<f32>;                  // [T, maps, rows, cols] dL/dA / s_t
@group(0) @binding(3) var<storage, read> slb_ga4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> slb_gs: array<f32>;            // [T, maps, rows, cols] dL/dS
@group(0) @binding(4) var<storage, read_write> slb_gs4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> slb_lambda: array<f32>;        // [T, maps, words, groups]
@group(0) @binding(6) var<uniform> slbp: ScoreLifBackParams;

// An invocation's share of the map backward: map, first row and rows that exist (1..4),
// word, its first column and its columns.
struct BackTile {
    map: u32,
    first: u32,
    live: u32,
    word: u32,
    col0: u32,
    n: u32,
}

// The invocation's tile, or live = 0 past the grid.
fn back_tile(g: u32) -> BackTile {
    var b: BackTile;
    b.live = 0u;
    if (g >= slbp.maps * slbp.words * slbp.groups) {
        return b;
    }
    b.map = g / (slbp.words * slbp.groups);
    b.word = (g / slbp.groups) % slbp.words;
    b.first = (g % slbp.groups) * 4u;
    b.live = min(4u, slbp.rows - b.first);
    b.col0 = b.word * 32u;
    b.n = min(32u, slbp.cols - b.col0);
    return b;
}

// Element (row first + k, column col0 + j) of the map at t = 0.
fn back_element(b: BackTile, k: u32, j: u32) -> u32 {
    return (b.map * slbp.rows + b.first + k) * slbp.cols + b.col0 + j;
}

// One step of the forward sweep on 4 columns: H_t from the scores S_t, and the state
// after the (soft) reset.
fn lif_back_h(v: ptr<function, vec4<f32>>, s: vec4<f32>) -> vec4<f32> {
    let h = *v + (s - *v) / slbp.tau;
    *v = h - select(vec4<f32>(0.0), vec4<f32>(slbp.v_th), h >= vec4<f32>(slbp.v_th));
    return h;
}

// One step of the backward sweep: grad_h from H_t and dL/dA_t / s_t; returns the
// lambda share A_t . grad_A[t] / s_t of the 4 columns.
fn lif_back_step(gh: ptr<function, vec4<f32>>, h: vec4<f32>, ga: vec4<f32>, t: u32,
                 map: u32) -> f32 {
    let sg = 1.0 / (1.0 + exp(-slbp.alpha * (h - vec4<f32>(slbp.v_th))));
    let s_t = slbp.scale * slb_factor[t * slbp.heads + map % slbp.heads];
    *gh = s_t * ga * slbp.alpha * sg * (1.0 - sg) + *gh * (1.0 - 1.0 / slbp.tau);
    return dot(select(vec4<f32>(0.0), vec4<f32>(1.0), h >= vec4<f32>(slbp.v_th)), ga);
}

// Add the tile's lambda share for t (the first 4 columns of the word start the sum).
fn add_lambda_share(b: BackTile, g: u32, t: u32, j: u32, share: f32) {
    let i = (t * slbp.maps + b.map) * slbp.words * slbp.groups + g % (slbp.words * slbp.groups);
    if (j == 0u) {
        slb_lambda[i] = share;
    } else {
        slb_lambda[i] += share;
    }
}

// H_t of row k (4 columns from element e), stored element by element.
fn park_h(e: u32, n: u32, h: vec4<f32>) {
    for (var c = 0u; c < n; c++) {
        slb_gs[e + c] = h[c];
    }
}

// The backward step of row k's 4 columns from element e, element by element.
fn back_row(e: u32, n: u32, gh: ptr<function, vec4<f32>>, t: u32, map: u32) -> f32 {
    var h = vec4<f32>(0.0);
    var ga = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
        h[c] = slb_gs[e + c];
        ga[c] = slb_ga[e + c];
    }
    let share = lif_back_step(gh, h, ga, t, map);
    for (var c = 0u; c < n; c++) {
        slb_gs[e + c] = (*gh)[c] / slbp.tau;
    }
    return share;
}

// The backward step of row k's 4 columns at vec4 index i.
fn back_row4(i: u32, gh: ptr<function, vec4<f32>>, t: u32, map: u32) -> f32 {
    let share = lif_back_step(gh, slb_gs4[i], slb_ga4[i], t, map);
    slb_gs4[i] = *gh / slbp.tau;
    return share;
}

@compute @workgroup_size(64)
fn score_lif_backward(@builtin(workgroup_id) wid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid;
    let b = back_tile(g);
    if (b.live == 0u) {
        return;
    }
    let len = slbp.maps * slbp.rows * slbp.cols; // elements per time step
    for (var j = 0u; j < b.n; j += 4u) {
        let n = min(4u, b.n - j);
        var v0 = vec4<f32>(0.0);
        var v1 = vec4<f32>(0.0);
        var v2 = vec4<f32>(0.0);
        var v3 = vec4<f32>(0.0);
        for (var t = 0u; t < slbp.steps; t++) {
            let tile = tile_rows(t * slbp.maps + b.map, b.first, slbp.rows, slbp.cols, slbp.chunks);
            let s = score_tile(tile, b.col0 + j);
            let e = t * len;
            park_h(e + back_element(b, 0u, j), n, lif_back_h(&v0, s[0]));
            let h1 = lif_back_h(&v1, s[1]);
            let h2 = lif_back_h(&v2, s[2]);
            let h3 = lif_back_h(&v3, s[3]);
            if (b.live > 1u) {
                park_h(e + back_element(b, 1u, j), n, h1);
            }
            if (b.live > 2u) {
                park_h(e + back_element(b, 2u, j), n, h2);
            }
            if (b.live > 3u) {
                park_h(e + back_element(b, 3u, j), n, h3);
            }
        }
        var gh0 = vec4<f32>(0.0);
        var gh1 = vec4<f32>(0.0);
        var gh2 = vec4<f32>(0.0);
        var gh3 = vec4<f32>(0.0);
        for (var t = slbp.steps; t > 0u; t--) {
            let e = (t - 1u) * len;
            var share = back_row(e + back_element(b, 0u, j), n, &gh0, t - 1u, b.map);
            if (b.live > 1u) {
                share += back_row(e + back_element(b, 1u, j), n, &gh1, t - 1u, b.map);
            }
            if (b.live > 2u) {
                share += back_row(e + back_element(b, 2u, j), n, &gh2, t - 1u, b.map);
            }
            if (b.live > 3u) {
                share += back_row(e + back_element(b, 3u, j), n, &gh3, t - 1u, b.map);
            }
            add_lambda_share(b, g, t - 1u, j, share);
        }
    }
}

@compute @workgroup_size(64)
fn score_lif_backward_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid;
    let b = back_tile(g);
    if (b.live == 0u) {
        return;
    }
    let len4 = slbp.maps * slbp.rows * slbp.cols / 4u; // vec4s per time step
    for (var j = 0u; j < b.n; j += 4u) {
        var v0 = vec4<f32>(0.0);
        var v1 = vec4<f32>(0.0);
        var v2 = vec4<f32>(0.0);
        var v3 = vec4<f32>(0.0);
        for (var t = 0u; t < slbp.steps; t++) {
            let tile = tile_rows(t * slbp.maps + b.map, b.first, slbp.rows, slbp.cols, slbp.chunks);
            let s = score_tile(tile, b.col0 + j);
            let e = t * len4;
            slb_gs4[e + back_element(b, 0u, j) / 4u] = lif_back_h(&v0, s[0]);
            let h1 = lif_back_h(&v1, s[1]);
            let h2 = lif_back_h(&v2, s[2]);
            let h3 = lif_back_h(&v3, s[3]);
            if (b.live > 1u) {
                slb_gs4[e + back_element(b, 1u, j) / 4u] = h1;
            }
            if (b.live > 2u) {
                slb_gs4[e + back_element(b, 2u, j) / 4u] = h2;
            }
            if (b.live > 3u) {
                slb_gs4[e + back_element(b, 3u, j) / 4u] = h3;
            }
        }
        var gh0 = vec4<f32>(0.0);
        var gh1 = vec4<f32>(0.0);
        var gh2 = vec4<f32>(0.0);
        var gh3 = vec4<f32>(0.0);
        for (var t = slbp.steps; t > 0u; t--) {
            let e = (t - 1u) * len4;
            var share = back_row4(e + back_element(b, 0u, j) / 4u, &gh0, t - 1u, b.map);
            if (b.live > 1u) {
                share += back_row4(e + back_element(b, 1u, j) / 4u, &gh1, t - 1u, b.map);
            }
            if (b.live > 2u) {
                share += back_row4(e + back_element(b, 2u, j) / 4u, &gh2, t - 1u, b.map);
            }
            if (b.live > 3u) {
                share += back_row4(e + back_element(b, 3u, j) / 4u, &gh3, t - 1u, b.map);
            }
            add_lambda_share(b, g, t - 1u, j, share);
        }
    }
}

// ------------------------------------------------------------------------------------
// score_threshold_map (SSA_Bin): bit = S > delta[h] for S = X Y^T of map (t, b, h),
// h = map % heads. Counts the ones; with TRAINING also sums the (integer) scores per
// head for the running threshold. The invocations of score_lif_map (a word of 32
// columns of 4 rows, on score tiles): one atomic pair per workgroup for the count, one
// per invocation for its head's sum (a workgroup may span heads).

override TRAINING: bool = false;

struct ScoreThresholdParams {
    maps: u32, // T * B * heads
    heads: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    wpr: u32,
    words: u32,
    groups: u32, // ceil(rows / 4)
}

@group(0) @binding(2) var<storage, read> st_delta: array<f32>;             // [heads]
@group(0) @binding(3) var<storage, read_write> st_bits: array<u32>;        // [maps, rows, wpr]
@group(0) @binding(4) var<storage, read_write> st_ones: array<atomic<u32>>; // [2]
@group(0) @binding(5) var<storage, read_write> st_sums: array<atomic<u32>>; // [heads, 2]
@group(0) @binding(6) var<uniform> stp: ScoreThresholdParams;

// A row's packed word (columns col0 .. col0+n-1) and its padding words.
fn put_threshold_word(o: u32, word: u32, bits: u32) {
    st_bits[o] = bits;
    if (word + 1u == stp.words) {
        for (var p = 1u; word + p < stp.wpr; p++) {
            st_bits[o + p] = 0u;
        }
    }
}

@compute @workgroup_size(64)
fn score_threshold_map(@builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    if (lid == 0u) {
        atomicStore(&wg_count, 0u);
    }
    workgroupBarrier();
    let g = (wid.x + wid.y * nwg.x) * 64u + lid;
    var ones = 0u;
    if (g < stp.maps * stp.words * stp.groups) {
        let map = g / (stp.words * stp.groups);
        let word = (g / stp.groups) % stp.words;
        let first = (g % stp.groups) * 4u;
        let live = min(4u, stp.rows - first);
        let head = map % stp.heads;
        let col0 = word * 32u;
        let n = min(32u, stp.cols - col0);
        let delta = vec4<f32>(st_delta[head]);
        let tile = tile_rows(map, first, stp.rows, stp.cols, stp.chunks);
        // Rows past the map's end repeat its last row: their bits and scores are dropped.
        let rows_in = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(live);
        var w = vec4<u32>(0u); // the 4 rows' words
        var sum = vec4<u32>(0u); // per row
        for (var j = 0u; j < n; j += 4u) {
            let s = score_tile(tile, col0 + j);
            let cols_in = vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(n);
            let shift = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
            let one = vec4<u32>(1u) << shift;
            w.x |= hsum(select(vec4<u32>(0u), one, s[0] > delta & cols_in));
            w.y |= hsum(select(vec4<u32>(0u), one, s[1] > delta & cols_in));
            w.z |= hsum(select(vec4<u32>(0u), one, s[2] > delta & cols_in));
            w.w |= hsum(select(vec4<u32>(0u), one, s[3] > delta & cols_in));
            if (TRAINING) {
                let zero = vec4<f32>(0.0);
                sum += vec4<u32>(hsum(vec4<u32>(select(zero, s[0], cols_in))),
                                 hsum(vec4<u32>(select(zero, s[1], cols_in))),
                                 hsum(vec4<u32>(select(zero, s[2], cols_in))),
                                 hsum(vec4<u32>(select(zero, s[3], cols_in))));
            }
        }
        w = select(vec4<u32>(0u), w, rows_in);
        ones = hsum(countOneBits(w));
        let o = (map * stp.rows + first) * stp.wpr + word;
        put_threshold_word(o, word, w.x);
        if (live > 1u) {
            put_threshold_word(o + stp.wpr, word, w.y);
        }
        if (live > 2u) {
            put_threshold_word(o + 2u * stp.wpr, word, w.z);
        }
        if (live > 3u) {
            put_threshold_word(o + 3u * stp.wpr, word, w.w);
        }
        if (TRAINING) {
            let total = hsum(select(vec4<u32>(0u), sum, rows_in));
            let old = atomicAdd(&st_sums[2u * head], total);
            if (old + total < old) {
                atomicAdd(&st_sums[2u * head + 1u], 1u);
            }
        }
    }
    atomicAdd(&wg_count, ones);
    workgroupBarrier();
    if (lid == 0u) {
        let c = atomicLoad(&wg_count);
        let old = atomicAdd(&st_ones[0], c);
        if (old + c < old) {
            atomicAdd(&st_ones[1], 1u);
        }
    }
}

// ------------------------------------------------------------------------------------
// score_softmax_surrogate (SSA_Bin backward): grad_S = grad_B * p (1 - p) with
// p = softmax(S) along each row (the key axis), S = X Y^T recomputed from the packed
// operands in each of the two sweeps (cheaper than storing it). One invocation per
// 4 rows of a map (flattened over the maps), so each column operand read serves 4 rows
// (see score_tile); the columns go 4 at a time, read and written as one vec4 per row
// (score_softmax_surrogate_vec4, cols a multiple of 4) or element by element.

struct ScoreSoftmaxParams {
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    groups: u32, // ceil(rows / 4) row groups per map
}

@group(0) @binding(2) var<storage, read> ss_gb: array<f32>;             // [maps, rows, cols] dL/dB
@group(0) @binding(2) var<storage, read> ss_gb4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> ss_gs: array<f32>;       // [maps, rows, cols] dL/dS
@group(0) @binding(3) var<storage, read_write> ss_gs4: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> ssp: ScoreSoftmaxParams;

// The softmax of 4 rows: their first row over all maps, how many exist (1..4), the tile
// operands, and per row (x, y, z, w) the maximum score and 1 / (sum of exp(S - max)).
struct SoftmaxRows {
    row0: u32,
    n: u32,
    tile: TileRows,
    m: vec4<f32>,
    inv: vec4<f32>,
}

// One step of the online softmax of a row: the running maximum m[k] and sum z[k] of
// exp(S - m[k]) per column slot k, rescaled whenever the maximum grows; columns at or
// past cols (repeats of the last one) are not counted.
fn online_softmax(m: ptr<function, vec4<f32>>, z: ptr<function, vec4<f32>>, s: vec4<f32>,
                  j: u32) {
    let grown = max(*m, s);
    let e = select(vec4<f32>(0.0), exp(s - grown),
                   vec4<u32>(j, j + 1u, j + 2u, j + 3u) < vec4<u32>(ssp.cols));
    *z = *z * exp(*m - grown) + e;
    *m = grown;
}

// The row's maximum and 1 / sum from its per-slot statistics.
fn softmax_total(m: vec4<f32>, z: vec4<f32>) -> vec2<f32> {
    let top = max(max(m.x, m.y), max(m.z, m.w));
    let zz = z * exp(m - vec4<f32>(top));
    return vec2<f32>(top, 1.0 / (zz.x + zz.y + zz.z + zz.w));
}

// The softmax statistics of the lane's rows (n = 0: the lane is past the grid).
fn softmax_rows(g: u32) -> SoftmaxRows {
    var r: SoftmaxRows;
    r.n = 0u;
    if (g >= ssp.maps * ssp.groups) {
        return r;
    }
    let map = g / ssp.groups;
    let first = (g % ssp.groups) * 4u;
    r.n = min(4u, ssp.rows - first);
    r.row0 = map * ssp.rows + first;
    r.tile = tile_rows(map, first, ssp.rows, ssp.cols, ssp.chunks);
    // scores are counts, never negative: 0 is a valid starting maximum
    var m0 = vec4<f32>(0.0);
    var m1 = vec4<f32>(0.0);
    var m2 = vec4<f32>(0.0);
    var m3 = vec4<f32>(0.0);
    var z0 = vec4<f32>(0.0);
    var z1 = vec4<f32>(0.0);
    var z2 = vec4<f32>(0.0);
    var z3 = vec4<f32>(0.0);
    for (var j = 0u; j < ssp.cols; j += 4u) {
        let s = score_tile(r.tile, j);
        online_softmax(&m0, &z0, s[0], j);
        online_softmax(&m1, &z1, s[1], j);
        online_softmax(&m2, &z2, s[2], j);
        online_softmax(&m3, &z3, s[3], j);
    }
    let t0 = softmax_total(m0, z0);
    let t1 = softmax_total(m1, z1);
    let t2 = softmax_total(m2, z2);
    let t3 = softmax_total(m3, z3);
    r.m = vec4<f32>(t0.x, t1.x, t2.x, t3.x);
    r.inv = vec4<f32>(t0.y, t1.y, t2.y, t3.y);
    return r;
}

// p (1 - p) of columns j .. j+3 of row k of the tile.
fn slope(r: SoftmaxRows, s: vec4<f32>, k: u32) -> vec4<f32> {
    let p = exp(s - vec4<f32>(r.m[k])) * r.inv[k];
    return p * (1.0 - p);
}

fn store_slope(r: SoftmaxRows, k: u32, j: u32, s: vec4<f32>) {
    if (k < r.n) {
        let base = (r.row0 + k) * ssp.cols + j;
        let sl = slope(r, s, k);
        for (var c = 0u; c < min(4u, ssp.cols - j); c++) {
            ss_gs[base + c] = ss_gb[base + c] * sl[c];
        }
    }
}

fn store_slope4(r: SoftmaxRows, k: u32, j: u32, s: vec4<f32>) {
    if (k < r.n) {
        let i = ((r.row0 + k) * ssp.cols + j) / 4u;
        ss_gs4[i] = ss_gb4[i] * slope(r, s, k);
    }
}

@compute @workgroup_size(64)
fn score_softmax_surrogate(@builtin(workgroup_id) wid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lid: u32) {
    let r = softmax_rows((wid.x + wid.y * nwg.x) * 64u + lid);
    if (r.n == 0u) {
        return;
    }
    for (var j = 0u; j < ssp.cols; j += 4u) {
        let s = score_tile(r.tile, j);
        store_slope(r, 0u, j, s[0]);
        store_slope(r, 1u, j, s[1]);
        store_slope(r, 2u, j, s[2]);
        store_slope(r, 3u, j, s[3]);
    }
}

@compute @workgroup_size(64)
fn score_softmax_surrogate_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>,
                                @builtin(local_invocation_index) lid: u32) {
    let r = softmax_rows((wid.x + wid.y * nwg.x) * 64u + lid);
    if (r.n == 0u) {
        return;
    }
    for (var j = 0u; j < ssp.cols; j += 4u) {
        let s = score_tile(r.tile, j);
        store_slope4(r, 0u, j, s[0]);
        store_slope4(r, 1u, j, s[1]);
        store_slope4(r, 2u, j, s[2]);
        store_slope4(r, 3u, j, s[3]);
    }
}

// ------------------------------------------------------------------------------------
// bits_product: the product of a binary map with spikes, both packed,
// P[r, c] = popcount(X[r] & Y[c]) (A V with X = A, Y = V^T packed along N; Q A with
// X = Q, Y = A^T), written straight into each form's output:
//   SHIFTED = false: y = scale * factor[t, h] * P (BESTformer)
//   SHIFTED = true:  y = scale * P - mean[h, c]; with TRAINING also the sums of P per
//                    (h, c) for the running mean (SSA_Bin)
// One invocation per (map, quad of 4 output columns), flattened over the maps so that
// narrow outputs fill the workgroups; it keeps chunk 0 of its 4 Y rows in registers and
// walks the rows, each X chunk read once for 4 outputs, which it stores as one vec4
// (bits_product_vec4, cols a multiple of 4) or element by element (bits_product).

override SHIFTED: bool = false;

struct ProductParams {
    maps: u32,          // T * B * heads
    maps_per_step: u32, // B * heads
    heads: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    quads: u32,         // ceil(cols / 4)
    scale: f32,         // scale (BESTformer) or kappa (SSA_Bin)
}

@group(0) @binding(2) var<storage, read> bp_coef: array<f32>;                // factor [T, heads] / mean [heads, cols]
@group(0) @binding(3) var<storage, read_write> bp_y: array<f32>;             // [maps, rows, cols]
@group(0) @binding(3) var<storage, read_write> bp_y4: array<vec4<f32>>;      // [maps, rows, cols / 4]
@group(0) @binding(4) var<storage, read_write> bp_sums: array<atomic<u32>>;  // [heads, cols, 2] (TRAINING)
@group(0) @binding(5) var<uniform> bpp: ProductParams;

// One invocation's share of a product: map, first column, valid columns (1..4), the
// address and chunk 0 of each of its Y rows (past the last column: the last column's),
// and the output transform y = mul * P - sub.
struct ProductLane {
    map: u32,
    c0: u32,
    n: u32,
    ya: vec4<u32>,
    y0: array<vec4<u32>, 4>,
    mul: f32,
    sub: vec4<f32>,
}

fn product_lane(g: u32) -> ProductLane {
    var l: ProductLane;
    l.map = g / bpp.quads;
    l.c0 = (g % bpp.quads) * 4u;
    l.n = min(4u, bpp.cols - l.c0);
    let last = bpp.cols - 1u;
    let head = l.map % bpp.heads;
    for (var k = 0u; k < 4u; k++) {
        l.ya[k] = (l.map * bpp.cols + min(l.c0 + k, last)) * bpp.chunks;
    }
    l.y0 = array<vec4<u32>, 4>(sy[l.ya.x], sy[l.ya.y], sy[l.ya.z], sy[l.ya.w]);
    if (SHIFTED) {
        l.mul = bpp.scale;
        let m = head * bpp.cols;
        l.sub = vec4<f32>(bp_coef[m + min(l.c0, last)], bp_coef[m + min(l.c0 + 1u, last)],
                          bp_coef[m + min(l.c0 + 2u, last)], bp_coef[m + min(l.c0 + 3u, last)]);
    } else {
        l.mul = bpp.scale * bp_coef[(l.map / bpp.maps_per_step) * bpp.heads + head];
        l.sub = vec4<f32>(0.0);
    }
    return l;
}

// P[r, c0 .. c0+3] for row r of the lane's map.
fn product_row(l: ptr<function, ProductLane>, r: u32) -> vec4<u32> {
    let xa = ((*l).map * bpp.rows + r) * bpp.chunks;
    let x0 = sx[xa];
    var p = vec4<u32>(count_chunk0(x0, (*l).y0[0]), count_chunk0(x0, (*l).y0[1]),
                      count_chunk0(x0, (*l).y0[2]), count_chunk0(x0, (*l).y0[3]));
    for (var c = 1u; c < bpp.chunks; c++) {
        let x = sx[xa + c];
        p += vec4<u32>(hsum(countOneBits(x & sy[(*l).ya.x + c])),
                       hsum(countOneBits(x & sy[(*l).ya.y + c])),
                       hsum(countOneBits(x & sy[(*l).ya.z + c])),
                       hsum(countOneBits(x & sy[(*l).ya.w + c])));
    }
    return p;
}

// With TRAINING and SHIFTED: add the lane's column sums of P to the (lo, hi) pairs.
fn add_product_sums(l: ptr<function, ProductLane>, sums: vec4<u32>) {
    let base = ((*l).map % bpp.heads) * bpp.cols + (*l).c0;
    for (var k = 0u; k < (*l).n; k++) {
        let i = 2u * (base + k);
        let old = atomicAdd(&bp_sums[i], sums[k]);
        if (old + sums[k] < old) {
            atomicAdd(&bp_sums[i + 1u], 1u);
        }
    }
}

@compute @workgroup_size(64)
fn bits_product(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (g >= bpp.maps * bpp.quads) {
        return;
    }
    var l = product_lane(g);
    var sums = vec4<u32>(0u);
    for (var r = 0u; r < bpp.rows; r++) {
        let p = product_row(&l, r);
        let y = l.mul * vec4<f32>(p) - l.sub;
        let o = (l.map * bpp.rows + r) * bpp.cols + l.c0;
        for (var k = 0u; k < l.n; k++) {
            bp_y[o + k] = y[k];
        }
        sums += p;
    }
    if (SHIFTED && TRAINING) {
        add_product_sums(&l, sums);
    }
}

@compute @workgroup_size(64)
fn bits_product_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + lid;
    if (g >= bpp.maps * bpp.quads) {
        return;
    }
    var l = product_lane(g);
    var sums = vec4<u32>(0u);
    for (var r = 0u; r < bpp.rows; r++) {
        let p = product_row(&l, r);
        let o = (l.map * bpp.rows + r) * bpp.quads + l.c0 / 4u;
        bp_y4[o] = l.mul * vec4<f32>(p) - l.sub;
        sums += p;
    }
    if (SHIFTED && TRAINING) {
        add_product_sums(&l, sums);
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

// pack_columns4: the transposed packing (rows = C, row_stride = 1, bit_stride = C) when
// C is a multiple of 4: one invocation builds the words of 4 neighbouring columns from
// vec4 loads along each input row, a quarter of the strided loads.
@group(0) @binding(0) var<storage, read> pk_x4: array<vec4<f32>>;   // [batch, R, C / 4]
// (bindings 1 and 2 are `pk_bits` and `pkp`)

@compute @workgroup_size(256)
fn pack_columns4(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    let quads = pkp.rows / 4u;
    if (i >= pkp.batch * quads * pkp.wpr) {
        return;
    }
    let w = i % pkp.wpr;
    let c4 = (i / pkp.wpr) % quads;
    let b = i / (pkp.wpr * quads);
    let j0 = w * 32u;
    var words = vec4<u32>(0u);
    if (j0 < pkp.bits) {
        let n = min(32u, pkp.bits - j0);
        let base = (b * pkp.batch_stride + j0 * pkp.bit_stride) / 4u + c4;
        for (var j = 0u; j < n; j++) {
            let v = pk_x4[base + j * quads];
            words |= select(vec4<u32>(0u), vec4<u32>(1u << j), v > vec4<f32>(0.0));
        }
    }
    let out = (b * pkp.rows + 4u * c4) * pkp.wpr + w;
    pk_bits[out] = words.x;
    pk_bits[out + pkp.wpr] = words.y;
    pk_bits[out + 2u * pkp.wpr] = words.z;
    pk_bits[out + 3u * pkp.wpr] = words.w;
}

// ------------------------------------------------------------------------------------
// unpack_bits: bits [rows, wpr] -> {0,1} f32 [rows, cols]; with HAS_FACTOR, the ones
// become scale * factor[t, h] for the rows of map (t, b, h) (a binary map with the
// output scale of its product). One invocation per word, its values stored one by one
// (unpack_bits) or, cols a multiple of 4, as 8 vec4s (unpack_bits_vec4).

override HAS_FACTOR: bool = false;

struct UnpackParams {
    rows: u32,
    cols: u32,
    wpr: u32,
    rows_per_map: u32,
    maps_per_step: u32, // B * heads
    heads: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> up_bits: array<u32>;             // [rows, wpr]
@group(0) @binding(1) var<storage, read> up_factor: array<f32>;           // [T, heads]
@group(0) @binding(2) var<storage, read_write> up_out: array<f32>;        // [rows, cols]
@group(0) @binding(2) var<storage, read_write> up_out4: array<vec4<f32>>; // [rows, cols / 4]
@group(0) @binding(3) var<uniform> upp: UnpackParams;

// The word this invocation unpacks: its index, first column and value of a one; the
// column is past the end (>= cols) for the padding words and past the grid.
struct UnpackWord {
    i: u32,
    c0: u32,
    one: f32,
}

fn unpack_word(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> UnpackWord {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= upp.rows * upp.wpr) {
        return UnpackWord(i, upp.cols, 0.0);
    }
    let r = i / upp.wpr;
    var one = 1.0;
    if (HAS_FACTOR) {
        let map = r / upp.rows_per_map;
        one = upp.scale * up_factor[(map / upp.maps_per_step) * upp.heads + map % upp.heads];
    }
    return UnpackWord(i, (i % upp.wpr) * 32u, one);
}

@compute @workgroup_size(256)
fn unpack_bits(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let w = unpack_word(wid, nwg, lid);
    if (w.c0 >= upp.cols) {
        return;
    }
    let word = up_bits[w.i];
    let base = (w.i / upp.wpr) * upp.cols + w.c0;
    let n = min(32u, upp.cols - w.c0);
    for (var j = 0u; j < n; j++) {
        up_out[base + j] = select(0.0, w.one, ((word >> j) & 1u) != 0u);
    }
}

@compute @workgroup_size(256)
fn unpack_bits_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let w = unpack_word(wid, nwg, lid);
    if (w.c0 >= upp.cols) {
        return;
    }
    let word = up_bits[w.i];
    let base = ((w.i / upp.wpr) * upp.cols + w.c0) / 4u;
    let n = min(32u, upp.cols - w.c0);
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    for (var j = 0u; j < n; j += 4u) {
        let on = ((vec4<u32>(word >> j) >> lanes) & vec4<u32>(1u)) != vec4<u32>(0u);
        up_out4[base + j / 4u] = select(vec4<f32>(0.0), vec4<f32>(w.one), on);
    }
}

// ------------------------------------------------------------------------------------
// scale_all: y = x * scale.

struct ScaleParams {
    len: u32,
    scale: f32,
}

@group(0) @binding(0) var<storage, read> sc_x: array<f32>;
@group(0) @binding(1) var<storage, read_write> sc_y: array<f32>;
@group(0) @binding(2) var<uniform> scp: ScaleParams;

@compute @workgroup_size(256)
fn scale_all(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= scp.len) {
        return;
    }
    sc_y[i] = sc_x[i] * scp.scale;
}

// ------------------------------------------------------------------------------------
// lambda_grad: out[t, h] = scale * sum_{b, k} part[t, b, h, k], the partial sums of a
// map backward. One workgroup per (t, h), reduced through workgroup memory.

struct LambdaParams {
    batch: u32, // B
    heads: u32,
    inner: u32, // partials per (t, b, h)
    scale: f32,
}

@group(0) @binding(0) var<storage, read> lg_part: array<f32>;      // [T, B, heads, inner]
@group(0) @binding(1) var<storage, read_write> lg_out: array<f32>; // [T, heads]
@group(0) @binding(2) var<uniform> lgp: LambdaParams;

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
            acc += lg_part[base + k];
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
