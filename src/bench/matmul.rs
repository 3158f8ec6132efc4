//! Matmul workloads: the f32 tiled matmul against the packed binary forms on the same
//! (M, K, N), counted in multiply-accumulates (one MAC = one multiply-add).

use super::pseudo_random;
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{self, BinaryForm, MatmulForm, PackMode};

/// The matmul variants `bitspike bench matmul` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulKernel {
    /// f32 activations x f32 weights (the baseline every ratio is taken against).
    F32,
    /// (a) spikes {0,1} x binary weights with a per-channel scale.
    SpikesSigns,
    /// (b) signs x signs, XNOR-popcount.
    SignsSigns,
    /// (c) f32 activations x packed binary weights.
    F32Bits,
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 4] = [
        MatmulKernel::F32,
        MatmulKernel::SpikesSigns,
        MatmulKernel::SignsSigns,
        MatmulKernel::F32Bits,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::F32 => "matmul_f32",
            MatmulKernel::SpikesSigns => "binary_spikes_x_signs",
            MatmulKernel::SignsSigns => "binary_xnor",
            MatmulKernel::F32Bits => "f32_x_packed_signs",
        }
    }
}

/// The shapes of the real models: token-wise linear layers of a 384-wide model over
/// 8192 tokens (expansion and contraction), and a square 4096^3.
pub const MODEL_SHAPES: [(usize, usize, usize); 3] =
    [(8192, 384, 1536), (8192, 1536, 384), (4096, 4096, 4096)];

/// Operands of one (kernel, M, K, N), uploaded and packed once.
pub struct MatmulWorkload {
    pub kernel: MatmulKernel,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    a: Tensor,
    b: Tensor,
    scale: Tensor,
}

impl MatmulWorkload {
    pub fn new(
        ctx: &GpuContext,
        kernel: MatmulKernel,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Self> {
        let a = ctx.upload_f32(&pseudo_random(m * k, 1, -0.5, 0.5), &[m, k])?;
        let b = ctx.upload_f32(&pseudo_random(n * k, 2, -0.5, 0.5), &[n, k])?;
        let scale = ctx.upload_f32(&vec![0.5; n], &[n])?;
        let (a, b) = match kernel {
            MatmulKernel::F32 => (a, b),
            MatmulKernel::SpikesSigns => (
                ops::pack_bits(ctx, &a, PackMode::Spikes)?,
                ops::pack_bits(ctx, &b, PackMode::Signs)?,
            ),
            MatmulKernel::SignsSigns => (
                ops::pack_bits(ctx, &a, PackMode::Signs)?,
                ops::pack_bits(ctx, &b, PackMode::Signs)?,
            ),
            MatmulKernel::F32Bits => (a, ops::pack_bits(ctx, &b, PackMode::Signs)?),
        };
        ctx.sync()?;
        Ok(Self {
            kernel,
            m,
            k,
            n,
            a,
            b,
            scale,
        })
    }

    pub fn macs(&self) -> f64 {
        (self.m * self.k * self.n) as f64
    }

    pub fn shape(&self) -> String {
        format!("{}x{}x{}", self.m, self.k, self.n)
    }

    /// Record one product (the output goes back to the pool when dropped).
    pub fn run(&self, ctx: &GpuContext) -> Result<()> {
        match self.kernel {
            MatmulKernel::F32 => ops::matmul(ctx, &self.a, &self.b, MatmulForm::ABt).map(drop),
            MatmulKernel::SpikesSigns => ops::binary_matmul(
                ctx,
                &self.a,
                &self.b,
                Some(&self.scale),
                BinaryForm::SpikesSigns,
            )
            .map(drop),
            MatmulKernel::SignsSigns => {
                ops::binary_matmul(ctx, &self.a, &self.b, None, BinaryForm::SignsSigns).map(drop)
            }
            MatmulKernel::F32Bits => {
                ops::matmul_f32_bits(ctx, &self.a, &self.b, Some(&self.scale)).map(drop)
            }
        }
    }
}
