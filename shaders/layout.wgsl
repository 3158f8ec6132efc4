// Layout changes between the models' ops (ops/layout.rs):
//   swap_axes: out[r, a, j, i, z] = x[a, i, j, z] for x [A, X, Y, Z], r < REPS: the
//              loader's NCHW images to NHWC repeated over T (X = C, Y = H W, Z = 1),
//              and tokens [T B, N, heads, d] to heads-first [T B, heads, N, d] and back.
// One invocation per output element; the linear index is `wid.x + wid.y * nwg.x`
// workgroups.

const WG: u32 = 256u;

struct SwapParams {
    a: u32,
    x: u32,
    y: u32,
    z: u32,
    reps: u32,
}

@group(0) @binding(0) var<storage, read> sw_in: array<f32>;        // [A, X, Y, Z]
@group(0) @binding(1) var<storage, read_write> sw_out: array<f32>; // [REPS, A, Y, X, Z]
@group(0) @binding(2) var<uniform> sw: SwapParams;

@compute @workgroup_size(256)
fn swap_axes(@builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let o = (wid.x + wid.y * nwg.x) * WG + lid;
    let len = sw.a * sw.x * sw.y * sw.z;
    if (o >= len * sw.reps) {
        return;
    }
    let e = o % len;
    let zz = e % sw.z;
    var rest = e / sw.z;
    let i = rest % sw.x; // output [a, j, i, z]: i fastest after z
    rest = rest / sw.x;
    let j = rest % sw.y;
    let a = rest / sw.y;
    sw_out[o] = sw_in[((a * sw.x + i) * sw.y + j) * sw.z + zz];
}
