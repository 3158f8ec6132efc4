//! Attention workloads: every attention form's forward, and forward + backward, on the
//! models' shapes, with f32 SSA (f32 matmuls for both products) as the baseline. Rates
//! count the multiply-accumulates of the two products of the form (scores and output).

use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::attention::{
    AttentionForm, AttentionOp, AttnShape, FormInputs, FormParam, FormParamKind, FormSaved,
    FormSetup, Ssa, SsaPath, SSA_BIN_DELTA,
};
use crate::ops::Neuron;

/// The attention forms `bitspike bench attention` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    /// Spikformer SSA with f32 matmuls (the baseline every ratio is taken against).
    SsaF32,
    /// Spikformer SSA with the scores on packed bits.
    Ssa,
    /// BESTformer binary attention, N x N map.
    BinaryTokens,
    /// BESTformer binary attention, d x d map.
    BinaryFeatures,
    /// SSA_Bin (training: running statistics updated).
    SsaBin,
    /// A2OS2A.
    A2os2a,
}

impl AttentionKernel {
    /// Every timed variant, in the order they are reported.
    pub const ALL: [AttentionKernel; 6] = [
        AttentionKernel::SsaF32,
        AttentionKernel::Ssa,
        AttentionKernel::BinaryTokens,
        AttentionKernel::BinaryFeatures,
        AttentionKernel::SsaBin,
        AttentionKernel::A2os2a,
    ];

    /// The op this kernel runs on operands of `shape`.
    pub fn op(self, shape: &AttnShape) -> Box<dyn AttentionOp> {
        let setup = FormSetup {
            time_steps: shape.t,
            heads: shape.heads,
            head_dim: shape.d,
            feature_order: self == AttentionKernel::BinaryFeatures,
        };
        match self {
            AttentionKernel::SsaF32 => Box::new(Ssa {
                path: SsaPath::F32,
                ..Ssa::default()
            }),
            AttentionKernel::Ssa => AttentionForm::Ssa.op(&setup),
            AttentionKernel::BinaryTokens | AttentionKernel::BinaryFeatures => {
                AttentionForm::Binary.op(&setup)
            }
            AttentionKernel::SsaBin => AttentionForm::SsaBin.op(&setup),
            AttentionKernel::A2os2a => AttentionForm::A2os2a.op(&setup),
        }
    }

    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::SsaF32 => "ssa_f32",
            AttentionKernel::Ssa => "ssa_binary_scores",
            AttentionKernel::BinaryTokens => "binary_attention_nxn",
            AttentionKernel::BinaryFeatures => "binary_attention_dxd",
            AttentionKernel::SsaBin => "ssa_bin",
            AttentionKernel::A2os2a => "a2os2a",
        }
    }
}

/// What one iteration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionPass {
    /// The forward alone.
    Forward,
    /// The forward, then the backward.
    ForwardBackward,
}

impl AttentionPass {
    /// Both passes.
    pub const ALL: [AttentionPass; 2] = [AttentionPass::Forward, AttentionPass::ForwardBackward];

    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            AttentionPass::Forward => "forward",
            AttentionPass::ForwardBackward => "forward+backward",
        }
    }
}

/// (T, B, heads, N, d): Spikformer / BESTformer on CIFAR (N = 64 tokens, D = 384 over 8
/// heads) and on 224 x 224 inputs with 16 x 16 patches (N = 196). The second needs
/// 315 MB f32 maps: more than lavapipe's 128 MiB binding limit (`new` says so).
pub const MODEL_SHAPES: [(usize, usize, usize, usize, usize); 2] =
    [(4, 64, 8, 64, 48), (4, 64, 8, 196, 48)];

/// What one forward of a form reports besides its time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForwardStats {
    /// Fraction of ones in the attention map (of non-zero scores for real-valued maps).
    pub firing_rate: f64,
    /// Bytes the forward keeps for backward ([`FormSaved::bytes`]): Q, K and V, with the
    /// f32 scores for SSA and A2OS2A, the packed map and score operands for the binary
    /// forms.
    pub saved_bytes: u64,
}

/// Operands of one (form, pass, shape), uploaded once.
pub struct AttentionWorkload {
    /// The attention variant timed.
    pub kernel: AttentionKernel,
    /// Forward only, or forward and backward.
    pub pass: AttentionPass,
    /// The Q, K, V shape.
    pub shape: AttnShape,
    op: Box<dyn AttentionOp>,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dy: Tensor,
    /// The form's Learned tensors, in `params()` order.
    learned: Vec<Tensor>,
    /// Its running statistics, in `params()` order.
    stats: Vec<Tensor>,
}

fn hashed(len: usize, seed: u32) -> Vec<f32> {
    super::pseudo_random(len, seed, 0.0, 1.0)
}

fn spikes(len: usize, seed: u32, rate: f32) -> Vec<f32> {
    hashed(len, seed)
        .into_iter()
        .map(|x| if x < rate { 1.0 } else { 0.0 })
        .collect()
}

