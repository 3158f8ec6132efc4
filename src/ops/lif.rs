//! The spiking neurons, fused over time (shaders/lif.wgsl): the LIF neuron of SpikingJelly
//! (MultiStepLIFNode, docs/models.md section 1), the ternary neuron, the stateless threshold of
//! binary attention and the Q-SNN neuron (docs/models.md section 6), each with its backward.
//! CPU oracle: `reference::lif`.
//!
//! Time is explicit: every op on a sequence takes `t_steps` and checks that the tensor is
//! `[T, ...]` with `shape[0] == t_steps` and at least one more dimension (`TimeShape`), so a
//! `[T*B, ...]` tensor with T folded into the batch is a shape error, not a neuron that
//! silently runs over T*B time steps.
//!
//! What the forward saves for backward: H, the membrane potential before firing
//! (`[T, ...]`); the backward recomputes the spikes from H (the forward fired on exactly
//! that value), so it reads grad_S and H and writes grad_X, each element once.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

const FORWARD: Kernel = Kernel {
    shader: Shader::Lif,
    entry: "forward",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

/// Binding 3 is the BatchNorm coefficients the input is normalized with (`AFFINE`), a
/// dummy otherwise.
const FORWARD_VEC4: Kernel = Kernel {
    entry: "forward_vec4",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
    ],
    ..FORWARD
};

const FORWARD_PACKED: Kernel = Kernel {
    shader: Shader::Lif,
    entry: "forward_packed",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const FORWARD_PACKED_WORDS: Kernel = Kernel {
    shader: Shader::Lif,
    entry: "forward_packed_words",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const BACKWARD: Kernel = Kernel {
    shader: Shader::Lif,
    entry: "backward",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const QSNN_STEP: Kernel = Kernel {
    shader: Shader::Lif,
    entry: "qsnn_step",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const QSNN_BACKWARD: Kernel = Kernel {
    shader: Shader::Lif,
    entry: "qsnn_backward",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const WG: usize = 256;
/// Packed words per workgroup of the cooperative `forward_packed` (8 invocations a word).
const WORDS_PER_GROUP: usize = 32;

/// The surrogate derivative that stands in for the Heaviside step's in backward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Surrogate {
    /// `g(x) = alpha sg (1 - sg)`, `sg = sigmoid(alpha x)`; primitive `sigmoid(alpha x)`.
    Sigmoid {
        /// Sharpness (SpikingJelly's default 4).
        alpha: f32,
    },
    /// `g(x) = alpha / (2 (1 + (pi/2 alpha x)^2))`; primitive
    /// `atan(pi/2 alpha x) / pi + 1/2`.
    ATan {
        /// Sharpness (SpikingJelly's default 2).
        alpha: f32,
    },
}

impl Surrogate {
    /// SpikingJelly's default, `Sigmoid(alpha = 4)`.
    pub const SIGMOID: Surrogate = Surrogate::Sigmoid { alpha: 4.0 };
    /// SpikingJelly's `ATan(alpha = 2)`.
    pub const ATAN: Surrogate = Surrogate::ATan { alpha: 2.0 };

    /// Its sharpness.
    pub fn alpha(self) -> f32 {
        match self {
            Surrogate::Sigmoid { alpha } | Surrogate::ATan { alpha } => alpha,
        }
    }

    fn kind(self) -> f64 {
        match self {
            Surrogate::Sigmoid { .. } => 0.0,
            Surrogate::ATan { .. } => 1.0,
        }
    }
}

/// Which firing function a LIF-charged neuron uses (the reference's `backward_with_reset`
/// takes it; the GPU ops have one function per neuron).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiringFn {
    /// `S = 1 if H >= v_th else 0`.
    Lif,
    /// `S = +1 if H >= v_th, -1 if H <= -v_th, else 0`; resets on either spike.
    Ternary,
}

impl FiringFn {
    fn code(self) -> f64 {
        match self {
            FiringFn::Lif => 0.0,
            FiringFn::Ternary => 1.0,
        }
    }
}

/// `NEURON` of the stateless threshold in lif.wgsl.
const THRESHOLD_CODE: f64 = 2.0;

/// Settings of the LIF (and ternary) neuron; `Default` is SpikingJelly's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LifConfig {
    /// Membrane time constant (> 0); the kernels multiply by `1 / tau`.
    pub tau: f32,
    /// Firing threshold.
    pub v_th: f32,
    /// `Some(v)`: hard reset to `v` (V also starts at `v`); `None`: soft reset `V -= v_th S`.
    pub v_reset: Option<f32>,
    /// `H = V + (X - (V - v_reset)) / tau` when true, `H = V - (V - v_reset) / tau + X` else.
    pub decay_input: bool,
    /// The reset does not carry gradient (SpikingJelly's `detach_reset`).
    pub detach_reset: bool,
    /// The spike's surrogate derivative.
    pub surrogate: Surrogate,
}

impl Default for LifConfig {
    fn default() -> Self {
        Self {
            tau: 2.0,
            v_th: 1.0,
            v_reset: Some(0.0),
            decay_input: true,
            detach_reset: true,
            surrogate: Surrogate::SIGMOID,
        }
    }
}

impl LifConfig {
    /// `1 / tau`, the factor kernels and reference multiply by.
    pub fn k(&self) -> f32 {
        1.0 / self.tau
    }

    /// The reset value the charge formulas use: `v_reset`, or 0 for the soft reset.
    pub fn v_reset_or_zero(&self) -> f32 {
        self.v_reset.unwrap_or(0.0)
    }

    /// An error naming `op` unless every setting is in its range.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let finite = [
            self.tau,
            self.v_th,
            self.v_reset_or_zero(),
            self.surrogate.alpha(),
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite || self.tau <= 0.0 || self.surrogate.alpha() <= 0.0 {
            return Err(Error::InvalidArgument(format!(
                "{op}: tau and alpha must be finite and positive, v_th and v_reset finite \
                 (got {self:?})"
            )));
        }
        Ok(())
    }
}

/// Settings of the stateless threshold neuron (binary attention): `S = x >= v_th`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdConfig {
    /// Firing threshold.
    pub v_th: f32,
    /// The spike's surrogate derivative.
    pub surrogate: Surrogate,
}

