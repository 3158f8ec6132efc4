//! `bitspike train`: train a preset on a dataset, with a progress bar, evaluation after
//! each epoch, a metrics log, and checkpoints (the last complete epoch, the best, and the
//! EMA of the weights). Every flag can come from a recipe file (`--recipe`, see
//! `recipe.rs`); flags on the command line override it.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::augment_args::AugmentArgs;
use super::{float, print_json, EventArgs, GpuArgs, LoaderArgs, ModelArgs};
use bitspike::data::{self, Augment};
use bitspike::nn::Reversible;
use bitspike::train::parallel::Devices;
use bitspike::train::{Distillation, RunMode};
use bitspike::trainer::{TeacherSpec, MAX_EPOCHS};
use bitspike::{TrainConfig, Trainer};

#[derive(Args)]
pub struct TrainArgs {
    /// A recipe: a TOML file whose keys are this command's flags (`lr = 5e-4`,
    /// `aa = "rand-m9-n1-mstd0.4-inc1"`, `hflip = true`); flags given here override it.
    #[arg(long)]
    pub recipe: Option<PathBuf>,
    #[command(flatten)]
    gpu: GpuArgs,
    /// The devices to train on, one data-parallel replica each: `all` (every adapter of
    /// the best backend), or adapter indices as `bitspike info` lists them (`0,1`; `0,0`
    /// opens two devices on the first adapter). The batch is split among them. Under
    /// `mpirun` (with the `mpi` feature) each process trains on its own devices.
    #[arg(long, default_value = "0")]
    devices: Devices,
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

#[derive(Clone, Copy, ValueEnum)]
enum DistillKind {
    Hard,
    Soft,
}

impl TrainArgs {
    /// The library's run settings from the flags.
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let model = self.model.config()?.context(
            "--model PRESET is required (e.g. --model bestformer-2-64; `bitspike info --model NAME`)",
        )?;
        for (flag, n) in [
            ("--epochs", self.epochs),
            ("--cooldown-epochs", self.cooldown_epochs),
        ] {
            if n > MAX_EPOCHS {
                anyhow::bail!("{flag} {n} is out of range (allowed: 0..={MAX_EPOCHS})");
            }
        }
        self.augment.check_crop_padding(model.image_size)?;
        let mut config = TrainConfig::new(model.clone(), &self.data);
        config.open = data::OpenOptions {
            events: self.events.options(model.time_steps, None)?,
            folders: self.loader.folders(Some(model.image_size)),
        };
        config.out = self.out.clone().unwrap_or_else(|| {
            PathBuf::from("runs").join(self.model.model.as_deref().unwrap_or("model"))
        });
        config.mode = match (self.resume, self.overwrite) {
            (true, _) => RunMode::Resume,
            (false, true) => RunMode::Overwrite,
            (false, false) => RunMode::Fresh,
        };
        config.epochs = self.epochs;
        config.batch_size = self.batch_size;
        config.lr = self.lr;
        config.min_lr = self.min_lr;
        config.warmup_epochs = self.warmup_epochs;
        config.warmup_lr = self.warmup_lr;
        config.cooldown_epochs = self.cooldown_epochs;
        config.accum_steps = self.accum_steps;
        config.weight_decay = self.weight_decay;
        config.label_smoothing = self.label_smoothing;
        config.clip_grad = self.clip_grad;
        // The fill colour of geometric augmentations is the data's mean, set by the run.
        config.augment = Augment {
            fill: None,
            ..self.augment.augment(&[])
        };
        config.mixup = self.augment.mixup()?;
        config.seed = self.seed;
        config.weights = self.weights.clone();
        config.teacher = match (&self.teacher, &self.teacher_logits) {
            (Some(p), _) => Some(TeacherSpec::Checkpoint(p.clone())),
            (None, Some(p)) => Some(TeacherSpec::Logits(p.clone())),
            (None, None) => None,
        };
        config.distillation = match self.distill {
            DistillKind::Hard => Distillation::Hard,
            DistillKind::Soft => Distillation::Soft { tau: self.tau },
        };
        config.rate_reg = self.rate_reg;
        config.reversible = self.reversible;
        config.model_ema = self.model_ema.then_some(self.model_ema_decay);
        config.report_every = self.report_every;
        config.workers = self.loader.workers;
        config.adapter = self.gpu.choice();
        config.devices = self.devices.clone();
        Ok(config)
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let (epochs, out) = (config.epochs, config.out.clone());
    let name = args.model.model.clone().unwrap_or_else(|| "model".into());
    let json = args.json;
    // The progress bar of the running epoch, made at its first step.
    let bar: RefCell<Option<indicatif::ProgressBar>> = RefCell::new(None);
    let epoch_done = Cell::new(0);
    #[cfg(feature = "mpi")]
    let world = match bitspike::train::parallel::mpi_world::MpiWorld::launched() {
        true => Some(std::sync::Arc::new(
            bitspike::train::parallel::mpi_world::MpiWorld::init()?,
        )),
        false => None,
    };
    #[allow(unused_mut)]
    let mut trainer = Trainer::new(config)
        .on_start(|s| {
            epoch_done.set(s.first_epoch);
            if !json {
                let replicas = match s.replicas {
                    1 => String::new(),
                    n => format!(" ({n} replicas)"),
                };
                eprintln!(
                    "training {name} on {} ({} train / {} test images, {}) on {}{replicas}; \
                     run directory {}",
                    args.data.display(),
                    s.train_samples,
                    s.test_samples,
                    s.format,
                    s.adapter,
                    out.display()
                );
            }
        })
        .on_step(|p| {
            if json {
                return;
            }
            let mut bar = bar.borrow_mut();
            let bar = bar.get_or_insert_with(|| progress_bar(p.steps, epoch_done.get() + 1, epochs));
            bar.set_position(p.step as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.2}% {:.1} img/s",
                p.loss,
                100.0 * p.accuracy,
                p.images_per_second
            ));
        })
        .on_epoch(|report| {
            if let Some(bar) = bar.borrow_mut().take() {
                bar.finish_and_clear();
            }
            epoch_done.set(report.epoch);
            if json {
                // A closed stdout is not worth stopping a run for.
                let _ = print_json(report);
                return;
            }
            let ema_note = report
                .ema_test_accuracy
                .map(|a| format!(", EMA {:.2}%", 100.0 * a))
                .unwrap_or_default();
            println!(
                "epoch {}/{}: train loss {:.4}, train acc {:.2}%, test acc {:.2}% (top-5 {:.2}%{ema_note}), {:.1} img/s, {:.0} s",
                report.epoch,
                epochs,
                report.train_loss,
                100.0 * report.train_accuracy,
                100.0 * report.test_accuracy,
                100.0 * report.test_top5,
                report.images_per_second,
                report.seconds
            );
        });
    let stop = trainer.stop_flag();
    // The first Ctrl-C (or SIGTERM) ends the epoch within a step and saves; a second one
    // quits at once (a save it cuts short leaves a temporary file that the next run in
    // this directory removes).
    let _ = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: quitting without saving");
            std::process::exit(super::INTERRUPTED_EXIT_CODE);
        }
        eprintln!("interrupted: stopping after this step to save (again to quit at once)");
    });
    #[cfg(feature = "mpi")]
    if let Some(world) = &world {
        trainer = trainer.processes(world.clone());
    }
    let result = trainer.run();
    // One process's error ends the launch: the others would wait for it in a reduction.
    #[cfg(feature = "mpi")]
    if let (Err(e), Some(world)) = (&result, &world) {
        use bitspike::train::parallel::ProcessGroup;
        if world.size() > 1 {
            eprintln!("error on process {} of {}: {e}", world.rank(), world.size());
            world.abort(1);
        }
    }
    let summary = result?;
    if let Some(bar) = bar.borrow_mut().take() {
        bar.finish_and_clear();
    }
    if let Some((epoch, steps_done, steps)) = summary.interrupted {
        return Err(super::Interrupted(format!(
            "interrupted in epoch {} after step {steps_done} of {steps}: saved {}; continue \
             with --resume --out {}",
            epoch + 1,
            summary.last_checkpoint.display(),
            out.display()
        ))
        .into());
    }
    if !json && summary.leader {
        println!(
            "best test accuracy {:.2}%; checkpoints in {}",
            100.0 * summary.best_accuracy,
            out.display()
        );
    }
    Ok(())
}

fn progress_bar(steps: usize, epoch: usize, epochs: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}
