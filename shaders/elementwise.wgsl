// Small elementwise helpers the layers and models call between the big kernels:
//   weighted_sum: out = c0 x0 + c1 x1 + c2 x2 over the first TERMS terms (residual adds,
//                 the reversible blocks' a + (b + c) / 2 and their inverses, scaling)
//   axpy:         y += alpha x (gradient accumulation on residual paths)
//   lerp:         y += alpha (x - y) (an exponential moving average of the weights)
//   add_bias:     y[r, c] += bias[c] over rows of a channel-last [rows, C] tensor
//   copy_range:   dst[dst_offset + i] = src[src_offset + i], i < len (chunked layers)
//   relu:         y = max(x, 0) (A2OS2A's non-negative K)
//   relu_backward: dx = dy where x > 0, else 0
// One invocation per element; the linear index is `wid.x + wid.y * nwg.x` workgroups.

const WG: u32 = 256u;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---- weighted_sum ------------------------------------------------------------------

override TERMS: u32 = 3u; // 1, 2 or 3: terms past TERMS are never read

struct SumParams {
    len: u32,
    c0: f32,
    c1: f32,
    c2: f32,
}

@group(0) @binding(0) var<storage, read> ws_x0: array<f32>;        // [len]
@group(0) @binding(1) var<storage, read> ws_x1: array<f32>;        // [len] (TERMS >= 2)
@group(0) @binding(2) var<storage, read> ws_x2: array<f32>;        // [len] (TERMS == 3)
@group(0) @binding(3) var<storage, read_write> ws_out: array<f32>; // [len]
@group(0) @binding(4) var<uniform> ws: SumParams;

@compute @workgroup_size(256)
fn weighted_sum(@builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= ws.len) {
        return;
    }
    var v = ws.c0 * ws_x0[i];
    if (TERMS >= 2u) {
        v += ws.c1 * ws_x1[i];
    }
    if (TERMS >= 3u) {
        v += ws.c2 * ws_x2[i];
    }
    ws_out[i] = v;
}

// ---- axpy --------------------------------------------------------------------------

struct AxpyParams {
    len: u32,
    alpha: f32,
}

@group(0) @binding(0) var<storage, read> ax_x: array<f32>;       // [len]
@group(0) @binding(1) var<storage, read_write> ax_y: array<f32>; // [len]
@group(0) @binding(2) var<uniform> ax: AxpyParams;

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < ax.len) {
        ax_y[i] += ax.alpha * ax_x[i];
    }
}

// ---- lerp (shares axpy's bindings) -----------------------------------------------

@compute @workgroup_size(256)
fn lerp(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < ax.len) {
        ax_y[i] += ax.alpha * (ax_x[i] - ax_y[i]);
    }
}

// ---- add_bias ----------------------------------------------------------------------

struct BiasParams {
    len: u32,      // rows * channels
    channels: u32,
}

@group(0) @binding(0) var<storage, read> bias: array<f32>;       // [channels]
@group(0) @binding(1) var<storage, read_write> by: array<f32>;   // [rows, channels]
@group(0) @binding(2) var<uniform> bp: BiasParams;

@compute @workgroup_size(256)
fn add_bias(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < bp.len) {
        by[i] += bias[i % bp.channels];
    }
}

// ---- copy_range --------------------------------------------------------------------

struct RangeParams {
    len: u32,
    src_offset: u32,
    dst_offset: u32,
}

@group(0) @binding(0) var<storage, read> cr_src: array<f32>;       // [>= src_offset + len]
@group(0) @binding(1) var<storage, read_write> cr_dst: array<f32>; // [>= dst_offset + len]
@group(0) @binding(2) var<uniform> cr: RangeParams;

@compute @workgroup_size(256)
fn copy_range(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < cr.len) {
        cr_dst[cr.dst_offset + i] = cr_src[cr.src_offset + i];
    }
}

// ---- relu, relu_backward -------------------------------------------------------------

struct ReluParams {
    len: u32,
}

@group(0) @binding(0) var<storage, read> relu_x: array<f32>;        // [len]
@group(0) @binding(1) var<storage, read_write> relu_y: array<f32>;  // [len]
@group(0) @binding(2) var<uniform> rp: ReluParams;

@compute @workgroup_size(256)
fn relu(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < rp.len) {
        relu_y[i] = max(relu_x[i], 0.0);
    }
}

@group(0) @binding(0) var<storage, read> rb_dy: array<f32>;        // [len]
@group(0) @binding(1) var<storage, read> rb_x: array<f32>;         // [len] the forward's input
@group(0) @binding(2) var<storage, read_write> rb_dx: array<f32>;  // [len]
@group(0) @binding(3) var<uniform> rbp: ReluParams;

@compute @workgroup_size(256)
fn relu_backward(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i < rbp.len) {
        rb_dx[i] = select(0.0, rb_dy[i], rb_x[i] > 0.0);
    }
}