impl Default for ThresholdConfig {
    fn default() -> Self {
        Self {
            v_th: 1.0,
            surrogate: Surrogate::SIGMOID,
        }
    }
}

/// Settings of the Q-SNN neuron; `Default` is Wenjie-Wei/Q-SNN's `LIFSpike()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QsnnConfig {
    /// Bits of the quantized membrane (2..=24): levels `2^(bits-1) - 1` on each side of 0.
    pub bits: u32,
    /// `H = decay V + X` (0.5: tau = 2 without decay_input).
    pub decay: f32,
    /// Fires when `H > v_th` (strictly).
    pub v_th: f32,
    /// Width of the triangle surrogate `max(0, gamma - |x|) / gamma^2`.
    pub gamma: f32,
}

impl Default for QsnnConfig {
    fn default() -> Self {
        Self {
            bits: 8,
            decay: 0.5,
            v_th: 1.0,
            gamma: 1.0,
        }
    }
}

impl QsnnConfig {
    /// Quantization levels on each side of zero, `2^(bits-1) - 1`.
    pub fn levels(&self) -> f32 {
        ((1u32 << (self.bits - 1)) - 1) as f32
    }

    /// An error naming `op` unless every setting is in its range.
    pub fn validate(&self, op: &'static str) -> Result<()> {
        let ok = (2..=24).contains(&self.bits)
            && self.decay.is_finite()
            && self.v_th.is_finite()
            && self.gamma.is_finite()
            && self.gamma > 0.0;
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "{op}: bits must be in 2..=24, gamma finite and positive, decay and v_th \
                 finite (got {self:?})"
            )));
        }
        Ok(())
    }
}

/// A time-major shape `[T, ...]`: T steps of `neurons = rows * features` neurons each,
/// `features` being the last dimension (the one spikes are packed along).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeShape {
    /// Time steps.
    pub t: usize,
    /// Neurons per step.
    pub neurons: usize,
    /// Rows of neurons per step.
    pub rows: usize,
    /// Features per row.
    pub features: usize,
}

