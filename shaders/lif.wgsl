// The spiking neuron family, fused over time (docs/models.md sections 1 and 6; CPU oracle in
// src/reference/lif.rs). Tensors are time first, [T, neurons], where the neurons of one
// step are [rows, features] and features is the last dimension (the packing dimension).
// Every forward and backward entry point is one dispatch: each invocation owns one
// neuron (4 or 32 in the packed forwards) and loops over t keeping the membrane V in a
// register, so every element of every tensor is read or written once.
//
// Neurons (override NEURON), with k = 1/tau and v_reset = 0 for the soft reset:
//   0 LIF (SpikingJelly MultiStepLIFNode):  S = 1 if H >= v_th else 0
//   1 ternary:  S = +1 if H >= v_th, -1 if H <= -v_th, else 0 (same charge and reset)
//   2 threshold (binary attention): stateless, H = X, S = 1 if X >= v_th else 0
// charge (DECAY_INPUT):  H = V + (X - (V - v_reset)) * k
// charge (otherwise):    H = V - (V - v_reset) * k + X
// reset (HARD_RESET):    V = H (1 - |S|) + v_reset |S|, computed as select(H, v_reset, S != 0)
//                        (the same value, exactly); V starts at v_reset
// reset (soft):          V = H - v_th S; V starts at 0
// |S| is the spike magnitude: the ternary neuron resets on a spike of either sign.
//
// Backward (BPTT, t = T-1 .. 0), g = the surrogate derivative (SURROGATE):
//   0 Sigmoid(alpha):  g(x) = alpha sg (1 - sg), sg = sigmoid(alpha x)
//   1 ATan(alpha):     g(x) = alpha / (2 (1 + (pi/2 alpha x)^2))
// dS/dH = g(H - v_th) for the binary neurons. The ternary S is the sum of a +1 step at
// H - v_th and a -1 step at -(H + v_th), so its surrogate is the sum of the two:
//   dS/dH = g(H - v_th) + g(-(H + v_th)),  d|S|/dH = g(H - v_th) - g(-(H + v_th)).
// dV/dH (g_vh): hard+detach 1 - |S|; soft+detach 1;
//               hard, no detach 1 - |S| + (v_reset - H) d|S|/dH; soft, no detach 1 - v_th dS/dH
// grad_H[t] = grad_S[t] dS/dH + (grad_V[t] + grad_H[t+1] (1 - k)) g_vh,  grad_V[t] = 0
// grad_X[t] = grad_H[t] k (DECAY_INPUT) or grad_H[t]; the threshold: grad_X = grad_S dS/dH.
// S is recomputed from the saved H (the forward fired on exactly that value).
//
// The Q-SNN neuron (qsnn_* entry points, Wenjie-Wei/Q-SNN LIFSpike) is separate: its
// membrane is quantized with a scale that is a maximum over the whole layer at each step,
// so its forward is one dispatch per step (see qsnn_step).

override NEURON: u32 = 0u;
override HARD_RESET: bool = true;
override DECAY_INPUT: bool = true;
override DETACH_RESET: bool = true;
override SURROGATE: u32 = 0u;
override WRITE_SPIKES: bool = true; // forward: write f32 spikes (else `spikes` is a dummy)
override WRITE_H: bool = true;      // forward: write H (else `h_out` is a dummy)

struct Params {
    t_steps: u32,
    neurons: u32,       // per time step: rows * features
    rows: u32,
    features: u32,
    words_per_row: u32, // ceil(features / 128) * 4, for the packed output
    k: f32,             // 1 / tau
    v_th: f32,
    v_reset: f32,       // 0 for the soft reset
    alpha: f32,         // surrogate sharpness
}

const WG: u32 = 256u;
const HALF_PI: f32 = 1.5707963267948966;

// The neuron on 4 neurons at once (forward_packed); the scalar forms below are its first
// lane, so each formula has one source.
fn charge4(c: Params, v: vec4<f32>, x: vec4<f32>) -> vec4<f32> {
    if (NEURON == 2u) {
        return x;
    }
    if (DECAY_INPUT) {
        return v + (x - (v - c.v_reset)) * c.k;
    }
    return v - (v - c.v_reset) * c.k + x;
}

fn fire4(c: Params, h: vec4<f32>) -> vec4<f32> {
    let zero = vec4<f32>(0.0);
    let one = vec4<f32>(1.0);
    if (NEURON == 1u) {
        return select(select(zero, -one, h <= vec4<f32>(-c.v_th)), one, h >= vec4<f32>(c.v_th));
    }
    return select(zero, one, h >= vec4<f32>(c.v_th));
}

