//! QP-SNN's structured pruning of the spiking CNNs: each conv kernel (output channel) is
//! scored by the rank of its time-averaged spike feature map, averaged over images and
//! batches; the lowest-scoring kernels are removed from the tensors (the conv's rows, its
//! BatchNorm's entries, and the next conv's or the head's input columns), and the config
//! records the narrower widths.
//!
//! Ranks come from a one-sided Jacobi SVD (Hestenes) of each `H x W` map: singular values
//! above `RANK_TOLERANCE` times the largest count.

use super::checkpoint::{HostTensor, StateDict, CONFIG_KEY};
use super::cnn::SpikingCnn;
use super::config::{ArchConfig, ModelConfig};
use super::params::param_layout;
use super::store::ParamStore;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Tensor};

/// Singular values at most this fraction of the largest are zero. Time-averaged spikes
/// are multiples of 1/T, so true ranks are far from this.
pub const RANK_TOLERANCE: f64 = 1e-6;

/// Singular values of the row-major `rows x cols` matrix `m`, largest first.
pub fn singular_values(m: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    // Columns of A, rotated pairwise until orthogonal; their norms are then the
    // singular values.
    let mut a: Vec<Vec<f64>> = (0..cols)
        .map(|c| (0..rows).map(|r| m[r * cols + c]).collect())
        .collect();
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..cols {
            for q in p + 1..cols {
                let alpha: f64 = a[p].iter().map(|v| v * v).sum();
                let beta: f64 = a[q].iter().map(|v| v * v).sum();
                let gamma: f64 = a[p].iter().zip(&a[q]).map(|(x, y)| x * y).sum();
                if gamma.abs() <= 1e-15 * (alpha * beta).sqrt() || gamma == 0.0 {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                let (left, right) = a.split_at_mut(q);
                for (x, y) in left[p].iter_mut().zip(right[0].iter_mut()) {
                    (*x, *y) = (c * *x - s * *y, s * *x + c * *y);
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut sv: Vec<f64> = a
        .iter()
        .map(|col| col.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    sv.sort_by(|x, y| y.total_cmp(x));
    sv
}

/// The count of singular values above `RANK_TOLERANCE` times the largest.
pub fn matrix_rank(m: &[f64], rows: usize, cols: usize) -> usize {
    let sv = singular_values(m, rows, cols);
    let max = sv.first().copied().unwrap_or(0.0);
    if max == 0.0 {
        return 0;
    }
    sv.iter().filter(|&&s| s > RANK_TOLERANCE * max).count()
}

/// Sum over images of the rank of each channel's time-averaged map, for spikes
/// `[T * B, H, W, C]` (time-major): `out[c] += sum_b rank(mean_t s[t, b, .., .., c])`.
pub fn add_rank_scores(spikes: &[f32], [t, b, h, w, c]: [usize; 5], out: &mut [f64]) -> Result<()> {
    if spikes.len() != t * b * h * w * c || out.len() != c || t == 0 {
        return Err(Error::InvalidArgument(format!(
            "rank scores: {} spikes for [T {t} x B {b}, {h}, {w}, {c}] and {} scores",
            spikes.len(),
            out.len()
        )));
    }
    let image = h * w * c;
    let mut map = vec![0f64; h * w];
    for bi in 0..b {
        for (ch, score) in out.iter_mut().enumerate() {
            for (p, v) in map.iter_mut().enumerate() {
                *v = (0..t)
                    .map(|ti| spikes[(ti * b + bi) * image + p * c + ch] as f64)
                    .sum::<f64>()
                    / t as f64;
            }
            *score += matrix_rank(&map, h, w) as f64;
        }
    }
    Ok(())
}

/// The kernels of a layer with `scores` that pruning keeps, in index order: all but the
/// `floor(ratio * C)` lowest-scoring (ties: the lower index goes first), at least one.
pub fn kept_kernels(scores: &[f64], ratio: f64) -> Vec<usize> {
    let c = scores.len();
    let remove = ((ratio * c as f64).floor() as usize).min(c.saturating_sub(1));
    let mut order: Vec<usize> = (0..c).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]).then(i.cmp(&j)));
    let mut keep: Vec<usize> = order[remove..].to_vec();
    keep.sort_unstable();
    keep
}

/// `t` with only the entries `keep` along axis `axis`.
fn select(t: &HostTensor, axis: usize, keep: &[usize]) -> HostTensor {
    let outer: usize = t.shape[..axis].iter().product();
    let n = t.shape[axis];
    let inner: usize = t.shape[axis + 1..].iter().product();
    let mut data = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in keep {
            let start = (o * n + k) * inner;
            data.extend_from_slice(&t.data[start..start + inner]);
        }
    }
    let mut shape = t.shape.clone();
    shape[axis] = keep.len();
    HostTensor { shape, data }
}

/// A prunable conv of a spiking CNN, by its tensors' reference names (pruning edits
/// state dicts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunableConv {
    /// Its index among the CNN's convs (`CnnParams::convs`).
    pub index: usize,
    /// Its input channels and kernels (output channels).
    pub c_in: usize,
    /// Output channels kept.
    pub c_out: usize,
    /// The conv weight.
    pub conv: String,
    /// Its BatchNorm's per-channel tensors: weight, bias, running mean, running var.
    pub bn: [String; 4],
    /// The tensor that reads its output channels (as axis-1 input columns): the next
    /// conv, or the head after the last VGG conv.
    pub consumer: String,
}

