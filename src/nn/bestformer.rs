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
//! The streams are 64-bit fixed-point counts of 2^-32 (`ops::reversible`), whose coupling is
//! exactly invertible. In [`Reversible::Recompute`] (the default) training keeps only the
//! tokenizer's activations, the last block's activations and inputs (still live when
//! backward starts, so rebuilding them would only repeat its forward) and one parity bit
//! per value and coupling; backward rebuilds each earlier block's inputs from its outputs
//! bit for bit
//! (`x1 = 2 (x3 - mlp(x2)) - x2`, `x0 = 2 (x2 - attn(x1)) - x1`) and recomputes each
//! sub-block forward on them (batch statistics, running statistics untouched), which
//! reproduces the forward's spikes and activations exactly. SSA_Bin's running threshold
//! and shift, which a training forward updates, are kept as they were before it so that
//! the recomputed blocks see the same maps. [`Reversible::Store`] keeps every block's
//! activations instead (same gradients, memory growing with depth).

use super::attention::{Attention, AttentionSaved};
use super::classifier::Classifier;
use super::config::{ModelConfig, TransformerConfig};
use super::layers::{unit_backward, unit_forward_with, Mode, UnitSaved, Weight};
use super::params::{param_layout, BestformerParams, BnParams, WeightParams};
use super::store::ParamStore;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Tensor};
use crate::ops::reversible::{couple, to_stream, uncouple, Coupling, Stream};
use crate::ops::{self, LifConfig, Neuron};

/// How the backward gets each reversible block's activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Reversible {
    /// Rebuild each block's inputs from its outputs and recompute its sub-blocks:
    /// activation memory flat in depth.
    #[default]
    Recompute,
    /// Keep every block's activations from the forward: more memory, no recompute.
    Store,
}

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

impl AttnActs {
    fn bytes(&self) -> u64 {
        self.h.byte_len() + self.attn.bytes() + self.proj.bytes()
    }
}

struct MlpActs {
    fc1: PreUnit,
    fc2: PreUnit,
}

impl MlpActs {
    fn bytes(&self) -> u64 {
        [&self.fc1, &self.fc2]
            .iter()
            .map(|u| u.h.byte_len() + u.unit.bytes())
            .sum()
    }
}

/// One of block1..4: the LIF's membrane, the pool's argmax and input shape, conv -> BN.
/// A tokenizer stage: its max-pool of the previous LIF's spikes, then conv -> BN, and the
/// next stage's LIF on that BN (in `unit`; the last stage has none).
struct TokenizerStage {
    pool: Option<(Tensor, Vec<usize>)>,
    unit: UnitSaved,
}

struct TokenizerActs {
    /// block0: conv (float) -> BN on the encoded images -> stage 0's LIF.
    block0: UnitSaved,
    blocks: Vec<TokenizerStage>,
}

/// A block's output streams and the parity bits its inverse needs.
struct BlockOutputs {
    x2: Stream,
    x3: Stream,
    /// `(x0 + x1) & 1` (None in the first block, which adds x1 whole).
    parity_attn: Option<Tensor>,
    /// `(x1 + x2) & 1`.
    parity_mlp: Tensor,
}

/// What [`Reversible::Store`] keeps of a block (and recompute mode of the last block,
/// whose activations are still live when backward starts).
struct StoredBlock {
    /// The input streams `(x0, x1)` the block read: the outputs of the block before,
    /// which recompute mode rebuilds from.
    inputs: (Option<Stream>, Stream),
    attn: AttnActs,
    mlp: MlpActs,
}

struct BlockSaved {
    parity_attn: Option<Tensor>,
    parity_mlp: Tensor,
    stored: Option<StoredBlock>,
}

struct Acts {
    tokenizer: TokenizerActs,
    /// The last block's output streams `(x2, x3)` `[T, B, N, D]`.
    out: (Stream, Stream),
    blocks: Vec<BlockSaved>,
    /// Each block's attention-form running statistics (SSA_Bin's) as the forward read
    /// them.
    form_stats: Vec<Vec<Tensor>>,
    pooled: (Tensor, Tensor), // [B, D] each
}

/// BESTformer on the GPU for batch size `batch`.
pub struct Bestformer {
    /// The model's config.
    pub config: ModelConfig,
    sizes: TransformerConfig,
    /// The batch its activations are sized for.
    pub batch: usize,
    params: BestformerParams,
    lif: Neuron,
    attention: Attention,
    /// How training keeps the blocks' activations for backward.
    pub reversible: Reversible,
    acts: Option<Acts>,
    /// Both heads' logits of the last forward.
    pub heads: Option<(Tensor, Tensor)>,
}