fn reset4(c: Params, h: vec4<f32>, s: vec4<f32>) -> vec4<f32> {
    if (HARD_RESET) {
        return select(h, vec4<f32>(c.v_reset), s != vec4<f32>(0.0));
    }
    return h - c.v_th * s; // exact: s is -1, 0 or 1
}

fn charge(c: Params, v: f32, x: f32) -> f32 {
    return charge4(c, vec4<f32>(v), vec4<f32>(x)).x;
}

fn fire(c: Params, h: f32) -> f32 {
    return fire4(c, vec4<f32>(h)).x;
}

fn reset(c: Params, h: f32, s: f32) -> f32 {
    return reset4(c, vec4<f32>(h), vec4<f32>(s)).x;
}

fn v_initial(c: Params) -> f32 {
    return select(0.0, c.v_reset, HARD_RESET);
}

fn surrogate_grad(c: Params, x: f32) -> f32 {
    if (SURROGATE == 1u) {
        let z = HALF_PI * c.alpha * x;
        return c.alpha / (2.0 * (1.0 + z * z));
    }
    let sg = 1.0 / (1.0 + exp(-c.alpha * x));
    return c.alpha * sg * (1.0 - sg);
}

// ---------------------------------------------------------------------------------------
// Forward. `packed` is only written by forward_packed (bind any buffer otherwise).

@group(0) @binding(0) var<storage, read> x: array<f32>;            // [T, neurons]
@group(0) @binding(1) var<storage, read_write> spikes: array<f32>; // [T, neurons]
@group(0) @binding(2) var<storage, read_write> h_out: array<f32>;  // [T, neurons]
@group(0) @binding(3) var<storage, read_write> packed: array<u32>; // [T, rows, words_per_row]
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let c = p;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= c.neurons) {
        return;
    }
    var v = v_initial(c);
    for (var t = 0u; t < c.t_steps; t++) {
        let at = t * c.neurons + i;
        let h = charge(c, v, x[at]);
        let s = fire(c, h);
        if (WRITE_SPIKES) {
            spikes[at] = s;
        }
        if (WRITE_H) {
            h_out[at] = h;
        }
        v = reset(c, h, s);
    }
}

// The forward with spikes also written packed along features (the bit layout of
// pack.wgsl: LSB first, rows of words_per_row words, zero padded), so that the binary
// matmul reads them with no extra pass. Two entry points write identical words; the host
// picks by adapter (ops::lif::PackKernel), as the fast choice differs:
//
// forward_packed (GPUs): invocation (slot, q) of a workgroup owns the 4 neurons
// (row, 32 w + 4 q + 0..3) of word (row, w) = group * 32 + slot and keeps their membranes
// in one vec4 register, so consecutive invocations touch consecutive 16-byte runs
// (coalesced). The 32 bits of a word come from 8 invocations; none needs an atomic: each
// gathers its 4-bit spike nibbles of up to 8 steps in a u32 register ("train", nibble dt =
// step t0 + dt), stores it once to workgroup memory, and after a barrier invocation
// (slot, q) assembles word (row, w) of step t0 + q from its slot's 8 trains (8 loads a
// word). Two barriers per 8 steps.
//
// forward_packed_words (CPU drivers): one invocation per word, its 32 membranes in 8 vec4
// registers; no barrier and no workgroup memory, but each invocation reads a 128-byte run,
// a stride across invocations that GPUs coalesce poorly. On lavapipe the barriers are
// what costs (forward_packed ran in 8 ms with them removed): for [4, 2048, 384] this takes
// 5.6 ms against 24 ms for forward_packed, 60 ms for a first version that ORed each spike
// into workgroup memory with atomicOr, and about 10 ms for the f32 forward writing S, H.
//
// In both, rows whose features are not a multiple of 32 idle part of their last word's
// lanes, and the reads past a row's end (x[at + 1..3] of a partial quad) are masked out.

const WORDS_PER_GROUP: u32 = 32u; // WG / 8 invocations per word
const T_CHUNK: u32 = 8u;          // 4-bit nibbles per u32 train
var<workgroup> trains: array<u32, 256>; // [WORDS_PER_GROUP, 8 invocations]

