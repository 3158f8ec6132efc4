// Bit packing: f32 rows [rows, K] -> u32 words [rows, ceil(K/32)] along K, least
// significant bit first, each row zero-padded to a whole word.
//   SIGNS = false (spikes): bit = x > 0   ({0,1} spikes)
//   SIGNS = true  (signs):  bit = x >= 0  (sign(0) is taken as +1, so the unpacked
//                                          weight is +1 for bit 1 and -1 for bit 0)
// One invocation per word, looping over its 32 values: no workgroup atomics or
// barriers, which CPU drivers run slowly (10x here on lavapipe). GPUs would prefer
// coalesced reads, one value per invocation (see lif.wgsl's cooperative packing).

override SIGNS: bool = false;

struct Params {
    rows: u32,
    k: u32,
    words_per_row: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;          // [rows, k]
@group(0) @binding(1) var<storage, read_write> bits: array<u32>; // [rows, words_per_row]
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

// The values a word packs: the first one's index in x, and how many (0 for the padding
// words of a row).
struct WordSpan {
    first: u32,
    n: u32,
}

fn word_span(word: u32) -> WordSpan {
    let row = word / p.words_per_row;
    let col = (word % p.words_per_row) * 32u;
    return WordSpan(row * p.k + col, select(0u, min(32u, p.k - col), col < p.k));
}

@compute @workgroup_size(256)
fn pack(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let word = (wid.x + wid.y * nwg.x) * WG + lid;
    if (word >= p.rows * p.words_per_row) {
        return;
    }
    let span = word_span(word);
    var w = 0u;
    for (var b = 0u; b < span.n; b++) {
        let v = x[span.first + b];
        if (select(v > 0.0, v >= 0.0, SIGNS)) {
            w |= 1u << b;
        }
    }
    bits[word] = w;
}

// `pack` for K a multiple of 4: each word's values (a multiple of 4, from a multiple of
// 32) are read as vec4s, a quarter of the loads that bound the per-word loop.
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>; // [rows, k / 4]
// (bindings 1 and 2 are `bits` and `p`)

fn bits_of(v: vec4<f32>) -> vec4<u32> {
    return select(vec4<u32>(v > vec4<f32>(0.0)), vec4<u32>(v >= vec4<f32>(0.0)), SIGNS);
}

@compute @workgroup_size(256)
fn pack_vec4(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let word = (wid.x + wid.y * nwg.x) * WG + lid;
    if (word >= p.rows * p.words_per_row) {
        return;
    }
    let span = word_span(word);
    var w = 0u;
    for (var b = 0u; b < span.n; b += 4u) {
        let s = bits_of(x4[(span.first + b) / 4u]);
        w |= (s.x | (s.y << 1u) | (s.z << 2u) | (s.w << 3u)) << b;
    }
    bits[word] = w;
}
