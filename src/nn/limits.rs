//! The bounds every run is checked against before anything is allocated: the largest
//! buffers a run of a config at a batch size will allocate, against the adapter's limits
//! and the host's memory. (The allowed range of each size in a config, whether it comes
//! from a preset, the command line or a checkpoint's metadata, is `nn::config`'s.)

use super::config::{Arch, AttentionForm, ModelConfig, TransformerConfig};
use super::params::{param_counts, param_layout};
use crate::error::{Error, Result};
use crate::gpu::{words_per_row, GpuContext};

/// What a run does with a model, which decides the buffers it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// The parameters only (export).
    Params,
    /// Inference forwards of `batch` samples.
    Forward {
        /// Samples per forward.
        batch: usize,
    },
    /// Training steps of `batch` samples: forward, backward, optimizer.
    Train {
        /// Samples per step.
        batch: usize,
    },
}

impl Run {
    fn batch(self) -> usize {
        match self {
            Run::Params => 0,
            Run::Forward { batch } | Run::Train { batch } => batch,
        }
    }

    fn training(self) -> bool {
        matches!(self, Run::Train { .. })
    }
}

/// One kind of buffer a run allocates: its description, its bytes, how many of those
/// bytes each sample of the batch adds (0 for the parameters and optimizer state), and
/// how many such buffers are alive at once at most (for the run's total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The tensor's name.
    pub tensor: String,
    /// Its bytes at the run's batch.
    pub bytes: u64,
    /// Its bytes per sample.
    pub per_sample: u64,
    /// How many of it the run holds at once.
    pub copies: u64,
}

/// `a * b * ...` in u64, saturating (sizes from hostile input must not wrap).
fn product(factors: &[usize]) -> u64 {
    factors
        .iter()
        .fold(1u64, |p, &f| p.saturating_mul(f as u64))
}

struct Needs {
    batch: usize,
    list: Vec<Need>,
}

impl Needs {
    /// `copies` 4-byte buffers of `per_sample` elements per sample times the batch.
    fn batched(&mut self, tensor: String, per_sample: &[usize], copies: usize) {
        let per_sample = product(per_sample).saturating_mul(4);
        self.list.push(Need {
            tensor,
            bytes: per_sample.saturating_mul(self.batch as u64),
            per_sample,
            copies: copies as u64,
        });
    }

    /// `copies` 4-byte buffers of `elements` elements whatever the batch.
    fn fixed(&mut self, tensor: String, elements: u64, copies: usize) {
        self.list.push(Need {
            tensor,
            bytes: elements.saturating_mul(4),
            per_sample: 0,
            copies: copies as u64,
        });
    }
}

/// The buffers of a transformer's attention maps: f32 `[T*B*heads, r, r]` (r: tokens N,
/// or head features d for the binary map of patch-16 models), packed bits (one 4-byte
/// word per 32 columns) when only the binary map's forward runs.
fn attention_maps(
    cfg: &ModelConfig,
    tc: &TransformerConfig,
    run: Run,
    needs: &mut Needs,
    copies: usize,
) {
    let (t, heads) = (cfg.time_steps, tc.heads);
    let features = tc.attention == AttentionForm::Binary && tc.feature_order();
    let (r, name) = if features {
        (tc.head_dim(), "d x d")
    } else {
        (tc.tokens(cfg.image_size), "N x N")
    };
    if tc.attention == AttentionForm::Binary && !run.training() {
        needs.batched(
            format!("packed attention maps [T*B*heads = {t}*B*{heads}, {r}, {r}] ({name})"),
            &[t, heads, r, words_per_row(r)],
            copies,
        );
    } else {
        needs.batched(
            format!("attention maps f32 [T*B*heads = {t}*B*{heads}, {r}, {r}] ({name})"),
            &[t, heads, r, r],
            copies,
        );
    }
}

