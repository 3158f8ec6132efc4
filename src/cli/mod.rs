//! Command-line interface: one file per subcommand.

mod augment_args;
mod bench;
mod doctor;
mod eval;
mod explain;
mod export;
mod infer;
mod info;
mod plot;
mod prune;
mod recipe;
mod train;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use bitspike::gpu::{AdapterChoice, GpuContext};
use bitspike::nn::{AttentionForm, ModelConfig, WeightMode};

#[derive(Parser)]
#[command(
    name = "bitspike",
    version,
    about = "Binary spiking transformers on any GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters and the limits that matter to bitspike.
    Info(info::InfoArgs),
    /// Benchmark kernels: rates and ratios measured in one run.
    Bench(bench::BenchArgs),
    /// Train a model preset on a dataset.
    Train(Box<train::TrainArgs>),
    /// Accuracy and throughput of a checkpoint on a dataset's test split.
    Eval(eval::EvalArgs),
    /// Classify image files with a checkpoint: top-k classes per image.
    Infer(infer::InferArgs),
    /// Write a deploy checkpoint with binary weights stored as packed bits.
    Export(export::ExportArgs),
    /// Check bitspike on this GPU: a tiny forward and backward of every model family
    /// against the CPU reference, pass or fail per check.
    Doctor(doctor::DoctorArgs),
    /// Remove the lowest-rank conv kernels of a spiking CNN checkpoint (QP-SNN).
    Prune(prune::PruneArgs),
    /// Draw training curves (loss, accuracy, learning rate) of run directories as a PNG.
    Plot(plot::PlotArgs),
}

/// Adapter selection, shared by every subcommand that opens a GPU.
#[derive(Args, Clone, Debug)]
pub struct GpuArgs {
    /// Backend: vulkan, metal, dx12 or gl.
    #[arg(long, env = "WGPU_BACKEND")]
    pub backend: Option<String>,
    /// Use the adapter whose name contains this (case-insensitive).
    #[arg(long = "adapter", env = "WGPU_ADAPTER_NAME")]
    pub adapter_name: Option<String>,
    /// Use only the portable kernels, not the faster subgroup variants.
    #[arg(long)]
    pub portable: bool,
}

impl GpuArgs {
    pub fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            backend: self.backend.clone().filter(|s| !s.is_empty()),
            adapter_name: self.adapter_name.clone().filter(|s| !s.is_empty()),
            portable_kernels: self.portable,
        }
    }

    pub fn open(&self) -> anyhow::Result<GpuContext> {
        Ok(GpuContext::new(&self.choice())?)
    }
}

/// A model from a preset, with optional overrides.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Preset name (spikformer-4-384, bestformer-4-384, spikformer-8-512,
    /// bestformer-8-512, spikformer-2-64, bestformer-2-64, spiking-vgg11,
    /// spiking-resnet19, spiking-vgg-small, spiking-resnet-small).
    #[arg(long = "model")]
    pub model: Option<String>,
    /// Time steps T.
    #[arg(long = "time-steps", visible_alias = "T", value_parser = int::whole)]
    pub time_steps: Option<usize>,
    #[arg(long, value_parser = int::whole)]
    pub heads: Option<usize>,
    #[arg(long, value_enum)]
    pub attention: Option<AttentionForm>,
    #[arg(long = "weight-mode", value_enum)]
    pub weight_mode: Option<WeightMode>,
    /// Bits of quantized weights (--weight-mode quantized), 1..=8.
    #[arg(long = "weight-bits")]
    pub weight_bits: Option<u32>,
    #[arg(long, value_parser = int::whole)]
    pub classes: Option<usize>,
    #[arg(long = "in-channels", value_parser = int::whole)]
    pub in_channels: Option<usize>,
    #[arg(long = "image-size", value_parser = int::whole)]
    pub image_size: Option<usize>,
}

impl ModelArgs {
    /// The preset with the overrides applied, validated; None without --model.
    pub fn config(&self) -> anyhow::Result<Option<ModelConfig>> {
        let Some(name) = &self.model else {
            return Ok(None);
        };
        let mut cfg = ModelConfig::preset(name)?;
        if let Some(t) = self.time_steps {
            cfg.time_steps = t;
        }
        if self.heads.is_some() || self.attention.is_some() {
            let Some(t) = cfg.transformer_mut() else {
                anyhow::bail!(
                    "--heads and --attention apply to the transformer presets, not {name}"
                );
            };
            if let Some(h) = self.heads {
                t.heads = h;
            }
            if let Some(a) = self.attention {
                t.attention = a;
            }
        }
        if let Some(w) = self.weight_mode {
            cfg.weights = w;
        }
        if let Some(b) = self.weight_bits {
            cfg.weight_bits = b;
        }
        if let Some(c) = self.classes {
            cfg.classes = c;
        }
        if let Some(c) = self.in_channels {
            cfg.in_channels = c;
        }
        if let Some(s) = self.image_size {
            cfg.image_size = s;
        }
        cfg.validate()?;
        Ok(Some(cfg))
    }
}