impl Bestformer {
    /// A BESTformer of `config` for batches of `batch`.
    pub fn new(config: &ModelConfig, batch: usize) -> Result<Self> {
        config.validate()?;
        let layout = param_layout(config);
        let (Some(params), Some(sizes)) = (layout.bestformer(), config.transformer()) else {
            return Err(Error::InvalidArgument(format!(
                "a {:?} config is not a BESTformer",
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
            attention: Attention::new(config, sizes, true),
            reversible: Reversible::default(),
            acts: None,
            heads: None,
        })
    }

    fn tokens(&self) -> [usize; 4] {
        let c = &self.config;
        [
            c.time_steps,
            self.batch,
            self.sizes.tokens(c.image_size),
            self.sizes.dim,
        ]
    }

    /// LIF -> weight -> BN.
    fn pre_unit(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        weight: &Weight,
        bn: &BnParams,
        x: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, PreUnit)> {
        let (s, h) = self.lif.forward(ctx, x, self.config.time_steps)?;
        let (y, unit) = unit_forward_with(ctx, store, weight, bn, None, &s, mode)?;
        Ok((y, PreUnit { h, unit }))
    }

    fn pre_unit_backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        weight: &Weight,
        bn: &BnParams,
        a: &PreUnit,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let ds =
            unit_backward(ctx, store, weight, bn, None, &a.unit, dy, true)?.expect("asked for dx");
        self.lif.backward(ctx, &ds, &a.h, self.config.time_steps)
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
        frozen: Option<&[Tensor]>,
    ) -> Result<(Tensor, AttnActs)> {
        let p = &self.params.blocks[blk].attn;
        let (s, h) = self.lif.forward(ctx, x, self.config.time_steps)?;
        let (ys, attn) = self.attention.forward(ctx, store, p, &s, mode, frozen)?;
        let w = self.attention.proj(Weight::linear(p.proj.weight));
        let (out, proj) = unit_forward_with(ctx, store, &w, &p.proj.bn, None, &ys, mode)?;
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
        let p = &self.params.blocks[blk].attn;
        let w = self.attention.proj(Weight::linear(p.proj.weight));
        let dys = unit_backward(ctx, store, &w, &p.proj.bn, None, &a.proj, dout, true)?
            .expect("asked for dx");
        let ds = self.attention.backward(ctx, store, p, &a.attn, &dys)?;
        self.lif.backward(ctx, &ds, &a.h, self.config.time_steps)
    }

    fn mlp_forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        x: &Tensor,
        mode: Mode,
    ) -> Result<(Tensor, MlpActs)> {
        let p = &self.params.blocks[blk].mlp;
        let w1 = Weight::linear(p.fc1.weight);
        let (h, fc1) = self.pre_unit(ctx, store, &w1, &p.fc1.bn, x, mode)?;
        let w2 = Weight::linear(p.fc2.weight);
        let (out, fc2) = self.pre_unit(ctx, store, &w2, &p.fc2.bn, &h, mode)?;
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
        let p = &self.params.blocks[blk].mlp;
        let w2 = Weight::linear(p.fc2.weight);
        let dh = self.pre_unit_backward(ctx, store, &w2, &p.fc2.bn, &a.fc2, dout)?;
        let w1 = Weight::linear(p.fc1.weight);
        self.pre_unit_backward(ctx, store, &w1, &p.fc1.bn, &a.fc1, &dh)
    }

