//! Spikformer (ZK-Zhou/spikformer, CIFAR model), forward and backward on the GPU.
//!
//! SPS: four conv-BN-LIF stages (max-pool after the LIF of the last log2(patch) stages),
//! `x_feat` their output, `x = LIF(BN(rpe_conv(x_feat))) + x_feat` as tokens
//! `[T, B, N, D]`. Blocks: `x = x + SSA(x)`, `x = x + MLP(x)`; SSA: `q, k, v =
//! LIF(BN(Linear(x)))`, `y = LIF_0.5((q k^T) v * 0.125)`, `out = LIF(BN(proj(y)))`; MLP:
//! `LIF(BN(fc2(LIF(BN(fc1(x))))))`. Head: `Linear(mean_{N,T} x)`. Any attention form
//! replaces SSA's core (see `nn::attention`); binary weights binarize every conv and
//! linear but the first conv and the head (the q/k/v and fc1 layers read the real
//! residual stream, so they multiply by their f32 signs).

use super::attention::{Attention, AttentionSaved};
use super::classifier::{one_head, Classifier};
use super::config::{ModelConfig, TransformerConfig};
use super::layers::{unit_backward, unit_forward, Mode, UnitSaved, Weight};
use super::params::{param_layout, AttnParams, MlpParams, SpikformerParams, UnitParams};
use super::store::ParamStore;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{self, LifConfig, Neuron};

/// One SPS stage: conv -> BN -> LIF (-> max-pool).
struct StageActs {
    unit: UnitSaved,       // x [T*B, H, W, C_in], z [T*B, H, W, C_out]
    pool: Option<Tensor>,  // argmax [T*B, H/2, W/2, C_out] (U32)
    lif_shape: Vec<usize>, // [T*B, H, W, C_out], the pool's input
}

struct SsaActs {
    attn: AttentionSaved, // q/k/v branches on the block input [T, B, N, D], the core
    proj: UnitSaved,      // x [T, B, N, D] spikes of the attention LIF
}

struct MlpActs {
    fc1: UnitSaved, // x [T, B, N, D], z [T, B, N, 4D]
    fc2: UnitSaved, // x [T, B, N, 4D], z [T, B, N, D]
}

struct BlockActs {
    attn: SsaActs,
    mlp: MlpActs,
}

/// Everything one training forward keeps for backward.
struct Acts {
    stages: Vec<StageActs>,
    rpe: UnitSaved, // x = x_feat [T*B, H/p, W/p, D]
    blocks: Vec<BlockActs>,
    pooled: Tensor, // [B, D], the head's input
    tokens: [usize; 4],
}

/// Spikformer on the GPU for batch size `batch`.
pub struct Spikformer {
    /// The model's config.
    pub config: ModelConfig,
    sizes: TransformerConfig,
    /// The batch its activations are sized for.
    pub batch: usize,
    params: SpikformerParams,
    lif: Neuron,
    attention: Attention,
    acts: Option<Acts>,
}

impl Spikformer {
    /// A Spikformer of `config` for batches of `batch`.
    pub fn new(config: &ModelConfig, batch: usize) -> Result<Self> {
        config.validate()?;
        let layout = param_layout(config);
        let (Some(params), Some(sizes)) = (layout.spikformer(), config.transformer()) else {
            return Err(Error::InvalidArgument(format!(
                "a {:?} config is not a Spikformer",
                config.kind()
            )));
        };
        if batch == 0 {
            return Err(Error::InvalidArgument("batch size must be positive".into()));
        }
        Ok(Self {
            config: config.clone(),
            sizes: *sizes,
            batch,
            params: params.clone(),
            lif: Neuron::Lif(LifConfig::default()),
            attention: Attention::new(config, sizes, false),
            acts: None,
        })
    }

