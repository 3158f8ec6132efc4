//! Weights on disk: safetensors files whose tensors carry the reference
//! implementations' state_dict names, and whose metadata holds the model config as JSON.
//! A plain converted PyTorch state_dict (no metadata) loads as well, given a preset.
//! Files are written atomically: to a temporary file beside the target, then renamed.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use super::config::ModelConfig;
use super::params::{param_specs, Init, ParamRole};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The most bytes a checkpoint file may have (bitspike's models are far smaller).
/// The prefix of the weights' moving average inside a training checkpoint.
pub const EMA_PREFIX: &str = "ema.";
/// Tensors of a training checkpoint that are not the model's: the optimizer's moments and
/// the EMA of the weights. A model loading the checkpoint skips them.
const TRAINING_STATE_PREFIXES: [&str; 2] = ["optimizer.", EMA_PREFIX];

/// The most bytes a checkpoint file may have (bitspike's models are far smaller).
pub const MAX_BYTES: u64 = 4 << 30;
/// The longest JSON header a safetensors file may have (the safetensors crate's limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// The tensor types a checkpoint may hold (u32 for packed binary weights).
const SUPPORTED: [Dtype; 7] = [
    Dtype::F32,
    Dtype::F64,
    Dtype::F16,
    Dtype::BF16,
    Dtype::I64,
    Dtype::I32,
    Dtype::U32,
];

/// The metadata key of the model config.
pub const CONFIG_KEY: &str = "bitspike.config";

/// A tensor on the host, as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The PyTorch shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<f32>,
}

/// A binary weight stored as packed sign bits (a deploy export): rows of the kernels'
/// layout (`[C_out, K]`, 3x3 convs with K ordered (ky, kx, c_in)), bit 1 = +1, least
/// significant bit first, each row padded to `words_per_row(K)` words.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedTensor {
    /// The reference (PyTorch) shape of the weight.
    pub shape: Vec<usize>,
    /// The packed sign bits, row after row.
    pub words: Vec<u32>,
}

/// Named tensors and string metadata, as in a safetensors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// Tensors by reference name, as f32.
    pub tensors: BTreeMap<String, HostTensor>,
    /// Binary weights stored as bits (u32 tensors listed under `PACKED_KEY`).
    pub packed: BTreeMap<String, PackedTensor>,
    /// The safetensors metadata (docs/checkpoint.md lists the keys).
    pub metadata: BTreeMap<String, String>,
}

/// The metadata key listing packed tensors: a JSON map from name to reference shape.
pub const PACKED_KEY: &str = "bitspike.packed";
/// The metadata key describing the bit layout of packed tensors, for other readers.
pub const PACKING_KEY: &str = "bitspike.packing";
/// What `PACKING_KEY` says.
pub const PACKING: &str = "u32 words, [C_out, words_per_row]; row k-th bit = sign of the \
    standardized weight ((w - mean_o) / std_o >= 0 -> 1 = +1, else 0 = -1), least \
    significant bit first; K ordered as PyTorch's [C_out, C_in] for 1x1 convs/linears and \
    (ky, kx, c_in) for 3x3 convs; rows padded with zero bits to a multiple of 128";

fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (bits >> 10) & 0x1f;
    let frac = (bits & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e as i32 - 15),
    }
}

fn to_f32(name: &str, path: &Path, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    let le2 = |c: &[u8]| u16::from_le_bytes([c[0], c[1]]);
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
            .collect(),
        Dtype::F16 => bytes.chunks_exact(2).map(|c| f16_to_f32(le2(c))).collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits((le2(c) as u32) << 16))
            .collect(),
        Dtype::I64 => bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
            .collect(),
        Dtype::I32 => bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        other => {
            return Err(Error::data(
                path,
                format!("tensor '{name}' has dtype {other:?}; expected a float or integer type"),
            ))
        }
    })
}

impl StateDict {
    /// Read a safetensors file (f32, f64, f16, bf16, i64, i32 tensors, converted to f32).
    /// The header is read and checked against the file's size first: a file whose header
    /// is damaged, or that is larger than it says or than [`MAX_BYTES`], is never read.
    pub fn read(path: &Path) -> Result<Self> {
        let (mut file, size) = crate::input::open_regular(path)?;
        let bad = |m: String| Err(Error::data(path, m));
        let mut head = [0u8; 8];
        if size < 8 {
            return bad(format!(
                "truncated: {size} bytes, too short for a safetensors file"
            ));
        }
        file.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
        let n = u64::from_le_bytes(head);
        if n > MAX_HEADER_BYTES || 8 + n > size {
            return bad(format!(
                "not a safetensors file (truncated or corrupt): its first 8 bytes give a \
                 header of {n} bytes in a file of {size}"
            ));
        }
        let mut bytes = Vec::with_capacity(8 + n as usize);
        bytes.extend_from_slice(&head);
        (&mut file)
            .take(n)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        let meta: safetensors::tensor::Metadata =
            serde_json::from_slice(&bytes[8..]).map_err(|e| {
                Error::data(
                    path,
                    format!("not a safetensors file: bad JSON header: {e}"),
                )
            })?;
        let mut end = 0;
        for (name, info) in meta.tensors() {
            if !SUPPORTED.contains(&info.dtype) {
                return bad(format!(
                    "tensor '{name}' has dtype {:?}; expected a float or integer type",
                    info.dtype
                ));
            }
            end = end.max(info.data_offsets.1 as u64);
        }
        let want = (8 + n).saturating_add(end);
        if want != size {
            return bad(format!(
                "not a complete safetensors file (truncated or corrupt): the header \
                 describes {end} bytes of tensor data, but {} bytes follow it",
                size - 8 - n
            ));
        }
        if size > MAX_BYTES {
            return bad(format!(
                "is {size} bytes, more than the {} a checkpoint may have",
                crate::input::mib(MAX_BYTES)
            ));
        }
        bytes.reserve_exact(end as usize);
        file.take(end)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        Self::from_bytes(path, &bytes)
    }

