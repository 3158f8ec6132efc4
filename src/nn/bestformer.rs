//! BESTformer (CaoHLin/BESTFormer, CIFAR model), forward and backward on the GPU, with
//! reversible blocks.
//!
//! Tokenizer: `block0` = float conv -> BN; `block1..4` = LIF -> (max-pool in the last
//! log2(patch) blocks) -> binary conv -> BN. Attention: `s = LIF(x)`, `q, k, v =
//! LIF(BN(binary 1x1(s)))`, `A = LIF_soft(q k^T)` over T, `y = (A v) 0.125 lambda[t, h]`,
//! `out = BN(binary proj(LIF_0.5(y)))`. MLP: LIF -> binary 1x1 (D -> 4D) -> BN -> LIF ->
//! binary 1x1 (4D -> D) -> BN. Reversible two-stream blocks: `x2 = attn(x1) + (x0 + x1) /
//! 2` (`+ x1` in the first block, which has no x0), `x3 = mlp(x2) + (x1 + x2) / 2`; heads
//! `out0 = head(mean x2)`, `out1 = head2(mean x3)`, logits `(out0 + out1) / 2`.
//! Any attention form replaces the binary map (see `nn::attention`); float weights keep
//! every layer in f32.
//!
//! Training keeps only the tokenizer's activations and the last block's outputs: backward
//! rebuilds each block's inputs from its outputs (`x1 = 2 (x3 - mlp(x2)) - x2`,
//! `x0 = 2 (x2 - attn(x1)) - x1`), recomputing each sub-block forward (batch statistics,
//! running statistics untouched) to get the activations its backward reads. SSA_Bin's
//! running threshold and shift, which a training forward updates, are kept as they were
//! before it so that the recomputed blocks see the same maps.

use super::attention::{Attention, AttentionSaved, Branches};
use super::config::{Arch, AttentionForm, ModelConfig};
use super::layers::{self, bn_backward, unit_backward, unit_forward_with, Mode, UnitSaved, Weight};
use super::params::param_specs;
use super::store::ParamStore;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Tensor};
use crate::ops::attention::SsaBinState;
use crate::ops::{self, LifConfig};

/// LIF -> weight -> BN: BESTformer's unit.
struct PreUnit {
    h: Tensor, // the LIF's membrane, like the unit's input
    unit: UnitSaved,
}

struct AttnActs {
    h: Tensor, // [T, B, N, D] membrane of the LIF in front of q/k/v
    attn: AttentionSaved,
    proj: UnitSaved,
}

struct MlpActs {
    fc1: PreUnit,
    fc2: PreUnit,
}

/// One of block1..4: the LIF's membrane, the pool's argmax and input shape, conv -> BN.
struct TokenizerStage {
    h: Tensor,
    pool: Option<(Tensor, Vec<usize>)>,
    unit: UnitSaved,
}

struct TokenizerActs {
    /// block0: conv (float) -> BN on the encoded images.
    block0: UnitSaved,
    blocks: Vec<TokenizerStage>,
}

struct Acts {
    tokenizer: TokenizerActs,
    /// The last block's outputs `(x2, x3)` `[T, B, N, D]`; earlier blocks are rebuilt.
    out: (Tensor, Tensor),
    /// SSA_Bin: each block's running statistics as the forward read them.
    ssa_bin: Vec<SsaBinState>,
    pooled: (Tensor, Tensor), // [B, D] each
}

/// BESTformer on the GPU for batch size `batch`.
pub struct Bestformer {
    pub config: ModelConfig,
    pub batch: usize,
    lif: LifConfig,
    attention: Attention,
    acts: Option<Acts>,
    /// Both heads' logits of the last forward.
    pub heads: Option<(Tensor, Tensor)>,
}

impl Bestformer {
    pub fn new(config: &ModelConfig, batch: usize) -> Result<Self> {
        config.validate()?;
        if config.arch != Arch::Bestformer {
            return Err(Error::InvalidArgument(format!(
                "a {:?} config is not a BESTformer",
                config.arch
            )));
        }
        if batch == 0 {
            return Err(Error::InvalidArgument("batch size must be positive".into()));
        }
        Ok(Self {
            config: config.clone(),
            batch,
            lif: LifConfig::default(),
            attention: Attention::new(
                config,
                Branches {
                    suffix: "_conv",
                    bias: false,
                    spike_input: true,
                },
            ),
            acts: None,
            heads: None,
        })
    }

    fn tokens(&self) -> [usize; 4] {
        let c = &self.config;
        [c.time_steps, self.batch, c.tokens(), c.dim]
    }

