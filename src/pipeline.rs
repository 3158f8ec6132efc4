//! Inference from a checkpoint in a few lines: [`Pipeline::load`] opens a GPU, reads the
//! checkpoint's model config, weights, normalization statistics, class names and (for a
//! model trained on events) frame settings, and [`Pipeline::classify`] preprocesses an
//! image the way training did and returns its top classes. `bitspike infer` and
//! `bitspike eval` are built on it.
//!
//! ```no_run
//! # fn main() -> bitspike::Result<()> {
//! let mut model = bitspike::Pipeline::load("runs/demo/best.safetensors")?;
//! let img = image::open("assets/samples/mnist-test-0-label-7.png").expect("an image");
//! for p in model.classify(&img, 3)? {
//!     println!("{} {:.1}%", p.class, 100.0 * p.probability);
//! }
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::events::{self, Events, FrameSettings};
use crate::data::{Augment, BatchLoader, Normalization, Samples};
use crate::error::{Error, Result};
use crate::gpu::{AdapterChoice, GpuContext};
use crate::nn::energy::{EnergyLog, LayerEnergy};
use crate::nn::limits::Run;
use crate::nn::{combine_heads, Classifier, Model, ModelConfig, ParamStore, StateDict, Trace};
use crate::train::{evaluate, Evaluation};

/// The checkpoint metadata key of the normalization statistics (`data::Normalization`).
pub const NORMALIZATION_KEY: &str = "data.normalization";
/// The checkpoint metadata key of the class names (a JSON list, in label order).
pub const CLASSES_KEY: &str = "data.classes";
/// The checkpoint metadata key of the frame settings of a model trained on event data.
pub const FRAMES_KEY: &str = "data.frames";

/// How [`Pipeline::load_with`] opens a checkpoint.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The GPU adapter (default: any, or `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`).
    pub adapter: AdapterChoice,
    /// The model, for a plain state_dict that carries no config (else the checkpoint's).
    pub model: Option<ModelConfig>,
    /// Normalization statistics for a checkpoint that carries none; when given, they
    /// replace the checkpoint's.
    pub normalization: Option<Normalization>,
    /// Inputs per forward.
    pub batch_size: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            adapter: AdapterChoice::from_env(),
            model: None,
            normalization: None,
            batch_size: 32,
        }
    }
}

/// One class of a classification, with its probability.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// The class name (the checkpoint's `data.classes`, else the index as text).
    pub class: String,
    /// The class index, the label the model was trained with.
    pub index: usize,
    /// Softmax probability.
    pub probability: f32,
}

/// A model ready to classify: the GPU, the weights and the preprocessing of its
/// checkpoint.
pub struct Pipeline {
    ctx: GpuContext,
    config: ModelConfig,
    store: ParamStore,
    model: Model,
    normalization: Option<Normalization>,
    frames: Option<FrameSettings>,
    classes: Vec<String>,
    batch_size: usize,
    path: PathBuf,
}

impl Pipeline {
    /// Open `checkpoint` (written by `bitspike train` or `bitspike export`) on the first
    /// adapter found, with its own config and preprocessing.
    pub fn load(checkpoint: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(checkpoint, &PipelineOptions::default())
    }