    /// Logits `[B, classes]` of images f32 `[B, C, H, W]` (NCHW) or frames
    /// `[T, B, C, H, W]` (one input per time step); `train` uses batch
    /// statistics (and updates the running ones) and keeps the activations for backward.
    pub fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (t, b) = (cfg.time_steps, self.batch);
        let s = cfg.image_size;
        let lif = Some((&self.lif, t));
        // SPS
        let mut x = ops::time_step_inputs(ctx, images, t, [b, cfg.in_channels, s, s])?; // [T*B, H, W, C_in]
        let mut stages = Vec::new();
        for (i, stage) in self.params.stages.iter().enumerate() {
            let w = stage_weight(stage, i);
            let (sp, unit) = unit_forward(ctx, store, &w, &stage.bn, lif, &x, train)?;
            let lif_shape = sp.shape().to_vec();
            let (out, pool) = if self.sizes.stage_pools(i) {
                let (y, arg) = ops::max_pool2d(ctx, &sp)?;
                (y, Some(arg))
            } else {
                (sp, None)
            };
            stages.push(StageActs {
                unit,
                pool,
                lif_shape,
            });
            x = out;
        }
        let x_feat = x; // [T*B, h, w, D]
        let rpe_p = &self.params.rpe;
        let rpe_w = Weight::conv(rpe_p.weight);
        let (r, rpe) = unit_forward(ctx, store, &rpe_w, &rpe_p.bn, lif, &x_feat, train)?;
        let n = self.sizes.tokens(s);
        let tokens = [t, b, n, self.sizes.dim];
        let mut x = ops::add(ctx, &r, &x_feat)?.reshape(&tokens)?;
        // Blocks
        let mut blocks = Vec::new();
        for blk in &self.params.blocks {
            let (a, attn) = self.ssa_forward(ctx, store, &blk.attn, &x, train)?;
            x = ops::add(ctx, &x, &a)?;
            let (m, mlp) = self.mlp_forward(ctx, store, &blk.mlp, &x, train)?;
            x = ops::add(ctx, &x, &m)?;
            blocks.push(BlockActs { attn, mlp });
        }
        // Head
        let pooled = ops::mean_tokens(ctx, &x)?; // [B, D]
        let head = &self.params.head;
        let head_bias = head.bias.map(|b| store.param(b)).transpose()?;
        let logits = ops::linear(ctx, &pooled, store.param(head.weight)?, head_bias)?;
        self.acts = train.then_some(Acts {
            stages,
            rpe,
            blocks,
            pooled,
            tokens,
        });
        Ok(logits)
    }

    fn ssa_forward(
        &self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        p: &AttnParams,
        x: &Tensor,
        train: bool,
    ) -> Result<(Tensor, SsaActs)> {
        let lif = Some((&self.lif, self.config.time_steps));
        let (ys, attn) = self
            .attention
            .forward(ctx, store, p, x, Mode::of(train), None)?;
        if train {
            for branch in [&p.q, &p.k, &p.v] {
                store.count_batch(&branch.bn);
            }
        }
        let w = self.attention.proj(Weight::linear(p.proj.weight));
        let (out, proj) = unit_forward(ctx, store, &w, &p.proj.bn, lif, &ys, train)?;
        let acts = SsaActs { attn, proj };
        Ok((out, acts))
    }

    fn mlp_forward(
        &self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        p: &MlpParams,
        x: &Tensor,
        train: bool,
    ) -> Result<(Tensor, MlpActs)> {
        let lif = Some((&self.lif, self.config.time_steps));
        let w1 = Weight::linear(p.fc1.weight).real_input();
        let (h, fc1) = unit_forward(ctx, store, &w1, &p.fc1.bn, lif, x, train)?;
        let w2 = Weight::linear(p.fc2.weight);
        let (out, fc2) = unit_forward(ctx, store, &w2, &p.fc2.bn, lif, &h, train)?;
        Ok((out, MlpActs { fc1, fc2 }))
    }

    /// Backward of the last training forward for `dlogits [B, classes]`: parameter
    /// gradients accumulate into `store.grads`.
    pub fn backward(&self, ctx: &GpuContext, store: &ParamStore, dlogits: &Tensor) -> Result<()> {
        let acts = self.acts.as_ref().ok_or_else(|| {
            Error::InvalidArgument("Spikformer::backward needs a training forward first".into())
        })?;
        let t = self.config.time_steps;
        let lif = Some((&self.lif, t));
        // Head
        let head = &self.params.head;
        let dhead_bias = head.bias.map(|b| store.grad(b)).transpose()?;
        let dpooled = ops::linear_backward(
            ctx,
            &acts.pooled,
            store.param(head.weight)?,
            dlogits,
            store.grad(head.weight)?,
            dhead_bias,
        )?;
        let mut dx = ops::mean_tokens_backward(ctx, &dpooled, &acts.tokens)?;
        // Blocks, reversed: x_out = x_mid + MLP(x_mid), x_mid = x_in + SSA(x_in).
        for (blk, a) in self.params.blocks.iter().zip(&acts.blocks).rev() {
            let dmid = self.mlp_backward(ctx, store, &blk.mlp, &a.mlp, &dx)?;
            ops::axpy_into(ctx, &dmid, &dx, 1.0)?;
            let din = self.ssa_backward(ctx, store, &blk.attn, &a.attn, &dmid)?;
            ops::axpy_into(ctx, &din, &dmid, 1.0)?;
            dx = din;
        }
        // SPS: x = LIF(BN(rpe(x_feat))) + x_feat.
        let dx = dx.reshape(acts.rpe.x.shape())?;
        let rpe_p = &self.params.rpe;
        let dfeat = unit_backward(
            ctx,
            store,
            &Weight::conv(rpe_p.weight),
            &rpe_p.bn,
            lif,
            &acts.rpe,
            &dx,
            true,
        )?
        .expect("asked for dx");
        ops::axpy_into(ctx, &dfeat, &dx, 1.0)?;
        let mut dx = dfeat;
        let stages = self.params.stages.iter().zip(&acts.stages);
        for (i, (stage, st)) in stages.enumerate().rev() {
            let ds = match &st.pool {
                Some(arg) => ops::max_pool2d_backward(ctx, &dx, arg, &st.lif_shape)?,
                None => dx,
            };
            let w = stage_weight(stage, i);
            match unit_backward(ctx, store, &w, &stage.bn, lif, &st.unit, &ds, i > 0)? {
                Some(d) => dx = d,
                None => break,
            }
        }
        Ok(())
    }

    fn ssa_backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        p: &AttnParams,
        a: &SsaActs,
        dout: &Tensor,
    ) -> Result<Tensor> {
        let lif = Some((&self.lif, self.config.time_steps));
        let w = self.attention.proj(Weight::linear(p.proj.weight));
        let dys = unit_backward(ctx, store, &w, &p.proj.bn, lif, &a.proj, dout, true)?
            .expect("asked for dx");
        self.attention.backward(ctx, store, p, &a.attn, &dys)
    }

    fn mlp_backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        p: &MlpParams,
        a: &MlpActs,
        dout: &Tensor,
    ) -> Result<Tensor> {
        let lif = Some((&self.lif, self.config.time_steps));
        let w2 = Weight::linear(p.fc2.weight);
        let dh = unit_backward(ctx, store, &w2, &p.fc2.bn, lif, &a.fc2, dout, true)?
            .expect("asked for dx");
        let w1 = Weight::linear(p.fc1.weight).real_input();
        Ok(
            unit_backward(ctx, store, &w1, &p.fc1.bn, lif, &a.fc1, &dh, true)?
                .expect("asked for dx"),
        )
    }

    /// Bytes of the activations the last training forward kept for backward.
    pub fn activation_bytes(&self) -> u64 {
        let Some(a) = &self.acts else { return 0 };
        let mut total = a.pooled.byte_len() + a.rpe.bytes();
        for st in &a.stages {
            total += st.unit.bytes() + st.pool.as_ref().map_or(0, Tensor::byte_len);
        }
        for blk in &a.blocks {
            let s = &blk.attn;
            total += s.attn.bytes() + s.proj.bytes();
            total += blk.mlp.fc1.bytes() + blk.mlp.fc2.bytes();
        }
        total
    }
}

impl Classifier for Spikformer {
    fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        Ok(vec![Spikformer::forward(self, ctx, store, images, train)?])
    }

    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()> {
        Spikformer::backward(self, ctx, store, one_head(dlogits)?)
    }
}

/// SPS stage `i`'s conv: the first reads the image, the others spikes.
fn stage_weight(stage: &UnitParams, i: usize) -> Weight {
    let w = Weight::conv(stage.weight);
    if i == 0 {
        w.real_input()
    } else {
        w
    }
}
