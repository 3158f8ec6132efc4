// Plain copy, the bandwidth yardstick for memory-bound kernels: dst[i] = src[i], one
// invocation per element (f32 loads and stores, as the element-wise kernels use).

struct Params {
    len: u32, // elements
}

@group(0) @binding(0) var<storage, read> src: array<f32>;       // [len]
@group(0) @binding(1) var<storage, read_write> dst: array<f32>; // [len]
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < p.len) {
        dst[i] = src[i];
    }
}

// Row padding: src [rows, cols] -> dst [rows, padded_cols] with zeros past `cols`, so
// that kernels reading vec4s along rows (matmul.wgsl) see aligned, zero-padded rows.
struct PadParams {
    rows: u32,
    cols: u32,
    padded_cols: u32,
}

@group(0) @binding(0) var<storage, read> pad_src: array<f32>;       // [rows, cols]
@group(0) @binding(1) var<storage, read_write> pad_dst: array<f32>; // [rows, padded_cols]
@group(0) @binding(2) var<uniform> pp: PadParams;

@compute @workgroup_size(256)
fn pad_rows(@builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * WG + lid;
    if (i < pp.rows * pp.padded_cols) {
        let r = i / pp.padded_cols;
        let col = i % pp.padded_cols;
        pad_dst[i] = select(0.0, pad_src[r * pp.cols + min(col, pp.cols - 1u)], col < pp.cols);
    }
}