/// How the batch loader reads a dataset (train, eval, bench data).
#[derive(Args, Clone, Debug, Default)]
pub struct LoaderArgs {
    /// Threads preparing batches (decoding, augmenting, normalizing); 0: one per core.
    #[arg(long, default_value_t = 0, value_parser = int::whole)]
    pub workers: usize,
    /// Image folders: keep the file list and decode the images as batches are prepared.
    /// Default: when the decoded images would take over half of the available memory,
    /// or the first training image does not have the model's size (ImageNet-style).
    #[arg(long, conflicts_with = "in_memory")]
    pub stream: bool,
    /// Image folders: decode every image once, into memory, before the first batch.
    #[arg(long = "in-memory")]
    pub in_memory: bool,
}

impl LoaderArgs {
    /// How to open image folders for a model of `image_size` (None: the data's size).
    pub fn folders(&self, image_size: Option<usize>) -> bitspike::data::FolderOptions {
        use bitspike::data::Load;
        bitspike::data::FolderOptions {
            image_size,
            load: match (self.stream, self.in_memory) {
                (true, _) => Load::Stream,
                (_, true) => Load::InMemory,
                _ => Load::Auto,
            },
        }
    }
}

/// How event recordings become frames (datasets of event files, `infer` on them).
#[derive(Args, Clone, Debug, Default)]
pub struct EventArgs {
    /// Split each recording into its T frames by equal event counts or equal time spans
    /// (SpikingJelly's split_by; default number, or the checkpoint's).
    #[arg(long = "split-by", value_parser = ["number", "time"])]
    pub split_by: Option<String>,
    /// Side of the square frames: events are scaled from the sensor to it (e.g. 128 -> 64
    /// or 48; 34 -> 32 for N-MNIST). Default: the sensor's, or the checkpoint's.
    #[arg(long = "frame-size", value_parser = int::whole)]
    pub frame_size: Option<usize>,
    /// Sensor size WxH (default: from the file headers, else the events' extent).
    #[arg(long)]
    pub sensor: Option<String>,
    /// Directory caching binned frames (default: $BITSPIKE_CACHE, $XDG_CACHE_HOME/bitspike
    /// or ~/.cache/bitspike).
    #[arg(long = "cache-dir")]
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bin the events again instead of using (and writing) the cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
}

impl EventArgs {
    /// The options for `time_steps` frames; `stored` (a checkpoint's frame settings)
    /// fills in what the arguments leave open.
    pub fn options(
        &self,
        time_steps: usize,
        stored: Option<&bitspike::data::events::FrameSettings>,
    ) -> anyhow::Result<bitspike::data::events::dataset::EventOptions> {
        use bitspike::data::events::{dataset::EventOptions, SplitBy};
        use bitspike::nn::config::{check_range, IMAGE_SIZE, TIME_STEPS};
        check_range("time steps (frames per recording)", time_steps, &TIME_STEPS)?;
        let sensor = match &self.sensor {
            Some(s) => {
                let (w, h) = s
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
                    .filter(|&(w, h): &(usize, usize)| w > 0 && h > 0)
                    .ok_or_else(|| anyhow::anyhow!("--sensor '{s}' is not WxH"))?;
                Some((w, h))
            }
            None => stored.map(|s| s.sensor),
        };
        let split_by = match (&self.split_by, stored) {
            (Some(s), _) => s.parse()?,
            (None, Some(s)) => s.split_by,
            (None, None) => SplitBy::Number,
        };
        let size = self.frame_size.or(stored.map(|s| s.size));
        if let Some(size) = size {
            check_range("frame size (--frame-size)", size, &IMAGE_SIZE)?;
        }
        Ok(EventOptions {
            time_steps,
            split_by,
            size,
            sensor,
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir
                    .clone()
                    .or_else(bitspike::data::events::cache::default_dir)
            },
            ..EventOptions::default()
        })
    }
}

