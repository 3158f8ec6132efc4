//! Training from code: a [`TrainConfig`] (the settings of `bitspike train`, with its
//! defaults) and a [`Trainer`] that runs it into a run directory, calling back after
//! every epoch (and every few steps). `bitspike train` is this plus a progress bar.
//!
//! ```no_run
//! # fn main() -> bitspike::Result<()> {
//! use bitspike::nn::ModelConfig;
//! use bitspike::{TrainConfig, Trainer};
//!
//! let mut config = TrainConfig::new(ModelConfig::preset("bestformer-2-64")?, "assets/mnist-mini");
//! config.epochs = 2;
//! config.out = "runs/custom".into();
//! let summary = Trainer::new(config)
//!     .on_epoch(|e| println!("epoch {}: test accuracy {:.2}%", e.epoch, 100.0 * e.test_accuracy))
//!     .run()?;
//! println!("best {:.2}%, checkpoint {}", 100.0 * summary.best_accuracy, summary.best_checkpoint.display());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::data::augment::fill_from_mean;
use crate::data::Shard;
use crate::data::{self, Augment, BatchLoader, Mixup, TeacherLogits};
use crate::error::{Error, Result};
use crate::gpu::{AdapterChoice, GpuContext};
use crate::nn::limits::Run;
use crate::nn::{init_state, Model, ModelConfig, ParamStore, Reversible, StateDict};
use crate::ops::optim::AdamW;
use crate::pipeline::{CLASSES_KEY, FRAMES_KEY, NORMALIZATION_KEY};
use crate::train::parallel::{Alone, Devices, ProcessGroup, ReplicaGroup, ReplicaLink};
use crate::train::{
    evaluate, CosineSchedule, Distillation, EpochProgress, EpochReport, EpochRunner, ModelEma,
    Optimizer, RunDir, RunMode, StepProgress, Teacher, TeacherSource,
};

/// The checkpoint metadata of an interrupted epoch: its [`EpochProgress`] as JSON.
const PARTIAL_EPOCH_KEY: &str = "train.partial_epoch";
/// The checkpoint metadata key of the complete epochs.
const EPOCHS_DONE_KEY: &str = "train.epochs_done";
/// The checkpoint metadata key of the best test accuracy so far.
const BEST_KEY: &str = "train.best_accuracy";
/// The checkpoint metadata key of the data-parallel replicas that trained it.
const REPLICAS_KEY: &str = "train.replicas";

/// The most epochs one run may ask for.
pub const MAX_EPOCHS: usize = 1_000_000;

/// Where the teacher of distillation comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TeacherSpec {
    /// A bitspike checkpoint (its config in the metadata), run on every batch.
    Checkpoint(PathBuf),
    /// A table of a teacher's logits for every training image (safetensors or .npy).
    Logits(PathBuf),
}

/// Everything a training run needs; [`TrainConfig::new`] gives `bitspike train`'s
/// defaults.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The model to train.
    pub model: ModelConfig,
    /// The dataset directory (IDX, CIFAR binary, image folders, event recordings).
    pub data: PathBuf,
    /// How event recordings are binned and image folders read.
    pub open: data::OpenOptions,
    /// The run directory: checkpoints and `metrics.jsonl`.
    pub out: PathBuf,
    /// Start, resume or start over in `out`.
    pub mode: RunMode,
    /// Epochs in all (a resumed run continues up to this).
    pub epochs: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Peak learning rate (AdamW).
    pub lr: f32,
    /// The cosine schedule's final learning rate.
    pub min_lr: f32,
    /// Epochs of linear warm-up.
    pub warmup_epochs: f32,
    /// Where the warm-up starts (None: `min_lr`).
    pub warmup_lr: Option<f32>,
    /// The last epochs at `min_lr`, after the cosine (within `epochs`).
    pub cooldown_epochs: usize,
    /// Batches whose gradients add up before each optimizer step.
    pub accum_steps: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Clip the global gradient norm to this.
    pub clip_grad: Option<f32>,
    /// Per-image augmentation of training batches; an unset `fill` becomes the data's
    /// mean colour.
    pub augment: Augment,
    /// Mixup / CutMix of training batches.
    pub mixup: Option<Mixup>,
    /// Seed of the initial weights and of the data order.
    pub seed: u64,
    /// Initial weights (a state_dict with the reference names, or a checkpoint).
    pub weights: Option<PathBuf>,
    /// A teacher for the second head (two-head models).
    pub teacher: Option<TeacherSpec>,
    /// How the teacher supervises.
    pub distillation: Distillation,
    /// Q-SNN's firing-rate regularizer weight (spiking CNNs).
    pub rate_reg: f32,
    /// How BESTformer's reversible blocks keep their activations.
    pub reversible: Reversible,
    /// Keep an EMA of the weights with this decay (evaluated each epoch,
    /// `ema.safetensors`).
    pub model_ema: Option<f32>,
    /// Steps between step callbacks (each reads the GPU's results back once).
    pub report_every: usize,
    /// Threads preparing batches; 0: one per core.
    pub workers: usize,
    /// The GPU adapter.
    pub adapter: AdapterChoice,
    /// The devices of this process, one data-parallel replica each (the adapters that
    /// `adapter` names, indexed best first).
    pub devices: Devices,
}

