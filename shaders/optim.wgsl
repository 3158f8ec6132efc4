// Optimizer kernels over a model's flat parameter buffer (every parameter one range of
// it), so one dispatch updates all parameters.
//
// sum_squares: partial sums of g^2, one per workgroup, for gradient-norm clipping;
// clip_scale: folds the partial sums into scale = min(1, max_norm / (norm + 1e-6)).
// adamw: PyTorch's AdamW (decoupled weight decay), with bias correction, elements
// below `decay_end` decayed (timm's rule: no decay for biases and norm parameters, which
// the host places after `decay_end`), gradients multiplied by the clip scale.

struct SumParams {
    len: u32,
    partials: u32, // number of partial sums (clip_scale)
    max_norm: f32,
}

struct AdamParams {
    len: u32,
    decay_end: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32, // 1 - beta1^step
    bias_correction2: f32, // 1 - beta2^step
}

const WG: u32 = 256u;

// With CLIP = false the gradient scale is 1 and `grad_scale` is not read (bind anything).
override CLIP: bool = false;

@group(0) @binding(0) var<storage, read> sq_in: array<f32>;          // [len] gradients, or [partials]
@group(0) @binding(1) var<storage, read_write> sq_out: array<f32>;   // [groups] partial sums, or [1] scale
@group(0) @binding(2) var<uniform> sp: SumParams;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(256)
fn sum_squares(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * nwg.x;
    // Each invocation sums 4 elements strided by the workgroup, then a tree reduction.
    var s = 0.0;
    for (var j = 0u; j < 4u; j++) {
        let i = group * WG * 4u + j * WG + lid;
        if (i < sp.len) {
            let g = sq_in[i];
            s += g * g;
        }
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        sq_out[group] = partial[0];
    }
}

@compute @workgroup_size(256)
fn clip_scale(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < sp.partials; i += WG) {
        s += sq_in[i];
    }
    partial[lid] = s;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        sq_out[0] = min(1.0, sp.max_norm / (sqrt(partial[0]) + 1e-6));
    }
}

@group(0) @binding(0) var<storage, read> grad: array<f32>;            // [len]
@group(0) @binding(1) var<storage, read> grad_scale: array<f32>;      // [1] (clip scale)
@group(0) @binding(2) var<storage, read_write> param: array<f32>;     // [len]
@group(0) @binding(3) var<storage, read_write> moment1: array<f32>;   // [len]
@group(0) @binding(4) var<storage, read_write> moment2: array<f32>;   // [len]
@group(0) @binding(5) var<uniform> ap: AdamParams;

@compute @workgroup_size(256)
fn adamw(@builtin(workgroup_id) wid: vec3<u32>,
         @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i >= ap.len) {
        return;
    }
    var g = grad[i];
    if (CLIP) {
        g *= grad_scale[0];
    }
    var p = param[i];
    if (i < ap.decay_end) {
        p *= 1.0 - ap.lr * ap.weight_decay;
    }
    let m = ap.beta1 * moment1[i] + (1.0 - ap.beta1) * g;
    let v = ap.beta2 * moment2[i] + (1.0 - ap.beta2) * g * g;
    moment1[i] = m;
    moment2[i] = v;
    let m_hat = m / ap.bias_correction1;
    let v_hat = v / ap.bias_correction2;
    param[i] = p - ap.lr * m_hat / (sqrt(v_hat) + ap.eps);
}