/// `argv` parsed, with a `train` or `bench` recipe's keys as flags after the command
/// line's own (which override them). A command line clap refuses exits as clap does;
/// a recipe it refuses is an error naming the recipe.
fn parse_with_recipe(argv: Vec<std::ffi::OsString>) -> anyhow::Result<clap::ArgMatches> {
    let matches = Cli::command().get_matches_from(argv.clone());
    let Some((name @ ("train" | "bench"), sub)) = matches.subcommand() else {
        return Ok(matches);
    };
    let Some(path) = sub.get_one::<std::path::PathBuf>("recipe") else {
        return Ok(matches);
    };
    let cli = Cli::command();
    let command = cli
        .find_subcommand(name)
        .expect("the subcommand just parsed");
    let other = match name {
        "train" => recipe::OtherKeys::Refuse,
        _ => recipe::OtherKeys::Skip,
    };
    let expanded = recipe::expand(argv, path, command, sub, other)?;
    Cli::command().try_get_matches_from(expanded).map_err(|e| {
        let rendered = e.render().to_string();
        let first = rendered.lines().next().unwrap_or_default();
        let why = first.strip_prefix("error: ").unwrap_or(first);
        anyhow::anyhow!("with the recipe {}: {why}", path.display())
    })
}

pub fn run() -> anyhow::Result<()> {
    let matches = parse_with_recipe(std::env::args_os().collect())?;
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Train(args) => train::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Export(args) => export::run(args),
        Command::Prune(args) => prune::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Plot(args) => plot::run(args),
    }
}

/// The exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// A run stopped by the user: the message says what was saved; not an error of the run.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Print one JSON object per line.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

/// Parsers of integer flags that refuse values outside the flag's range at parse time.
pub mod int {
    fn parse(s: &str) -> Result<usize, String> {
        s.trim().parse().map_err(|e: std::num::ParseIntError| {
            use std::num::IntErrorKind::{NegOverflow, PosOverflow};
            match e.kind() {
                PosOverflow | NegOverflow => format!("{s} is far out of range"),
                _ => format!("'{s}' is not a whole number >= 0"),
            }
        })
    }

    /// A whole number >= 0; its range is checked where the value is used.
    pub fn whole(s: &str) -> Result<usize, String> {
        parse(s)
    }

    /// A count >= 1 (a batch size, a number of batches).
    pub fn positive(s: &str) -> Result<usize, String> {
        match parse(s)? {
            0 => Err("0 is out of range: must be at least 1".into()),
            v => Ok(v),
        }
    }
}

/// Parsers of float flags that refuse NaN, infinities and values outside the flag's
/// range at parse time.
pub mod float {
    pub(super) fn parse<T>(s: &str, ok: impl Fn(T) -> bool, range: &str) -> Result<T, String>
    where
        T: std::str::FromStr + Copy + std::fmt::Display,
    {
        let v: T = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number"))?;
        if ok(v) {
            Ok(v)
        } else {
            Err(format!("{} is out of range: must be {range}", s.trim()))
        }
    }

    /// A finite value > 0.
    pub fn positive(s: &str) -> Result<f32, String> {
        parse(s, |v: f32| v.is_finite() && v > 0.0, "a finite number > 0")
    }

    /// A finite value >= 0.
    pub fn non_negative(s: &str) -> Result<f32, String> {
        parse(
            s,
            |v: f32| v.is_finite() && v >= 0.0,
            "a finite number >= 0",
        )
    }

    /// A finite value.
    pub fn finite(s: &str) -> Result<f32, String> {
        parse(s, |v: f32| v.is_finite(), "a finite number")
    }

    /// A value in [0, 1).
    pub fn fraction(s: &str) -> Result<f32, String> {
        parse(s, |v: f32| (0.0..1.0).contains(&v), "in [0, 1)")
    }

    /// A probability, in [0, 1].
    pub fn probability(s: &str) -> Result<f32, String> {
        parse(s, |v: f32| (0.0..=1.0).contains(&v), "in [0, 1]")
    }

    /// Two finite values `MIN,MAX` with MIN <= MAX (a TOML array in a recipe).
    pub fn range(s: &str) -> Result<(f32, f32), String> {
        let parts: Vec<&str> = s.split(',').collect();
        let [a, b] = parts[..] else {
            return Err(format!("'{s}' is not two numbers MIN,MAX"));
        };
        let (a, b) = (finite(a)?, finite(b)?);
        if a > b {
            return Err(format!("'{s}': MIN {a} is above MAX {b}"));
        }
        Ok((a, b))
    }

    /// A fraction in [0, 1), as f64.
    pub fn fraction_f64(s: &str) -> Result<f64, String> {
        parse(s, |v: f64| (0.0..1.0).contains(&v), "in [0, 1)")
    }

    /// Seconds in [0, 1e6].
    pub fn seconds(s: &str) -> Result<f64, String> {
        parse(s, |v: f64| (0.0..=1e6).contains(&v), "seconds in [0, 1e6]")
    }
}