/// The largest buffers `run` allocates for `cfg`: the input frames, each layer's
/// activations `[T*B, ...]`, attention maps, one image's im2col columns, the logits, and
/// the flat parameter buffer (with, in training, its gradients and AdamW's two moments of
/// the same size). Im2col columns of whole batches are chunked to fit by the conv op, so
/// only one image's columns count. The copies are a conservative count of those alive
/// at once (a training forward keeps every layer's input, output and spikes).
pub fn run_buffers(cfg: &ModelConfig, run: Run) -> Vec<Need> {
    let mut needs = Needs {
        batch: run.batch(),
        list: Vec::new(),
    };
    let params = param_counts(cfg).fp32_bytes as u64 / 4;
    needs.fixed(format!("parameters ({params} floats)"), params, 1);
    if run.training() {
        needs.fixed(
            format!("gradients and AdamW moments ({params} floats each)"),
            params,
            3,
        );
    }
    if run == Run::Params {
        return needs.list;
    }
    // Buffers of one kind alive at once: all layers' in training, a few in a forward.
    let depth = match (cfg.transformer(), cfg.cnn()) {
        (Some(tc), _) => tc.depth,
        (_, Some(cnn)) => cnn.channels.len(),
        _ => 1,
    };
    let (per_layer, layers) = if run.training() {
        (3, depth.max(1))
    } else {
        (2, 1)
    };
    let (t, s, c) = (cfg.time_steps, cfg.image_size, cfg.in_channels);
    needs.batched(
        format!("input frames [T*B = {t}*B, {s}, {s}, {c}]"),
        &[t, s, s, c],
        2,
    );
    needs.batched(format!("logits [B, {}]", cfg.classes), &[cfg.classes], 2);
    // (name, side, channels in, channels out) of every 3x3 conv, at the side it runs on.
    let mut convs: Vec<(String, usize, usize, usize)> = Vec::new();
    let layout = param_layout(cfg);
    if let Some(tc) = cfg.transformer() {
        let best = cfg.kind() == Arch::Bestformer;
        let w = tc.tokenizer_widths(c);
        let mut side = s;
        for i in 0..4 {
            if best && i > 0 && tc.stage_pools(i - 1) {
                side /= 2;
            }
            convs.push((format!("tokenizer conv {i}"), side, w[i], w[i + 1]));
            if !best && tc.stage_pools(i) {
                side /= 2;
            }
        }
        if best && tc.stage_pools(3) {
            side /= 2;
        }
        // Spikformer's rpe conv, BESTformer's fifth conv: D -> D on the tokens.
        convs.push(("tokenizer conv 4".into(), side, w[4], w[4]));
        let (n, d, hidden) = (tc.tokens(s), tc.dim, tc.hidden());
        needs.batched(
            format!("tokens [T*B = {t}*B, {n}, {d}]"),
            &[t, n, d],
            8 * layers + 2,
        );
        needs.batched(
            format!("MLP hidden activations [T*B = {t}*B, {n}, {hidden}]"),
            &[t, n, hidden],
            per_layer * layers,
        );
        attention_maps(cfg, tc, run, &mut needs, per_layer * layers);
    }
    if let Some(cnn) = layout.cnn() {
        let mut side = s;
        for (i, layer) in cnn.convs.iter().enumerate() {
            convs.push((
                format!("conv {i} ({})", layout.name(layer.unit.weight.weight)),
                side,
                layer.c_in,
                layer.c_out,
            ));
            if layer.pool {
                side = crate::ops::max_pool_out(side);
            }
        }
    }
    for (name, side, c_in, c_out) in convs {
        needs.batched(
            format!("{name} output [T*B = {t}*B, {side}, {side}, {c_out}]"),
            &[t, side, side, c_out],
            per_layer,
        );
        needs.fixed(
            format!("{name} im2col columns of one image [{side}*{side}, 9*{c_in}]"),
            product(&[side, side, 9, c_in]),
            1,
        );
    }
    needs.list
}

/// The limits a run is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLimits {
    /// The largest buffer one binding can see (`max_storage_buffer_binding_size`).
    pub max_binding: u64,
    /// The largest buffer (`max_buffer_size`).
    pub max_buffer: u64,
    /// Workgroups along one dispatch axis (`max_compute_workgroups_per_dimension`).
    pub max_workgroups: u32,
    /// Host memory the run may use; None: unknown, not checked.
    pub host_bytes: Option<u64>,
    /// Whether the device's buffers live in host memory (a CPU driver such as lavapipe),
    /// so that they count against `host_bytes`.
    pub device_is_host: bool,
}

