//! `bitspike bench <what>`: kernel rates and ratios measured in one run.

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::augment_args::AugmentArgs;
use super::{print_json, GpuArgs};
use bitspike::bench::attention::{self, AttentionKernel, AttentionPass, AttentionWorkload};
use bitspike::bench::lif::{self, CopyWorkload, LifKernel, LifWorkload};
use bitspike::bench::matmul::{
    F32FormWorkload, MatmulKernel, MatmulWorkload, F32_KERNELS, GRADIENT_SHAPES, MODEL_SHAPES,
};
use bitspike::bench::model::{self as model_bench, ModelPass, ModelWorkload};
use bitspike::bench::{time_interleaved, time_iterations, time_workloads, Measurement};
use bitspike::nn::{Arch, Reversible};
use bitspike::ops::MatmulForm;
use bitspike::GpuContext;

#[derive(Args)]
pub struct BenchArgs {
    /// Which kernel family to benchmark.
    what: What,
    #[command(flatten)]
    gpu: GpuArgs,
    /// One JSON object per figure, one per line.
    #[arg(long)]
    json: bool,
    /// Seconds to repeat each measurement for (after one warm-up).
    #[arg(long, visible_alias = "seconds", default_value_t = 1.0, value_parser = super::float::seconds)]
    min_time: f64,
    /// Model presets for `bench model`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Batch size for `bench model` and `bench data`.
    #[arg(long, visible_alias = "batch-size", default_value_t = model_bench::DEFAULT_BATCH, value_parser = super::int::positive)]
    batch: usize,
    /// Shapes, comma-separated: MxKxN for matmul, TxROWSxFEATURES for lif, TxBxHxNxD for
    /// attention (default: the real models' shapes).
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Dataset for `bench events` (event recordings) and `bench data` (any dataset).
    #[arg(long, default_value = "../shared/data/nmnist-small")]
    data: std::path::PathBuf,
    /// `bench data`: time this many batches instead of --seconds.
    #[arg(long, value_parser = super::int::positive)]
    batches: Option<usize>,
    /// `bench data`: threads preparing batches; 0: one per core.
    #[arg(long, default_value_t = 0, value_parser = super::int::whole)]
    workers: usize,
    /// `bench data`: image folders decoded into memory first (then only augmentation,
    /// normalization and batching are timed); by default they are streamed from files.
    #[arg(long = "in-memory")]
    in_memory: bool,
    /// `bench data`: the model's image size for image folders (default: the first
    /// image's size).
    #[arg(long = "image-size", value_parser = super::int::positive)]
    image_size: Option<usize>,
    /// `bench data`: the training augmentation (train's flags; or --recipe, whose keys
    /// that `bench` has are used).
    #[command(flatten)]
    augment: AugmentArgs,
    /// `bench data`: a train recipe (TOML); its augmentation and batch-size keys apply,
    /// flags given here override them.
    #[arg(long)]
    pub recipe: Option<std::path::PathBuf>,
    /// Frames per sample for `bench events`.
    #[arg(long = "time-steps", default_value_t = 16, value_parser = super::int::whole)]
    time_steps: usize,
    #[command(flatten)]
    events: super::EventArgs,
    /// `bench matmul`: compare b-bit weights on bit-planes (1..=8) with f32 and 1-bit.
    #[arg(long)]
    bits: Option<u32>,
    /// `bench matmul`: the forms on which the f32 kernels (register-blocked, tiled) are
    /// compared, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["ab", "atb", "abt", "atbt"])]
    forms: Vec<FormArg>,
}

/// A matmul form on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum FormArg {
    /// A B
    Ab,
    /// A^T B (weight gradients)
    Atb,
    /// A B^T (linear layers)
    Abt,
    /// A^T B^T
    Atbt,
}

