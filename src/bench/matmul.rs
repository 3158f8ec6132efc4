//! Matmul workloads: the f32 tiled matmul against the packed binary forms on the same
//! (M, K, N), counted in multiply-accumulates (one MAC = one multiply-add); b-bit weights
//! count one MAC per weight, whatever b (the rate a b-bit layer delivers). And the f32
//! kernels against each other on every transposed form (`F32FormWorkload`).

use super::pseudo_random;
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{self, BinaryForm, F32Matmul, MatmulForm, PackMode};

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
    /// Every timed kernel.
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

    /// The name printed in reports.
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

/// Weight-gradient products (dW = dY^T X: `A^T B` with K = T * B * tokens) as (M, K, N):
/// the 384-wide models' linear layers over 16384 tokens (contraction, expansion,
/// attention projections), and a 3 x 3 convolution over 48 channels at 262144 pixels.
pub const GRADIENT_SHAPES: [(usize, usize, usize); 4] = [
    (384, 16384, 1536),
    (1536, 16384, 384),
    (384, 16384, 384),
    (48, 262144, 432),
];

/// The f32 kernels `bench matmul` compares on each form: the first is the baseline.
pub const F32_KERNELS: [F32Matmul; 2] = [F32Matmul::Registers, F32Matmul::Tiled];

/// Operands of one (f32 kernel, form, M, K, N), uploaded once.
pub struct F32FormWorkload {
    /// The f32 kernel variant.
    pub kernel: F32Matmul,
    /// Which operands are transposed.
    pub form: MatmulForm,
    /// Rows of the output.
    pub m: usize,
    /// The reduction length.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    a: Tensor,
    b: Tensor,
}

impl F32FormWorkload {
    /// The workload's random operands, uploaded.
    pub fn new(
        ctx: &GpuContext,
        kernel: F32Matmul,
        form: MatmulForm,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Self> {
        let (a_shape, b_shape) = match form {
            MatmulForm::AB => ([m, k], [k, n]),
            MatmulForm::AtB => ([k, m], [k, n]),
            MatmulForm::ABt => ([m, k], [n, k]),
            MatmulForm::AtBt => ([k, m], [n, k]),
        };
        let a = ctx.upload_f32(&pseudo_random(m * k, 1, -0.5, 0.5), &a_shape)?;
        let b = ctx.upload_f32(&pseudo_random(n * k, 2, -0.5, 0.5), &b_shape)?;
        ctx.sync()?;
        Ok(Self {
            kernel,
            form,
            m,
            k,
            n,
            a,
            b,
        })
    }

    /// `matmul_f32_registers/AtB`, `matmul_f32_tiled/AB`, ...
    pub fn name(&self) -> String {
        let kernel = match self.kernel {
            F32Matmul::Auto => "auto",
            F32Matmul::Registers => "registers",
            F32Matmul::Tiled => "tiled",
        };
        format!("matmul_f32_{kernel}/{:?}", self.form)
    }

    /// Multiply-accumulates per run.
    pub fn macs(&self) -> f64 {
        (self.m * self.k * self.n) as f64
    }

    /// The shape, as printed.
    pub fn shape(&self) -> String {
        format!("{}x{}x{}", self.m, self.k, self.n)
    }

    /// Record one product (the output goes back to the pool when dropped).
    pub fn run(&self, ctx: &GpuContext) -> Result<()> {
        ops::matmul_with(ctx, &self.a, &self.b, self.form, self.kernel).map(drop)
    }
}

/// Operands of one (kernel, M, K, N), uploaded and packed once.
pub struct MatmulWorkload {
    /// The kernel timed.
    pub kernel: MatmulKernel,
    /// Rows of the output.
    pub m: usize,
    /// The reduction length.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    a: Tensor,
    b: Tensor,
    scale: Tensor,
    /// The bit-planes of the b-bit variants.
    quant: Option<ops::QuantWeights>,
}

impl MatmulWorkload {
    /// The workload's random operands, packed where the kernel reads bits.
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

    /// Multiply-accumulates per run.
    pub fn macs(&self) -> f64 {
        (self.m * self.k * self.n) as f64
    }

    /// The shape, as printed.
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
