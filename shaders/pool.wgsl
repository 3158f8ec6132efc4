// Pooling on channel-last tensors.
//   max_pool / max_pool_backward: MaxPool2d(kernel 3, stride 2, padding 1) on images
//     [images, H, W, C] -> [images, Ho, Wo, C], Ho = (H - 1) / 2 + 1 (floor), likewise Wo.
//     The forward saves per output the argmax as PyTorch's `return_indices` does: the
//     index y * W + x of the chosen input in its (image, channel) plane. Padding never
//     wins (PyTorch pads with -inf); ties go to the first maximum in (ky, kx) order.
//     The backward is a gather: each input pixel sums the gradients of the (at most 2 x 2)
//     outputs whose window holds it and whose argmax is it; no atomics, deterministic.
//   mean_tokens / mean_tokens_backward: [T, B, N, C] -> [B, C], the mean over T and N
//     (the classification head's input), and its backward dx = dy / (T N) broadcast.

struct Params {
    h: u32,     // input height
    w: u32,     // input width
    c: u32,
    ho: u32,    // output height
    wo: u32,    // output width
    total: u32, // outputs (forward) or input elements (backward)
}

const WG: u32 = 256u;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Output element i (channel c fastest, in the kernel's units of 1 or 4 channels): its
// channel, output pixel and image.
struct OutPixel {
    c: u32,
    ox: u32,
    oy: u32,
    image: u32,
}

fn out_pixel(i: u32) -> OutPixel {
    let pix = i / p.c;
    return OutPixel(i % p.c, pix % p.wo, (pix / p.wo) % p.ho, pix / (p.wo * p.ho));
}

const PADDING: u32 = 0xffffffffu;

// The input plane index y * W + x of window element k = ky * 3 + kx of output o (window
// rows 2 oy - 1 .. 2 oy + 1, likewise columns), or PADDING outside the image.
fn window_plane(o: OutPixel, k: u32) -> u32 {
    // Shifted by +1 to stay unsigned.
    let sy = 2u * o.oy + k / 3u;
    let sx = 2u * o.ox + k % 3u;
    if (sy < 1u || sy > p.h || sx < 1u || sx > p.w) {
        return PADDING;
    }
    return (sy - 1u) * p.w + sx - 1u;
}

// Input element i: its channel, plane index, image, and the outputs whose windows hold
// it. Output oy covers input rows 2 oy - 1 .. 2 oy + 1, so y is covered by oy in
// [ceil((y - 1) / 2), floor((y + 1) / 2)] clipped to [0, Ho); likewise x.
struct InPixel {
    c: u32,
    plane: u32,
    image: u32,
    oy0: u32,
    oy1: u32,
    ox0: u32,
    ox1: u32,
}

fn in_pixel(i: u32) -> InPixel {
    let pix = i / p.c;
    let plane = pix % (p.h * p.w);
    let x = plane % p.w;
    let y = plane / p.w;
    return InPixel(i % p.c, plane, pix / (p.h * p.w), y / 2u, min((y + 1u) / 2u, p.ho - 1u),
                   x / 2u, min((x + 1u) / 2u, p.wo - 1u));
}

@group(0) @binding(0) var<storage, read> mp_x: array<f32>;            // [images, H, W, C]
@group(0) @binding(1) var<storage, read_write> mp_y: array<f32>;      // [images, Ho, Wo, C]
@group(0) @binding(2) var<storage, read_write> mp_arg: array<u32>;    // [images, Ho, Wo, C]
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256)
fn max_pool(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let o = out_pixel(i);
    var best = 0.0;
    var arg = 0u;
    var found = false;
    for (var k = 0u; k < 9u; k++) {
        let plane = window_plane(o, k);
        if (plane == PADDING) {
            continue;
        }
        let v = mp_x[(o.image * p.h * p.w + plane) * p.c + o.c];
        if (!found || v > best) {
            best = v;
            arg = plane;
            found = true;
        }
    }
    mp_y[i] = best;
    mp_arg[i] = arg;
}

// `max_pool` for C a multiple of 4: each invocation takes 4 channels of one output as
// vec4s (p.c and p.total count vec4s), a quarter of the loads. Whether a window element
// is padding depends on its position only, so the first valid one starts all 4 maxima.
@group(0) @binding(0) var<storage, read> mp_x4: array<vec4<f32>>;          // [images, H, W, C / 4]
@group(0) @binding(1) var<storage, read_write> mp_y4: array<vec4<f32>>;    // [images, Ho, Wo, C / 4]
@group(0) @binding(2) var<storage, read_write> mp_arg4: array<vec4<u32>>;  // [images, Ho, Wo, C / 4]