    /// LIF -> weight -> BN.
    fn pre_unit(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        weight: &Weight,
        bn: &str,
        x: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, PreUnit)> {
        let (s, h) = layers::lif_forward(ctx, x, self.config.time_steps, &self.lif)?;
        let (y, unit) = unit_forward_with(ctx, store, weight, bn, None, &s, mode)?;
        Ok((y, PreUnit { h, unit }))
    }

    fn pre_unit_backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        weight: &Weight,
        bn: &str,
        a: &PreUnit,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let ds =
            unit_backward(ctx, store, weight, bn, None, &a.unit, dy, true)?.expect("asked for dx");
        layers::lif_backward(ctx, &ds, &a.h, self.config.time_steps, &self.lif)
    }

    /// `frozen`: SSA_Bin's statistics to read instead of the store's (a block recomputed
    /// in backward).
    fn attn_forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        x: &Tensor,
        mode: Mode,
        frozen: Option<&SsaBinState>,
    ) -> Result<(Tensor, AttnActs)> {
        let p = format!("block.{blk}.attn");
        let (s, h) = layers::lif_forward(ctx, x, self.config.time_steps, &self.lif)?;
        let (ys, attn) = self.attention.forward(ctx, store, blk, &s, mode, frozen)?;
        let w = self
            .attention
            .proj(Weight::linear(&format!("{p}.proj_conv"), false));
        let (out, proj) =
            unit_forward_with(ctx, store, &w, &format!("{p}.proj_bn"), None, &ys, mode)?;
        Ok((out, AttnActs { h, attn, proj }))
    }

    fn attn_backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        a: &AttnActs,
        dout: &Tensor,
    ) -> Result<Tensor> {
        let p = format!("block.{blk}.attn");
        let w = self
            .attention
            .proj(Weight::linear(&format!("{p}.proj_conv"), false));
        let dys = unit_backward(
            ctx,
            store,
            &w,
            &format!("{p}.proj_bn"),
            None,
            &a.proj,
            dout,
            true,
        )?
        .expect("asked for dx");
        let ds = self.attention.backward(ctx, store, blk, &a.attn, &dys)?;
        layers::lif_backward(ctx, &ds, &a.h, self.config.time_steps, &self.lif)
    }

    fn mlp_forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        x: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, MlpActs)> {
        let p = format!("block.{blk}.mlp");
        let w1 = Weight::linear(&format!("{p}.mlp1_conv"), false);
        let (h, fc1) = self.pre_unit(ctx, store, &w1, &format!("{p}.mlp1_bn"), x, mode)?;
        let w2 = Weight::linear(&format!("{p}.mlp2_conv"), false);
        let (out, fc2) = self.pre_unit(ctx, store, &w2, &format!("{p}.mlp2_bn"), &h, mode)?;
        Ok((out, MlpActs { fc1, fc2 }))
    }

    fn mlp_backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        a: &MlpActs,
        dout: &Tensor,
    ) -> Result<Tensor> {
        let p = format!("block.{blk}.mlp");
        let w2 = Weight::linear(&format!("{p}.mlp2_conv"), false);
        let dh = self.pre_unit_backward(ctx, store, &w2, &format!("{p}.mlp2_bn"), &a.fc2, dout)?;
        let w1 = Weight::linear(&format!("{p}.mlp1_conv"), false);
        self.pre_unit_backward(ctx, store, &w1, &format!("{p}.mlp1_bn"), &a.fc1, &dh)
    }

    /// One reversible block: `(x0, x1) -> (x2, x3)` (x0 None for the first block).
    pub fn block_forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        x0: Option<&Tensor>,
        x1: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, Tensor)> {
        let (a, _) = self.attn_forward(ctx, store, blk, x1, mode, None)?;
        let x2 = match x0 {
            Some(x0) => ops::add_avg(ctx, &a, x0, x1)?,
            None => ops::add(ctx, &a, x1)?,
        };
        let (m, _) = self.mlp_forward(ctx, store, blk, &x2, mode)?;
        let x3 = ops::add_avg(ctx, &m, x1, &x2)?;
        Ok((x2, x3))
    }

    /// The inverse of [`Bestformer::block_forward`] for a later block (`first`: the first
    /// block, which has no x0): `x1 = 2 (x3 - mlp(x2)) - x2`, `x0 = 2 (x2 - attn(x1)) - x1`.
    pub fn block_inverse(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        x2: &Tensor,
        x3: &Tensor,
        first: bool,
    ) -> Result<(Option<Tensor>, Tensor)> {
        let (m, _) = self.mlp_forward(ctx, store, blk, x2, Mode::Recompute)?;
        let x1 = ops::weighted_sum(ctx, &[(2.0, x3), (-2.0, &m), (-1.0, x2)])?;
        if first {
            return Ok((None, x1));
        }
        let (a, _) = self.attn_forward(ctx, store, blk, &x1, Mode::Recompute, None)?;
        let x0 = ops::weighted_sum(ctx, &[(2.0, x2), (-2.0, &a), (-1.0, &x1)])?;
        Ok((Some(x0), x1))
    }

    /// Logits `[B, classes]` = the mean of both heads, for images f32 `[B, C, H, W]` or
    /// frames `[T, B, C, H, W]`;
    /// both heads' logits are left in `self.heads`.
    pub fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let cfg = self.config.clone();
        let (t, b, s) = (cfg.time_steps, self.batch, cfg.image_size);
        let mode = Mode::of(train);
        // Tokenizer
        let x = ops::time_step_inputs(ctx, images, t, [b, cfg.in_channels, s, s])?;
        let w0 = Weight::conv("patch_embed.block0_conv.weight".into());
        let (mut y, block0) =
            unit_forward_with(ctx, store, &w0, "patch_embed.block0_bn", None, &x, mode)?;
        let mut blocks = Vec::new();
        for i in 1..5 {
            let (sp, h) = layers::lif_forward(ctx, &y, t, &self.lif)?;
            let (sp, pool) = if cfg.stage_pools(i - 1) {
                let shape = sp.shape().to_vec();
                let (p, arg) = ops::max_pool2d(ctx, &sp)?;
                (p, Some((arg, shape)))
            } else {
                (sp, None)
            };
            let w = Weight::conv(format!("patch_embed.block{i}_conv.weight"));
            let bn = format!("patch_embed.block{i}_bn");
            let (out, unit) = unit_forward_with(ctx, store, &w, &bn, None, &sp, mode)?;
            blocks.push(TokenizerStage { h, pool, unit });
            y = out;
        }
        let mut x1 = y.reshape(&self.tokens())?;
        let mut x0: Option<Tensor> = None;
        let mut ssa_bin = Vec::new();
        for blk in 0..cfg.depth {
            if train && cfg.attention == AttentionForm::SsaBin {
                let state = self.attention.ssa_bin_state(store, blk)?;
                ssa_bin.push(SsaBinState {
                    delta: ops::copy(ctx, &state.delta)?,
                    mean: ops::copy(ctx, &state.mean)?,
                });
            }
            let (x2, x3) = self.block_forward(ctx, store, blk, x0.as_ref(), &x1, mode)?;
            x0 = Some(x2);
            x1 = x3;
        }
        let x2 = x0.expect("depth >= 1");
        let p0 = ops::mean_tokens(ctx, &x2)?;
        let p1 = ops::mean_tokens(ctx, &x1)?;
        let head = |name: &str, x: &Tensor| -> Result<Tensor> {
            ops::linear(
                ctx,
                x,
                &store.param(ctx, &format!("{name}.weight"))?,
                Some(&store.param(ctx, &format!("{name}.bias"))?),
            )
        };
        let out0 = head("head", &p0)?;
        let out1 = head("head2", &p1)?;
        let logits = ops::weighted_sum(ctx, &[(0.5, &out0), (0.5, &out1)])?;
        self.heads = Some((out0, out1));
        if train {
            for spec in param_specs(&cfg) {
                if let Some(prefix) = spec.name.strip_suffix(".running_mean") {
                    store.count_batch(prefix);
                }
            }
        }
        self.acts = train.then_some(Acts {
            tokenizer: TokenizerActs { block0, blocks },
            out: (x2, x1),
            ssa_bin,
            pooled: (p0, p1),
        });
        Ok(logits)
    }

    /// Backward of the last training forward for the gradient of the averaged logits.
    pub fn backward(&self, ctx: &GpuContext, store: &ParamStore, dlogits: &Tensor) -> Result<()> {
        let half = ops::scale(ctx, dlogits, 0.5)?;
        self.backward_heads(ctx, store, &half, &half)
    }

    /// Backward for the gradients of both heads' logits (`out0`, `out1`) `[B, classes]`.
    pub fn backward_heads(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        dout0: &Tensor,
        dout1: &Tensor,
    ) -> Result<()> {
        let acts = self.acts.as_ref().ok_or_else(|| {
            Error::InvalidArgument("Bestformer::backward needs a training forward first".into())
        })?;
        let tokens = self.tokens();
        let head = |name: &str, x: &Tensor, dy: &Tensor| -> Result<Tensor> {
            let dp = ops::linear_backward(
                ctx,
                x,
                &store.param(ctx, &format!("{name}.weight"))?,
                dy,
                &store.grad(ctx, &format!("{name}.weight"))?,
                Some(&store.grad(ctx, &format!("{name}.bias"))?),
            )?;
            ops::mean_tokens_backward(ctx, &dp, &tokens)
        };
        let mut dx2 = head("head", &acts.pooled.0, dout0)?;
        let mut dx3 = head("head2", &acts.pooled.1, dout1)?;
        let (mut x2, mut x3) = acts.out.clone();
        for blk in (0..self.config.depth).rev() {
            let first = blk == 0;
            // x3 = mlp(x2) + (x1 + x2) / 2
            let (m, mlp) = self.mlp_forward(ctx, store, blk, &x2, Mode::Recompute)?;
            let x1 = ops::weighted_sum(ctx, &[(2.0, &x3), (-2.0, &m), (-1.0, &x2)])?;
            let dm = self.mlp_backward(ctx, store, blk, &mlp, &dx3)?;
            drop(mlp);
            // d x2 total = dx2 + mlp'(dx3) + dx3 / 2; d x1 = dx3 / 2 (+ more below)
            let dx2t = ops::weighted_sum(ctx, &[(1.0, &dx2), (1.0, &dm), (0.5, &dx3)])?;
            // x2 = attn(x1) + (x0 + x1) / 2, or + x1 in the first block
            let frozen = acts.ssa_bin.get(blk);
            let (a, attn) = self.attn_forward(ctx, store, blk, &x1, Mode::Recompute, frozen)?;
            let da = self.attn_backward(ctx, store, blk, &attn, &dx2t)?;
            drop(attn);
            let c = if first { 1.0 } else { 0.5 };
            let dx1 = ops::weighted_sum(ctx, &[(1.0, &da), (c, &dx2t), (0.5, &dx3)])?;
            if first {
                dx3 = dx1;
                x3 = x1;
                break;
            }
            let x0 = ops::weighted_sum(ctx, &[(2.0, &x2), (-2.0, &a), (-1.0, &x1)])?;
            dx2 = ops::scale(ctx, &dx2t, 0.5)?;
            dx3 = dx1;
            x2 = x0;
            x3 = x1;
        }
        drop(x3);
        // Tokenizer, reversed; its output's gradient is the first block's d x1.
        let tk = &acts.tokenizer;
        let t = self.config.time_steps;
        let mut dy = dx3.reshape(tk.blocks[3].unit.z.shape())?;
        for (i, TokenizerStage { h, pool, unit }) in tk.blocks.iter().enumerate().rev() {
            let blk = i + 1;
            let w = Weight::conv(format!("patch_embed.block{blk}_conv.weight"));
            let bn = format!("patch_embed.block{blk}_bn");
            let ds =
                unit_backward(ctx, store, &w, &bn, None, unit, &dy, true)?.expect("asked for dx");
            let ds = match pool {
                Some((arg, shape)) => ops::max_pool2d_backward(ctx, &ds, arg, shape)?,
                None => ds,
            };
            dy = layers::lif_backward(ctx, &ds, h, t, &self.lif)?;
        }
        let dz = bn_backward(
            ctx,
            store,
            "patch_embed.block0_bn",
            &tk.block0.z,
            tk.block0.stats.as_ref(),
            &dy,
        )?;
        Weight::conv("patch_embed.block0_conv.weight".into()).backward(
            ctx,
            store,
            &tk.block0.x,
            &dz,
            false,
        )?;
        Ok(())
    }

    /// Bytes of the activations the last training forward kept for backward (flat in
    /// depth: the blocks' are rebuilt).
    pub fn activation_bytes(&self) -> u64 {
        let Some(a) = &self.acts else { return 0 };
        let mut total = a.tokenizer.block0.bytes();
        for TokenizerStage { h, pool, unit } in &a.tokenizer.blocks {
            total += h.byte_len() + unit.bytes();
            total += pool.as_ref().map_or(0, |(arg, _)| arg.byte_len());
        }
        total += a.out.0.byte_len() + a.out.1.byte_len();
        for s in &a.ssa_bin {
            total += s.delta.byte_len() + s.mean.byte_len();
        }
        total + a.pooled.0.byte_len() + a.pooled.1.byte_len()
    }
}
