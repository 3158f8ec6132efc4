//! `bitspike train`: train a preset on a dataset, with a progress bar, evaluation after
//! each epoch, a metrics log, and checkpoints (the last complete epoch, the best, and the
//! EMA of the weights). Every flag can come from a recipe file (`--recipe`, see
//! `recipe.rs`); flags on the command line override it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::augment_args::AugmentArgs;
use super::{float, print_json, EventArgs, GpuArgs, LoaderArgs, ModelArgs, FRAMES_KEY};
use bitspike::data::{self, Augment, BatchLoader, TeacherLogits};
use bitspike::nn::limits::Run;
use bitspike::nn::{init_state, Model, ModelConfig, ParamStore, Reversible, StateDict};
use bitspike::ops::optim::AdamW;
use bitspike::train::{
    evaluate, CosineSchedule, Distillation, EpochProgress, EpochReport, ModelEma, Optimizer,
    RunDir, RunMode, Teacher, TeacherSource, Trainer,
};

#[derive(Args)]
pub struct TrainArgs {
    /// A recipe: a TOML file whose keys are this command's flags (`lr = 5e-4`,
    /// `aa = "rand-m9-n1-mstd0.4-inc1"`, `hflip = true`); flags given here override it.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    #[command(flatten)]
    gpu: GpuArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    events: EventArgs,
    #[command(flatten)]
    loader: LoaderArgs,
    /// Dataset directory (MNIST-style IDX, CIFAR binary, train/ and test/ image folders,
    /// or event recordings: Train/ and Test/ class folders, samples/ with label files, or
    /// class folders).
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    #[arg(long, default_value_t = 1, value_parser = super::int::whole)]
    epochs: usize,
    #[arg(long, default_value_t = 64, value_parser = super::int::positive)]
    batch_size: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 5e-4, value_parser = float::positive)]
    lr: f32,
    #[arg(long, default_value_t = 1e-5, value_parser = float::non_negative)]
    min_lr: f32,
    /// Epochs of linear warm-up from --warmup-lr.
    #[arg(long, default_value_t = 0.0, value_parser = float::non_negative)]
    warmup_epochs: f32,
    /// Where the warm-up starts (default: --min-lr).
    #[arg(long, value_parser = float::non_negative)]
    warmup_lr: Option<f32>,
    /// The last epochs of the run at --min-lr, after the cosine (timm's cooldown; timm
    /// counts them on top of --epochs, bitspike within it). At least one epoch stays
    /// for the cosine.
    #[arg(long, default_value_t = 0, value_parser = super::int::whole)]
    cooldown_epochs: usize,
    /// Batches whose gradients add up before each optimizer step: an effective batch of
    /// batch-size x accum-steps on a small GPU.
    #[arg(long, default_value_t = 1, value_parser = super::int::positive)]
    accum_steps: usize,
    #[arg(long, default_value_t = 0.06, value_parser = float::non_negative)]
    weight_decay: f32,
    #[arg(long, default_value_t = 0.1, value_parser = float::fraction)]
    label_smoothing: f32,
    /// Clip the global gradient norm to this.
    #[arg(long, value_parser = float::positive)]
    clip_grad: Option<f32>,
    #[command(flatten)]
    augment: AugmentArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initial weights: a plain state_dict with the reference names (or a checkpoint).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Continue from this run directory's last checkpoint (weights, optimizer, epoch and
    /// step of an interrupted epoch).
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Start over in a run directory that holds a run (its checkpoints and log are
    /// removed).
    #[arg(long)]
    overwrite: bool,
    /// Teacher checkpoint for distillation into the second head (two-head models).
    #[arg(long, conflicts_with = "teacher_logits")]
    teacher: Option<PathBuf>,
    /// A teacher that bitspike does not run: its logits for every training image
    /// (safetensors or .npy, [images, classes] in the dataset's order; written by
    /// scripts/teacher_logits.py).
    #[arg(long)]
    teacher_logits: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DistillKind::Hard)]
    distill: DistillKind,
    /// Temperature of soft distillation.
    #[arg(long, default_value_t = 1.0, value_parser = float::positive)]
    tau: f32,
    /// Q-SNN's firing-rate regularizer: adds lambda mean_layers (rate - 0.5)^2 to the
    /// loss (spiking CNNs; the paper uses 5e-3).
    #[arg(long, default_value_t = 0.0, value_parser = float::non_negative)]
    rate_reg: f32,
    /// BESTformer's reversible blocks in training: rebuild their inputs in backward
    /// (activation memory flat in depth) or store their activations (faster, more memory).
    /// Both give the same gradients.
    #[arg(long, value_enum, default_value_t = Reversible::Recompute)]
    reversible: Reversible,
    /// Keep an exponential moving average of the weights (timm's ModelEmaV2), evaluated
    /// each epoch and saved as ema.safetensors.
    #[arg(long)]
    model_ema: bool,
    #[arg(long, default_value_t = 0.9998, value_parser = float::fraction)]
    model_ema_decay: f32,
    /// Run directory for checkpoints and the metrics log (default: runs/<model>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Steps between progress updates (each reads the GPU's results back once).
    #[arg(long, default_value_t = 10, value_parser = super::int::whole)]
    report_every: usize,
    /// One JSON object per epoch instead of a progress bar.
    #[arg(long)]
    json: bool,
}