impl TimeShape {
    /// Check that `shape` is `[t_steps, ...]` with at least one dimension after time.
    pub fn of(op: &'static str, shape: &[usize], t_steps: usize) -> Result<Self> {
        match shape {
            [t, rest @ ..] if *t == t_steps && t_steps > 0 && !rest.is_empty() => {
                let neurons: usize = rest.iter().product();
                let features = *rest.last().expect("rest is not empty");
                Ok(Self {
                    t: t_steps,
                    neurons,
                    rows: neurons.checked_div(features).unwrap_or(0),
                    features,
                })
            }
            _ => Err(Error::Shape {
                op,
                expected: format!(
                    "[T = {t_steps}, ...]: time first, then at least one neuron dimension \
                     (T must not be folded into the batch)"
                ),
                got: format!("{shape:?}"),
            }),
        }
    }
}

/// Which outputs a forward writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifOutputs {
    /// Spikes as f32 `[T, ...]`.
    pub spikes: bool,
    /// H, the membrane before firing, `[T, ...]`, for backward.
    pub h: bool,
    /// Spikes as `PackedBits [T, ...]` along the last dimension (binary neurons only).
    pub packed: bool,
}

impl LifOutputs {
    /// f32 spikes and H (training): the default.
    pub const TRAIN: Self = Self {
        spikes: true,
        h: true,
        packed: false,
    };
    /// Packed spikes and H (training into a binary matmul).
    pub const TRAIN_PACKED: Self = Self {
        spikes: false,
        h: true,
        packed: true,
    };
    /// Packed spikes only (inference into a binary matmul).
    pub const INFER_PACKED: Self = Self {
        spikes: false,
        h: false,
        packed: true,
    };
    /// Everything.
    pub const ALL: Self = Self {
        spikes: true,
        h: true,
        packed: true,
    };
}

impl Default for LifOutputs {
    fn default() -> Self {
        Self::TRAIN
    }
}

/// Which kernel builds the packed spikes (both write identical words; see lif.wgsl).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackKernel {
    /// One invocation per packed word keeps its 32 membranes in registers: no barrier, no
    /// workgroup memory, but each invocation reads a 128-byte run (strided across
    /// invocations). The choice for CPU drivers, where it is 4x the cooperative kernel
    /// (lavapipe).
    PerWord,
    /// One invocation per 4 neurons, coalesced; the bits of a word meet in workgroup
    /// memory, two barriers per 8 steps. The choice for GPUs.
    Cooperative,
}

impl PackKernel {
    /// `PerWord` on CPU adapters (lavapipe, llvmpipe, SwiftShader), `Cooperative` else.
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if ctx.is_cpu_adapter() {
            PackKernel::PerWord
        } else {
            PackKernel::Cooperative
        }
    }
}

/// What a forward returns: the outputs `LifOutputs` asked for.
#[derive(Debug, Clone)]
pub struct LifForward {
    /// f32 `[T, ...]`.
    pub spikes: Option<Tensor>,
    /// f32 `[T, ...]`, the membrane before firing (for the threshold: the input itself).
    pub h: Option<Tensor>,
    /// `PackedBits [T, ...]`.
    pub packed: Option<Tensor>,
}

