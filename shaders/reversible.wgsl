// Exactly invertible coupling of BESTformer's reversible two-stream blocks
// (docs/reversible.md). A stream value x is held as a 64-bit two's-complement count of
// 2^-32 (`fixed`, as (lo, hi) u32 words), beside its f32 value for the sub-blocks. With
// a = a sub-block's f32 output and q(a) = a in those units (clamped to +-2^30, rounded
// toward zero below 2^-32):
//   to_stream: fixed = q(x), value = f32(fixed 2^-32) (the tokenizer's output)
//   couple:    HALVE: out = q(a) + floor((p + r) / 2), parity = (p + r) & 1
//                     (x2 = attn(x1) + (x0 + x1) / 2 and x3 = mlp(x2) + (x1 + x2) / 2)
//              else:  out = q(a) + p                (the first block's x2 = attn(x1) + x1)
//   uncouple:  HALVE: p = 2 (out - q(a)) + parity - r
//              else:  p = out - q(a)
// The arithmetic wraps, so uncouple inverts couple bit for bit for every input: the
// backward rebuilds a block's inputs exactly, and the sub-blocks recomputed on them
// reproduce the forward's spikes. 2^-32 is finer than f32's rounding of any value above
// 2^-9, so the f32 values the sub-blocks read are those of exact real arithmetic rounded
// once or twice. One parity bit per element is kept per halving coupling, packed along
// the last axis as PackedBits rows.
//
// One invocation per parity word (or per element for to_stream), looping over the word's
// 32 values like pack.wgsl: no atomics, no barriers.

const LIMIT: f32 = 1073741824.0;   // 2^30
const TWO_32: f32 = 4294967296.0;
const WG: u32 = 256u;

override HALVE: bool = true;

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn neg64(a: vec2<u32>) -> vec2<u32> {
    return add64(~a, vec2<u32>(1u, 0u));
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return add64(a, neg64(b));
}

fn is_negative(a: vec2<u32>) -> bool {
    return (a.y >> 31u) == 1u;
}

// floor(a / 2): an arithmetic shift right by one.
fn half64(a: vec2<u32>) -> vec2<u32> {
    return vec2<u32>((a.x >> 1u) | (a.y << 31u), bitcast<u32>(bitcast<i32>(a.y) >> 1u));
}

// 2 a + bit.
fn twice64(a: vec2<u32>, bit: u32) -> vec2<u32> {
    return vec2<u32>((a.x << 1u) | bit, (a.y << 1u) | (a.x >> 31u));
}

// |a| splits exactly into its whole part and its fraction (Sterbenz), each converted
// exactly (the fraction truncated below 2^-32).
fn quantize(a: f32) -> vec2<u32> {
    let m = abs(clamp(a, -LIMIT, LIMIT));
    let whole = floor(m);
    let magnitude = vec2<u32>(u32((m - whole) * TWO_32), u32(whole));
    return select(magnitude, neg64(magnitude), a < 0.0);
}

fn value_of(fixed: vec2<u32>) -> f32 {
    let m = select(fixed, neg64(fixed), is_negative(fixed));
    let v = f32(m.y) + f32(m.x) * (1.0 / TWO_32);
    return select(v, -v, is_negative(fixed));
}

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---- to_stream -----------------------------------------------------------------------

struct LenParams {
    len: u32,
}

@group(0) @binding(0) var<storage, read> ts_x: array<f32>;                       // [len]
@group(0) @binding(1) var<storage, read_write> ts_fixed: array<vec2<u32>>;       // [len]
@group(0) @binding(2) var<storage, read_write> ts_value: array<f32>;             // [len]
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

@group(0) @binding(0) var<storage, read> cp_a: array<f32>;                       // [rows, k]
@group(0) @binding(1) var<storage, read> cp_p: array<vec2<u32>>;                 // [rows, k]
@group(0) @binding(2) var<storage, read> cp_r: array<vec2<u32>>;                 // [rows, k] (HALVE)
@group(0) @binding(3) var<storage, read_write> cp_out: array<vec2<u32>>;         // [rows, k]
@group(0) @binding(4) var<storage, read_write> cp_value: array<f32>;             // [rows, k]
@group(0) @binding(5) var<storage, read_write> cp_parity: array<u32>;            // [rows, words_per_row] (HALVE)
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
        var out: vec2<u32>;
        if (HALVE) {
            let sum = add64(cp_p[i], cp_r[i]);
            bits |= (sum.x & 1u) << b;
            out = add64(quantize(cp_a[i]), half64(sum));
        } else {
            out = add64(quantize(cp_a[i]), cp_p[i]);
        }
        cp_out[i] = out;
        cp_value[i] = value_of(out);
    }
    if (HALVE) {
        cp_parity[word] = bits;
    }
}

@group(0) @binding(0) var<storage, read> uc_out: array<vec2<u32>>;               // [rows, k]
@group(0) @binding(1) var<storage, read> uc_a: array<f32>;                       // [rows, k]
@group(0) @binding(2) var<storage, read> uc_r: array<vec2<u32>>;                 // [rows, k] (HALVE)
@group(0) @binding(3) var<storage, read> uc_parity: array<u32>;                  // [rows, words_per_row] (HALVE)
@group(0) @binding(4) var<storage, read_write> uc_p: array<vec2<u32>>;           // [rows, k]
@group(0) @binding(5) var<storage, read_write> uc_value: array<f32>;             // [rows, k]
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
        let rest = sub64(uc_out[i], quantize(uc_a[i]));
        var p = rest;
        if (HALVE) {
            p = sub64(twice64(rest, (bits >> b) & 1u), uc_r[i]);
        }
        uc_p[i] = p;
        uc_value[i] = value_of(p);
    }
}
