// Exactly invertible coupling of BESTformer's reversible two-stream blocks
// (docs/reversible.md). A stream value x is held as an i32 count of 2^-20 (`fixed`),
// beside its f32 value for the sub-blocks. With a = a sub-block's f32 output and
// q(a) = round(a 2^20), clamped to +-2^30 (ties to even, as WGSL's round):
//   to_stream: fixed = q(x), value = fixed 2^-20 (the tokenizer's output)
//   couple:    HALVE: out = q(a) + floor((p + r) / 2), parity = (p + r) & 1
//                     (x2 = attn(x1) + (x0 + x1) / 2 and x3 = mlp(x2) + (x1 + x2) / 2)
//              else:  out = q(a) + p                (the first block's x2 = attn(x1) + x1)
//   uncouple:  HALVE: p = 2 (out - q(a)) + parity - r
//              else:  p = out - q(a)
// i32 arithmetic wraps, so uncouple inverts couple bit for bit for every input: the
// backward rebuilds a block's inputs exactly, and the sub-blocks recomputed on them
// reproduce the forward's spikes. One parity bit per element is kept per halving
// coupling, packed along the last axis as PackedBits rows.
//
// One invocation per parity word (or per element for to_stream), looping over the word's
// 32 values like pack.wgsl: no atomics, no barriers.

const SCALE: f32 = 1048576.0;      // 2^20
const LIMIT: f32 = 1073741824.0;   // 2^30: |q(a)| stays within half the i32 range
const WG: u32 = 256u;

override HALVE: bool = true;

fn quantize(a: f32) -> i32 {
    return i32(clamp(round(a * SCALE), -LIMIT, LIMIT));
}

fn value_of(fixed: i32) -> f32 {
    return f32(fixed) * (1.0 / SCALE);
}

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---- to_stream -----------------------------------------------------------------------

struct LenParams {
    len: u32,
}

@group(0) @binding(0) var<storage, read> ts_x: array<f32>;             // [len]
@group(0) @binding(1) var<storage, read_write> ts_fixed: array<i32>;   // [len]
@group(0) @binding(2) var<storage, read_write> ts_value: array<f32>;   // [len]
@group(0) @binding(3) var<uniform> ts: LenParams;

@compute @workgroup_size(256)
fn to_stream(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= ts.len) {
        return;
    }
    let f = quantize(ts_x[i]);
    ts_fixed[i] = f;
    ts_value[i] = value_of(f);
}

// ---- couple / uncouple ------------------------------------------------------------------

struct RowParams {
    rows: u32,
    k: u32,             // values per row (the last axis)
    words_per_row: u32, // parity words per row (PackedBits layout)
}

// The values a parity word covers: the first one's index, and how many (0 for the padding
// words of a row).
struct WordSpan {
    first: u32,
    n: u32,
}

fn word_span(word: u32, p: RowParams) -> WordSpan {
    let row = word / p.words_per_row;
    let col = (word % p.words_per_row) * 32u;
    return WordSpan(row * p.k + col, select(0u, min(32u, p.k - col), col < p.k));
}

@group(0) @binding(0) var<storage, read> cp_a: array<f32>;              // [rows, k]
@group(0) @binding(1) var<storage, read> cp_p: array<i32>;              // [rows, k]
@group(0) @binding(2) var<storage, read> cp_r: array<i32>;              // [rows, k] (HALVE)
@group(0) @binding(3) var<storage, read_write> cp_out: array<i32>;      // [rows, k]
@group(0) @binding(4) var<storage, read_write> cp_value: array<f32>;    // [rows, k]
@group(0) @binding(5) var<storage, read_write> cp_parity: array<u32>;   // [rows, words_per_row] (HALVE)
@group(0) @binding(6) var<uniform> cp: RowParams;

@compute @workgroup_size(256)
fn couple(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let word = linear_index(wid, nwg, lid);
    if (word >= cp.rows * cp.words_per_row) {
        return;
    }
    let span = word_span(word, cp);
    var bits = 0u;
    for (var b = 0u; b < span.n; b++) {
        let i = span.first + b;
        var out: i32;
        if (HALVE) {
            let sum = cp_p[i] + cp_r[i];
            bits |= u32(sum & 1) << b;
            out = quantize(cp_a[i]) + (sum >> 1u);
        } else {
            out = quantize(cp_a[i]) + cp_p[i];
        }
        cp_out[i] = out;
        cp_value[i] = value_of(out);
    }
    if (HALVE) {
        cp_parity[word] = bits;
    }
}

@group(0) @binding(0) var<storage, read> uc_out: array<i32>;            // [rows, k]
@group(0) @binding(1) var<storage, read> uc_a: array<f32>;              // [rows, k]
@group(0) @binding(2) var<storage, read> uc_r: array<i32>;              // [rows, k] (HALVE)
@group(0) @binding(3) var<storage, read> uc_parity: array<u32>;         // [rows, words_per_row] (HALVE)
@group(0) @binding(4) var<storage, read_write> uc_p: array<i32>;        // [rows, k]
@group(0) @binding(5) var<storage, read_write> uc_value: array<f32>;    // [rows, k]
@group(0) @binding(6) var<uniform> uc: RowParams;

@compute @workgroup_size(256)
fn uncouple(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let word = linear_index(wid, nwg, lid);
    if (word >= uc.rows * uc.words_per_row) {
        return;
    }
    let span = word_span(word, uc);
    var bits = 0u;
    if (HALVE) {
        bits = uc_parity[word];
    }
    for (var b = 0u; b < span.n; b++) {
        let i = span.first + b;
        let rest = uc_out[i] - quantize(uc_a[i]);
        var p: i32;
        if (HALVE) {
            p = 2 * rest + i32((bits >> b) & 1u) - uc_r[i];
        } else {
            p = rest;
        }
        uc_p[i] = p;
        uc_value[i] = value_of(p);
    }
}