impl TrainConfig {
    /// `model` on the dataset at `data`, with `bitspike train`'s defaults: 1 epoch,
    /// batch 64, AdamW at 5e-4 with a cosine to 1e-5, weight decay 0.06, label smoothing
    /// 0.1, no augmentation, run directory `runs/model`.
    pub fn new(model: ModelConfig, data: impl Into<PathBuf>) -> Self {
        let mut open = data::OpenOptions::default();
        open.events.time_steps = model.time_steps;
        Self {
            model,
            data: data.into(),
            open,
            out: PathBuf::from("runs/model"),
            mode: RunMode::Fresh,
            epochs: 1,
            batch_size: 64,
            lr: 5e-4,
            min_lr: 1e-5,
            warmup_epochs: 0.0,
            warmup_lr: None,
            cooldown_epochs: 0,
            accum_steps: 1,
            weight_decay: 0.06,
            label_smoothing: 0.1,
            clip_grad: None,
            augment: Augment::default(),
            mixup: None,
            seed: 0,
            weights: None,
            teacher: None,
            distillation: Distillation::Hard,
            rate_reg: 0.0,
            reversible: Reversible::Recompute,
            model_ema: None,
            report_every: 10,
            workers: 0,
            adapter: AdapterChoice::from_env(),
            devices: Devices::default(),
        }
    }
}

/// What the run holds before its first epoch, for a banner.
#[derive(Debug, Clone)]
pub struct RunStart {
    /// Training and test samples.
    pub train_samples: usize,
    /// Test samples.
    pub test_samples: usize,
    /// The dataset's format, in words.
    pub format: &'static str,
    /// The adapter's name.
    pub adapter: String,
    /// The first epoch to run (0-based; later when resuming).
    pub first_epoch: usize,
    /// Batches per epoch.
    pub steps: usize,
    /// Data-parallel replicas over all processes (1: one device).
    pub replicas: usize,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// The best top-1 test accuracy of the run (resumed epochs included).
    pub best_accuracy: f64,
    /// The checkpoint with that accuracy.
    pub best_checkpoint: PathBuf,
    /// The checkpoint of the last complete (or interrupted) epoch.
    pub last_checkpoint: PathBuf,
    /// Set when the stop flag ended the run inside an epoch: (0-based epoch, steps done,
    /// steps an epoch); the last checkpoint resumes it exactly.
    pub interrupted: Option<(usize, usize, usize)>,
    /// Whether this process ran replica 0, which wrote the checkpoints and metrics and
    /// evaluated (the other processes of a run leave the figures above unset).
    pub leader: bool,
    /// Data-parallel replicas over all processes.
    pub replicas: usize,
}

type StepCallback<'c> = Box<dyn FnMut(&StepProgress) + 'c>;
type EpochCallback<'c> = Box<dyn FnMut(&EpochReport) + 'c>;
type StartCallback<'c> = Box<dyn FnMut(&RunStart) + 'c>;