impl FormArg {
    fn form(self) -> MatmulForm {
        match self {
            FormArg::Ab => MatmulForm::AB,
            FormArg::Atb => MatmulForm::AtB,
            FormArg::Abt => MatmulForm::ABt,
            FormArg::Atbt => MatmulForm::AtBt,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    /// f32 matmul against the packed binary forms.
    Matmul,
    /// Fused LIF forward and backward against a plain copy of the same bytes.
    Lif,
    /// Every attention form against SSA computed with f32 matmuls.
    Attention,
    /// Whole models: forward and training-step throughput, activation memory.
    Model,
    /// Reading and binning an event dataset into frames (no cache), on the CPU.
    Events,
    /// The input pipeline on the CPU: images/s decoded (image folders, streamed),
    /// augmented, normalized and batched by the loader's workers.
    Data,
}

type GpuBench = fn(&GpuContext, &BenchArgs) -> anyhow::Result<()>;

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    // The CPU benchmarks open no GPU: they run where there is none.
    let bench: GpuBench = match args.what {
        What::Events => return bench_events(&args),
        What::Data => return bench_data(&args),
        What::Matmul => bench_matmul,
        What::Lif => bench_lif,
        What::Attention => bench_attention,
        What::Model => bench_model,
    };
    let ctx = args.gpu.open()?;
    if !args.json {
        println!(
            "adapter: {} ({}), {} kernels",
            ctx.adapter.name,
            ctx.adapter.backend,
            if ctx.subgroup_kernels {
                "subgroup"
            } else {
                "portable"
            }
        );
    }
    bench(&ctx, &args)?;
    // With BITSPIKE_PROFILE set: where the time went, kernel by kernel.
    for (name, count, seconds) in ctx.profile_report() {
        eprintln!(
            "profile {name:<44} {count:>8} dispatches {:>10.3} s",
            seconds
        );
    }
    Ok(())
}

fn shapes_or(
    args: &BenchArgs,
    defaults: &[(usize, usize, usize)],
) -> anyhow::Result<Vec<(usize, usize, usize)>> {
    if args.shapes.is_empty() {
        return Ok(defaults.to_vec());
    }
    args.shapes.iter().map(|s| parse_shape(s)).collect()
}

/// Positive sizes separated by 'x'.
fn parse_dims(s: &str, want: usize, form: &str) -> anyhow::Result<Vec<usize>> {
    let dims: Vec<usize> = s
        .split('x')
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("shape '{s}' is not {form}"))?;
    if dims.len() != want || dims.contains(&0) {
        anyhow::bail!("shape '{s}' is not {form} with positive sizes");
    }
    Ok(dims)
}

fn parse_shape(s: &str) -> anyhow::Result<(usize, usize, usize)> {
    let d = parse_dims(s, 3, "MxKxN")?;
    Ok((d[0], d[1], d[2]))
}

fn report(m: &Measurement, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(m);
    }
    let ratio = m
        .ratio
        .map(|r| format!("{r:6.2}x {}", m.ratio_to.as_deref().unwrap_or("")))
        .unwrap_or_default();
    // Fractions need more digits than rates.
    let digits = if m.unit == "fraction" { 3 } else { 1 };
    println!(
        "{:<40} {:<16} {:>10.3} ms {:>10.digits$} {:<8} {}",
        m.kernel,
        m.shape,
        m.seconds * 1e3,
        m.rate,
        m.unit,
        ratio
    );
    Ok(())
}

fn bench_matmul(ctx: &GpuContext, args: &BenchArgs) -> anyhow::Result<()> {
    let shapes = shapes_or(args, &MODEL_SHAPES)?;
    let min_time = Duration::from_secs_f64(args.min_time);
    for (m, k, n) in shapes {
        let kernels = match args.bits {
            Some(b) => MatmulKernel::with_bits(b).to_vec(),
            None => MatmulKernel::ALL.to_vec(),
        };
        let works = kernels
            .iter()
            .map(|&kernel| MatmulWorkload::new(ctx, kernel, m, k, n))
            .collect::<bitspike::Result<Vec<_>>>()?;
        // Interleaved rounds: the ratios compare kernels timed under the same conditions.
        let seconds = time_workloads(ctx, min_time, &works, |w| w.run(ctx))?;
        let f32_rate = works[0].macs() / seconds[0] / 1e9;
        for (work, &secs) in works.iter().zip(&seconds) {
            let rate = work.macs() / secs / 1e9;
            let ratio = (work.kernel != MatmulKernel::F32).then(|| rate / f32_rate);
            report(
                &Measurement {
                    kernel: work.kernel.name(),
                    shape: work.shape(),
                    seconds: secs,
                    rate,
                    unit: "GMAC/s",
                    ratio,
                    ratio_to: ratio.map(|_| "matmul_f32".into()),
                },
                args.json,
            )?;
        }
    }
    bench_f32_forms(ctx, args)
}