    /// One reversible block: `(x0, x1) -> (x2, x3)` on fixed-point streams (x0 None for
    /// the first block), with the sub-blocks' activations.
    fn block_forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        x0: Option<&Stream>,
        x1: &Stream,
        mode: Mode,
    ) -> Result<(BlockOutputs, AttnActs, MlpActs)> {
        let (a, attn) = self.attn_forward(ctx, store, blk, &x1.value, mode, None)?;
        // x2 = attn(x1) + (x0 + x1) / 2, or + x1 in the first block
        let (x2, parity_attn) = match x0 {
            Some(x0) => couple(ctx, &a, &x0.fixed, Coupling::Mean { r: &x1.fixed })?,
            None => couple(ctx, &a, &x1.fixed, Coupling::Add)?,
        };
        // x3 = mlp(x2) + (x1 + x2) / 2
        let (m, mlp) = self.mlp_forward(ctx, store, blk, &x2.value, mode)?;
        let (x3, parity_mlp) = couple(ctx, &m, &x1.fixed, Coupling::Mean { r: &x2.fixed })?;
        let parity_mlp = parity_mlp.expect("a mean coupling keeps its parity");
        Ok((
            BlockOutputs {
                x2,
                x3,
                parity_attn,
                parity_mlp,
            },
            attn,
            mlp,
        ))
    }

    /// `x1 = 2 (x3 - mlp(x2)) - x2`, exactly, with the recomputed MLP's activations.
    fn inverse_mlp(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        (x2, x3): (&Stream, &Stream),
        parity: &Tensor,
    ) -> Result<(Stream, MlpActs)> {
        let (m, mlp) = self.mlp_forward(ctx, store, blk, &x2.value, Mode::Recompute)?;
        let x1 = uncouple(ctx, &x3.fixed, &m, Some((&x2.fixed, parity)))?;
        Ok((x1, mlp))
    }

    /// `x0 = 2 (x2 - attn(x1)) - x1`, exactly (None for the first block, `parity` None),
    /// with the recomputed attention's activations; `frozen` as in `attn_forward`.
    fn inverse_attn(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        blk: usize,
        (x1, x2): (&Stream, &Stream),
        parity: Option<&Tensor>,
        frozen: Option<&[Tensor]>,
    ) -> Result<(Option<Stream>, AttnActs)> {
        let (a, attn) = self.attn_forward(ctx, store, blk, &x1.value, Mode::Recompute, frozen)?;
        let x0 = match parity {
            Some(parity) => Some(uncouple(ctx, &x2.fixed, &a, Some((&x1.fixed, parity)))?),
            None => None,
        };
        Ok((x0, attn))
    }

    /// The fixed-point inputs `(x0, x1)` of every block (x0 None for the first), rebuilt
    /// from the last training forward's outputs exactly as the recompute backward does.
    pub fn rebuild_block_inputs(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
    ) -> Result<Vec<(Option<Tensor>, Tensor)>> {
        let acts = self.training_acts()?;
        let (mut x2, mut x3) = acts.out.clone();
        let mut inputs = Vec::new();
        for (blk, saved) in acts.blocks.iter().enumerate().rev() {
            let (x1, _) = self.inverse_mlp(ctx, store, blk, (&x2, &x3), &saved.parity_mlp)?;
            let frozen = acts.form_stats.get(blk).map(Vec::as_slice);
            let parity = saved.parity_attn.as_ref();
            let (x0, _) = self.inverse_attn(ctx, store, blk, (&x1, &x2), parity, frozen)?;
            inputs.push((x0.as_ref().map(|x| x.fixed.clone()), x1.fixed.clone()));
            match x0 {
                Some(x0) => (x2, x3) = (x0, x1),
                None => break,
            }
        }
        inputs.reverse();
        Ok(inputs)
    }

    /// The inputs every block's forward read, as kept by [`Reversible::Store`] (None in
    /// recompute mode or before a training forward).
    pub fn stored_block_inputs(&self) -> Option<Vec<(Option<Tensor>, Tensor)>> {
        let acts = self.acts.as_ref()?;
        if self.reversible != Reversible::Store {
            return None;
        }
        acts.blocks
            .iter()
            .map(|b| {
                let (x0, x1) = &b.stored.as_ref()?.inputs;
                Some((x0.as_ref().map(|x| x.fixed.clone()), x1.fixed.clone()))
            })
            .collect()
    }

    fn training_acts(&self) -> Result<&Acts> {
        self.acts.as_ref().ok_or_else(|| {
            Error::InvalidArgument("Bestformer::backward needs a training forward first".into())
        })
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
        let [block0_p, stages @ ..] = &self.params.tokenizer[..] else {
            return Err(Error::InvalidArgument("a BSPS has five blocks".into()));
        };
        // Each BN but the last feeds the next stage's LIF, which reads it normalizing as it
        // goes (see `unit_forward_with`): block0 and stage i end in LIF i + 1.
        let w0 = Weight::conv(block0_p.weight).real_input();
        let lif = Some((&self.lif, t));
        let (mut y, block0) = unit_forward_with(ctx, store, &w0, &block0_p.bn, lif, &x, mode)?;
        let mut blocks = Vec::new();
        for (i, stage) in stages.iter().enumerate() {
            let (sp, pool) = if self.sizes.stage_pools(i) {
                let shape = y.shape().to_vec();
                let (p, arg) = ops::max_pool2d(ctx, &y)?;
                (p, Some((arg, shape)))
            } else {
                (y, None)
            };
            let w = Weight::conv(stage.weight);
            let neuron = lif.filter(|_| i + 1 < stages.len());
            let (out, unit) = unit_forward_with(ctx, store, &w, &stage.bn, neuron, &sp, mode)?;
            blocks.push(TokenizerStage { pool, unit });
            y = out;
        }
        let mut x1 = to_stream(ctx, &y.reshape(&self.tokens())?)?;
        let mut x0: Option<Stream> = None;
        let mut form_stats = Vec::new();
        let mut saved = Vec::new();
        for (blk, params) in self.params.blocks.iter().enumerate() {
            if train {
                form_stats.push(self.attention.stats_snapshot(ctx, store, &params.attn)?);
            }
            let (out, attn, mlp) = self.block_forward(ctx, store, blk, x0.as_ref(), &x1, mode)?;
            // Recomputing the last block would rebuild exactly what is in hand now.
            let last = blk + 1 == self.params.blocks.len();
            let keep = train && (self.reversible == Reversible::Store || last);
            let stored = keep.then(|| StoredBlock {
                inputs: (x0.clone(), x1.clone()),
                attn,
                mlp,
            });
            saved.push(BlockSaved {
                parity_attn: out.parity_attn,
                parity_mlp: out.parity_mlp,
                stored,
            });
            x0 = Some(out.x2);
            x1 = out.x3;
        }
        let x2 = x0.expect("depth >= 1");
        let p0 = ops::mean_tokens(ctx, &x2.value)?;
        let p1 = ops::mean_tokens(ctx, &x1.value)?;
        let head = |p: &WeightParams, x: &Tensor| -> Result<Tensor> {
            let bias = p.bias.map(|b| store.param(b)).transpose()?;
            ops::linear(ctx, x, store.param(p.weight)?, bias)
        };
        let out0 = head(&self.params.heads[0], &p0)?;
        let out1 = head(&self.params.heads[1], &p1)?;
        let logits = ops::weighted_sum(ctx, &[(0.5, &out0), (0.5, &out1)])?;
        self.heads = Some((out0, out1));
        if train {
            store.count_every_batch_norm();
        }
        self.acts = train.then_some(Acts {
            tokenizer: TokenizerActs { block0, blocks },
            out: (x2, x1),
            blocks: saved,
            form_stats,
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
        let acts = self.training_acts()?;
        let tokens = self.tokens();
        let head = |p: &WeightParams, x: &Tensor, dy: &Tensor| -> Result<Tensor> {
            let dbias = p.bias.map(|b| store.grad(b)).transpose()?;
            let w = store.param(p.weight)?;
            let dp = ops::linear_backward(ctx, x, w, dy, store.grad(p.weight)?, dbias)?;
            ops::mean_tokens_backward(ctx, &dp, &tokens)
        };
        let mut dx2 = head(&self.params.heads[0], &acts.pooled.0, dout0)?;
        let mut dx3 = head(&self.params.heads[1], &acts.pooled.1, dout1)?;
        // The outputs (x2, x3) of the block being undone (recompute mode).
        let mut streams = acts.out.clone();
        for (blk, saved) in acts.blocks.iter().enumerate().rev() {
            let first = blk == 0;
            // x3 = mlp(x2) + (x1 + x2) / 2; a rebuilt sub-block's activations are dropped
            // as soon as its backward has run.
            let (x1, dx2t) = {
                let rebuilt;
                let (x1, mlp) = match &saved.stored {
                    Some(stored) => (None, &stored.mlp),
                    None => {
                        let (x2, x3) = (&streams.0, &streams.1);
                        let (x1, mlp) =
                            self.inverse_mlp(ctx, store, blk, (x2, x3), &saved.parity_mlp)?;
                        rebuilt = mlp;
                        (Some(x1), &rebuilt)
                    }
                };
                let dm = self.mlp_backward(ctx, store, blk, mlp, &dx3)?;
                // d x2 total = dx2 + mlp'(dx3) + dx3 / 2; d x1 = dx3 / 2 (+ more below)
                let dx2t = ops::weighted_sum(ctx, &[(1.0, &dx2), (1.0, &dm), (0.5, &dx3)])?;
                (x1, dx2t)
            };
            // x2 = attn(x1) + (x0 + x1) / 2, or + x1 in the first block
            let (x0, da) = {
                let rebuilt;
                let (x0, attn) = match (&saved.stored, x1) {
                    (Some(stored), _) => {
                        let (x0, x1) = &stored.inputs;
                        (x0.clone().map(|x0| (x0, x1.clone())), &stored.attn)
                    }
                    (None, Some(x1)) => {
                        let frozen = acts.form_stats.get(blk).map(Vec::as_slice);
                        let parity = saved.parity_attn.as_ref();
                        let (x0, attn) =
                            self.inverse_attn(ctx, store, blk, (&x1, &streams.0), parity, frozen)?;
                        rebuilt = attn;
                        (x0.map(|x0| (x0, x1)), &rebuilt)
                    }
                    (None, None) => unreachable!("recompute mode rebuilds x1"),
                };
                (x0, self.attn_backward(ctx, store, blk, attn, &dx2t)?)
            };
            let c = if first { 1.0 } else { 0.5 };
            dx3 = ops::weighted_sum(ctx, &[(1.0, &da), (c, &dx2t), (0.5, &dx3)])?;
            dx2 = ops::scale(ctx, &dx2t, 0.5)?;
            if let Some(next) = x0 {
                streams = next;
            }
        }
        drop(streams);
        // Tokenizer, reversed; its output's gradient is the first block's d x1.
        let tk = &acts.tokenizer;
        let t = self.config.time_steps;
        let last = tk
            .blocks
            .last()
            .ok_or_else(|| Error::InvalidArgument("a BSPS has five blocks".into()))?;
        let mut dy = dx3.reshape(last.unit.z.shape())?;
        let [block0_p, stages @ ..] = &self.params.tokenizer[..] else {
            return Err(Error::InvalidArgument("a BSPS has five blocks".into()));
        };
        let lif = Some((&self.lif, t));
        for (stage, TokenizerStage { pool, unit }) in stages.iter().zip(&tk.blocks).rev() {
            let w = Weight::conv(stage.weight);
            let neuron = lif.filter(|_| unit.h.is_some());
            let ds = unit_backward(ctx, store, &w, &stage.bn, neuron, unit, &dy, true)?
                .expect("asked for dx");
            dy = match pool {
                Some((arg, shape)) => ops::max_pool2d_backward(ctx, &ds, arg, shape)?,
                None => ds,
            };
        }
        let w0 = Weight::conv(block0_p.weight).real_input();
        unit_backward(ctx, store, &w0, &block0_p.bn, lif, &tk.block0, &dy, false)?;
        Ok(())
    }

    /// Bytes of the activations the last training forward kept for backward (flat in
    /// depth: the blocks' are rebuilt).
    pub fn activation_bytes(&self) -> u64 {
        let Some(a) = &self.acts else { return 0 };
        let mut total = a.tokenizer.block0.bytes();
        for TokenizerStage { pool, unit } in &a.tokenizer.blocks {
            total += unit.bytes();
            total += pool.as_ref().map_or(0, |(arg, _)| arg.byte_len());
        }
        total += a.out.0.byte_len() + a.out.1.byte_len();
        for b in &a.blocks {
            total += b.parity_mlp.byte_len();
            total += b.parity_attn.as_ref().map_or(0, Tensor::byte_len);
            if let Some(s) = &b.stored {
                total += s.inputs.1.byte_len();
                total += s.inputs.0.as_ref().map_or(0, Stream::byte_len);
                total += s.attn.bytes() + s.mlp.bytes();
            }
        }
        total += a
            .form_stats
            .iter()
            .flatten()
            .map(Tensor::byte_len)
            .sum::<u64>();
        total + a.pooled.0.byte_len() + a.pooled.1.byte_len()
    }
}

impl Classifier for Bestformer {
    /// Both heads' logits `[out0, out1]` (the prediction is their mean).
    fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        Bestformer::forward(self, ctx, store, images, train)?;
        let (out0, out1) = self.heads.clone().expect("a forward leaves both heads");
        Ok(vec![out0, out1])
    }

    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()> {
        match dlogits {
            [d0, d1] => self.backward_heads(ctx, store, d0, d1),
            d => Err(Error::InvalidArgument(format!(
                "a BESTformer's backward takes its two heads' gradients, not {}",
                d.len()
            ))),
        }
    }
}