/// What the Q-SNN forward returns.
#[derive(Debug, Clone)]
pub struct QsnnForward {
    /// f32 `[T, ...]`, {0, 1}.
    pub spikes: Tensor,
    /// f32 `[T, ...]`, the membrane before firing, for backward.
    pub h: Tensor,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    t_steps: u32,
    neurons: u32,
    rows: u32,
    features: u32,
    words_per_row: u32,
    k: f32,
    v_th: f32,
    v_reset: f32,
    alpha: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct QParams {
    t_steps: u32,
    neurons: u32,
    t: u32,
    levels: f32,
    decay: f32,
    v_th: f32,
    gamma: f32,
}

/// One neuron as the kernel sees it.
struct Spec {
    neuron: f64,
    hard_reset: bool,
    decay_input: bool,
    detach_reset: bool,
    surrogate: Surrogate,
    k: f32,
    v_th: f32,
    v_reset: f32,
}

impl Spec {
    fn lif(cfg: &LifConfig, firing: FiringFn) -> Self {
        Self {
            neuron: firing.code(),
            hard_reset: cfg.v_reset.is_some(),
            decay_input: cfg.decay_input,
            detach_reset: cfg.detach_reset,
            surrogate: cfg.surrogate,
            k: cfg.k(),
            v_th: cfg.v_th,
            v_reset: cfg.v_reset_or_zero(),
        }
    }

    fn threshold(cfg: &ThresholdConfig) -> Self {
        Self {
            neuron: THRESHOLD_CODE,
            hard_reset: true,
            decay_input: false,
            detach_reset: true,
            surrogate: cfg.surrogate,
            k: 1.0,
            v_th: cfg.v_th,
            v_reset: 0.0,
        }
    }

    fn params(&self, op: &'static str, shape: &TimeShape) -> Result<Params> {
        // Every index the kernels form, t * neurons + i and t * rows * words + word, fits.
        to_u32(op, "T * neurons", shape.t * shape.neurons)?;
        to_u32(
            op,
            "T * packed words",
            shape.t * shape.rows * words_per_row(shape.features),
        )?;
        to_u32(
            op,
            "invocations",
            shape.rows * words_per_row(shape.features) * 8,
        )?;
        Ok(Params {
            t_steps: to_u32(op, "T", shape.t)?,
            neurons: to_u32(op, "neurons", shape.neurons)?,
            rows: to_u32(op, "rows", shape.rows)?,
            features: to_u32(op, "features", shape.features)?,
            words_per_row: to_u32(op, "words per row", words_per_row(shape.features))?,
            k: self.k,
            v_th: self.v_th,
            v_reset: self.v_reset,
            alpha: self.surrogate.alpha(),
        })
    }