/// A training run of a [`TrainConfig`], with callbacks.
pub struct Trainer<'c> {
    config: TrainConfig,
    stop: Arc<AtomicBool>,
    on_start: Option<StartCallback<'c>>,
    on_step: Option<StepCallback<'c>>,
    on_epoch: Option<EpochCallback<'c>>,
    processes: Arc<dyn ProcessGroup>,
}

impl<'c> Trainer<'c> {
    /// A run of `config`.
    pub fn new(config: TrainConfig) -> Self {
        Self {
            config,
            stop: Arc::new(AtomicBool::new(false)),
            on_start: None,
            on_step: None,
            on_epoch: None,
            processes: Arc::new(Alone),
        }
    }

    /// Train as one process of a data-parallel run across processes (an MPI world,
    /// `bitspike::train::parallel::mpi_world` with the `mpi` feature): every process
    /// runs the same config, each on its devices; process 0 writes the run directory and
    /// calls back.
    pub fn processes(mut self, group: Arc<dyn ProcessGroup>) -> Self {
        self.processes = group;
        self
    }

    /// The flag that stops the run after the current optimizer step when set (from a
    /// signal handler, another thread); the run then saves its last checkpoint.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Call `f` once the data is open and the model built, before the first epoch.
    pub fn on_start(mut self, f: impl FnMut(&RunStart) + 'c) -> Self {
        self.on_start = Some(Box::new(f));
        self
    }

    /// Call `f` every `report_every` steps with the epoch's running figures.
    pub fn on_step(mut self, f: impl FnMut(&StepProgress) + 'c) -> Self {
        self.on_step = Some(Box::new(f));
        self
    }

    /// Call `f` after every epoch, once its checkpoints and metrics line are written.
    pub fn on_epoch(mut self, f: impl FnMut(&EpochReport) + 'c) -> Self {
        self.on_epoch = Some(Box::new(f));
        self
    }

