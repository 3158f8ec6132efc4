//! Matmul workloads: the f32 tiled matmul against the packed binary forms on the same
//! (M, K, N), counted in multiply-accumulates (one MAC = one multiply-add); b-bit weights
//! count one MAC per weight, whatever b (the rate a b-bit layer delivers).

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
    /// Packed spikes x b-bit ReScaW weights: b spike x sign matmuls summed (bit-planes).
    SpikesPlanes(u32),
    /// f32 activations x b-bit ReScaW weights on bit-planes.
    F32Planes(u32),
}

impl MatmulKernel {
    pub const ALL: [MatmulKernel; 4] = [
        MatmulKernel::F32,
        MatmulKernel::SpikesSigns,
        MatmulKernel::SignsSigns,
        MatmulKernel::F32Bits,
    ];

    /// The variants `bench matmul --bits b` compares: f32, 1-bit, and b-bit weights.
    pub fn with_bits(bits: u32) -> [MatmulKernel; 4] {
        [
            MatmulKernel::F32,
            MatmulKernel::SpikesSigns,
            MatmulKernel::SpikesPlanes(bits),
            MatmulKernel::F32Planes(bits),
        ]
    }

    pub fn name(self) -> String {
        match self {
            MatmulKernel::F32 => "matmul_f32".into(),
            MatmulKernel::SpikesSigns => "binary_spikes_x_signs".into(),
            MatmulKernel::SignsSigns => "binary_xnor".into(),
            MatmulKernel::F32Bits => "f32_x_packed_signs".into(),
            MatmulKernel::SpikesPlanes(b) => format!("spikes_x_{b}bit_planes"),
            MatmulKernel::F32Planes(b) => format!("f32_x_{b}bit_planes"),
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
    /// The bit-planes of the b-bit variants.
    quant: Option<ops::QuantWeights>,
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
        let quant = match kernel {
            MatmulKernel::SpikesPlanes(bits) | MatmulKernel::F32Planes(bits) => {
                Some(ops::rescaw_quantize(ctx, &b, bits)?)
            }
            _ => None,
        };
        let (a, b) = match kernel {
            MatmulKernel::F32 | MatmulKernel::F32Planes(_) => (a, b),
            MatmulKernel::SpikesPlanes(_) => (ops::pack_bits(ctx, &a, PackMode::Spikes)?, b),
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
            quant,
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
            MatmulKernel::SpikesPlanes(_) | MatmulKernel::F32Planes(_) => {
                let q = self.quant.as_ref().expect("b-bit workloads quantize b");
                ops::linear_quant(ctx, &self.a, q).map(drop)
            }
        }
    }
}