/// The checkpoint metadata of an interrupted epoch: its [`EpochProgress`] as JSON.
const PARTIAL_EPOCH_KEY: &str = "train.partial_epoch";

/// The most epochs one run may ask for.
const MAX_EPOCHS: usize = 1_000_000;

#[derive(Clone, Copy, ValueEnum)]
enum DistillKind {
    Hard,
    Soft,
}

/// Load `path` as a state dict for `cfg` (checked, errors naming the tensor).
fn load_weights(path: &Path, cfg: &ModelConfig) -> anyhow::Result<StateDict> {
    let sd = StateDict::read(path)?;
    // The model is the command line's, but a config the file carries must be sound.
    sd.config(path)?;
    sd.check(cfg, path)?;
    Ok(sd)
}

/// A spiking CNN's conv widths from the checkpoint `path` when it has been pruned (its
/// config names the same architecture with other widths).
fn pruned_widths(cfg: &mut ModelConfig, path: &Path) -> anyhow::Result<()> {
    if !cfg.is_cnn() || !path.exists() {
        return Ok(());
    }
    if let Some(saved) = StateDict::read(path)?.config(path)? {
        let same_arch = saved.kind() == cfg.kind();
        if let (Some(old), Some(new)) = (saved.cnn(), cfg.cnn_mut()) {
            if same_arch && old.channels.len() == new.channels.len() {
                new.channels = old.channels.clone();
            }
        }
    }
    Ok(())
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let mut cfg = args.model.config()?.context(
        "--model PRESET is required (e.g. --model bestformer-2-64; `bitspike info --model NAME`)",
    )?;
    for (flag, n) in [
        ("--epochs", args.epochs),
        ("--cooldown-epochs", args.cooldown_epochs),
    ] {
        if n > MAX_EPOCHS {
            anyhow::bail!("{flag} {n} is out of range (allowed: 0..={MAX_EPOCHS})");
        }
    }
    let total_epochs = args.epochs;
    let cosine_epochs = args
        .epochs
        .saturating_sub(args.cooldown_epochs)
        .max(args.epochs.min(1));
    let mixup = args.augment.mixup()?;
    args.augment.check_crop_padding(cfg.image_size)?;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs").join(args.model.model.as_deref().unwrap_or("model"))
    });
    let last_path = out.join("last.safetensors");
    let best_path = out.join("best.safetensors");
    match (&args.weights, args.resume) {
        (_, true) => pruned_widths(&mut cfg, &last_path)?,
        (Some(w), false) => pruned_widths(&mut cfg, w)?,
        (None, false) => {}
    }
    // Every buffer of the run checked against the adapter and the host before anything
    // is allocated, the data read, or a directory created.
    let ctx = args.gpu.open()?;
    ctx.check_run(
        &cfg,
        Run::Train {
            batch: args.batch_size,
        },
    )?;
    let options = data::OpenOptions {
        events: args.events.options(cfg.time_steps, None)?,
        folders: args.loader.folders(Some(cfg.image_size)),
    };
    let splits = data::open_with_options(&args.data, &options)?;
    splits.check_classes(cfg.classes, &args.data)?;
    let (c, s) = (splits.train.channels(), splits.train.height());
    if c != cfg.in_channels || s != cfg.image_size || splits.train.width() != s {
        anyhow::bail!(
            "{} holds {c}x{s}x{} images but {} expects {}x{}x{}: pass --in-channels and \
             --image-size to match the data (event data: 2 channels, --frame-size)",
            args.data.display(),
            splits.train.width(),
            args.model.model.as_deref().unwrap_or("the model"),
            cfg.in_channels,
            cfg.image_size,
            cfg.image_size
        );
    }
    let mode = match (args.resume, args.overwrite) {
        (true, _) => RunMode::Resume,
        (false, true) => RunMode::Overwrite,
        (false, false) => RunMode::Fresh,
    };
    let run_dir = RunDir::open(&out, mode)?;

    let teacher_table = match &args.teacher_logits {
        Some(path) => Some(TeacherLogits::read(
            path,
            splits.train.labels(),
            cfg.classes,
        )?),
        None => None,
    };
    let norm = splits.train.normalization()?;
    let augment = args.augment.augment(&norm.mean);
    augment.check(splits.train.channels())?;
    let splits_frames = splits.frames;
    let loader = BatchLoader {
        data: Arc::new(splits.train),
        batch_size: args.batch_size,
        shuffle: true,
        augment,
        mixup,
        norm: norm.clone(),
        seed: args.seed,
        prefetch: 3,
        workers: args.loader.workers,
    };
    let test_loader = BatchLoader {
        data: Arc::new(splits.test),
        shuffle: false,
        augment: Augment::default(),
        mixup: None,
        ..loader.clone()
    };

    let initial = match (&args.weights, args.resume) {
        (_, true) => load_weights(&last_path, &cfg)
            .with_context(|| format!("cannot resume from {}", last_path.display()))?,
        (Some(w), false) => load_weights(w, &cfg)?,
        (None, false) => init_state(&cfg, args.seed),
    };
    let mut store = ParamStore::new(&ctx, &cfg, &initial)?;
    let opt_config = AdamW {
        weight_decay: args.weight_decay,
        max_grad_norm: args.clip_grad,
        ..AdamW::default()
    };
    let mut optimizer = Optimizer::new(&ctx, &store, opt_config)?;
    let mut first_epoch = 0;
    let mut resume_from = None;
    let mut best = 0.0;
    if args.resume {
        optimizer.load_from(&ctx, &initial)?;
        first_epoch = meta_usize(&initial, "train.epochs_done");
        if let Some(partial) = initial.metadata.get(PARTIAL_EPOCH_KEY) {
            let progress: EpochProgress = serde_json::from_str(partial).with_context(|| {
                format!("{}: unreadable {PARTIAL_EPOCH_KEY}", last_path.display())
            })?;
            if progress.epoch != first_epoch || progress.steps_done > loader.batches() {
                anyhow::bail!(
                    "{}: {PARTIAL_EPOCH_KEY} ({partial}) does not fit the run ({first_epoch} \
                     epochs done, {} steps an epoch): was the batch size changed?",
                    last_path.display(),
                    loader.batches()
                );
            }
            resume_from = Some(progress);
        }
        best = initial
            .metadata
            .get("train.best_accuracy")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
    }
    let mut ema = match args.model_ema {
        true => {
            let mut ema = ModelEma::new(&ctx, &store, &initial, args.model_ema_decay)?;
            if args.resume {
                if let Err(e) = ema.load_from(&ctx, &initial) {
                    eprintln!("{e}: the EMA starts from the resumed weights");
                }
            }
            Some(ema)
        }
        false => None,
    };
    let mut model = Model::new(&cfg, args.batch_size)?;
    model.set_rate_reg(args.rate_reg)?;
    model.set_reversible(args.reversible);

    let mut teacher_parts = match &args.teacher {
        Some(path) => {
            let sd = StateDict::read(path)?;
            let tcfg = sd.config(path)?.with_context(|| {
                format!(
                    "{}: a teacher needs a bitspike checkpoint (config in its metadata)",
                    path.display()
                )
            })?;
            if tcfg.classes != cfg.classes {
                anyhow::bail!(
                    "{}: the teacher has {} classes, the model {}",
                    path.display(),
                    tcfg.classes,
                    cfg.classes
                );
            }
            ctx.check_run(
                &tcfg,
                Run::Forward {
                    batch: args.batch_size,
                },
            )?;
            sd.check(&tcfg, path)?;
            Some((
                Model::new(&tcfg, args.batch_size)?,
                ParamStore::new(&ctx, &tcfg, &sd)?,
            ))
        }
        None => None,
    };

    let steps = loader.batches();
    let updates = steps.div_ceil(args.accum_steps);
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    // The first Ctrl-C (or SIGTERM) ends the epoch within a step and saves; a second one
    // quits at once (a save it cuts short leaves a temporary file that the next run in
    // this directory removes).
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: quitting without saving");
            std::process::exit(super::INTERRUPTED_EXIT_CODE);
        }
        eprintln!("interrupted: stopping after this step to save (again to quit at once)");
    });
    let trainer = Trainer {
        ctx: &ctx,
        loader,
        test_loader: test_loader.clone(),
        schedule: CosineSchedule {
            lr: args.lr,
            min_lr: args.min_lr,
            warmup_lr: args.warmup_lr.unwrap_or(args.min_lr),
            warmup_steps: (args.warmup_epochs * updates as f32) as usize,
            total_steps: cosine_epochs * updates,
        },
        label_smoothing: args.label_smoothing,
        accum_steps: args.accum_steps,
        report_every: args.report_every.max(1),
        stop: stop.clone(),
    };
    if !args.json {
        eprintln!(
            "training {} on {} ({} train / {} test images, {}) on {}; run directory {}",
            args.model.model.as_deref().unwrap_or("model"),
            args.data.display(),
            trainer.loader.data.len(),
            test_loader.data.len(),
            splits.format,
            ctx.adapter.name,
            out.display()
        );
    }
    let distillation = match args.distill {
        DistillKind::Hard => Distillation::Hard,
        DistillKind::Soft => Distillation::Soft { tau: args.tau },
    };
    for epoch in first_epoch..total_epochs {
        let bar = (!args.json).then(|| {
            let bar = indicatif::ProgressBar::new(steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, total_epochs));
            bar
        });
        let start = std::time::Instant::now();
        let source = match (&mut teacher_parts, &teacher_table) {
            (Some((m, s)), _) => Some(TeacherSource::Live { model: m, store: s }),
            (None, Some(table)) => Some(TeacherSource::Logits(table)),
            (None, None) => None,
        };
        let mut teacher = source.map(|source| Teacher {
            source,
            kind: distillation,
        });
        let from = resume_from
            .take()
            .unwrap_or_else(|| EpochProgress::start(epoch));
        let outcome = trainer.train_epoch(
            from,
            &mut model,
            &mut store,
            &mut optimizer,
            teacher.as_mut(),
            ema.as_mut(),
            |p| {
                if let Some(bar) = &bar {
                    bar.set_position(p.step as u64);
                    bar.set_message(format!(
                        "loss {:.4} acc {:.2}% {:.1} img/s",
                        p.loss,
                        100.0 * p.accuracy,
                        p.images_per_second
                    ));
                }
            },
        )?;
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let mut sd = store.to_state_dict(&ctx)?;
        sd.metadata
            .insert("train.best_accuracy".into(), best.to_string());
        sd.metadata
            .insert("data.normalization".into(), serde_json::to_string(&norm)?);
        if let Some(frames) = &splits_frames {
            sd.metadata
                .insert(FRAMES_KEY.into(), serde_json::to_string(frames)?);
        }
        sd.metadata.insert(
            "data.classes".into(),
            serde_json::to_string(trainer.loader.data.classes())?,
        );
        if outcome.interrupted {
            // A checkpoint inside the epoch: the complete epochs, and the steps of this one.
            let p = outcome.progress;
            sd.metadata
                .insert("train.epochs_done".into(), epoch.to_string());
            sd.metadata
                .insert(PARTIAL_EPOCH_KEY.into(), serde_json::to_string(&p)?);
            optimizer.save_into(&ctx, &mut sd)?;
            if let Some(ema) = &ema {
                ema.save_into(&ctx, &mut sd)?;
            }
            sd.write(&last_path)?;
            return Err(super::Interrupted(format!(
                "interrupted in epoch {} after step {} of {steps}: saved {}; continue with \
                 --resume --out {}",
                epoch + 1,
                p.steps_done,
                last_path.display(),
                out.display()
            ))
            .into());
        }
        let evaluation = evaluate(&ctx, &mut model, &mut store, &test_loader)?;
        if evaluation.nan_predictions > 0 {
            return Err(bitspike::Error::Diverged {
                at: format!("epoch {}", epoch + 1),
                what: format!(
                    "{} of {} test images have NaN logits",
                    evaluation.nan_predictions, evaluation.samples
                ),
            }
            .into());
        }
        let (top1, top5) = (evaluation.top1, evaluation.top5);
        let ema_test_accuracy = match ema.as_mut() {
            Some(ema) => Some(evaluate(&ctx, &mut model, ema.store(&ctx)?, &test_loader)?.top1),
            None => None,
        };
        let report = EpochReport {
            epoch: epoch + 1,
            train_loss: outcome.loss,
            train_accuracy: outcome.accuracy,
            test_accuracy: top1,
            test_top5: top5,
            ema_test_accuracy,
            images_per_second: outcome.images_per_second,
            lr: trainer.schedule.at((epoch + 1) * updates),
            seconds: start.elapsed().as_secs_f64(),
        };
        // The checkpoint: weights (reference names), optimizer state, epoch, best so far.
        best = f64::max(best, top1);
        sd.metadata
            .insert("train.epochs_done".into(), (epoch + 1).to_string());
        sd.metadata
            .insert("train.best_accuracy".into(), best.to_string());
        if top1 >= best {
            sd.write(&best_path)?;
        }
        if let Some(ema) = &ema {
            // The EMA as a plain checkpoint for eval and infer, with the data's metadata.
            let mut plain = ema.state_dict(&ctx)?;
            for (k, v) in &sd.metadata {
                if k.starts_with("data.") || k == FRAMES_KEY {
                    plain.metadata.insert(k.clone(), v.clone());
                }
            }
            plain.write(&run_dir.ema_checkpoint())?;
            ema.save_into(&ctx, &mut sd)?;
        }
        optimizer.save_into(&ctx, &mut sd)?;
        sd.write(&last_path)?;
        run_dir.append_metrics(&serde_json::to_string(&report)?)?;
        if args.json {
            print_json(&report)?;
        } else {
            let ema_note = report
                .ema_test_accuracy
                .map(|a| format!(", EMA {:.2}%", 100.0 * a))
                .unwrap_or_default();
            println!(
                "epoch {}/{}: train loss {:.4}, train acc {:.2}%, test acc {:.2}% (top-5 {:.2}%{ema_note}), {:.1} img/s, {:.0} s",
                report.epoch,
                total_epochs,
                report.train_loss,
                100.0 * report.train_accuracy,
                100.0 * report.test_accuracy,
                100.0 * report.test_top5,
                report.images_per_second,
                report.seconds
            );
        }
    }
    if !args.json {
        println!(
            "best test accuracy {:.2}%; checkpoints in {}",
            100.0 * best,
            out.display()
        );
    }
    Ok(())
}

fn meta_usize(sd: &StateDict, key: &str) -> usize {
    sd.metadata
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
