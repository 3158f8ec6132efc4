//! Spiking CNNs as Q-SNN and QP-SNN evaluate them, forward and backward on the GPU.
//!
//! - VGG-style: conv3x3-BN-neuron layers `features.{i}`, a max-pool (3, 2, 1) after the
//!   layers `pool_after` lists;
//! - ResNet-style: a stem conv-BN-neuron, then basic blocks
//!   `s1 = N(BN1(conv1(x)))`, `out = N(BN2(conv2(s1)) + shortcut(x))` with the identity
//!   shortcut, or a 1x1 conv + BN where the width changes; max-pools after the convs
//!   `pool_after` lists (the stem or a block's conv2).
//!
//! Images are encoded directly (repeated over T); the head is `Linear(sum_{H,W} mean_T s)`.
//! The neuron is the LIF (docs/models.md section 1) or, in Q-SNN weight mode, the Q-SNN neuron
//! with its 8-bit membrane. Pruning (`nn::prune`) narrows the prunable convs: every VGG
//! conv, and a ResNet block's conv1 (the only convs whose outputs feed no shortcut).

use super::classifier::Classifier;
use super::config::{Arch, ModelConfig, WeightMode};
use super::layers::{bn_backward, bn_forward, Weight};
use super::params::{param_layout, CnnParams, ConvLayer};
use super::store::ParamStore;
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops::{self, LifConfig, Neuron, QsnnConfig};

/// What one conv-BN-neuron layer keeps for backward.
struct UnitActs {
    x: Tensor,             // the conv's input
    z: Tensor,             // the conv's output
    stats: Option<Tensor>, // BN's batch statistics
    h: Tensor,             // the neuron's membrane
    spikes: Tensor,        // the neuron's output (before any pool)
    pool: Option<Tensor>,  // the pool's argmax
}

/// A ResNet block's shortcut activations (1x1 conv + BN).
struct ShortcutActs {
    z: Tensor,
    stats: Option<Tensor>,
}

struct Acts {
    /// One per conv layer, in forward order (a ResNet conv2's `h`/`spikes` are the
    /// block output neuron's).
    units: Vec<UnitActs>,
    shortcuts: Vec<Option<ShortcutActs>>,
    last_shape: [usize; 4], // [T, B, H*W, C]: the last layer's output
    head_shape: [usize; 4], // what the head's mean reduces: last_shape, or [1, T*B, H*W, C]
    pooled: Tensor,         // [B, C] (or [T*B, C] per time step), the head's input
}

/// A spiking CNN on the GPU for batch size `batch`.
pub struct SpikingCnn {
    /// The model's config.
    pub config: ModelConfig,
    /// The batch its activations are sized for.
    pub batch: usize,
    params: CnnParams,
    neuron: Neuron,
    /// Q-SNN's firing-rate regularizer weight lambda (0: off).
    pub rate_reg: f32,
    /// Firing rate of every layer in the last training forward.
    pub rates: Vec<f32>,
    /// Keep the spikes of every conv layer in evaluation forwards too (pruning scores).
    pub probe: bool,
    acts: Option<Acts>,
}