@compute @workgroup_size(256)
fn max_pool_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let o = out_pixel(i);
    var best = vec4<f32>(0.0);
    var arg = vec4<u32>(0u);
    var found = false;
    for (var k = 0u; k < 9u; k++) {
        let plane = window_plane(o, k);
        if (plane == PADDING) {
            continue;
        }
        let v = mp_x4[(o.image * p.h * p.w + plane) * p.c + o.c];
        let better = v > best | vec4(!found);
        best = select(best, v, better);
        arg = select(arg, vec4(plane), better);
        found = true;
    }
    mp_y4[i] = best;
    mp_arg4[i] = arg;
}

@group(0) @binding(0) var<storage, read> mpb_dy: array<f32>;        // [images, Ho, Wo, C]
@group(0) @binding(1) var<storage, read> mpb_arg: array<u32>;       // [images, Ho, Wo, C]
@group(0) @binding(2) var<storage, read_write> mpb_dx: array<f32>;  // [images, H, W, C]
// (binding 3 is `p`)

@compute @workgroup_size(256)
fn max_pool_backward(@builtin(workgroup_id) wid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let x = in_pixel(i);
    var acc = 0.0;
    for (var oy = x.oy0; oy <= x.oy1; oy++) {
        for (var ox = x.ox0; ox <= x.ox1; ox++) {
            let o = ((x.image * p.ho + oy) * p.wo + ox) * p.c + x.c;
            if (mpb_arg[o] == x.plane) {
                acc += mpb_dy[o];
            }
        }
    }
    mpb_dx[i] = acc;
}

// mean_tokens: one invocation per (b, c) output; the backward one per dx element.
struct MeanParams {
    t: u32,
    b: u32,
    n: u32,
    c: u32,
    total: u32, // outputs (forward) or dx elements (backward)
}

@group(0) @binding(0) var<storage, read> mt_x: array<f32>;          // [T, B, N, C]
@group(0) @binding(1) var<storage, read_write> mt_y: array<f32>;    // [B, C]
@group(0) @binding(2) var<uniform> mp: MeanParams;

@compute @workgroup_size(256)
fn mean_tokens(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= mp.total) {
        return;
    }
    let c = i % mp.c;
    let b = i / mp.c;
    var acc = 0.0;
    for (var t = 0u; t < mp.t; t++) {
        let base = ((t * mp.b + b) * mp.n) * mp.c + c;
        for (var n = 0u; n < mp.n; n++) {
            acc += mt_x[base + n * mp.c];
        }
    }
    mt_y[i] = acc / f32(mp.t * mp.n);
}

@group(0) @binding(0) var<storage, read> mtb_dy: array<f32>;        // [B, C]
@group(0) @binding(1) var<storage, read_write> mtb_dx: array<f32>;  // [T, B, N, C]
// (binding 2 is `mp`)

@compute @workgroup_size(256)
fn mean_tokens_backward(@builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= mp.total) {
        return;
    }
    let c = i % mp.c;
    let b = (i / (mp.c * mp.n)) % mp.b;
    mtb_dx[i] = mtb_dy[b * mp.c + c] / f32(mp.t * mp.n);
}

// `max_pool_backward` for C a multiple of 4, 4 channels per invocation as vec4s.
@group(0) @binding(0) var<storage, read> mpb_dy4: array<vec4<f32>>;        // [images, Ho, Wo, C / 4]
@group(0) @binding(1) var<storage, read> mpb_arg4: array<vec4<u32>>;       // [images, Ho, Wo, C / 4]
@group(0) @binding(2) var<storage, read_write> mpb_dx4: array<vec4<f32>>;  // [images, H, W, C / 4]

@compute @workgroup_size(256)
fn max_pool_backward_vec4(@builtin(workgroup_id) wid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let x = in_pixel(i);
    var acc = vec4<f32>(0.0);
    for (var oy = x.oy0; oy <= x.oy1; oy++) {
        for (var ox = x.ox0; ox <= x.ox1; ox++) {
            let o = ((x.image * p.ho + oy) * p.wo + ox) * p.c + x.c;
            acc += select(vec4(0.0), mpb_dy4[o], mpb_arg4[o] == vec4(x.plane));
        }
    }
    mpb_dx4[i] = acc;
}
