//! Host side of each kernel family: shape checks, output allocation, workgroup counts,
//! forward (and, where the family has one, backward). Each `ops/x.rs` has its CPU
//! oracle in `reference/x.rs`.
//!
//! Layouts: activations are channel-last. Images are `[T * B, H, W, C]` (NHWC, T folded
//! into the images for convs, BN and pooling, never for a LIF), so a 3x3 conv is
//! im2col + matmul with C contiguous and the tokenizer's `[T * B, H, W, D]` is the tokens
//! `[T, B, N = H * W, D]` by a reshape. Linear (1x1 conv) weights are PyTorch's
//! `[out, in]`; 3x3 conv weights are `[C_out, 9 * C_in]`, column `(ky * 3 + kx) * C_in + c`
//! (see `conv`). BN, linear and bias ops treat every leading axis as rows.

pub mod attention;
pub mod binarize;
pub mod binary_matmul;
pub mod conv;
pub mod copy;
pub mod elementwise;
pub mod layout;
pub mod lif;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod neuron;
pub mod norm;
pub mod optim;
pub mod pack;
pub mod pool;
pub mod quant;
pub mod reversible;

pub use binarize::{binarize_weights, binarize_weights_backward, BinaryWeights};
pub use binary_matmul::{binary_matmul, matmul_f32_bits, spike_weight_grad_into, BinaryForm};
pub use conv::{
    conv3x3, conv3x3_backward, conv3x3_binary, conv_weight_from_torch, conv_weight_to_torch,
    Conv3x3, ConvInput,
};
pub use copy::{copy, pad_last_dim};
pub use elementwise::{
    add, add_avg, add_avg_backward, add_backward, add_bias_into, axpy_into, copy_range, lerp_into,
    relu, relu_backward, scale, weighted_sum,
};
pub use layout::{
    merge_heads, nchw_to_nhwc_repeat, split_heads, time_step_inputs, transpose_matrices,
};
pub use lif::{
    lif_backward, lif_forward, lif_forward_affine, lif_forward_with, qsnn_backward, qsnn_forward,
    ternary_backward, ternary_forward, threshold_backward, threshold_forward, FiringFn, LifConfig,
    LifForward, LifOutputs, PackKernel, QsnnConfig, QsnnForward, Surrogate, ThresholdConfig,
    TimeShape,
};
pub use linear::{linear, linear_backward, linear_backward_spikes, linear_binary};
pub use matmul::{matmul, matmul_into, matmul_into_with, matmul_with, F32Matmul, MatmulForm};
pub use neuron::Neuron;
pub use norm::{channel_sum_into, BatchNorm, BN_EPS, BN_MOMENTUM};
pub use pack::{pack_bits, PackMode};
pub use pool::{max_pool2d, max_pool2d_backward, max_pool_out, mean_tokens, mean_tokens_backward};
pub use quant::{
    conv3x3_quant, linear_quant, pow2_scale, rescaw_backward, rescaw_quantize, sum_planes,
    QuantWeights, MAX_WEIGHT_BITS,
};

use crate::error::{Error, Result};

/// A matrix operand seen as `[batch, rows, cols]`: rank 2 is one matrix (batch 1,
/// `batched = false`), rank 3 a batch of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatrixShape {
    pub batch: usize,
    pub rows: usize,
    pub cols: usize,
    pub batched: bool,
}

impl MatrixShape {
    pub fn of(op: &'static str, shape: &[usize]) -> Result<Self> {
        match *shape {
            [rows, cols] => Ok(Self {
                batch: 1,
                rows,
                cols,
                batched: false,
            }),
            [batch, rows, cols] => Ok(Self {
                batch,
                rows,
                cols,
                batched: true,
            }),
            _ => Err(Error::Shape {
                op,
                expected: "[rows, cols] or [batch, rows, cols]".into(),
                got: format!("{shape:?}"),
            }),
        }
    }
}

/// Sizes go to shaders as u32: refuse anything larger rather than wrap.
/// Invocations per workgroup (8, 16 or 32) of the subgroup matmul kernels, whose
/// invocations compute 4 columns each: the fewest padded columns for `n` outputs, and the
/// widest workgroup among equals (narrow outputs such as conv channels 8..72 would
/// otherwise leave most of a 128-column tile idle).
pub(crate) fn subgroup_tile_lanes(n: usize) -> usize {
    [32, 16, 8]
        .into_iter()
        .min_by_key(|lanes| n.div_ceil(4 * lanes) * 4 * lanes)
        .expect("three candidates")
}

/// Row tiles per workgroup (1, 2, 4 or 8) of the subgroup matmul kernels for `workgroups`
/// one-tile workgroups: CPU drivers pay a fixed cost per workgroup that outweighs a short
/// K's work, so large launches group tiles while keeping at least 1024 workgroups.
pub(crate) fn subgroup_row_tiles(workgroups: usize) -> usize {
    [8, 4, 2]
        .into_iter()
        .find(|tiles| workgroups / tiles >= 1024)
        .unwrap_or(1)
}

pub(crate) fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::InvalidArgument(format!(
            "{op}: {what} = {v} does not fit the kernel's u32 indices"
        ))
    })
}