    /// [`StateDict::read`] on a whole file's bytes; `path` names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::data(
                path,
                format!("not a complete safetensors file (truncated or corrupt): {e}"),
            )
        })?;
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::data(path, format!("unreadable safetensors header: {e}")))?;
        let mut out = StateDict {
            metadata: meta
                .metadata()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let packed_shapes: BTreeMap<String, Vec<usize>> = match out.metadata.get(PACKED_KEY) {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                Error::data(path, format!("metadata '{PACKED_KEY}' is unreadable: {e}"))
            })?,
            None => BTreeMap::new(),
        };
        for (name, view) in st.tensors() {
            if let Some(shape) = packed_shapes.get(&name) {
                if view.dtype() != Dtype::U32 {
                    return Err(Error::data(
                        path,
                        format!("packed tensor '{name}' is not u32"),
                    ));
                }
                let words = view
                    .data()
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                out.packed.insert(
                    name,
                    PackedTensor {
                        shape: shape.clone(),
                        words,
                    },
                );
                continue;
            }
            let data = to_f32(&name, path, view.dtype(), view.data())?;
            out.tensors.insert(
                name,
                HostTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(out)
    }

    /// Write as safetensors (f32; `*.num_batches_tracked` as i64, as PyTorch has it),
    /// atomically: a reader never sees a half-written file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut encoded: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, t) in &self.tensors {
            if t.data.len() != t.shape.iter().product::<usize>() {
                return Err(Error::InvalidArgument(format!(
                    "tensor '{name}' has {} values for shape {:?}",
                    t.data.len(),
                    t.shape
                )));
            }
            let (dtype, bytes) = if name.ends_with("num_batches_tracked") {
                (
                    Dtype::I64,
                    t.data
                        .iter()
                        .flat_map(|&v| (v as i64).to_le_bytes())
                        .collect(),
                )
            } else {
                (
                    Dtype::F32,
                    bytemuck::cast_slice::<f32, u8>(&t.data).to_vec(),
                )
            };
            encoded.push((name.clone(), dtype, t.shape.clone(), bytes));
        }
        let mut metadata = self.metadata.clone();
        if !self.packed.is_empty() {
            let mut shapes = BTreeMap::new();
            for (name, p) in &self.packed {
                let rows = p.shape.first().copied().unwrap_or(0);
                let k = p.shape.iter().skip(1).product::<usize>();
                if p.words.len() != rows * crate::gpu::words_per_row(k) {
                    return Err(Error::InvalidArgument(format!(
                        "packed tensor '{name}' has {} words for {:?}",
                        p.words.len(),
                        p.shape
                    )));
                }
                let bytes = bytemuck::cast_slice::<u32, u8>(&p.words).to_vec();
                encoded.push((
                    name.clone(),
                    Dtype::U32,
                    vec![rows, p.words.len() / rows.max(1)],
                    bytes,
                ));
                shapes.insert(name.clone(), p.shape.clone());
            }
            metadata.insert(
                PACKED_KEY.into(),
                serde_json::to_string(&shapes).expect("shapes serialize"),
            );
            metadata.insert(PACKING_KEY.into(), PACKING.into());
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = encoded
            .iter()
            .map(|(n, d, s, b)| {
                safetensors::tensor::TensorView::new(*d, s.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::InvalidArgument(format!("tensor '{n}': {e}")))
            })
            .collect::<Result<_>>()?;
        let meta: HashMap<String, String> = metadata.into_iter().collect();
        let bytes = safetensors::serialize(views, Some(meta))
            .map_err(|e| Error::InvalidArgument(format!("cannot encode safetensors: {e}")))?;
        write_atomic(path, &bytes)
    }

    /// The model config stored in the metadata, if any, validated (`ModelConfig::validate`).
    pub fn config(&self, path: &Path) -> Result<Option<ModelConfig>> {
        self.metadata
            .get(CONFIG_KEY)
            .map(|json| {
                let cfg: ModelConfig = serde_json::from_str(json).map_err(|e| {
                    Error::data(
                        path,
                        format!("metadata '{CONFIG_KEY}' is not a model config: {e}"),
                    )
                })?;
                // Validated as a config from the command line is (nn::config).
                cfg.validate()
                    .map_err(|e| Error::data(path, format!("metadata '{CONFIG_KEY}': {e}")))?;
                Ok(cfg)
            })
            .transpose()
    }

    /// Check that every tensor the model needs is here with its shape. Extra tensors
    /// are allowed only where the reference has unused ones (Spikformer's LayerNorms).
    pub fn check(&self, cfg: &ModelConfig, path: &Path) -> Result<()> {
        let specs = param_specs(cfg);
        for spec in &specs {
            if let Some(p) = self.packed.get(&spec.name) {
                // The shape comes from the file's metadata: any product may overflow.
                let want = p
                    .shape
                    .iter()
                    .skip(1)
                    .try_fold(1usize, |k, &d| k.checked_mul(d))
                    .and_then(|k| {
                        let rows = p.shape.first().copied().unwrap_or(0);
                        rows.checked_mul(crate::gpu::words_per_row(k))
                    });
                if want != Some(p.words.len()) {
                    return Err(Error::data(
                        path,
                        format!(
                            "packed tensor '{}' has {} words, not what its shape {:?} needs",
                            spec.name,
                            p.words.len(),
                            p.shape
                        ),
                    ));
                }
                if !spec.binary || p.shape != spec.shape {
                    return Err(Error::data(
                        path,
                        format!(
                            "packed tensor '{}' {:?} does not fit the model's {} {:?}",
                            spec.name,
                            p.shape,
                            if spec.binary {
                                "binary weight"
                            } else {
                                "float tensor"
                            },
                            spec.shape
                        ),
                    ));
                }
                continue;
            }
            let Some(t) = self.tensors.get(&spec.name) else {
                if spec.role == ParamRole::BatchCount {
                    continue; // optional: only statistics bookkeeping
                }
                return Err(Error::data(
                    path,
                    format!(
                        "tensor '{}' {:?} is missing: not a checkpoint of this model",
                        spec.name, spec.shape
                    ),
                ));
            };
            // Conv1d / 1x1 Conv2d weights may come with or without their unit dims.
            let squeeze = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
            if t.shape != spec.shape && squeeze(&t.shape) != squeeze(&spec.shape) {
                return Err(Error::data(
                    path,
                    format!(
                        "tensor '{}' has shape {:?}, but the model needs {:?}",
                        spec.name, t.shape, spec.shape
                    ),
                ));
            }
        }
        let known: std::collections::HashSet<&str> =
            specs.iter().map(|s| s.name.as_str()).collect();
        if let Some(extra) = self.tensors.keys().chain(self.packed.keys()).find(|k| {
            !known.contains(k.as_str())
                && !is_ignorable(k)
                && !TRAINING_STATE_PREFIXES.iter().any(|p| k.starts_with(p))
        }) {
            return Err(Error::data(
                path,
                format!(
                    "tensor '{extra}' is not part of this model: a checkpoint of another model?"
                ),
            ));
        }
        Ok(())
    }
}