    fn flag(b: bool) -> f64 {
        if b {
            1.0
        } else {
            0.0
        }
    }
}

fn expect_f32(op: &'static str, t: &Tensor) -> Result<()> {
    t.expect(op, t.shape(), DType::F32)
}

/// The forwards' one dispatch; `coef` (BatchNorm's `[2, features]`, only with f32 outputs
/// and features a multiple of 4) normalizes the input as the kernel reads it.
#[allow(clippy::too_many_arguments)]
fn forward(
    ctx: &GpuContext,
    op: &'static str,
    x: &Tensor,
    shape: TimeShape,
    spec: &Spec,
    outputs: LifOutputs,
    pack: PackKernel,
    coef: Option<&Tensor>,
) -> Result<LifForward> {
    let write_h = outputs.h && spec.neuron != THRESHOLD_CODE;
    if !(outputs.spikes || write_h || outputs.packed) {
        return Err(Error::InvalidArgument(format!(
            "{op}: no output asked for ({outputs:?})"
        )));
    }
    let params = spec.params(op, &shape)?;
    // Unwritten outputs bind a dummy of one vec4 (what the vec4 kernel's binding needs).
    let spikes = ctx.empty(if outputs.spikes { x.shape() } else { &[4] }, DType::F32)?;
    let h = ctx.empty(if write_h { x.shape() } else { &[4] }, DType::F32)?;
    let packed = ctx.empty(
        if outputs.packed { x.shape() } else { &[1] },
        if outputs.packed {
            DType::PackedBits
        } else {
            DType::U32
        },
    )?;
    let mut constants = vec![
        ("NEURON", spec.neuron),
        ("HARD_RESET", Spec::flag(spec.hard_reset)),
        ("DECAY_INPUT", Spec::flag(spec.decay_input)),
        ("WRITE_SPIKES", Spec::flag(outputs.spikes)),
        ("WRITE_H", Spec::flag(write_h)),
    ];
    let words = shape.rows * words_per_row(shape.features);
    let vec4 = !outputs.packed && shape.neurons.is_multiple_of(4);
    if coef.is_some() && !(vec4 && shape.features.is_multiple_of(4)) {
        return Err(Error::InvalidArgument(format!(
            "{op}: a normalized input needs features a multiple of 4 (got {}) and f32 \
             outputs only ({outputs:?})",
            shape.features
        )));
    }
    let (kernel, groups) = if vec4 {
        (FORWARD_VEC4, (shape.neurons / 4).div_ceil(WG))
    } else if !outputs.packed {
        (FORWARD, shape.neurons.div_ceil(WG))
    } else if pack == PackKernel::PerWord {
        (FORWARD_PACKED_WORDS, words.div_ceil(WG))
    } else {
        (FORWARD_PACKED, words.div_ceil(WORDS_PER_GROUP))
    };
    let fourth = match (vec4, coef) {
        (true, Some(coef)) => coef.clone(),
        (true, None) => ctx.empty(&[4], DType::F32)?,
        (false, _) => packed.clone(),
    };
    if vec4 {
        constants.push(("AFFINE", Spec::flag(coef.is_some())));
    }
    ctx.dispatch(
        kernel,
        &constants,
        &[x, &spikes, &h, &fourth],
        &params,
        grid_1d(ctx, groups as u64)?,
    )?;
    Ok(LifForward {
        spikes: outputs.spikes.then_some(spikes),
        h: if spec.neuron == THRESHOLD_CODE {
            outputs.h.then(|| x.clone())
        } else {
            write_h.then_some(h)
        },
        packed: outputs.packed.then_some(packed),
    })
}

fn backward(
    ctx: &GpuContext,
    op: &'static str,
    grad_spikes: &Tensor,
    h: &Tensor,
    shape: TimeShape,
    spec: &Spec,
) -> Result<Tensor> {
    expect_f32(op, grad_spikes)?;
    h.expect(op, grad_spikes.shape(), DType::F32)?;
    let params = spec.params(op, &shape)?;
    let grad_x = ctx.empty(grad_spikes.shape(), DType::F32)?;
    let constants = [
        ("NEURON", spec.neuron),
        ("HARD_RESET", Spec::flag(spec.hard_reset)),
        ("DECAY_INPUT", Spec::flag(spec.decay_input)),
        ("DETACH_RESET", Spec::flag(spec.detach_reset)),
        ("SURROGATE", spec.surrogate.kind()),
    ];
    ctx.dispatch(
        BACKWARD,
        &constants,
        &[grad_spikes, h, &grad_x],
        &params,
        grid_1d(ctx, shape.neurons.div_ceil(WG) as u64)?,
    )?;
    Ok(grad_x)
}

/// Multi-step LIF forward of `x` `[T, ...]` (input currents) in one dispatch.
pub fn lif_forward(
    ctx: &GpuContext,
    x: &Tensor,
    t_steps: usize,
    cfg: &LifConfig,
    outputs: LifOutputs,
) -> Result<LifForward> {
    lif_forward_with(ctx, x, t_steps, cfg, outputs, PackKernel::for_adapter(ctx))
}

/// `lif_forward` with the packed spikes built by the given kernel (for tests and
/// benchmarks; `lif_forward` picks by adapter).
pub fn lif_forward_with(
    ctx: &GpuContext,
    x: &Tensor,
    t_steps: usize,
    cfg: &LifConfig,
    outputs: LifOutputs,
    pack: PackKernel,
) -> Result<LifForward> {
    const OP: &str = "lif_forward";
    expect_f32(OP, x)?;
    cfg.validate(OP)?;
    let shape = TimeShape::of(OP, x.shape(), t_steps)?;
    forward(
        ctx,
        OP,
        x,
        shape,
        &Spec::lif(cfg, FiringFn::Lif),
        outputs,
        pack,
        None,
    )
}

/// `lif_forward` of a BatchNorm's output computed as the neuron reads it: the input is
/// `x * coef[0, c] + coef[1, c]` for feature c (the last dimension, a multiple of 4), with
/// `coef [2, features]` from [`super::BatchNorm::coefficients_train`] (or `_eval`). The normalized tensor is
/// never written; f32 spikes and H as `outputs` asks (not packed).
pub fn lif_forward_affine(
    ctx: &GpuContext,
    x: &Tensor,
    coef: &Tensor,
    t_steps: usize,
    cfg: &LifConfig,
    outputs: LifOutputs,
) -> Result<LifForward> {
    const OP: &str = "lif_forward_affine";
    expect_f32(OP, x)?;
    cfg.validate(OP)?;
    let shape = TimeShape::of(OP, x.shape(), t_steps)?;
    coef.expect(OP, &[2, shape.features], DType::F32)?;
    forward(
        ctx,
        OP,
        x,
        shape,
        &Spec::lif(cfg, FiringFn::Lif),
        outputs,
        PackKernel::for_adapter(ctx),
        Some(coef),
    )
}

/// BPTT of the LIF neuron: `grad_x [T, ...]` from the spikes' gradient and the saved H.
pub fn lif_backward(
    ctx: &GpuContext,
    grad_spikes: &Tensor,
    h: &Tensor,
    t_steps: usize,
    cfg: &LifConfig,
) -> Result<Tensor> {
    const OP: &str = "lif_backward";
    cfg.validate(OP)?;
    let shape = TimeShape::of(OP, grad_spikes.shape(), t_steps)?;
    backward(
        ctx,
        OP,
        grad_spikes,
        h,
        shape,
        &Spec::lif(cfg, FiringFn::Lif),
    )
}

/// Multi-step forward of the ternary neuron (spikes -1/0/+1, thresholds +-v_th, LIF charge
/// and reset on either spike). Its spikes have no 1-bit code: `outputs.packed` is refused.
pub fn ternary_forward(
    ctx: &GpuContext,
    x: &Tensor,
    t_steps: usize,
    cfg: &LifConfig,
    outputs: LifOutputs,
) -> Result<LifForward> {
    const OP: &str = "ternary_forward";
    expect_f32(OP, x)?;
    cfg.validate(OP)?;
    if outputs.packed {
        return Err(Error::InvalidArgument(format!(
            "{OP}: ternary spikes (-1/0/+1) cannot be packed one bit each"
        )));
    }
    let shape = TimeShape::of(OP, x.shape(), t_steps)?;
    let pack = PackKernel::for_adapter(ctx);
    forward(
        ctx,
        OP,
        x,
        shape,
        &Spec::lif(cfg, FiringFn::Ternary),
        outputs,
        pack,
        None,
    )
}

/// BPTT of the ternary neuron (surrogate: the sum of the two steps' surrogates).
pub fn ternary_backward(
    ctx: &GpuContext,
    grad_spikes: &Tensor,
    h: &Tensor,
    t_steps: usize,
    cfg: &LifConfig,
) -> Result<Tensor> {
    const OP: &str = "ternary_backward";
    cfg.validate(OP)?;
    let shape = TimeShape::of(OP, grad_spikes.shape(), t_steps)?;
    backward(
        ctx,
        OP,
        grad_spikes,
        h,
        shape,
        &Spec::lif(cfg, FiringFn::Ternary),
    )
}

/// The stateless threshold `S = x >= v_th` of binary attention, on any shape (no time
/// dimension: it has no state). Its backward needs `x` itself, so `outputs.h` returns
/// `x` (the same buffer) instead of writing a copy.
pub fn threshold_forward(
    ctx: &GpuContext,
    x: &Tensor,
    cfg: &ThresholdConfig,
    outputs: LifOutputs,
) -> Result<LifForward> {
    const OP: &str = "threshold_forward";
    expect_f32(OP, x)?;
    let spec = Spec::threshold(cfg);
    threshold_as_lif(cfg).validate(OP)?;
    let shape = flat_shape(OP, x.shape())?;
    forward(
        ctx,
        OP,
        x,
        shape,
        &spec,
        outputs,
        PackKernel::for_adapter(ctx),
        None,
    )
}

/// Backward of the threshold: `grad_x = grad_s * g(x - v_th)`.
pub fn threshold_backward(
    ctx: &GpuContext,
    grad_spikes: &Tensor,
    x: &Tensor,
    cfg: &ThresholdConfig,
) -> Result<Tensor> {
    const OP: &str = "threshold_backward";
    threshold_as_lif(cfg).validate(OP)?;
    let shape = flat_shape(OP, grad_spikes.shape())?;
    backward(ctx, OP, grad_spikes, x, shape, &Spec::threshold(cfg))
}

fn threshold_as_lif(cfg: &ThresholdConfig) -> LifConfig {
    LifConfig {
        v_th: cfg.v_th,
        surrogate: cfg.surrogate,
        ..LifConfig::default()
    }
}

/// A stateless op's shape as one time step of `[rows, features]` neurons.
fn flat_shape(op: &'static str, shape: &[usize]) -> Result<TimeShape> {
    let Some(&features) = shape.last() else {
        return Err(Error::Shape {
            op,
            expected: "a tensor of rank >= 1".into(),
            got: format!("{shape:?}"),
        });
    };
    let neurons: usize = shape.iter().product();
    Ok(TimeShape {
        t: 1,
        neurons,
        rows: neurons.checked_div(features).unwrap_or(0),
        features,
    })
}

fn qsnn_params(op: &'static str, cfg: &QsnnConfig, shape: &TimeShape, t: usize) -> Result<QParams> {
    to_u32(op, "T * neurons", shape.t * shape.neurons)?;
    Ok(QParams {
        t_steps: to_u32(op, "T", shape.t)?,
        neurons: to_u32(op, "neurons", shape.neurons)?,
        t: t as u32,
        levels: cfg.levels(),
        decay: cfg.decay,
        v_th: cfg.v_th,
        gamma: cfg.gamma,
    })
}

/// Forward of the Q-SNN neuron with its b-bit membrane: one dispatch per step, as the
/// quantization scale of step t is a maximum over the whole tensor at step t.
pub fn qsnn_forward(
    ctx: &GpuContext,
    x: &Tensor,
    t_steps: usize,
    cfg: &QsnnConfig,
) -> Result<QsnnForward> {
    const OP: &str = "qsnn_forward";
    expect_f32(OP, x)?;
    cfg.validate(OP)?;
    let shape = TimeShape::of(OP, x.shape(), t_steps)?;
    let spikes = ctx.empty(x.shape(), DType::F32)?;
    let h = ctx.empty(x.shape(), DType::F32)?;
    let state = ctx.empty(&[shape.neurons], DType::F32)?;
    let max = ctx.zeros(&[shape.t], DType::U32)?;
    let grid = grid_1d(ctx, shape.neurons.div_ceil(WG) as u64)?;
    for t in 0..shape.t {
        ctx.dispatch(
            QSNN_STEP,
            &[],
            &[x, &state, &max, &spikes, &h],
            &qsnn_params(OP, cfg, &shape, t)?,
            grid,
        )?;
    }
    Ok(QsnnForward { spikes, h })
}

/// BPTT of the Q-SNN neuron (straight-through quantization, triangle surrogate, reset not
/// detached), in one dispatch.
pub fn qsnn_backward(
    ctx: &GpuContext,
    grad_spikes: &Tensor,
    h: &Tensor,
    t_steps: usize,
    cfg: &QsnnConfig,
) -> Result<Tensor> {
    const OP: &str = "qsnn_backward";
    cfg.validate(OP)?;
    expect_f32(OP, grad_spikes)?;
    h.expect(OP, grad_spikes.shape(), DType::F32)?;
    let shape = TimeShape::of(OP, grad_spikes.shape(), t_steps)?;
    let grad_x = ctx.empty(grad_spikes.shape(), DType::F32)?;
    ctx.dispatch(
        QSNN_BACKWARD,
        &[],
        &[grad_spikes, h, &grad_x],
        &qsnn_params(OP, cfg, &shape, 0)?,
        grid_1d(ctx, shape.neurons.div_ceil(WG) as u64)?,
    )?;
    Ok(grad_x)
}