/// The f32 kernels against each other on the same shapes and forms, the tiled one's
/// ratio taken to the register-blocked one: every shape on every `--forms` form, and by
/// default also the weight-gradient shapes in their `A^T B` form.
fn bench_f32_forms(ctx: &GpuContext, args: &BenchArgs) -> anyhow::Result<()> {
    let min_time = Duration::from_secs_f64(args.min_time);
    let mut cases: Vec<(MatmulForm, (usize, usize, usize))> = Vec::new();
    for shape in shapes_or(args, &MODEL_SHAPES)? {
        cases.extend(args.forms.iter().map(|f| (f.form(), shape)));
    }
    if args.shapes.is_empty() {
        cases.extend(GRADIENT_SHAPES.iter().map(|&s| (MatmulForm::AtB, s)));
    }
    for (form, (m, k, n)) in cases {
        let works = F32_KERNELS
            .iter()
            .map(|&kernel| F32FormWorkload::new(ctx, kernel, form, m, k, n))
            .collect::<bitspike::Result<Vec<_>>>()?;
        let seconds = time_workloads(ctx, min_time, &works, |w| w.run(ctx))?;
        let base_rate = works[0].macs() / seconds[0] / 1e9;
        for (i, (work, &secs)) in works.iter().zip(&seconds).enumerate() {
            let rate = work.macs() / secs / 1e9;
            let ratio = (i > 0).then(|| rate / base_rate);
            report(
                &Measurement {
                    kernel: work.name(),
                    shape: work.shape(),
                    seconds: secs,
                    rate,
                    unit: "GMAC/s",
                    ratio,
                    ratio_to: ratio.map(|_| works[0].name()),
                },
                args.json,
            )?;
        }
    }
    Ok(())
}