// `forward` on 4 neurons per invocation (neurons a multiple of 4): vec4 loads and
// stores, a quarter of the memory instructions that bound it on CPU drivers. With AFFINE
// the input is a BatchNorm's output computed as it is read, x * scale + shift per feature
// from coef [2, features] = (scale, shift) (features a multiple of 4), so the normalized
// tensor is never written nor read back (ops::lif::lif_forward_affine).
override AFFINE: bool = false;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;            // [T, neurons / 4]
@group(0) @binding(1) var<storage, read_write> spikes4: array<vec4<f32>>; // [T, neurons / 4]
@group(0) @binding(2) var<storage, read_write> h_out4: array<vec4<f32>>;  // [T, neurons / 4]
@group(0) @binding(3) var<storage, read> coef4: array<vec4<f32>>;         // [2, features / 4] (AFFINE)
// (binding 4 is `p`)

@compute @workgroup_size(256)
fn forward_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let c = p;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    let n4 = c.neurons / 4u;
    if (i >= n4) {
        return;
    }
    var scale = vec4<f32>(1.0);
    var shift = vec4<f32>(0.0);
    if (AFFINE) {
        let f4 = c.features / 4u;
        scale = coef4[i % f4];
        shift = coef4[f4 + i % f4];
    }
    var v = vec4<f32>(v_initial(c));
    for (var t = 0u; t < c.t_steps; t++) {
        let at = t * n4 + i;
        var x = x4[at];
        if (AFFINE) {
            x = x * scale + shift;
        }
        let h = charge4(c, v, x);
        let s = fire4(c, h);
        if (WRITE_SPIKES) {
            spikes4[at] = s;
        }
        if (WRITE_H) {
            h_out4[at] = h;
        }
        v = reset4(c, h, s);
    }
}

@compute @workgroup_size(256)
fn forward_packed(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let c = p;
    let slot = lid / 8u;
    let q = lid % 8u;
    let word = (wid.x + wid.y * nwg.x) * WORDS_PER_GROUP + slot; // row * words_per_row + w
    let words = c.rows * c.words_per_row;
    let row = word / c.words_per_row;
    let col = (word % c.words_per_row) * 32u + 4u * q;
    // Live neurons of this invocation (0..4).
    let n = select(0u, min(4u, c.features - col), word < words && col < c.features);
    let live = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n);
    let base = row * c.features + col;
    var v = vec4<f32>(v_initial(c));
    for (var t0 = 0u; t0 < c.t_steps; t0 += T_CHUNK) {
        let steps = min(T_CHUNK, c.t_steps - t0);
        var train = 0u;
        for (var dt = 0u; dt < steps; dt++) {
            if (n > 0u) {
                let at = (t0 + dt) * c.neurons + base;
                // Past the row's end: the next row, or clamped at the buffer's end;
                // masked out below.
                let xv = vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
                let h = charge4(c, v, xv);
                let s = fire4(c, h);
                if (WRITE_SPIKES) {
                    spikes[at] = s.x;
                    if (n > 1u) { spikes[at + 1u] = s.y; }
                    if (n > 2u) { spikes[at + 2u] = s.z; }
                    if (n > 3u) { spikes[at + 3u] = s.w; }
                }
                if (WRITE_H) {
                    h_out[at] = h.x;
                    if (n > 1u) { h_out[at + 1u] = h.y; }
                    if (n > 2u) { h_out[at + 2u] = h.z; }
                    if (n > 3u) { h_out[at + 3u] = h.w; }
                }
                let bits = select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u),
                                  s != vec4<f32>(0.0) & live);
                train |= (bits.x | bits.y | bits.z | bits.w) << (4u * dt);
                v = reset4(c, h, s);
            }
        }
        trains[lid] = train;
        // Required, though lavapipe cannot show it: there a slot's 8 invocations run as
        // one 8-wide SIMD group, so tests on it pass without this barrier.
        workgroupBarrier();
        // Invocation (slot, q) assembles word (row, w) of step t0 + q.
        if (word < words && q < steps) {
            var packed_word = 0u;
            for (var j = 0u; j < 8u; j++) {
                packed_word |= ((trains[slot * 8u + j] >> (4u * q)) & 0xFu) << (4u * j);
            }
            packed[(t0 + q) * words + word] = packed_word;
        }
        workgroupBarrier();
    }
}

// forward_packed_words (see forward_packed above for the choice between the two).