impl RunLimits {
    /// The adapter's limits, and the memory this host has available.
    pub fn of(ctx: &GpuContext) -> Self {
        Self {
            max_binding: ctx.limits.max_storage_buffer_binding_size,
            max_buffer: ctx.limits.max_buffer_size,
            max_workgroups: ctx.limits.max_compute_workgroups_per_dimension,
            host_bytes: host_memory_available(),
            device_is_host: ctx.is_cpu_adapter(),
        }
    }
}

/// `MemAvailable` of /proc/meminfo (Linux); None elsewhere.
pub fn host_memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Bytes with their binary-prefixed size, e.g. `150994944 bytes (144.0 MiB)`.
fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    let mut unit = "bytes";
    for u in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if unit == "bytes" {
        format!("{bytes} bytes")
    } else {
        format!("{bytes} bytes ({v:.1} {unit})")
    }
}

/// What to change so that at most `fits` samples a batch fit (0: not even one).
fn advice(cfg: &ModelConfig, fits: u64) -> String {
    if fits == 0 {
        return "use a smaller model (fewer classes or channels, a smaller image size, \
                fewer time steps, or a smaller preset)"
            .into();
    }
    let fewer_t = if cfg.time_steps > 1 {
        format!(", or fewer than {} time steps", cfg.time_steps)
    } else {
        String::new()
    };
    format!("use a batch size of at most {fits}{fewer_t}")
}

/// Rows one matmul workgroup covers at most (a 64-row tile, or 8 grouped 16-row tiles).
const MAX_MATMUL_ROWS_PER_WORKGROUP: u64 = 128;
/// Rows one workgroup of the loss kernels covers.
const LOSS_ROWS_PER_WORKGROUP: u64 = 64;