impl SpikingCnn {
    /// A spiking CNN of `config` for batches of `batch`.
    pub fn new(config: &ModelConfig, batch: usize) -> Result<Self> {
        config.validate()?;
        let Some(params) = param_layout(config).cnn().cloned() else {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not a spiking CNN",
                config.kind()
            )));
        };
        if batch == 0 {
            return Err(Error::InvalidArgument("batch size must be positive".into()));
        }
        let neuron = match config.weights {
            WeightMode::Qsnn => Neuron::Qsnn(QsnnConfig::default()),
            _ => Neuron::Lif(LifConfig::default()),
        };
        Ok(Self {
            config: config.clone(),
            batch,
            params,
            neuron,
            rate_reg: 0.0,
            rates: Vec::new(),
            probe: false,
            acts: None,
        })
    }

    /// Bytes of activations the last training forward kept for backward.
    pub fn activation_bytes(&self) -> u64 {
        let Some(a) = &self.acts else { return 0 };
        let units: u64 = a
            .units
            .iter()
            .flat_map(|u| [Some(&u.x), Some(&u.z), u.stats.as_ref(), Some(&u.h)])
            .flatten()
            .map(Tensor::byte_len)
            .sum();
        units + a.pooled.byte_len()
    }

    /// The spikes `[T * B, H, W, C]` of each conv layer's neuron in the last forward
    /// (kept in evaluation mode only when `probe` is set), in `CnnParams::convs` order.
    pub fn layer_spikes(&self) -> Vec<Tensor> {
        self.acts
            .as_ref()
            .map(|a| a.units.iter().map(|u| u.spikes.clone()).collect())
            .unwrap_or_default()
    }

    /// conv -> BN (+ `residual`) -> neuron (-> pool).
    fn unit(
        &self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        index: usize,
        x: &Tensor,
        residual: Option<&Tensor>,
        train: bool,
    ) -> Result<(Tensor, UnitActs)> {
        let layer = &self.params.convs[index];
        let z = conv_weight(layer, index).forward(ctx, store, x)?;
        let (mut y, stats) = bn_forward(ctx, store, &layer.unit.bn, &z, train)?;
        if let Some(r) = residual {
            y = ops::add(ctx, &y, r)?;
        }
        let (spikes, h) = self.neuron.forward(ctx, &y, self.config.time_steps)?;
        let (out, pool) = if layer.pool {
            let (p, arg) = ops::max_pool2d(ctx, &spikes)?;
            (p, Some(arg))
        } else {
            (spikes.clone(), None)
        };
        let acts = UnitActs {
            x: x.clone(),
            z,
            stats,
            h,
            spikes,
            pool,
        };
        Ok((out, acts))
    }

    /// Logits `[B, classes]` of images f32 `[B, C, H, W]`; in Q-SNN training, logits of
    /// every time step `[T*B, classes]`, since its loss is mean_t CE(out_t, y) (docs/models.md
    /// section 6) rather than the CE of the time-averaged output.
    pub fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let cfg = self.config.clone();
        let (t, b, s) = (cfg.time_steps, self.batch, cfg.image_size);
        images.expect("spiking_cnn", &[b, cfg.in_channels, s, s], DType::F32)?;
        let layers = self.params.convs.len();
        let mut x = ops::nchw_to_nhwc_repeat(ctx, images, t)?; // [T*B, H, W, C_in]
        let mut units = Vec::with_capacity(layers);
        let mut shortcuts = Vec::new();
        match cfg.kind() {
            Arch::SpikingResnet => {
                let (out, a) = self.unit(ctx, store, 0, &x, None, train)?;
                units.push(a);
                x = out;
                for j in 0..self.params.shortcuts.len() {
                    let (s1, a1) = self.unit(ctx, store, 1 + 2 * j, &x, None, train)?;
                    let (residual, sc) = match &self.params.shortcuts[j] {
                        Some(p) => {
                            let z = Weight::linear(p.weight).forward(ctx, store, &x)?;
                            let (y, stats) = bn_forward(ctx, store, &p.bn, &z, train)?;
                            (y, Some(ShortcutActs { z, stats }))
                        }
                        None => (x.clone(), None),
                    };
                    let (out, a2) =
                        self.unit(ctx, store, 2 + 2 * j, &s1, Some(&residual), train)?;
                    units.push(a1);
                    units.push(a2);
                    shortcuts.push(sc);
                    x = out;
                }
            }
            _ => {
                for index in 0..layers {
                    let (out, a) = self.unit(ctx, store, index, &x, None, train)?;
                    units.push(a);
                    x = out;
                }
            }
        }
        let [_, h, w, c] = x.shape()[..] else {
            return Err(Error::InvalidArgument("CNN features must be NHWC".into()));
        };
        let last_shape = [t, b, h * w, c];
        let head_shape = if train && cfg.weights == WeightMode::Qsnn {
            [1, t * b, h * w, c]
        } else {
            last_shape
        };
        // Spike counts summed over the map and averaged over T: the scale a flatten + FC
        // classifier sees (a mean of sparse spikes leaves the logits nearly flat).
        let mean = ops::mean_tokens(ctx, &x.reshape(&head_shape)?)?;
        let pooled = ops::scale(ctx, &mean, (h * w) as f32)?;
        let logits = Weight::linear(self.params.head)
            .real_input()
            .forward(ctx, store, &pooled)?;
        if train && self.rate_reg > 0.0 {
            self.rates = firing_rates(ctx, &units)?;
        }
        self.acts = (train || self.probe).then_some(Acts {
            units,
            shortcuts,
            last_shape,
            head_shape,
            pooled,
        });
        Ok(logits)
    }

    /// Backward of a training forward from `dlogits` shaped like its logits.
    pub fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &Tensor,
    ) -> Result<()> {
        let acts = self.acts.take().ok_or_else(|| {
            Error::InvalidArgument("backward needs a training forward first".into())
        })?;
        let cfg = self.config.clone();
        let layers = &self.params.convs;
        let head = Weight::linear(self.params.head).real_input();
        let dpooled = head
            .backward(ctx, store, &acts.pooled, None, dlogits, true)?
            .expect("asked for dx");
        let dmean = ops::scale(ctx, &dpooled, acts.last_shape[2] as f32)?;
        let dlast = ops::mean_tokens_backward(ctx, &dmean, &acts.head_shape)?;
        // The head's input is the last layer's output (pooled or not).
        let last_out: Vec<usize> = {
            let [t, b, _, c] = acts.last_shape;
            let u = acts.units.last().expect("a CNN has convs");
            let side: Vec<usize> = u.spikes.shape()[1..3]
                .iter()
                .map(|&v| {
                    if u.pool.is_some() {
                        ops::max_pool_out(v)
                    } else {
                        v
                    }
                })
                .collect();
            vec![t * b, side[0], side[1], c]
        };
        let mut dx = dlast.reshape(&last_out)?;
        match cfg.kind() {
            Arch::SpikingResnet => {
                let blocks = acts.shortcuts.len();
                for j in (0..blocks).rev() {
                    let (l1, l2) = (&layers[1 + 2 * j], &layers[2 + 2 * j]);
                    let (u1, u2) = (&acts.units[1 + 2 * j], &acts.units[2 + 2 * j]);
                    // Output neuron (and pool) of the block.
                    let du = self.neuron_backward(ctx, &dx, u2, 2 + 2 * j)?;
                    let dz2 = bn_backward(ctx, store, &l2.unit.bn, &u2.z, u2.stats.as_ref(), &du)?;
                    let ds1 = Weight::conv(l2.unit.weight)
                        .backward(ctx, store, &u2.x, None, &dz2, true)?
                        .expect("asked for dx");
                    let dx1 = self
                        .unit_backward(ctx, store, l1, u1, &ds1, 1 + 2 * j, true)?
                        .expect("asked for dx");
                    let dsc = match (&acts.shortcuts[j], &self.params.shortcuts[j]) {
                        (Some(sa), Some(p)) => {
                            let dz = bn_backward(ctx, store, &p.bn, &sa.z, sa.stats.as_ref(), &du)?;
                            Weight::linear(p.weight)
                                .backward(ctx, store, &u1.x, None, &dz, true)?
                                .expect("asked for dx")
                        }
                        _ => du,
                    };
                    dx = ops::add(ctx, &dx1, &dsc)?;
                }
                self.unit_backward(ctx, store, &layers[0], &acts.units[0], &dx, 0, false)?;
            }
            _ => {
                for (i, (layer, u)) in layers.iter().zip(&acts.units).enumerate().rev() {
                    let need_dx = i > 0;
                    if let Some(d) = self.unit_backward(ctx, store, layer, u, &dx, i, need_dx)? {
                        dx = d;
                    }
                }
            }
        }
        Ok(())
    }

    /// Through the pool (if any), the rate regularizer and the neuron: d(neuron input).
    fn neuron_backward(
        &self,
        ctx: &GpuContext,
        dout: &Tensor,
        u: &UnitActs,
        index: usize,
    ) -> Result<Tensor> {
        let ds = match &u.pool {
            Some(arg) => ops::max_pool2d_backward(ctx, dout, arg, u.spikes.shape())?,
            None => ops::copy(ctx, dout)?,
        };
        if let Some(&rate) = self.rates.get(index).filter(|_| self.rate_reg > 0.0) {
            // d/ds of lambda mean_layers (rate - 0.5)^2, rate = mean(s).
            let n = ds.len();
            let g = self.rate_reg * 2.0 * (rate - 0.5) / (self.rates.len() * n) as f32;
            let gt = ctx.upload_f32(&[g], &[1])?;
            ops::add_bias_into(ctx, &ds.reshape(&[n, 1])?, &gt)?;
        }
        self.neuron.backward(ctx, &ds, &u.h, self.config.time_steps)
    }

    #[allow(clippy::too_many_arguments)]
    fn unit_backward(
        &self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        layer: &ConvLayer,
        u: &UnitActs,
        dout: &Tensor,
        index: usize,
        need_dx: bool,
    ) -> Result<Option<Tensor>> {
        let dy = self.neuron_backward(ctx, dout, u, index)?;
        let dz = bn_backward(ctx, store, &layer.unit.bn, &u.z, u.stats.as_ref(), &dy)?;
        conv_weight(layer, index).backward(ctx, store, &u.x, None, &dz, need_dx)
    }
}