fn bench_lif(ctx: &GpuContext, args: &BenchArgs) -> anyhow::Result<()> {
    let min_time = Duration::from_secs_f64(args.min_time);
    for (t, rows, features) in shapes_or(args, &lif::MODEL_SHAPES)? {
        for kernel in LifKernel::ALL {
            let work = match LifWorkload::new(ctx, kernel, t, rows, features) {
                Ok(w) => w,
                Err(e @ bitspike::Error::BufferTooLarge { .. }) => {
                    eprintln!("skipping {} {t}x{rows}x{features}: {e}", kernel.name());
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let copy = CopyWorkload::matching(ctx, &work)?;
            let copy_seconds = time_iterations(ctx, min_time, 3, || copy.run(ctx))?;
            let copy_rate = copy.bytes() / copy_seconds / 1e9;
            let seconds = time_iterations(ctx, min_time, 3, || work.run(ctx))?;
            let rate = work.bytes() / seconds / 1e9;
            report(
                &Measurement {
                    kernel: "copy".into(),
                    shape: copy.shape(),
                    seconds: copy_seconds,
                    rate: copy_rate,
                    unit: "GB/s",
                    ratio: None,
                    ratio_to: None,
                },
                args.json,
            )?;
            report(
                &Measurement {
                    kernel: kernel.name().into(),
                    shape: work.shape(),
                    seconds,
                    rate,
                    unit: "GB/s",
                    ratio: Some(rate / copy_rate),
                    ratio_to: Some("copy".into()),
                },
                args.json,
            )?;
        }
    }
    Ok(())
}

fn bench_attention(ctx: &GpuContext, args: &BenchArgs) -> anyhow::Result<()> {
    let min_time = Duration::from_secs_f64(args.min_time);
    let shapes: Vec<(usize, usize, usize, usize, usize)> = if args.shapes.is_empty() {
        attention::MODEL_SHAPES.to_vec()
    } else {
        args.shapes
            .iter()
            .map(|s| {
                let d = parse_dims(s, 5, "TxBxHxNxD")?;
                Ok((d[0], d[1], d[2], d[3], d[4]))
            })
            .collect::<anyhow::Result<_>>()?
    };
    for (t, mut b, h, n, d) in shapes {
        // Halve the batch until the largest map fits the device's binding limit.
        while b > 1
            && AttentionWorkload::new(
                ctx,
                AttentionKernel::SsaF32,
                AttentionPass::Forward,
                (t, b, h, n, d),
            )
            .is_err()
        {
            b /= 2;
        }
        for pass in AttentionPass::ALL {
            let mut works = Vec::new();
            for kernel in AttentionKernel::ALL {
                match AttentionWorkload::new(ctx, kernel, pass, (t, b, h, n, d)) {
                    Ok(w) => works.push(w),
                    Err(e @ bitspike::Error::BufferTooLarge { .. }) => {
                        eprintln!("skipping {}/{}: {e}", kernel.name(), pass.name());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            // Interleaved rounds: the ratios compare forms timed under the same conditions.
            let seconds = time_workloads(ctx, min_time, &works, |w| w.run(ctx))?;
            let f32_seconds = works
                .iter()
                .zip(&seconds)
                .find(|(w, _)| w.kernel == AttentionKernel::SsaF32)
                .map(|(_, &s)| s);
            for (work, &secs) in works.iter().zip(&seconds) {
                // Speed-up over f32 SSA in time (the d x d order counts other MACs).
                let ratio = f32_seconds.filter(|_| work.kernel != AttentionKernel::SsaF32);
                let ratio = ratio.map(|f| f / secs);
                report(
                    &Measurement {
                        kernel: work.name(),
                        shape: work.shape_name(),
                        seconds: secs,
                        rate: work.macs() / secs / 1e9,
                        unit: "GMAC/s",
                        ratio,
                        ratio_to: ratio.map(|_| format!("ssa_f32/{} (time)", pass.name())),
                    },
                    args.json,
                )?;
            }
            if pass == AttentionPass::Forward {
                report_forward_stats(ctx, &works, args.json)?;
            }
        }
    }
    Ok(())
}

/// Each form's map firing rate (fraction of ones, or of non-zero scores for the
/// real-valued maps; for the energy estimates) and the bytes its forward keeps for
/// backward, with f32 SSA's bytes over the form's.
fn report_forward_stats(
    ctx: &GpuContext,
    works: &[AttentionWorkload],
    json: bool,
) -> anyhow::Result<()> {
    let stats = works
        .iter()
        .map(|w| w.forward_stats(ctx))
        .collect::<bitspike::Result<Vec<_>>>()?;
    let f32_bytes = works
        .iter()
        .zip(&stats)
        .find(|(w, _)| w.kernel == AttentionKernel::SsaF32)
        .map(|(_, s)| s.saved_bytes as f64);
    for (work, s) in works.iter().zip(&stats) {
        report(
            &Measurement {
                kernel: format!("{}/firing_rate", work.kernel.name()),
                shape: work.shape_name(),
                seconds: 0.0,
                rate: s.firing_rate,
                unit: "fraction",
                ratio: None,
                ratio_to: None,
            },
            json,
        )?;
    }
    for (work, s) in works.iter().zip(&stats) {
        let ratio = f32_bytes
            .filter(|_| work.kernel != AttentionKernel::SsaF32)
            .map(|f| f / s.saved_bytes.max(1) as f64);
        report(
            &Measurement {
                kernel: format!("{}/saved_for_backward", work.kernel.name()),
                shape: work.shape_name(),
                seconds: 0.0,
                rate: s.saved_bytes as f64 / 1e6,
                unit: "MB",
                ratio,
                ratio_to: ratio.map(|_| "less memory than ssa_f32".into()),
            },
            json,
        )?;
    }
    Ok(())
}

/// Per preset, in interleaved rounds: the forward, the training step (with its speed
/// relative to the forward) and, for reversible models, the training step that stores
/// the blocks' activations instead of rebuilding them (with its speed relative to the
/// rebuilding one); then each training step's activation memory.
fn bench_model(ctx: &GpuContext, args: &BenchArgs) -> anyhow::Result<()> {
    let min_time = Duration::from_secs_f64(args.min_time);
    let presets: Vec<String> = if args.models.is_empty() {
        model_bench::MODEL_PRESETS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        args.models.clone()
    };
    for preset in &presets {
        let mut works = vec![
            (
                "forward",
                ModelWorkload::new(ctx, preset, args.batch, ModelPass::Forward)?,
            ),
            (
                "train_step",
                ModelWorkload::new(ctx, preset, args.batch, ModelPass::TrainStep)?,
            ),
        ];
        if works[0].1.config.kind() == Arch::Bestformer {
            let mut store = ModelWorkload::new(ctx, preset, args.batch, ModelPass::TrainStep)?;
            store.set_reversible(Reversible::Store);
            works.push(("train_step_store", store));
        }
        let seconds = {
            let mut runs: Vec<Box<dyn FnMut() -> bitspike::Result<()> + '_>> = works
                .iter_mut()
                .map(|(_, w)| Box::new(move || w.run(ctx).map(drop)) as Box<_>)
                .collect();
            let mut refs: Vec<&mut dyn FnMut() -> bitspike::Result<()>> = runs
                .iter_mut()
                .map(|r| r.as_mut() as &mut dyn FnMut() -> bitspike::Result<()>)
                .collect();
            time_interleaved(ctx, min_time, 2, &mut refs)?
        };
        for (i, (pass, work)) in works.iter().enumerate() {
            let (ratio, ratio_to) = match i {
                0 => (None, None),
                1 => (Some(seconds[0] / seconds[1]), Some("forward".to_string())),
                _ => (
                    Some(seconds[1] / seconds[i]),
                    Some("train_step".to_string()),
                ),
            };
            report(
                &Measurement {
                    kernel: format!("{preset}/{pass}"),
                    shape: work.shape_name(),
                    seconds: seconds[i],
                    rate: work.images() as f64 / seconds[i],
                    unit: "images/s",
                    ratio,
                    ratio_to,
                },
                args.json,
            )?;
        }
        for (pass, work) in &works[1..] {
            let mib = work.activation_bytes() as f64 / (1 << 20) as f64;
            let kernel = format!("{preset}/{pass}/activation_memory");
            if args.json {
                print_json(&serde_json::json!({
                    "kernel": kernel,
                    "shape": work.shape_name(),
                    "rate": mib,
                    "unit": "MiB",
                }))?;
            } else {
                println!("{kernel:<40} {:<16} {mib:.1} MiB", work.shape_name());
            }
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct EventsFigure {
    data: String,
    samples: usize,
    events: usize,
    frames: String,
    seconds: f64,
    samples_per_second: f64,
}

/// Read and bin every sample of an event dataset, uncached, the way training loads it.
fn bench_events(args: &BenchArgs) -> anyhow::Result<()> {
    let options = bitspike::data::events::dataset::EventOptions {
        cache_dir: None,
        ..args.events.options(args.time_steps, None)?
    };
    let start = std::time::Instant::now();
    let splits = bitspike::data::open_with(&args.data, &options)?;
    let seconds = start.elapsed().as_secs_f64();
    let samples = splits.train.len() + splits.test.len();
    let f = splits
        .frames
        .ok_or_else(|| anyhow::anyhow!("{} holds no event data", args.data.display()))?;
    let events: u64 = [&splits.train, &splits.test]
        .into_iter()
        .filter_map(|s| s.decoded())
        .flat_map(|d| &d.images)
        .map(|&v| v as u64)
        .sum();
    let figure = EventsFigure {
        data: args.data.display().to_string(),
        samples,
        events: events as usize,
        frames: format!(
            "{}x2x{}x{} ({:?})",
            f.time_steps, f.size, f.size, f.split_by
        ),
        seconds,
        samples_per_second: samples as f64 / seconds,
    };
    if args.json {
        print_json(&figure)
    } else {
        println!(
            "read and binned {} samples ({} events in frames {}) from {} in {:.3} s: {:.0} samples/s",
            figure.samples, figure.events, figure.frames, figure.data, figure.seconds, figure.samples_per_second
        );
        Ok(())
    }
}

#[derive(serde::Serialize)]
struct DataFigure {
    data: String,
    /// "files" (decoded as batches are prepared) or "memory".
    source: &'static str,
    /// One sample: CxHxW, or TxCxHxW for event frames.
    shape: String,
    augment: String,
    batch_size: usize,
    workers: usize,
    images: usize,
    seconds: f64,
    images_per_second: f64,
    images_per_second_per_worker: f64,
}

/// Training batches of a dataset's train split through the real loader, timed.
fn bench_data(args: &BenchArgs) -> anyhow::Result<()> {
    use bitspike::bench::data::{measure, DataRun};
    use bitspike::data::{self, BatchLoader, FolderOptions, Load, Normalization};
    let options = data::OpenOptions {
        events: args.events.options(args.time_steps, None)?,
        folders: FolderOptions {
            image_size: args.image_size,
            load: if args.in_memory {
                Load::InMemory
            } else {
                Load::Stream
            },
        },
    };
    let splits = data::open_with_options(&args.data, &options)?;
    let train = splits.train;
    args.augment
        .check_crop_padding(train.height().min(train.width()))?;
    let shape = match train.time_steps() {
        1 => format!("{}x{}x{}", train.channels(), train.height(), train.width()),
        t => format!(
            "{t}x{}x{}x{}",
            train.channels(),
            train.height(),
            train.width()
        ),
    };
    let source = match train {
        data::Samples::Files(_) => "files",
        data::Samples::Decoded(_) => "memory",
    };
    let channels = train.channels();
    // Any statistics cost the same; the data's own would take a pass over it.
    let norm = Normalization {
        mean: vec![0.5; channels],
        std: vec![0.25; channels],
    };
    let augment = args.augment.augment(&norm.mean);
    augment.check(channels)?;
    let loader = BatchLoader {
        data: std::sync::Arc::new(train),
        batch_size: args.batch,
        shuffle: true,
        augment,
        mixup: args.augment.mixup()?,
        norm,
        seed: 0,
        prefetch: 3,
        workers: args.workers,
        shard: bitspike::data::Shard::WHOLE,
    };
    let rate = measure(
        &loader,
        DataRun {
            seconds: args.min_time,
            batches: args.batches,
        },
    )?;
    let workers = loader.worker_count();
    let figure = DataFigure {
        data: args.data.display().to_string(),
        source,
        shape,
        augment: args.augment.describe(),
        batch_size: args.batch,
        workers,
        images: rate.images,
        seconds: rate.seconds,
        images_per_second: rate.images_per_second,
        images_per_second_per_worker: rate.images_per_second / workers as f64,
    };
    if args.json {
        print_json(&figure)
    } else {
        println!(
            "{} ({}, {} from {}, {}): {} images in {:.3} s: {:.0} images/s, {:.0} per worker \
             ({} workers, batch {})",
            figure.data,
            splits.format,
            figure.shape,
            figure.source,
            figure.augment,
            figure.images,
            figure.seconds,
            figure.images_per_second,
            figure.images_per_second_per_worker,
            figure.workers,
            figure.batch_size
        );
        Ok(())
    }
}