    /// Train: every buffer is checked against the adapter before anything is allocated,
    /// then the data is read, the run directory opened (and locked), and the epochs run.
    pub fn run(mut self) -> Result<TrainSummary> {
        let c = &self.config;
        for (what, n) in [("epochs", c.epochs), ("cooldown epochs", c.cooldown_epochs)] {
            if n > MAX_EPOCHS {
                return Err(Error::OutOfRange {
                    field: what.into(),
                    value: n.to_string(),
                    allowed: format!("0..={MAX_EPOCHS}"),
                });
            }
        }
        let mut cfg = c.model.clone();
        let last_path = c.out.join("last.safetensors");
        let best_path = c.out.join("best.safetensors");
        let resume = c.mode == RunMode::Resume;
        match (&c.weights, resume) {
            (_, true) => pruned_widths(&mut cfg, &last_path)?,
            (Some(w), false) => pruned_widths(&mut cfg, w)?,
            (None, false) => {}
        }
        let adapters = c.devices.adapter_indices(&c.adapter)?;
        let contexts = adapters
            .iter()
            .map(|&i| GpuContext::on_adapter(&c.adapter, i))
            .collect::<Result<Vec<_>>>()?;
        for ctx in &contexts {
            ctx.check_run(
                &cfg,
                Run::Train {
                    batch: c.batch_size,
                },
            )?;
        }
        let group = ReplicaGroup::new(contexts.len(), self.processes.clone());
        let replicas = group.replicas();
        if c.batch_size < replicas {
            return Err(Error::OutOfRange {
                field: "batch size".into(),
                value: c.batch_size.to_string(),
                allowed: format!("at least the {replicas} replicas, each training on its share"),
            });
        }
        // Replica 0 of the run (on process 0) writes the run directory; the others only
        // read its last checkpoint when resuming.
        let leader = self.processes.rank() == 0;
        let splits = data::open_with_options(&c.data, &c.open)?;
        splits.check_classes(cfg.classes, &c.data)?;
        let (ch, s) = (splits.train.channels(), splits.train.height());
        if ch != cfg.in_channels || s != cfg.image_size || splits.train.width() != s {
            return Err(Error::data(
                &c.data,
                format!(
                    "holds {ch}x{s}x{} images but the model expects {}x{}x{}: pass \
                     --in-channels and --image-size to match the data (event data: 2 \
                     channels, --frame-size)",
                    splits.train.width(),
                    cfg.in_channels,
                    cfg.image_size,
                    cfg.image_size
                ),
            ));
        }
        let run_dir = match leader {
            true => Some(RunDir::open(&c.out, c.mode)?),
            false => None,
        };
        let teacher_table = match &c.teacher {
            Some(TeacherSpec::Logits(path)) => Some(TeacherLogits::read(
                path,
                splits.train.labels(),
                cfg.classes,
            )?),
            _ => None,
        };
        let norm = splits.train.normalization()?;
        let mut augment = c.augment.clone();
        if augment.fill.is_none() {
            augment.fill = Some(fill_from_mean(&norm.mean));
        }
        augment.check(splits.train.channels())?;
        let (format, frames) = (splits.format, splits.frames);
        let loader = BatchLoader {
            data: Arc::new(splits.train),
            batch_size: c.batch_size,
            shuffle: true,
            augment,
            mixup: c.mixup.clone(),
            norm: norm.clone(),
            seed: c.seed,
            prefetch: 3,
            workers: c.workers,
            shard: Shard::WHOLE,
        };
        let test_loader = BatchLoader {
            data: Arc::new(splits.test),
            shuffle: false,
            augment: Augment::default(),
            mixup: None,
            ..loader.clone()
        };

        let initial = match (&c.weights, resume) {
            (_, true) => load_weights(&last_path, &cfg)?,
            (Some(w), false) => load_weights(w, &cfg)?,
            (None, false) => init_state(&cfg, c.seed),
        };
        let opt_config = AdamW {
            weight_decay: c.weight_decay,
            max_grad_norm: c.clip_grad,
            ..AdamW::default()
        };
        let steps = loader.batches();
        let (mut first_epoch, mut resume_from, mut best) = (0, None, 0.0);
        if resume {
            let saved = meta_usize(&initial, REPLICAS_KEY).max(1);
            if saved != replicas {
                return Err(Error::data(
                    &last_path,
                    format!(
                        "was trained on {saved} replica(s), this run has {replicas}: resume \
                         with the same --devices and the same number of processes"
                    ),
                ));
            }
            first_epoch = meta_usize(&initial, EPOCHS_DONE_KEY);
            if let Some(partial) = initial.metadata.get(PARTIAL_EPOCH_KEY) {
                let progress: EpochProgress = serde_json::from_str(partial).map_err(|e| {
                    Error::data(&last_path, format!("unreadable {PARTIAL_EPOCH_KEY}: {e}"))
                })?;
                if progress.epoch != first_epoch || progress.steps_done > steps {
                    return Err(Error::data(
                        &last_path,
                        format!(
                            "{PARTIAL_EPOCH_KEY} ({partial}) does not fit the run \
                             ({first_epoch} epochs done, {steps} steps an epoch): was the \
                             batch size changed?"
                        ),
                    ));
                }
                resume_from = Some(progress);
            }
            best = initial
                .metadata
                .get(BEST_KEY)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
        }
        let mut states = Vec::with_capacity(contexts.len());
        for ctx in &contexts {
            let store = ParamStore::new(ctx, &cfg, &initial)?;
            let mut optimizer = Optimizer::new(ctx, &store, opt_config)?;
            if resume {
                optimizer.load_from(ctx, &initial)?;
            }
            let mut model = Model::new(&cfg, c.batch_size)?;
            model.set_rate_reg(c.rate_reg)?;
            model.set_reversible(c.reversible);
            let teacher = match &c.teacher {
                Some(TeacherSpec::Checkpoint(path)) => {
                    Some(open_teacher(ctx, path, &cfg, c.batch_size)?)
                }
                _ => None,
            };
            states.push(ReplicaState {
                model,
                store,
                optimizer,
                teacher,
            });
        }
        let mut ema = match (c.model_ema, leader) {
            (Some(decay), true) => {
                let (ctx, store) = (&contexts[0], &states[0].store);
                let mut ema = ModelEma::new(ctx, store, &initial, decay)?;
                if resume && ema.load_from(ctx, &initial).is_err() {
                    // An EMA added to a resumed run starts from the resumed weights.
                    ema = ModelEma::new(ctx, store, &initial, decay)?;
                }
                Some(ema)
            }
            _ => None,
        };

        let updates = steps.div_ceil(c.accum_steps.max(1));
        let cosine_epochs = c
            .epochs
            .saturating_sub(c.cooldown_epochs)
            .max(c.epochs.min(1));
        let runners: Vec<EpochRunner> = contexts
            .iter()
            .enumerate()
            .map(|(local, ctx)| EpochRunner {
                ctx,
                loader: BatchLoader {
                    shard: Shard {
                        index: group.global_index(local),
                        count: replicas,
                    },
                    ..loader.clone()
                },
                test_loader: test_loader.clone(),
                schedule: CosineSchedule {
                    lr: c.lr,
                    min_lr: c.min_lr,
                    warmup_lr: c.warmup_lr.unwrap_or(c.min_lr),
                    warmup_steps: (c.warmup_epochs * updates as f32) as usize,
                    total_steps: cosine_epochs * updates,
                },
                label_smoothing: c.label_smoothing,
                accum_steps: c.accum_steps.max(1),
                report_every: c.report_every.max(1),
                stop: self.stop.clone(),
                replicas: (replicas > 1).then(|| ReplicaLink {
                    group: group.clone(),
                    local,
                }),
            })
            .collect();
        if let (Some(f), true) = (&mut self.on_start, leader) {
            f(&RunStart {
                train_samples: loader.data.len(),
                test_samples: test_loader.data.len(),
                format,
                adapter: contexts[0].adapter.name.clone(),
                first_epoch,
                steps,
                replicas,
            });
        }
        // What eval and infer need beside the weights.
        let mut data_meta = vec![
            (NORMALIZATION_KEY, json(&norm)?),
            (CLASSES_KEY, json(loader.data.classes())?),
            (REPLICAS_KEY, replicas.to_string()),
        ];
        if let Some(frames) = &frames {
            data_meta.push((FRAMES_KEY, json(frames)?));
        }
        let mut summary = TrainSummary {
            best_accuracy: best,
            best_checkpoint: best_path.clone(),
            last_checkpoint: last_path.clone(),
            interrupted: None,
            leader,
            replicas,
        };
        let (first, others) = states.split_first_mut().expect("at least one device");
        let (first_runner, other_runners) = runners.split_first().expect("at least one device");
        let table = teacher_table.as_ref();
        let epochs = first_epoch..c.epochs;
        let distillation = c.distillation;
        std::thread::scope(|scope| {
            let followers: Vec<_> = other_runners
                .iter()
                .zip(others.iter_mut())
                .enumerate()
                .map(|(k, (runner, state))| {
                    let (group, epochs) = (&group, epochs.clone());
                    scope.spawn(move || {
                        let leaving = LeaveOnPanic {
                            group,
                            local: k + 1,
                        };
                        let result = state.follow(runner, table, distillation, epochs, resume_from);
                        if let Err(e) = &result {
                            group.fail(k + 1, e.to_string());
                        }
                        std::mem::forget(leaving);
                        result
                    })
                })
                .collect();
            let result = match &run_dir {
                Some(run_dir) => self.lead(
                    first_runner,
                    first,
                    table,
                    ema.as_mut(),
                    run_dir,
                    &data_meta,
                    (epochs, resume_from, updates),
                    &mut summary,
                ),
                None => first.follow(first_runner, table, distillation, epochs, resume_from),
            };
            if let Err(e) = &result {
                group.fail(0, e.to_string());
            }
            let mut result = result;
            for (k, f) in followers.into_iter().enumerate() {
                let joined = f.join().unwrap_or_else(|_| {
                    Err(Error::ReplicaFailed {
                        replica: group.global_index(k + 1),
                        reason: "its thread panicked".into(),
                    })
                });
                if result.is_ok() {
                    result = joined;
                }
            }
            result
        })?;
        Ok(summary)
    }

