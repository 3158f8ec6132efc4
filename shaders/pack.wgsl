// Bit packing: f32 rows [rows, K] -> u32 words [rows, ceil(K/32)] along K, least
// significant bit first, each row zero-padded to a whole word.
//   SIGNS = false (spikes): bit = x > 0   ({0,1} spikes)
//   SIGNS = true  (signs):  bit = x >= 0  (sign(0) is taken as +1, so the unpacked
//                                          weight is +1 for bit 1 and -1 for bit 0)
// Each workgroup builds 8 words; invocation (slot, bit) reads one element, so reads are
// coalesced across the workgroup.

override SIGNS: bool = false;

struct Params {
    rows: u32,
    k: u32,
    words_per_row: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;          // [rows, k]
@group(0) @binding(1) var<storage, read_write> bits: array<u32>; // [rows, words_per_row]
@group(0) @binding(2) var<uniform> p: Params;

const WORDS_PER_GROUP: u32 = 8u;
var<workgroup> words: array<atomic<u32>, WORDS_PER_GROUP>;

@compute @workgroup_size(256)
fn pack(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let slot = lid / 32u;
    let bit = lid % 32u;
    if (bit == 0u) {
        atomicStore(&words[slot], 0u);
    }
    workgroupBarrier();
    let word = (wid.x + wid.y * nwg.x) * WORDS_PER_GROUP + slot;
    let total = p.rows * p.words_per_row;
    if (word < total) {
        let row = word / p.words_per_row;
        let col = (word % p.words_per_row) * 32u + bit;
        if (col < p.k) {
            let v = x[row * p.k + col];
            let on = select(v > 0.0, v >= 0.0, SIGNS);
            if (on) {
                atomicOr(&words[slot], 1u << bit);
            }
        }
    }
    workgroupBarrier();
    if (bit == 0u && word < total) {
        bits[word] = atomicLoad(&words[slot]);
    }
}