/// Tensors the reference models carry but never use.
fn is_ignorable(name: &str) -> bool {
    name.contains(".norm1.") || name.contains(".norm2.")
}

/// How the temporary files of [`write_atomic`] are named, so that one left by a killed
/// process can be recognised and removed.
const TEMP_PREFIX: &str = ".bitspike-";
const TEMP_SUFFIX: &str = ".tmp";

/// Remove the temporary files that an interrupted [`write_atomic`] left in `dir`; only
/// for a directory that no other process writes (a locked run directory). Returns how
/// many were removed.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
    // Readable by others as a file written directly would be (a temp file is 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Fresh parameters as the reference implementations initialise them: convolutions with
/// PyTorch's default (kaiming-uniform, a = sqrt(5): U(+-1/sqrt(fan_in))), linear layers
/// and heads with normal(std 0.02) and zero bias, BatchNorm weight 1, bias 0,
/// running mean 0, running var 1, lambda 1. The config goes into the metadata.
pub fn init_state(cfg: &ModelConfig, seed: u64) -> StateDict {
    let mut rng = Rng::new(seed);
    let mut sd = StateDict::default();
    for spec in param_specs(cfg) {
        let n = spec.len();
        let data: Vec<f32> = match spec.init {
            Init::Constant(v) => vec![v; n],
            Init::Normal002 => (0..n).map(|_| 0.02 * rng.normal()).collect(),
            Init::FanInUniform => {
                let fan_in = n / spec.shape[0];
                let bound = 1.0 / (fan_in as f32).sqrt();
                (0..n)
                    .map(|_| bound * (2.0 * rng.uniform() - 1.0))
                    .collect()
            }
        };
        sd.tensors.insert(
            spec.name.clone(),
            HostTensor {
                shape: spec.shape.clone(),
                data,
            },
        );
    }
    sd.metadata.insert(
        CONFIG_KEY.into(),
        serde_json::to_string(cfg).expect("a config always serializes"),
    );
    sd
}
