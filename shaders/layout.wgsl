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

// swap_axes_vec4: swap_axes for Z a multiple of 4, moving vec4s (sw.z counts vec4s):
// the heads' d-wide rows go out 4 values per load and store.
@group(0) @binding(0) var<storage, read> sw_in4: array<vec4<f32>>;        // [A, X, Y, Z / 4]
@group(0) @binding(1) var<storage, read_write> sw_out4: array<vec4<f32>>; // [REPS, A, Y, X, Z / 4]
// (binding 2 is `sw`)

@compute @workgroup_size(256)
fn swap_axes_vec4(@builtin(workgroup_id) wid: vec3<u32>,
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
    let i = rest % sw.x;
    rest = rest / sw.x;
    let j = rest % sw.y;
    let a = rest / sw.y;
    sw_out4[o] = sw_in4[((a * sw.x + i) * sw.y + j) * sw.z + zz];
}

// transpose4: out[a, j, i] = x[a, i, j] for x [A, X, Y] with X and Y multiples of 4, one
// invocation per 4 x 4 block: 4 vec4 loads and 4 vec4 stores for 16 elements, where
// swap_axes makes a strided scalar load and a store per element (CPU drivers run each
// as a per-lane gather). `sw.z` is unused.
@group(0) @binding(0) var<storage, read> t4_in: array<vec4<f32>>;        // [A, X, Y / 4]
@group(0) @binding(1) var<storage, read_write> t4_out: array<vec4<f32>>; // [A, Y, X / 4]
// (binding 2 is `sw`)

@compute @workgroup_size(256)
fn transpose4(@builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let block = (wid.x + wid.y * nwg.x) * WG + lid;
    let x4 = sw.x / 4u;
    let y4 = sw.y / 4u;
    if (block >= sw.a * x4 * y4) {
        return;
    }
    // Blocks run along Y fastest, so neighbouring invocations read neighbouring vec4s.
    let by = block % y4;
    let bx = (block / y4) % x4;
    let a = block / (x4 * y4);
    let src = (a * sw.x + 4u * bx) * y4 + by;
    let r0 = t4_in[src];
    let r1 = t4_in[src + y4];
    let r2 = t4_in[src + 2u * y4];
    let r3 = t4_in[src + 3u * y4];
    let dst = (a * sw.y + 4u * by) * x4 + bx;
    t4_out[dst] = vec4(r0.x, r1.x, r2.x, r3.x);
    t4_out[dst + x4] = vec4(r0.y, r1.y, r2.y, r3.y);
    t4_out[dst + 2u * x4] = vec4(r0.z, r1.z, r2.z, r3.z);
    t4_out[dst + 3u * x4] = vec4(r0.w, r1.w, r2.w, r3.w);
}