/// The prunable convs of `cfg` (none unless it is a spiking CNN).
pub fn prunable(cfg: &ModelConfig) -> Vec<PrunableConv> {
    let layout = param_layout(cfg);
    let Some(cnn) = layout.cnn() else {
        return Vec::new();
    };
    let name = |id| layout.name(id).to_string();
    cnn.convs
        .iter()
        .enumerate()
        .filter(|(_, l)| l.prunable)
        .map(|(i, l)| {
            let bn = &l.unit.bn;
            PrunableConv {
                index: i,
                c_in: l.c_in,
                c_out: l.c_out,
                conv: name(l.unit.weight.weight),
                bn: [bn.weight, bn.bias, bn.running_mean, bn.running_var].map(name),
                consumer: name(match cnn.convs.get(i + 1) {
                    Some(next) => next.unit.weight.weight,
                    None => cnn.head.weight,
                }),
            }
        })
        .collect()
}

/// Remove from `state` (a model state dict for `cfg`, reference layouts) the kernels
/// [`kept_kernels`] drops given each prunable layer's `scores` (in [`prunable`] order).
/// Returns the narrower config and state dict (its config metadata updated).
pub fn prune_state(
    cfg: &ModelConfig,
    state: &StateDict,
    scores: &[Vec<f64>],
    ratio: f64,
) -> Result<(ModelConfig, StateDict)> {
    if !cfg.is_cnn() {
        return Err(Error::InvalidArgument(
            "pruning is implemented for the spiking CNNs".into(),
        ));
    }
    if !(0.0..1.0).contains(&ratio) {
        return Err(Error::InvalidArgument(format!(
            "prune ratio {ratio} must be in [0, 1)"
        )));
    }
    let layers = prunable(cfg);
    if scores.len() != layers.len() {
        return Err(Error::InvalidArgument(format!(
            "{} score lists for {} prunable layers",
            scores.len(),
            layers.len()
        )));
    }
    let mut out = state.clone();
    let mut new_cfg = cfg.clone();
    let get = |sd: &StateDict, name: &str| {
        sd.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("state dict has no tensor '{name}'")))
    };
    for (layer, s) in layers.iter().zip(scores) {
        if s.len() != layer.c_out {
            return Err(Error::InvalidArgument(format!(
                "{} scores for the {} kernels of '{}'",
                s.len(),
                layer.c_out,
                layer.conv
            )));
        }
        let keep = kept_kernels(s, ratio);
        let w = get(&out, &layer.conv)?;
        out.tensors.insert(layer.conv.clone(), select(&w, 0, &keep));
        for name in &layer.bn {
            let t = get(&out, name)?;
            out.tensors.insert(name.clone(), select(&t, 0, &keep));
        }
        let next = get(&out, &layer.consumer)?;
        out.tensors
            .insert(layer.consumer.clone(), select(&next, 1, &keep));
        if let ArchConfig::SpikingVgg(c) | ArchConfig::SpikingResnet(c) = &mut new_cfg.arch {
            c.channels[layer.index] = keep.len();
        }
    }
    new_cfg.validate()?;
    out.metadata.insert(
        CONFIG_KEY.into(),
        serde_json::to_string(&new_cfg).expect("a config always serializes"),
    );
    Ok((new_cfg, out))
}

/// Each prunable layer's kernel scores (in [`prunable`] order): the mean rank of its
/// time-averaged spike maps over the images of `batches` (each f32 `[B, C, H, W]`).
pub fn score_kernels(
    ctx: &GpuContext,
    cfg: &ModelConfig,
    store: &mut ParamStore,
    batches: &[Tensor],
) -> Result<Vec<Vec<f64>>> {
    let layers = prunable(cfg);
    let mut sums: Vec<Vec<f64>> = layers.iter().map(|l| vec![0.0; l.c_out]).collect();
    let mut images = 0;
    for x in batches {
        let b = x.shape().first().copied().unwrap_or(0);
        let mut model = SpikingCnn::new(cfg, b)?;
        model.probe = true;
        model.forward(ctx, store, x, false)?;
        let spikes = model.layer_spikes();
        for (layer, sum) in layers.iter().zip(&mut sums) {
            let s = &spikes[layer.index];
            let &[_, h, w, c] = s.shape() else {
                return Err(Error::InvalidArgument("spike maps must be NHWC".into()));
            };
            debug_assert_eq!(c, layer.c_out);
            let host = ctx.download_f32(s)?;
            add_rank_scores(&host, [cfg.time_steps, b, h, w, c], sum)?;
        }
        images += b;
    }
    for s in &mut sums {
        s.iter_mut().for_each(|v| *v /= images.max(1) as f64);
    }
    Ok(sums)
}