// One step of the 4 neurons at `at` (m of them live, m >= 1): writes S and H, updates the
// membranes, returns the spike nibble.
fn quad_step(c: Params, v: ptr<function, vec4<f32>>, at: u32, m: u32) -> u32 {
    let xv = vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
    let h = charge4(c, *v, xv);
    let s = fire4(c, h);
    if (WRITE_SPIKES) {
        spikes[at] = s.x;
        if (m > 1u) { spikes[at + 1u] = s.y; }
        if (m > 2u) { spikes[at + 2u] = s.z; }
        if (m > 3u) { spikes[at + 3u] = s.w; }
    }
    if (WRITE_H) {
        h_out[at] = h.x;
        if (m > 1u) { h_out[at + 1u] = h.y; }
        if (m > 2u) { h_out[at + 2u] = h.z; }
        if (m > 3u) { h_out[at + 3u] = h.w; }
    }
    *v = reset4(c, h, s);
    let live = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(m);
    let bits = select(vec4<u32>(0u), vec4<u32>(1u, 2u, 4u, 8u), s != vec4<f32>(0.0) & live);
    return bits.x | bits.y | bits.z | bits.w;
}

@compute @workgroup_size(256)
fn forward_packed_words(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let c = p;
    let word = (wid.x + wid.y * nwg.x) * WG + lid;
    let words = c.rows * c.words_per_row;
    if (word >= words) {
        return;
    }
    let row = word / c.words_per_row;
    let col = (word % c.words_per_row) * 32u;
    if (col >= c.features) {
        // A padding word of the row's last 128-bit group.
        for (var t = 0u; t < c.t_steps; t++) {
            packed[t * words + word] = 0u;
        }
        return;
    }
    let n = min(32u, c.features - col); // live neurons of this word (1..32)
    let base = row * c.features + col;
    var v0 = vec4<f32>(v_initial(c));
    var v1 = v0;
    var v2 = v0;
    var v3 = v0;
    var v4 = v0;
    var v5 = v0;
    var v6 = v0;
    var v7 = v0;
    for (var t = 0u; t < c.t_steps; t++) {
        let at = t * c.neurons + base;
        var w = quad_step(c, &v0, at, n);
        if (n > 4u) { w |= quad_step(c, &v1, at + 4u, n - 4u) << 4u; }
        if (n > 8u) { w |= quad_step(c, &v2, at + 8u, n - 8u) << 8u; }
        if (n > 12u) { w |= quad_step(c, &v3, at + 12u, n - 12u) << 12u; }
        if (n > 16u) { w |= quad_step(c, &v4, at + 16u, n - 16u) << 16u; }
        if (n > 20u) { w |= quad_step(c, &v5, at + 20u, n - 20u) << 20u; }
        if (n > 24u) { w |= quad_step(c, &v6, at + 24u, n - 24u) << 24u; }
        if (n > 28u) { w |= quad_step(c, &v7, at + 28u, n - 28u) << 28u; }
        packed[t * words + word] = w;
    }
}

// ---------------------------------------------------------------------------------------
// Backward.

@group(0) @binding(0) var<storage, read> grad_s: array<f32>;       // [T, neurons]
@group(0) @binding(1) var<storage, read> h_in: array<f32>;         // [T, neurons]
@group(0) @binding(2) var<storage, read_write> grad_x: array<f32>; // [T, neurons]
@group(0) @binding(3) var<uniform> pb: Params;

// (dS/dH, d|S|/dH) at h.
fn spike_grads(c: Params, h: f32) -> vec2<f32> {
    let up = surrogate_grad(c, h - c.v_th);
    if (NEURON == 1u) {
        let down = surrogate_grad(c, -(h + c.v_th));
        return vec2<f32>(up + down, up - down);
    }
    return vec2<f32>(up, up);
}

// dV/dH through the reset, given the spike magnitude a = |S|.
fn dv_dh(c: Params, h: f32, a: f32, g: vec2<f32>) -> f32 {
    if (DETACH_RESET) {
        return select(1.0, 1.0 - a, HARD_RESET);
    }
    if (HARD_RESET) {
        return 1.0 - a + (c.v_reset - h) * g.y;
    }
    return 1.0 - c.v_th * g.x;
}

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let c = pb;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= c.neurons) {
        return;
    }
    var grad_h = 0.0; // dL/dH[t+1]
    for (var t = c.t_steps; t > 0u; t--) {
        let at = (t - 1u) * c.neurons + i;
        let h = h_in[at];
        let g = spike_grads(c, h);
        if (NEURON == 2u) {
            grad_x[at] = grad_s[at] * g.x;
            continue;
        }
        let a = abs(fire(c, h));
        let grad_v = 0.0; // no loss term reads V[t] directly
        grad_h = grad_s[at] * g.x + (grad_v + grad_h * (1.0 - c.k)) * dv_dh(c, h, a, g);
        grad_x[at] = select(grad_h, grad_h * c.k, DECAY_INPUT);
    }
}

