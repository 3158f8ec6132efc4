//! Spiking self-attention, forward and backward, in the forms of docs/models.md sections 2-5
//! (shaders/attention.wgsl for the fused and elementwise parts, the tuned matmul and
//! binary-matmul ops for the products):
//! - [`ssa`]: Spikformer SSA, `Y = (Q K^T) V * scale`, scores on packed bits or in f32;
//! - [`binary`]: BESTformer binary attention, `A = LIF_soft(Q K^T)` fused over T and
//!   packed, `Y = (A V) * 0.125 * lambda` (or the d x d order `A = LIF(K^T V)`, `Y = Q A`);
//! - [`ssa_bin`]: SSA_Bin, `B(Q K^T, Delta) V * kappa` minus a running mean, with an
//!   adaptive threshold and the softmax-derived surrogate;
//! - [`a2os2a`]: addition-only attention, `(Q K^T) V` with binary Q, non-negative K and
//!   ternary V.
//!
//! Q, K, V are f32 `[T, B, heads, N, d]` (time first). Maps and products run batched over
//! the `T * B * heads` (t, b, h) matrices, so saved maps are `[T * B * heads, rows, cols]`.
//! Each form implements [`AttentionOp`] in its module ([`AttentionForm::op`] builds it),
//! over its plain functions: each forward returns its output and a `...Saved` struct
//! (what its backward reads, and the firing rate of its map, a [`FormSaved`]); each
//! backward takes the upstream gradient and that struct and returns freshly written
//! gradients. Host wrappers of the kernels one form alone dispatches live in that form's
//! module; `packed.rs` holds those several forms share.

pub mod a2os2a;
pub mod binary;
pub mod form;
mod packed;
pub mod registry;
pub mod ssa;
pub mod ssa_bin;

pub use a2os2a::{a2os2a_backward, a2os2a_forward, A2os2a, A2os2aSaved};
pub use binary::{
    binary_attention_backward, binary_attention_forward, BinaryAttention, BinaryAttentionConfig,
    BinaryAttentionGrads, BinaryAttentionSaved, MapLif, MapOrder, BINARY_LAMBDA,
};
pub use form::{
    AttentionOp, FormGrads, FormInputs, FormParam, FormParamKind, FormSaved, FormSetup, Products,
};
pub use packed::{pack_spike_rows, pack_transposed, unpack_bits};
pub use registry::AttentionForm;
pub use ssa::{ssa_backward, ssa_forward, Ssa, SsaPath, SsaSaved, SSA_SCALE};
pub use ssa_bin::{
    ssa_bin_backward, ssa_bin_forward, SsaBin, SsaBinConfig, SsaBinSaved, SsaBinState,
    SSA_BIN_DELTA, SSA_BIN_SHIFT,
};

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Tensor};
use crate::ops::to_u32;

/// The sizes of one attention call, read from Q's shape `[T, B, heads, N, d]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    /// Time steps.
    pub t: usize,
    /// Batch.
    pub b: usize,
    /// Heads.
    pub heads: usize,
    /// Tokens.
    pub n: usize,
    /// Head width.
    pub d: usize,
}

impl AttnShape {
    /// The shape of `q`, which must be f32 `[T, B, heads, N, d]`.
    pub fn of(op: &'static str, q: &Tensor) -> Result<Self> {
        match *q.shape() {
            [t, b, heads, n, d] if q.dtype() == DType::F32 => Ok(Self { t, b, heads, n, d }),
            _ if q.dtype() != DType::F32 => Err(Error::DType {
                op,
                expected: DType::F32,
                got: q.dtype(),
            }),
            _ => Err(Error::Shape {
                op,
                expected: "[T, B, heads, N, d]".into(),
                got: format!("{:?}", q.shape()),
            }),
        }
    }

    /// `[T, B, heads, N, d]`.
    pub fn dims(&self) -> [usize; 5] {
        [self.t, self.b, self.heads, self.n, self.d]
    }

    /// Number of (t, b, h) matrices: `T * B * heads`.
    pub fn maps(&self) -> usize {
        self.t * self.b * self.heads
    }