/// Check, before anything is allocated, that every buffer `run` needs for `cfg` fits the
/// adapter's binding and buffer limits, that its dispatches fit the workgroup limit, and
/// that the whole fits the host's memory; the error names the tensor, its size, the limit
/// and what to change.
pub fn check_run(cfg: &ModelConfig, run: Run, limits: &RunLimits) -> Result<()> {
    if matches!(run, Run::Forward { batch: 0 } | Run::Train { batch: 0 }) {
        return Err(Error::InvalidArgument("batch size must be positive".into()));
    }
    let needs = run_buffers(cfg, run);
    let batch = run.batch() as u64;
    // The binding limit is the smaller one on every adapter; both are checked.
    let (limit, limit_name) = [
        (limits.max_binding, "max_storage_buffer_binding_size"),
        (limits.max_buffer, "max_buffer_size"),
    ]
    .into_iter()
    .min_by_key(|&(bytes, _)| bytes)
    .expect("two limits");
    if let Some(worst) = needs
        .iter()
        .filter(|n| n.bytes > limit)
        .max_by_key(|n| n.bytes)
    {
        // The largest batch at which every buffer fits.
        let fits = needs
            .iter()
            .map(|n| {
                let fixed = n.bytes - n.per_sample.saturating_mul(batch);
                match limit.checked_sub(fixed) {
                    None => 0,
                    Some(room) => room.checked_div(n.per_sample).unwrap_or(u64::MAX),
                }
            })
            .min()
            .unwrap_or(0);
        return Err(Error::RunTooLarge {
            tensor: worst.tensor.clone(),
            size: human(worst.bytes),
            limit: format!("the device's {limit_name} of {}", human(limit)),
            advice: advice(cfg, fits),
        });
    }
    // (what, workgroups along one axis, workgroups each sample adds)
    let mut dispatches = vec![(
        format!("the loss over B = {batch} rows ({LOSS_ROWS_PER_WORKGROUP} a workgroup)"),
        batch.div_ceil(LOSS_ROWS_PER_WORKGROUP),
        1.0 / LOSS_ROWS_PER_WORKGROUP as f64,
    )];
    if let Some(tc) = cfg.transformer() {
        let tokens = tc.tokens(cfg.image_size);
        let rows = product(&[cfg.time_steps, tokens]);
        dispatches.push((
            format!(
                "the token matmuls over T*B*N = {}*{batch}*{} rows (at most \
                 {MAX_MATMUL_ROWS_PER_WORKGROUP} a workgroup)",
                cfg.time_steps, tokens
            ),
            rows.saturating_mul(batch)
                .div_ceil(MAX_MATMUL_ROWS_PER_WORKGROUP),
            rows as f64 / MAX_MATMUL_ROWS_PER_WORKGROUP as f64,
        ));
        let maps = product(&[cfg.time_steps, tc.heads]);
        dispatches.push((
            format!(
                "the attention products over T*B*heads = {}*{batch}*{} maps",
                cfg.time_steps, tc.heads
            ),
            maps.saturating_mul(batch),
            maps as f64,
        ));
    }
    let max_groups = limits.max_workgroups as u64;
    for (what, groups, per_sample) in dispatches {
        if groups > max_groups {
            return Err(Error::RunTooLarge {
                tensor: what,
                size: format!("{groups} workgroups along one axis"),
                limit: format!("the device's max_compute_workgroups_per_dimension of {max_groups}"),
                advice: advice(cfg, (max_groups as f64 / per_sample) as u64),
            });
        }
    }
    if let Some(host) = limits.host_bytes {
        // On the host: the loader's prefetched batches (3), the one being uploaded and
        // the one training; on a CPU driver, every device buffer too.
        let input = product(&[
            cfg.time_steps,
            cfg.image_size,
            cfg.image_size,
            cfg.in_channels,
            4,
        ]);
        let mut per_sample = input.saturating_mul(5);
        let mut total = per_sample.saturating_mul(batch);
        if limits.device_is_host {
            for need in &needs {
                total = total.saturating_add(need.bytes.saturating_mul(need.copies));
                per_sample = per_sample.saturating_add(need.per_sample.saturating_mul(need.copies));
            }
        }
        if total > host {
            let fixed = total.saturating_sub(per_sample.saturating_mul(batch));
            return Err(Error::RunTooLarge {
                tensor: if limits.device_is_host {
                    "the run's buffers together (a CPU driver's buffers are host memory)".into()
                } else {
                    "the batches the loader prepares on the host".into()
                },
                size: human(total),
                limit: format!("the host's available memory of {}", human(host)),
                advice: advice(
                    cfg,
                    host.saturating_sub(fixed)
                        .checked_div(per_sample)
                        .unwrap_or(0),
                ),
            });
        }
    }
    Ok(())
}