    /// The epochs of replica 0 of the run: train, evaluate, write the checkpoints and
    /// the metrics, call back.
    #[allow(clippy::too_many_arguments)]
    fn lead(
        &mut self,
        runner: &EpochRunner,
        state: &mut ReplicaState,
        table: Option<&TeacherLogits>,
        mut ema: Option<&mut ModelEma>,
        run_dir: &RunDir,
        data_meta: &[(&str, String)],
        (epochs, mut resume_from, updates): (std::ops::Range<usize>, Option<EpochProgress>, usize),
        summary: &mut TrainSummary,
    ) -> Result<()> {
        let c = &self.config;
        let ctx = runner.ctx;
        let steps = runner.loader.batches();
        let mut best = summary.best_accuracy;
        let ReplicaState {
            model,
            store,
            optimizer,
            teacher,
        } = state;
        for epoch in epochs {
            let start = std::time::Instant::now();
            let mut teacher = teacher_of(teacher, table, c.distillation);
            let from = resume_from
                .take()
                .unwrap_or_else(|| EpochProgress::start(epoch));
            let on_step = &mut self.on_step;
            let outcome = runner.train_epoch(
                from,
                model,
                store,
                optimizer,
                teacher.as_mut(),
                ema.as_deref_mut(),
                |p| {
                    if let Some(f) = on_step {
                        f(p)
                    }
                },
            )?;
            let mut sd = store.to_state_dict(ctx)?;
            for (k, v) in data_meta {
                sd.metadata.insert(k.to_string(), v.clone());
            }
            sd.metadata.insert(BEST_KEY.into(), best.to_string());
            if outcome.interrupted {
                // A checkpoint inside the epoch: the complete epochs, and this one's steps.
                let p = outcome.progress;
                sd.metadata
                    .insert(EPOCHS_DONE_KEY.into(), epoch.to_string());
                sd.metadata.insert(PARTIAL_EPOCH_KEY.into(), json(&p)?);
                optimizer.save_into(ctx, &mut sd)?;
                if let Some(ema) = &ema {
                    ema.save_into(ctx, &mut sd)?;
                }
                sd.write(&summary.last_checkpoint)?;
                summary.interrupted = Some((epoch, p.steps_done, steps));
                return Ok(());
            }
            let evaluation = evaluate(ctx, model, store, &runner.test_loader)?;
            if evaluation.nan_predictions > 0 {
                return Err(Error::Diverged {
                    at: format!("epoch {}", epoch + 1),
                    what: format!(
                        "{} of {} test images have NaN logits",
                        evaluation.nan_predictions, evaluation.samples
                    ),
                });
            }
            let ema_test_accuracy = match ema.as_deref_mut() {
                Some(ema) => Some(evaluate(ctx, model, ema.store(ctx)?, &runner.test_loader)?.top1),
                None => None,
            };
            let report = EpochReport {
                epoch: epoch + 1,
                train_loss: outcome.loss,
                train_accuracy: outcome.accuracy,
                test_accuracy: evaluation.top1,
                test_top5: evaluation.top5,
                ema_test_accuracy,
                images_per_second: outcome.images_per_second,
                lr: runner.schedule.at((epoch + 1) * updates),
                seconds: start.elapsed().as_secs_f64(),
            };
            // The checkpoint: weights (reference names), optimizer state, epoch, best.
            best = f64::max(best, evaluation.top1);
            summary.best_accuracy = best;
            sd.metadata
                .insert(EPOCHS_DONE_KEY.into(), (epoch + 1).to_string());
            sd.metadata.insert(BEST_KEY.into(), best.to_string());
            if evaluation.top1 >= best {
                sd.write(&summary.best_checkpoint)?;
            }
            if let Some(ema) = &ema {
                // The EMA as a plain checkpoint for eval and infer, with the data's metadata.
                let mut plain = ema.state_dict(ctx)?;
                for (k, v) in data_meta {
                    plain.metadata.insert(k.to_string(), v.clone());
                }
                plain.write(&run_dir.ema_checkpoint())?;
                ema.save_into(ctx, &mut sd)?;
            }
            optimizer.save_into(ctx, &mut sd)?;
            sd.write(&summary.last_checkpoint)?;
            run_dir.append_metrics(&json(&report)?)?;
            if let Some(f) = &mut self.on_epoch {
                f(&report);
            }
        }
        Ok(())
    }
}