impl AttentionWorkload {
    /// The workload's inputs, uploaded: random spikes of `shape` at the map's usual rates.
    pub fn new(
        ctx: &GpuContext,
        kernel: AttentionKernel,
        pass: AttentionPass,
        (t, b, heads, n, d): (usize, usize, usize, usize, usize),
    ) -> Result<Self> {
        let shape = AttnShape { t, b, heads, n, d };
        // Refuse up front a shape whose largest intermediate (an f32 map per (t, b, h))
        // exceeds the device's binding limit, rather than fail in `run`: on lavapipe
        // (128 MiB) N = 196 needs B <= 16.
        let map = match kernel {
            AttentionKernel::BinaryFeatures => (d * d).max(n * d),
            _ => n * n,
        };
        ctx.check_buffer_size(
            &format!("{} map [{}, {map}]", kernel.name(), shape.maps()),
            4 * (shape.maps() * map) as u64,
        )?;
        let op = kernel.op(&shape);
        let dims = shape.dims();
        let len = dims.iter().product();
        // Each branch's values as its neuron gives them: spikes, a ReLU output, ternary.
        let branch = |neuron: Neuron, seed: u32| -> Vec<f32> {
            match neuron {
                Neuron::Relu => hashed(len, seed)
                    .iter()
                    .map(|x| (x - 0.5).max(0.0))
                    .collect(),
                Neuron::Ternary(_) => hashed(len, seed)
                    .iter()
                    .map(|x| (x * 3.0).floor() - 1.0)
                    .collect(),
                _ => spikes(len, seed, 0.25),
            }
        };
        let [nq, nk, nv] = op.branch_neurons();
        let dy: Vec<f32> = hashed(len, 4).iter().map(|x| x - 0.5).collect();
        let params = op.params();
        let upload = |kind: FormParamKind| -> Result<Vec<Tensor>> {
            params
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| {
                    ctx.upload_f32(&vec![start_value(p, d); p.shape.iter().product()], &p.shape)
                })
                .collect()
        };
        let work = Self {
            kernel,
            pass,
            shape,
            q: ctx.upload_f32(&branch(nq, 1), &dims)?,
            k: ctx.upload_f32(&branch(nk, 2), &dims)?,
            v: ctx.upload_f32(&branch(nv, 3), &dims)?,
            dy: ctx.upload_f32(&dy, &dims)?,
            learned: upload(FormParamKind::Learned)?,
            stats: upload(FormParamKind::RunningStat)?,
            op,
        };
        ctx.sync()?;
        Ok(work)
    }

    /// `form/pass`, e.g. `ssa_f32/forward`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.kernel.name(), self.pass.name())
    }

    /// `TxBxHxNxd`, e.g. `4x64x8x64x48`.
    pub fn shape_name(&self) -> String {
        let s = &self.shape;
        format!("{}x{}x{}x{}x{}", s.t, s.b, s.heads, s.n, s.d)
    }

    /// Multiply-accumulates of the form's two products in forward (times 3 with
    /// backward: each product has two gradient products).
    pub fn macs(&self) -> f64 {
        let s = &self.shape;
        let per_map = match self.kernel {
            AttentionKernel::BinaryFeatures => 2 * s.n * s.d * s.d,
            _ => 2 * s.n * s.n * s.d,
        };
        let passes = match self.pass {
            AttentionPass::Forward => 1,
            AttentionPass::ForwardBackward => 3,
        };
        (s.maps() * per_map * passes) as f64
    }

    /// One forward of the form on these operands (SSA_Bin in evaluation: the running
    /// statistics stay as they are), waited for: its map's firing rate and what it keeps
    /// for backward.
    pub fn forward_stats(&self, ctx: &GpuContext) -> Result<ForwardStats> {
        let saved = self.forward(ctx, false)?;
        Ok(ForwardStats {
            firing_rate: saved.rate().read(ctx)?,
            saved_bytes: saved.bytes(),
        })
    }

    /// The form's forward (its output dropped); SSA_Bin updates its running statistics
    /// when `training`.
    fn forward(&self, ctx: &GpuContext, training: bool) -> Result<Box<dyn FormSaved>> {
        let inputs = FormInputs {
            learned: &self.learned,
            stats: &self.stats,
            update_stats: training,
        };
        Ok(self.op.forward(ctx, &self.q, &self.k, &self.v, &inputs)?.1)
    }

    /// Record one iteration (outputs go back to the pool when dropped).
    pub fn run(&self, ctx: &GpuContext) -> Result<()> {
        let saved = self.forward(ctx, true)?;
        if self.pass == AttentionPass::ForwardBackward {
            drop(saved.backward(ctx, &self.dy)?);
        }
        Ok(())
    }
}

/// A form tensor's value when the workload starts: its initial value, but SSA_Bin's
/// threshold at the expected score `d / 16` of spikes at rate 0.25 (the models' 0 would
/// fill the map with ones).
fn start_value(param: &FormParam, d: usize) -> f32 {
    if param.name == SSA_BIN_DELTA {
        d as f32 / 16.0
    } else {
        param.init
    }
}