    /// Open `checkpoint` with `options`: the adapter, a model for a plain state_dict,
    /// normalization statistics, the batch size.
    pub fn load_with(checkpoint: impl AsRef<Path>, options: &PipelineOptions) -> Result<Self> {
        let path = checkpoint.as_ref();
        let sd = StateDict::read(path)?;
        let config = match &options.model {
            Some(cfg) => cfg.clone(),
            None => sd.config(path)?.ok_or_else(|| {
                Error::data(
                    path,
                    "carries no model config: pass the model (--model PRESET)",
                )
            })?,
        };
        sd.check(&config, path)?;
        let normalization = match (&options.normalization, sd.metadata.get(NORMALIZATION_KEY)) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(json)) => Some(
                serde_json::from_str(json)
                    .map_err(|e| Error::data(path, format!("bad {NORMALIZATION_KEY}: {e}")))?,
            ),
            (None, None) => None,
        };
        if let Some(n) = &normalization {
            if n.mean.len() != config.in_channels || n.std.len() != config.in_channels {
                return Err(Error::InvalidArgument(format!(
                    "the normalization needs {} mean and std values (one per input channel), \
                     got {} and {}",
                    config.in_channels,
                    n.mean.len(),
                    n.std.len()
                )));
            }
        }
        let frames = stored_frames(&sd, path)?;
        let classes = sd
            .metadata
            .get(CLASSES_KEY)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| (0..config.classes).map(|c| c.to_string()).collect());
        let batch_size = options.batch_size.max(1);
        let ctx = GpuContext::new(&options.adapter)?;
        ctx.check_run(&config, Run::Forward { batch: batch_size })?;
        let store = ParamStore::new(&ctx, &config, &sd)?;
        let model = Model::new(&config, batch_size)?;
        Ok(Self {
            ctx,
            config,
            store,
            model,
            normalization,
            frames,
            classes,
            batch_size,
            path: path.to_path_buf(),
        })
    }

    /// The GPU the model runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The class names, in label order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// The normalization applied to inputs; None when neither the checkpoint nor the
    /// options gave one.
    pub fn normalization(&self) -> Option<&Normalization> {
        self.normalization.as_ref()
    }

    /// Use `norm` for the inputs from now on (e.g. a dataset's own statistics).
    pub fn set_normalization(&mut self, norm: Normalization) -> Result<()> {
        if norm.mean.len() != self.config.in_channels || norm.std.len() != self.config.in_channels {
            return Err(Error::InvalidArgument(format!(
                "the normalization needs {} values each",
                self.config.in_channels
            )));
        }
        self.normalization = Some(norm);
        Ok(())
    }

    /// How event recordings become frames, for a model trained on event data.
    pub fn frames(&self) -> Option<&FrameSettings> {
        self.frames.as_ref()
    }

    /// Bin event recordings with `frames` (another split or frame size than training's);
    /// the frames must have the model's T and input size.
    pub fn set_frames(&mut self, frames: FrameSettings) -> Result<()> {
        frames.validate()?;
        if frames.size != self.config.image_size || frames.time_steps != self.config.time_steps {
            return Err(Error::InvalidArgument(format!(
                "frames of size {} over {} steps do not match the model's input size {} and \
                 T = {}",
                frames.size, frames.time_steps, self.config.image_size, self.config.time_steps
            )));
        }
        self.frames = Some(frames);
        Ok(())
    }

    /// The checkpoint this pipeline was loaded from.
    pub fn checkpoint(&self) -> &Path {
        &self.path
    }

    fn norm(&self) -> Result<&Normalization> {
        self.normalization.as_ref().ok_or_else(|| {
            Error::data(
                &self.path,
                "carries no normalization statistics: give them (--mean and --std, one value \
                 per input channel)",
            )
        })
    }

    /// The image as the model's input `[C, S, S]`: grey or RGB as the model takes,
    /// resized so that its short side fits, centre cropped, normalized.
    pub fn preprocess_image(&self, img: &image::DynamicImage) -> Result<Vec<f32>> {
        let norm = self.norm()?;
        let s = self.config.image_size as u32;
        let img = img.resize_to_fill(s, s, image::imageops::FilterType::Triangle);
        let plane = (s * s) as usize;
        let channels = self.config.in_channels;
        let mut out = vec![0f32; channels * plane];
        if channels == 1 {
            for (i, p) in img.to_luma8().pixels().enumerate() {
                out[i] = (p[0] as f32 / 255.0 - norm.mean[0]) / norm.std[0];
            }
        } else {
            for (i, p) in img.to_rgb8().pixels().enumerate() {
                for c in 0..channels.min(3) {
                    out[c * plane + i] = (p[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
                }
            }
        }
        Ok(out)
    }

    /// An event recording as the model's input: its frames `[T, 2, S, S]`, binned as in
    /// training, normalized.
    pub fn preprocess_events(&self, ev: &Events) -> Result<Vec<f32>> {
        let frames = self.frames.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "the model was trained on images, not event data: it takes no event files".into(),
            )
        })?;
        let norm = self.norm()?;
        let plane = frames.size * frames.size;
        Ok(events::frames::integrate_u8(ev, frames)
            .chunks(plane)
            .enumerate()
            .flat_map(|(i, p)| {
                let c = i % events::frames::POLARITIES;
                let (m, s) = (norm.mean[c], norm.std[c]);
                p.iter().map(move |&v| (v as f32 / 255.0 - m) / s)
            })
            .collect())
    }

    /// The file `path` as the model's input: an event recording for a model trained on
    /// events, else an image (PNG, JPEG, BMP, GIF, WebP).
    pub fn read_input(&self, path: &Path) -> Result<Vec<f32>> {
        match (&self.frames, events::is_event_file(path)) {
            (Some(_), true) => self.preprocess_events(&events::read(path)?),
            (Some(_), false) => Err(Error::data(
                path,
                "the model was trained on event data and takes event files",
            )),
            (None, _) => self.preprocess_image(&crate::data::decode::open_image(path)?),
        }
    }

    /// Logits `[classes]` of each preprocessed input (`preprocess_image`,
    /// `preprocess_events`), in batches of the pipeline's batch size.
    pub fn logits(&mut self, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(self.batch_size) {
            let values = self.forward(chunk)?;
            out.extend(values.chunks(self.config.classes).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// One forward of `chunk` (at most a batch): the logits, flat `[B, classes]`.
    fn forward(&mut self, chunk: &[Vec<f32>]) -> Result<Vec<f32>> {
        let (c, s) = (self.config.in_channels, self.config.image_size);
        let step = c * s * s;
        let images = match &self.frames {
            // Frames [T, B, C, S, S]: step t of every input, then the next step.
            Some(f) => {
                let t_steps = f.time_steps;
                check_sizes(chunk, t_steps * step)?;
                let flat: Vec<f32> = (0..t_steps)
                    .flat_map(|t| {
                        chunk
                            .iter()
                            .flat_map(move |x| x[t * step..(t + 1) * step].iter().copied())
                    })
                    .collect();
                self.ctx
                    .upload_f32(&flat, &[t_steps, chunk.len(), c, s, s])?
            }
            None => {
                check_sizes(chunk, step)?;
                let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
                self.ctx.upload_f32(&flat, &[chunk.len(), c, s, s])?
            }
        };
        let heads = self
            .model
            .forward(&self.ctx, &mut self.store, &images, false)?;
        self.ctx.download_f32(&combine_heads(&self.ctx, &heads)?)
    }

    /// The `k` most probable classes of each preprocessed input; an input whose logits
    /// are all NaN (weights that are not numbers) gets an error of its own.
    pub fn classify_inputs(
        &mut self,
        inputs: &[Vec<f32>],
        k: usize,
    ) -> Result<Vec<Result<Vec<Prediction>>>> {
        Ok(self
            .logits(inputs)?
            .iter()
            .map(|row| self.top_k(row, k))
            .collect())
    }

    /// The `k` most probable classes of `img`, most probable first.
    pub fn classify(&mut self, img: &image::DynamicImage, k: usize) -> Result<Vec<Prediction>> {
        let input = self.preprocess_image(img)?;
        self.classify_one(input, k)
    }

    /// [`Pipeline::classify`] for many images, in batches.
    pub fn classify_batch(
        &mut self,
        imgs: &[image::DynamicImage],
        k: usize,
    ) -> Result<Vec<Vec<Prediction>>> {
        let inputs = imgs
            .iter()
            .map(|img| self.preprocess_image(img))
            .collect::<Result<Vec<_>>>()?;
        self.classify_inputs(&inputs, k)?.into_iter().collect()
    }

    /// The `k` most probable classes of an event recording (a model trained on events).
    pub fn classify_events(&mut self, ev: &Events, k: usize) -> Result<Vec<Prediction>> {
        let input = self.preprocess_events(ev)?;
        self.classify_one(input, k)
    }

    fn classify_one(&mut self, input: Vec<f32>, k: usize) -> Result<Vec<Prediction>> {
        let mut all = self.classify_inputs(&[input], k)?;
        all.pop().expect("one input, one result")
    }

    /// The `k` most probable classes of one row of logits (softmax probabilities).
    pub fn top_k(&self, logits: &[f32], k: usize) -> Result<Vec<Prediction>> {
        let p = softmax(logits).ok_or_else(|| {
            Error::data(
                &self.path,
                "the model's logits are all NaN (its weights are not numbers?)",
            )
        })?;
        let mut order: Vec<usize> = (0..p.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        order.truncate(k.max(1));
        Ok(order
            .into_iter()
            .map(|c| Prediction {
                class: self
                    .classes
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| c.to_string()),
                index: c,
                probability: p[c],
            })
            .collect())
    }

    /// Top-1 and top-5 accuracy on `test` (a dataset's test split of the model's input
    /// size), in batches of the pipeline's batch size on `workers` loader threads (0: one
    /// per core); with `energy`, also every layer's firing rate, operations and energy
    /// per image (docs/energy.md). The inputs use the pipeline's normalization, which
    /// must be set.
    pub fn evaluate(
        &mut self,
        test: Samples,
        workers: usize,
        energy: bool,
    ) -> Result<(Evaluation, Option<Vec<LayerEnergy>>)> {
        let (c, s) = (self.config.in_channels, self.config.image_size);
        if (test.channels(), test.height(), test.width()) != (c, s, s) {
            return Err(Error::InvalidArgument(format!(
                "the data holds {}x{}x{} images but the model expects {c}x{s}x{s}",
                test.channels(),
                test.height(),
                test.width()
            )));
        }
        let loader = BatchLoader {
            data: Arc::new(test),
            batch_size: self.batch_size,
            shuffle: false,
            augment: Augment::default(),
            mixup: None,
            norm: self.norm()?.clone(),
            seed: 0,
            prefetch: 3,
            workers,
            shard: crate::data::Shard::WHOLE,
        };
        self.store.energy = energy.then(EnergyLog::default);
        let result = evaluate(&self.ctx, &mut self.model, &mut self.store, &loader);
        let log = self.store.energy.take();
        let evaluation = result?;
        let layers = match log {
            Some(log) => Some(log.report(&self.ctx, evaluation.samples)?),
            None => None,
        };
        Ok((evaluation, layers))
    }

    /// One forward of a single preprocessed input that keeps what it computed: the
    /// inputs of every layer and the binary attention maps (see [`Trace`]). Returns the
    /// logits and the trace, whose tensors are read with [`Pipeline::context`].
    pub fn trace(&mut self, input: Vec<f32>) -> Result<(Vec<f32>, Trace)> {
        self.store.trace = Some(Trace::default());
        let logits = self.forward(&[input]);
        let trace = self.store.trace.take().expect("set above");
        Ok((logits?, trace))
    }
}

/// Every input of `chunk` has `len` values.
fn check_sizes(chunk: &[Vec<f32>], len: usize) -> Result<()> {
    match chunk.iter().find(|x| x.len() != len) {
        Some(x) => Err(Error::Shape {
            op: "Pipeline input",
            expected: format!("{len} values (the model's preprocessed input)"),
            got: format!("{}", x.len()),
        }),
        None => Ok(()),
    }
}

/// The frame settings a model trained on event data was trained with (the checkpoint
/// metadata's `data.frames`).
pub fn stored_frames(sd: &StateDict, path: &Path) -> Result<Option<FrameSettings>> {
    sd.metadata
        .get(FRAMES_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .map_err(|e| Error::data(path, format!("bad {FRAMES_KEY}: {e}")))
        })
        .transpose()
}

/// Class probabilities of logits `z`: a NaN logit gets probability 0 (it ranks last),
/// infinities count as the largest finite values; None when every logit is NaN.
pub fn softmax(z: &[f32]) -> Option<Vec<f32>> {
    if z.iter().all(|v| v.is_nan()) {
        return None;
    }
    let z: Vec<f32> = z
        .iter()
        .map(|&v| {
            if v.is_nan() {
                f32::NEG_INFINITY
            } else {
                v.clamp(-f32::MAX, f32::MAX)
            }
        })
        .collect();
    let m = z.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    Some(e.iter().map(|v| v / s).collect())
}