/// One replica's model, weights, optimizer state and live teacher, on its device.
struct ReplicaState {
    model: Model,
    store: ParamStore,
    optimizer: Optimizer,
    teacher: Option<(Model, ParamStore)>,
}

impl ReplicaState {
    /// The epochs of a replica other than 0: train in step with the others, nothing
    /// written (replica 0 writes).
    fn follow(
        &mut self,
        runner: &EpochRunner,
        table: Option<&TeacherLogits>,
        distillation: Distillation,
        epochs: std::ops::Range<usize>,
        mut resume_from: Option<EpochProgress>,
    ) -> Result<()> {
        for epoch in epochs {
            let mut teacher = teacher_of(&mut self.teacher, table, distillation);
            let from = resume_from
                .take()
                .unwrap_or_else(|| EpochProgress::start(epoch));
            let outcome = runner.train_epoch(
                from,
                &mut self.model,
                &mut self.store,
                &mut self.optimizer,
                teacher.as_mut(),
                None,
                |_| {},
            )?;
            if outcome.interrupted {
                break;
            }
        }
        Ok(())
    }
}

/// The teacher of an epoch: the replica's live teacher, or the table of logits.
fn teacher_of<'t>(
    live: &'t mut Option<(Model, ParamStore)>,
    table: Option<&'t TeacherLogits>,
    kind: Distillation,
) -> Option<Teacher<'t>> {
    let source = match (live, table) {
        (Some((m, s)), _) => TeacherSource::Live { model: m, store: s },
        (None, Some(table)) => TeacherSource::Logits(table),
        (None, None) => return None,
    };
    Some(Teacher { source, kind })
}