// ---------------------------------------------------------------------------------------
// Q-SNN neuron (docs/models.md section 6, after Wenjie-Wei/Q-SNN models/layers.py LIFSpike):
//   H[t] = decay Vq[t-1] + X[t]          (Vq[-1] = 0; decay 0.5 = tau 2 without decay_input)
//   S[t] = 1 if H[t] > v_th else 0       (strict)
//   M[t] = (1 - S[t]) H[t]               (hard reset to 0, not detached)
//   U[t] = tanh(M[t]),  alpha[t] = max over the whole layer of |U[t]|
//   Vq[t] = round(clamp(U / alpha, -1, 1) levels) alpha / levels,  levels = 2^(b-1) - 1
//           (0 where alpha = 0), round half to even as torch.round
// Backward: straight-through, dVq/dM = 1 - U^2 (alpha is detached); triangle surrogate
// dS/dH = max(0, gamma - |H - v_th|) / gamma^2 (ZIF, gamma = 1 gives max(0, 1 - |x|)):
//   grad_M[t] = grad_H[t+1] decay (1 - U[t]^2)
//   grad_H[t] = grad_S[t] dS/dH + grad_M[t] ((1 - S[t]) - H[t] dS/dH) = grad_X[t]
// alpha[t] couples all neurons at step t, so the forward is one dispatch per step: the
// dispatch for step t quantizes U[t-1] with alpha[t-1] (complete once dispatch t-1 ended),
// fires, stores U[t] and folds max |U[t]| into qmax[t] (a workgroup maximum, then one
// global atomicMax per workgroup; non-negative f32 order like their bits as u32).

struct QParams {
    t_steps: u32,
    neurons: u32,
    t: u32,       // the step this dispatch computes
    levels: f32,  // 2^(bits-1) - 1
    decay: f32,
    v_th: f32,
    gamma: f32,
}

@group(0) @binding(1) var<storage, read_write> q_state: array<f32>;        // [neurons] U[t-1]
@group(0) @binding(2) var<storage, read_write> q_max: array<atomic<u32>>;  // [T] alpha bits
@group(0) @binding(3) var<storage, read_write> q_spikes: array<f32>;       // [T, neurons]
@group(0) @binding(4) var<storage, read_write> q_h: array<f32>;            // [T, neurons]
@group(0) @binding(5) var<uniform> qp: QParams;

var<workgroup> step_max: atomic<u32>;

fn quantize(u: f32, alpha: f32, levels: f32) -> f32 {
    if (!(alpha > 0.0)) {
        return 0.0;
    }
    return round(clamp(u / alpha, -1.0, 1.0) * levels) * alpha / levels;
}

@compute @workgroup_size(256)
fn qsnn_step(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let c = qp;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (lid == 0u) {
        atomicStore(&step_max, 0u);
    }
    workgroupBarrier();
    if (i < c.neurons) {
        var v = 0.0;
        if (c.t > 0u) {
            v = quantize(q_state[i], bitcast<f32>(atomicLoad(&q_max[c.t - 1u])), c.levels);
        }
        let at = c.t * c.neurons + i; // x is binding 0 of the forward
        let h = v * c.decay + x[at];
        let fired = h > c.v_th;
        let u = tanh(select(h, 0.0, fired));
        q_spikes[at] = select(0.0, 1.0, fired);
        q_h[at] = h;
        q_state[i] = u;
        atomicMax(&step_max, bitcast<u32>(abs(u)));
    }
    workgroupBarrier();
    if (lid == 0u) {
        atomicMax(&q_max[c.t], atomicLoad(&step_max));
    }
}

@group(0) @binding(3) var<uniform> qbp: QParams;

@compute @workgroup_size(256)
fn qsnn_backward(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let c = qbp;
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= c.neurons) {
        return;
    }
    let inv_gamma = 1.0 / c.gamma;
    var grad_h = 0.0; // dL/dH[t+1]
    for (var t = c.t_steps; t > 0u; t--) {
        let at = (t - 1u) * c.neurons + i;
        let h = h_in[at];
        let fired = h > c.v_th;
        let s = select(0.0, 1.0, fired);
        let g = inv_gamma * inv_gamma * max(c.gamma - abs(h - c.v_th), 0.0);
        let u = tanh(select(h, 0.0, fired));
        let grad_m = grad_h * c.decay * (1.0 - u * u);
        grad_h = grad_s[at] * g + grad_m * ((1.0 - s) - h * g);
        grad_x[at] = grad_h;
    }
}
