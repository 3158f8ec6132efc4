// Conv2d 3x3, stride 1, padding 1, on channel-last images [images, H, W, C] ("NHWC"),
// as im2col + matmul (the GEMM is ops::matmul / ops::binary_matmul).
//
// Column layout: row r = (image, y, x) of the output, r = (image * H + y) * W + x, and
// column j = (ky * 3 + kx) * C + c holds x[image, y + ky - 1, x + kx - 1, c] (zero
// outside the image). A PyTorch weight w_t [C_out, C_in, 3, 3] becomes
// w [C_out, 9 C_in] with w[o, (ky * 3 + kx) * C_in + c] = w_t[o, c, ky, kx].
//
// Every entry works on a chunk of images starting at `first_image`: the columns
// and column gradients hold only the chunk's rows; the images are the whole tensor.
//   im2col:      images f32 -> columns f32 [chunk * H * W, 9 C]
//   im2col_bits: packed pixel spikes PackedBits [images * H * W, C] -> columns
//                PackedBits [chunk * H * W, 9 C] (rows padded to 128-bit groups)
//   col2im:      column gradients [chunk * H * W, 9 C] -> image gradient (the chunk's
//                images), as a gather: each input pixel sums its 9 contributions, so
//                no atomics and a deterministic order.
//   im2col_vec4, col2im_vec4: the same, 4 channels per invocation (C a multiple of 4).

struct Params {
    h: u32,
    w: u32,
    c: u32,
    first_image: u32,
    total: u32,         // elements (im2col, col2im) or words (im2col_bits) to produce
    words_per_row: u32,    // im2col_bits only: words per column row
    in_words_per_row: u32, // im2col_bits only: words per packed input pixel
}

const WG: u32 = 256u;

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// The image element a column entry (chunk row `row`, column `col`) reads; `ok` is
// false in the zero padding.
struct Tap {
    index: u32,
    ok: bool,
}

fn tap(row: u32, col: u32) -> Tap {
    let hw = p.h * p.w;
    let image = p.first_image + row / hw;
    let pix = row % hw;
    let y = pix / p.w;
    let x = pix % p.w;
    let t = col / p.c;
    let c = col % p.c;
    // Source coordinates shifted by +1 so that the padding row -1 is 0 (no wrap-around).
    let sy = y + t / 3u;
    let sx = x + t % 3u;
    let ok = sy >= 1u && sy <= p.h && sx >= 1u && sx <= p.w;
    return Tap(((image * p.h + sy - 1u) * p.w + sx - 1u) * p.c + c, ok);
}

@group(0) @binding(0) var<storage, read> images: array<f32>;        // [images, H, W, C]
@group(0) @binding(1) var<storage, read_write> cols: array<f32>;    // [chunk * H * W, 9 C]
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn im2col(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let k = 9u * p.c;
    let t = tap(i / k, i % k);
    var v = 0.0;
    if (t.ok) {
        v = images[t.index];
    }
    cols[i] = v;
}

// One invocation per word of the packed columns. The input is the images' spikes
// already packed per pixel (`PackedBits [images * H * W, C]`), so a column word is a
// few bit ranges of at most 32 / C + 1 input words (one when C is a multiple of 32)
// instead of 32 scattered f32 loads.
@group(0) @binding(0) var<storage, read> pixel_bits: array<u32>;    // [images * H * W, in_words_per_row]
@group(0) @binding(1) var<storage, read_write> bits: array<u32>;    // [chunk * H * W, words_per_row]
// (binding 2 is `p`)

@compute @workgroup_size(256)
fn im2col_bits(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let word = linear_index(wid, nwg, lid);
    if (word >= p.total) {
        return;
    }
    let row = word / p.words_per_row;
    let col = (word % p.words_per_row) * 32u;
    let end = min(col + 32u, 9u * p.c);
    var w = 0u;
    var s = col;
    while (s < end) {
        // The bit range [s, s + n) lies in one tap and one input word.
        let t = tap(row, s);
        let c = s % p.c;
        let shift = c % 32u;
        let n = min(min(end - s, p.c - c), 32u - shift);
        if (t.ok) {
            let pixel = t.index / p.c;
            let v = pixel_bits[pixel * p.in_words_per_row + c / 32u] >> shift;
            let mask = select((1u << n) - 1u, 0xffffffffu, n == 32u);
            w |= (v & mask) << (s - col);
        }
        s += n;
    }
    bits[word] = w;
}

// The chunk row (output pixel) whose tap (ky, kx) reads the chunk's input pixel `pix`:
// output pixel (y + 1 - ky, x + 1 - kx); `ok` is false when that lies outside the image.
fn tap_row(pix: u32, ky: u32, kx: u32) -> Tap {
    let x = pix % p.w;
    let y = (pix / p.w) % p.h;
    let image = pix / (p.w * p.h);
    // y + 1 - ky and x + 1 - kx, kept unsigned.
    let oy = y + 1u;
    let ox = x + 1u;
    let ok = oy >= ky && oy - ky < p.h && ox >= kx && ox - kx < p.w;
    return Tap((image * p.h + oy - ky) * p.w + ox - kx, ok);
}

@group(0) @binding(0) var<storage, read> dcols: array<f32>;         // [chunk * H * W, 9 C]
@group(0) @binding(1) var<storage, read_write> dimages: array<f32>; // [images, H, W, C]
// (binding 2 is `p`)

@compute @workgroup_size(256)
fn col2im(@builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    // i indexes the chunk's part of the image gradient.
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let c = i % p.c;
    let pix = i / p.c;
    let k = 9u * p.c;
    var acc = 0.0;
    for (var t = 0u; t < 9u; t++) {
        let r = tap_row(pix, t / 3u, t % 3u);
        if (r.ok) {
            acc += dcols[r.index * k + t * p.c + c];
        }
    }
    dimages[p.first_image * p.h * p.w * p.c + i] = acc;
}

// The same two layouts moved 4 channels at a time when C is a multiple of 4 (`total`
// then counts vec4s): a quarter of the loads and stores, which bound these kernels.
@group(0) @binding(0) var<storage, read> images4: array<vec4<f32>>;     // [images, H, W, C / 4]
@group(0) @binding(1) var<storage, read_write> cols4: array<vec4<f32>>; // [chunk * H * W, 9 C / 4]
// (binding 2 is `p`)

@compute @workgroup_size(256)
fn im2col_vec4(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let k4 = 9u * p.c / 4u;
    let t = tap(i / k4, (i % k4) * 4u);
    var v = vec4<f32>(0.0);
    if (t.ok) {
        v = images4[t.index / 4u];
    }
    cols4[i] = v;
}

@group(0) @binding(0) var<storage, read> dcols4: array<vec4<f32>>;         // [chunk * H * W, 9 C / 4]
@group(0) @binding(1) var<storage, read_write> dimages4: array<vec4<f32>>; // [images, H, W, C / 4]
// (binding 2 is `p`)

@compute @workgroup_size(256)
fn col2im_vec4(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.total) {
        return;
    }
    let c4 = p.c / 4u;
    let pix = i / c4;
    var acc = vec4<f32>(0.0);
    for (var t = 0u; t < 9u; t++) {
        let r = tap_row(pix, t / 3u, t % 3u);
        if (r.ok) {
            acc += dcols4[(r.index * 9u + t) * c4 + i % c4];
        }
    }
    dimages4[p.first_image * p.h * p.w * c4 + i] = acc;
}