/// Fails the group when a replica's thread unwinds, so that the others stop waiting
/// for it; forgotten when the thread returns.
struct LeaveOnPanic<'g> {
    group: &'g ReplicaGroup,
    local: usize,
}

impl Drop for LeaveOnPanic<'_> {
    fn drop(&mut self) {
        self.group.fail(self.local, "its thread panicked".into());
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode as JSON: {e}")))
}

/// Load `path` as a state dict for `cfg` (checked, errors naming the tensor).
fn load_weights(path: &Path, cfg: &ModelConfig) -> Result<StateDict> {
    let sd = StateDict::read(path)?;
    // The model is the caller's, but a config the file carries must be sound.
    sd.config(path)?;
    sd.check(cfg, path)?;
    Ok(sd)
}

/// A spiking CNN's conv widths from the checkpoint `path` when it has been pruned (its
/// config names the same architecture with other widths).
fn pruned_widths(cfg: &mut ModelConfig, path: &Path) -> Result<()> {
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

/// The teacher checkpoint `path` as a model and its weights, for a student `cfg`.
fn open_teacher(
    ctx: &GpuContext,
    path: &Path,
    cfg: &ModelConfig,
    batch: usize,
) -> Result<(Model, ParamStore)> {
    let sd = StateDict::read(path)?;
    let tcfg = sd.config(path)?.ok_or_else(|| {
        Error::data(
            path,
            "a teacher needs a bitspike checkpoint (config in its metadata)",
        )
    })?;
    if tcfg.classes != cfg.classes {
        return Err(Error::data(
            path,
            format!(
                "the teacher has {} classes, the model {}",
                tcfg.classes, cfg.classes
            ),
        ));
    }
    ctx.check_run(&tcfg, Run::Forward { batch })?;
    sd.check(&tcfg, path)?;
    Ok((Model::new(&tcfg, batch)?, ParamStore::new(ctx, &tcfg, &sd)?))
}

fn meta_usize(sd: &StateDict, key: &str) -> usize {
    sd.metadata
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