impl GpuContext {
    /// [`check_run`] against this adapter's limits and the host's memory.
    pub fn check_run(&self, cfg: &ModelConfig, run: Run) -> Result<()> {
        check_run(cfg, run, &RunLimits::of(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::presets::PRESETS;

    /// lavapipe's limits, with no host budget.
    fn lavapipe() -> RunLimits {
        RunLimits {
            max_binding: 128 << 20,
            max_buffer: 2047 << 20,
            max_workgroups: 65_535,
            host_bytes: None,
            device_is_host: false,
        }
    }

    fn preset(name: &str) -> ModelConfig {
        ModelConfig::preset(name).unwrap()
    }

    fn transformer(cfg: &mut ModelConfig) -> &mut TransformerConfig {
        cfg.transformer_mut().unwrap()
    }

    #[test]
    fn every_preset_is_in_range() {
        for (name, _) in PRESETS {
            preset(name).validate().unwrap();
        }
    }

    #[test]
    fn absurd_sizes_name_the_field_value_and_range() {
        type Set = fn(&mut ModelConfig);
        let cases: [(&str, Set); 9] = [
            ("classes = 1000000000", |c| c.classes = 1_000_000_000),
            ("in_channels = 18446744073709551615", |c| {
                c.in_channels = usize::MAX
            }),
            ("time_steps = 18446744073709551615", |c| {
                c.time_steps = usize::MAX
            }),
            ("image_size = 100000", |c| c.image_size = 100_000),
            ("dim = 1048576", |c| transformer(c).dim = 1 << 20),
            ("depth = 0", |c| transformer(c).depth = 0),
            ("heads = 4096", |c| transformer(c).heads = 4096),
            ("mlp_ratio = 0", |c| transformer(c).mlp_ratio = 0),
            ("classes = 0", |c| c.classes = 0),
        ];
        for (want, set) in cases {
            let mut cfg = preset("spikformer-2-64");
            set(&mut cfg);
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("allowed: "), "{want}: {e}");
        }
        let mut cnn = preset("spiking-vgg-small");
        cnn.cnn_mut().unwrap().channels[1] = 1 << 30;
        let e = cnn.validate().unwrap_err().to_string();
        assert!(e.contains("channels[1] = 1073741824"), "{e}");
        cnn.cnn_mut().unwrap().channels = vec![8; 1000];
        let e = cnn.validate().unwrap_err().to_string();
        assert!(e.contains("channels (conv layers) = 1000"), "{e}");
    }

    #[test]
    fn the_largest_activation_is_the_one_that_fails_at_run_time() {
        // spikformer-4-384 at batch 48 fails on lavapipe allocating its third tokenizer
        // conv's output [192, 32, 32, 192] (150,994,944 bytes); 42 is the largest batch
        // that fits.
        let cfg = preset("spikformer-4-384");
        let e = check_run(&cfg, Run::Forward { batch: 48 }, &lavapipe())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tokenizer conv 2 output")
                && e.contains("150994944 bytes")
                && e.contains("max_storage_buffer_binding_size of 134217728 bytes")
                && e.contains("batch size of at most 42"),
            "{e}"
        );
        check_run(&cfg, Run::Train { batch: 42 }, &lavapipe()).unwrap();
        for name in ["spikformer-2-64", "bestformer-2-64", "spiking-vgg-small"] {
            check_run(&preset(name), Run::Train { batch: 64 }, &lavapipe()).unwrap();
        }
    }

    #[test]
    fn huge_batches_are_errors_not_overflows() {
        for batch in [4_294_967_295, usize::MAX] {
            for run in [Run::Forward { batch }, Run::Train { batch }] {
                let e = check_run(&preset("bestformer-2-64"), run, &lavapipe()).unwrap_err();
                assert!(matches!(e, Error::RunTooLarge { .. }), "{e}");
            }
        }
        let e = check_run(
            &preset("bestformer-2-64"),
            Run::Train { batch: 0 },
            &lavapipe(),
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("batch size must be positive"));
    }

    #[test]
    fn the_parameters_alone_can_be_too_large() {
        let mut cfg = preset("spikformer-2-64");
        cfg.classes = 65_536;
        transformer(&mut cfg).dim = 4096;
        transformer(&mut cfg).heads = 64;
        let e = check_run(&cfg, Run::Params, &lavapipe())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("parameters (") && e.contains("use a smaller model"),
            "{e}"
        );
    }

    #[test]
    fn dispatches_past_the_workgroup_limit_are_errors() {
        let limits = RunLimits {
            max_workgroups: 100,
            ..lavapipe()
        };
        // T * B * heads = 4 * 32 * 4 = 512 attention maps in one dispatch axis.
        let e = check_run(
            &preset("spikformer-2-64"),
            Run::Forward { batch: 32 },
            &limits,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("max_compute_workgroups_per_dimension of 100")
                && e.contains("batch size of at most"),
            "{e}"
        );
    }

    #[test]
    fn the_host_budget_counts_a_cpu_drivers_buffers() {
        let cfg = preset("bestformer-2-64");
        let small = RunLimits {
            host_bytes: Some(256 << 20),
            device_is_host: true,
            ..lavapipe()
        };
        let e = check_run(&cfg, Run::Train { batch: 64 }, &small)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("host's available memory of 268435456 bytes")
                && e.contains("batch size of at most"),
            "{e}"
        );
        check_run(&cfg, Run::Forward { batch: 1 }, &small).unwrap();
        // A GPU's own memory is not the host's: only the loader's batches count there.
        let gpu = RunLimits {
            device_is_host: false,
            ..small
        };
        check_run(&cfg, Run::Train { batch: 64 }, &gpu).unwrap();
    }
}