    /// Check that every tensor has Q's shape and dtype.
    pub(crate) fn expect_all(&self, op: &'static str, tensors: &[&Tensor]) -> Result<()> {
        for t in tensors {
            t.expect(op, &self.dims(), DType::F32)?;
        }
        Ok(())
    }

    /// `x [T, B, heads, R, C]` seen as the batch `[T * B * heads, R, C]`.
    pub(crate) fn batched(&self, x: &Tensor) -> Result<Tensor> {
        let s = x.shape();
        x.reshape(&[self.maps(), s[3], s[4]])
    }
}

/// The firing rate of an attention map: the fraction of ones in a binary map, counted
/// on the GPU by the kernel that builds the map; or, for maps of real scores (SSA,
/// A2OS2A), the fraction of non-zero scores, counted on the GPU when first read. Nothing
/// is downloaded until [`MapRate::read`].
#[derive(Debug, Clone)]
pub struct MapRate {
    source: RateSource,
    elements: u64,
}

#[derive(Debug, Clone)]
enum RateSource {
    /// A U32 `[2]` (lo, hi) count of ones written by the map kernel.
    Counted(Tensor),
    /// An f32 map whose non-zero entries are counted on demand.
    NonZero(Tensor),
}

impl MapRate {
    pub(crate) fn counted(count: Tensor, elements: usize) -> Self {
        Self {
            source: RateSource::Counted(count),
            elements: elements as u64,
        }
    }

    pub(crate) fn non_zero(map: Tensor) -> Self {
        let elements = map.len() as u64;
        Self {
            source: RateSource::NonZero(map),
            elements,
        }
    }

    /// Number of map elements the rate is taken over.
    pub fn elements(&self) -> u64 {
        self.elements
    }

    /// The fraction of ones (non-zero scores), downloaded now (waits for the GPU).
    pub fn read(&self, ctx: &GpuContext) -> Result<f64> {
        let count = match &self.source {
            RateSource::Counted(c) => c.clone(),
            RateSource::NonZero(map) => count_nonzero(ctx, map)?,
        };
        let words: Vec<u32> = ctx.download_words(&count)?;
        let ones = (words[1] as u64) << 32 | words[0] as u64;
        Ok(if self.elements == 0 {
            0.0
        } else {
            ones as f64 / self.elements as f64
        })
    }
}

// ---- f32 passes several forms share: the scaling, the non-zero count of the rates -----

const SCALE_ALL: Kernel = packed::kernel("scale_all", &[Access::Read, Access::ReadWrite]);
const COUNT_NONZERO: Kernel = packed::kernel("count_nonzero", &[Access::Read, Access::ReadWrite]);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScaleParams {
    len: u32,
    scale: f32,
}

/// `y = x * scale` for an f32 `x`; `y` has `x`'s shape.
fn scale_all(ctx: &GpuContext, x: &Tensor, scale: f32) -> Result<Tensor> {
    const OP: &str = "scale_all";
    x.expect(OP, x.shape(), DType::F32)?;
    let y = ctx.empty(x.shape(), DType::F32)?;
    let params = ScaleParams {
        len: to_u32(OP, "len", x.len())?,
        scale,
    };
    ctx.dispatch(
        SCALE_ALL,
        &[],
        &[x, &y],
        &params,
        grid_1d(ctx, x.len().div_ceil(256) as u64)?,
    )?;
    Ok(y)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CountParams {
    len: u32,
}

/// The U32 `[2]` (lo, hi) count of non-zero elements of an f32 tensor.
pub fn count_nonzero(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "count_nonzero";
    x.expect(OP, x.shape(), DType::F32)?;
    let count = ctx.zeros(&[2], DType::U32)?;
    let params = CountParams {
        len: to_u32(OP, "len", x.len())?,
    };
    ctx.dispatch(
        COUNT_NONZERO,
        &[],
        &[x, &count],
        &params,
        grid_1d(ctx, x.len().div_ceil(1024) as u64)?,
    )?;
    Ok(count)
}