/// The conv of layer `index`, reading real input when it is the first (the image).
fn conv_weight(layer: &ConvLayer, index: usize) -> Weight {
    let w = Weight::conv(layer.unit.weight);
    if index == 0 {
        w.real_input()
    } else {
        w
    }
}

/// The fraction of ones in each unit's spikes, read back together (one wait per step,
/// not one per layer).
fn firing_rates(ctx: &GpuContext, units: &[UnitActs]) -> Result<Vec<f32>> {
    let sums = ctx.empty(&[units.len()], DType::F32)?;
    for (i, u) in units.iter().enumerate() {
        let n = u.spikes.len();
        let sum = ctx.zeros(&[1], DType::F32)?;
        ops::channel_sum_into(ctx, &u.spikes.reshape(&[n, 1])?, &sum, false)?;
        ops::copy_range(ctx, &sum, 0, &sums, i, 1)?;
    }
    let sums = ctx.download_f32(&sums)?;
    Ok(units
        .iter()
        .zip(sums)
        .map(|(u, sum)| sum / u.spikes.len().max(1) as f32)
        .collect())
}

impl Classifier for SpikingCnn {
    /// One head, or in Q-SNN training one per time step (each `[B, classes]`).
    fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        let logits = SpikingCnn::forward(self, ctx, store, images, train)?;
        let steps = logits.shape()[0] / self.batch;
        if steps == 1 {
            return Ok(vec![logits]);
        }
        let len = logits.len() / steps;
        (0..steps)
            .map(|t| {
                let head = ctx.empty(&[self.batch, logits.shape()[1]], DType::F32)?;
                ops::copy_range(ctx, &logits, t * len, &head, 0, len)?;
                Ok(head)
            })
            .collect()
    }

    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()> {
        match dlogits {
            [] => Err(Error::InvalidArgument(
                "backward got no head gradients".into(),
            )),
            [d] => SpikingCnn::backward(self, ctx, store, d),
            steps @ [first, ..] => {
                let [b, classes] = *first.shape() else {
                    return Err(Error::InvalidArgument(
                        "head gradients must be [B, classes]".into(),
                    ));
                };
                let all = ctx.empty(&[steps.len() * b, classes], DType::F32)?;
                for (t, d) in steps.iter().enumerate() {
                    ops::copy_range(ctx, d, 0, &all, t * d.len(), d.len())?;
                }
                SpikingCnn::backward(self, ctx, store, &all)
            }
        }
    }
}
