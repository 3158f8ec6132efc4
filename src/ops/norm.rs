//! Per-channel reductions and BatchNorm over channel-last tensors `[.., C]`
//! (shaders/norm.wgsl). All leading axes are rows: BN normalizes each channel over
//! T * B * (H * W or N), as the reference models do (T folded into the batch).
//!
//! PyTorch semantics: training normalizes with the batch mean and the biased batch
//! variance, and moves `running_mean` / `running_var` in place by `momentum` towards the
//! batch mean and the *unbiased* batch variance; eval normalizes with the running
//! statistics. The training forward saves `stats [2, C]` = (mean, inv_std) for the
//! backward, which recomputes the normalized input from x.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

/// PyTorch's BatchNorm defaults.
pub const BN_EPS: f32 = 1e-5;
/// PyTorch's BatchNorm momentum.
pub const BN_MOMENTUM: f32 = 0.1;

const CHANNEL_PARTIALS: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "channel_partials",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const COL_SUM_FINISH: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "col_sum_finish",
    bindings: &[Access::Read, Access::ReadWrite],
};

const BN_STATS_FINISH: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "bn_stats_finish",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const BN_AFFINE: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "bn_affine",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};

const BN_APPLY: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "bn_apply",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const BN_BACKWARD_FINISH: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "bn_backward_finish",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const BN_BACKWARD_DX: Kernel = Kernel {
    shader: Shader::Norm,
    entry: "bn_backward_dx",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const CHANNEL_PARTIALS_VEC4: Kernel = Kernel {
    entry: "channel_partials_vec4",
    ..CHANNEL_PARTIALS
};

const BN_APPLY_VEC4: Kernel = Kernel {
    entry: "bn_apply_vec4",
    ..BN_APPLY
};

const BN_BACKWARD_DX_VEC4: Kernel = Kernel {
    entry: "bn_backward_dx_vec4",
    ..BN_BACKWARD_DX
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    c: u32,
    groups: u32,
    rows_per_group: u32,
    cw: u32,
    total: u32,
    eps: f32,
    momentum: f32,
}

/// What the partial sums of `channel_partials` add up (its MODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sums {
    /// sum x
    Plain = 0,
    /// sum (x - x[0]), sum (x - x[0])^2
    Shifted = 1,
    /// sum dy, sum dy xhat
    BnBackward = 2,
}

/// Rows and channels of `x [.., C]`, and the launch of the two-pass reduction: each
/// workgroup of 256 invocations covers `cw` channel groups with `256 / cw` row lanes over
/// `rows_per_group` rows, so that at most 256 row groups feed the finishing pass. The
/// per-element kernels take `width` (4 when C is a multiple of 4: their vec4 forms)
/// channels per invocation, and so do the partial sums (`cw` then counts vec4s).
struct Plan {
    rows: usize,
    c: usize,
    width: usize,
    cw: usize,
    rows_per_group: usize,
    groups: usize,
}

impl Plan {
    fn of(op: &'static str, x: &Tensor) -> Result<Self> {
        x.expect(op, x.shape(), DType::F32)?;
        let Some(&c) = x.shape().last() else {
            return Err(Error::Shape {
                op,
                expected: "[.., C]".into(),
                got: "a scalar".into(),
            });
        };
        let rows = x.len().checked_div(c).unwrap_or(0);
        let width = if c.is_multiple_of(4) { 4 } else { 1 };
        let cw = (c / width).clamp(1, 64);
        let lanes = 256 / cw;
        let rows_per_group = (lanes * 8).max(rows.div_ceil(256));
        let groups = rows.div_ceil(rows_per_group).max(1);
        Ok(Plan {
            rows,
            c,
            width,
            cw,
            rows_per_group,
            groups,
        })
    }

    fn params(&self, op: &'static str, eps: f32, momentum: f32) -> Result<Params> {
        Ok(Params {
            rows: to_u32(op, "rows", self.rows)?,
            c: to_u32(op, "channels", self.c)?,
            groups: self.groups as u32,
            rows_per_group: to_u32(op, "rows per group", self.rows_per_group)?,
            cw: self.cw as u32,
            total: to_u32(op, "elements", self.rows * self.c / self.width)?,
            eps,
            momentum,
        })
    }

    /// One invocation per channel.
    fn per_channel(&self, ctx: &GpuContext) -> Result<[u32; 3]> {
        grid_1d(ctx, self.c.div_ceil(256) as u64)
    }

    /// One invocation per `width` elements.
    fn per_element(&self, ctx: &GpuContext) -> Result<[u32; 3]> {
        grid_1d(ctx, (self.rows * self.c / self.width).div_ceil(256) as u64)
    }

    /// The scalar kernel or its vec4 form, as `width` says.
    fn pick(&self, scalar: Kernel, vec4: Kernel) -> Kernel {
        if self.width == 4 {
            vec4
        } else {
            scalar
        }
    }

    /// The first pass: `[groups, 2, C]` partial sums of `a` (and `b`, `stats`).
    fn partials(
        &self,
        ctx: &GpuContext,
        params: &Params,
        sums: Sums,
        a: &Tensor,
        b: &Tensor,
        stats: &Tensor,
    ) -> Result<Tensor> {
        let out = ctx.empty(&[self.groups, 2, self.c], DType::F32)?;
        ctx.dispatch(
            self.pick(CHANNEL_PARTIALS, CHANNEL_PARTIALS_VEC4),
            &[("MODE", sums as u32 as f64)],
            &[a, b, stats, &out],
            params,
            [
                (self.c / self.width).div_ceil(self.cw) as u32,
                self.groups as u32,
                1,
            ],
        )?;
        Ok(out)
    }
}

/// `out[c] = sum_rows x[.., c]` (`+=` when `accumulate`) over a channel-last f32 tensor;
/// `out` is f32 `[C]`. Bias gradients are this with `accumulate`.
pub fn channel_sum_into(
    ctx: &GpuContext,
    x: &Tensor,
    out: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "channel_sum_into";
    let plan = Plan::of(OP, x)?;
    out.expect(OP, &[plan.c], DType::F32)?;
    if plan.c == 0 {
        return Ok(());
    }
    let params = plan.params(OP, 0.0, 0.0)?;
    let partial = plan.partials(ctx, &params, Sums::Plain, x, x, x)?;
    ctx.dispatch(
        COL_SUM_FINISH,
        &[("ACCUMULATE", if accumulate { 1.0 } else { 0.0 })],
        &[&partial, out],
        &params,
        plan.per_channel(ctx)?,
    )
}

/// A BatchNorm layer's parameters and buffers, each f32 `[C]`, and its constants.
#[derive(Debug, Clone, Copy)]
pub struct BatchNorm<'a> {
    /// Scale gamma.
    pub weight: &'a Tensor,
    /// Shift beta.
    pub bias: &'a Tensor,
    /// Running mean, updated in training.
    pub running_mean: &'a Tensor,
    /// Running variance, updated in training.
    pub running_var: &'a Tensor,
    /// Added to the variance.
    pub eps: f32,
    /// Weight of the batch in the running statistics.
    pub momentum: f32,
}

impl<'a> BatchNorm<'a> {
    /// With PyTorch's defaults eps = 1e-5, momentum = 0.1.
    pub fn new(
        weight: &'a Tensor,
        bias: &'a Tensor,
        running_mean: &'a Tensor,
        running_var: &'a Tensor,
    ) -> Self {
        Self {
            weight,
            bias,
            running_mean,
            running_var,
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
        }
    }

    fn check(&self, op: &'static str, c: usize) -> Result<()> {
        for t in [self.weight, self.bias, self.running_mean, self.running_var] {
            t.expect(op, &[c], DType::F32)?;
        }
        if std::ptr::eq(self.running_mean.buffer(), self.running_var.buffer()) {
            return Err(Error::InvalidArgument(format!(
                "{op}: running_mean and running_var share a buffer"
            )));
        }
        Ok(())
    }

    /// `y = x * coef.scale + coef.shift` with `coef [2, C]`.
    fn apply(
        &self,
        ctx: &GpuContext,
        plan: &Plan,
        params: &Params,
        x: &Tensor,
        coef: &Tensor,
    ) -> Result<Tensor> {
        let y = ctx.empty(x.shape(), DType::F32)?;
        ctx.dispatch(
            plan.pick(BN_APPLY, BN_APPLY_VEC4),
            &[],
            &[x, coef, &y],
            params,
            plan.per_element(ctx)?,
        )?;
        Ok(y)
    }

    /// Training forward of `x [.., C]`: returns `(y, stats)` with y like x and
    /// `stats [2, C]` = (batch mean, 1 / sqrt(biased var + eps)), and updates the running
    /// statistics in place. Needs at least 2 rows (as PyTorch does).
    pub fn forward_train(&self, ctx: &GpuContext, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (coef, stats) = self.coefficients_train(ctx, x)?;
        Ok((self.apply_coefficients(ctx, x, &coef)?, stats))
    }

    /// What [`BatchNorm::forward_train`] computes before it normalizes: `coef [2, C]` =
    /// (scale, shift) with `y = x scale + shift` per channel, and the stats (the running
    /// statistics are updated). A consumer that reads x once can normalize as it reads
    /// ([`super::lif_forward_affine`]).
    pub fn coefficients_train(&self, ctx: &GpuContext, x: &Tensor) -> Result<(Tensor, Tensor)> {
        const OP: &str = "batch_norm_train";
        let plan = Plan::of(OP, x)?;
        self.check(OP, plan.c)?;
        if plan.rows < 2 {
            return Err(Error::InvalidArgument(format!(
                "{OP}: training needs more than one value per channel, got {} rows",
                plan.rows
            )));
        }
        let params = plan.params(OP, self.eps, self.momentum)?;
        let partial = plan.partials(ctx, &params, Sums::Shifted, x, x, x)?;
        let stats = ctx.empty(&[2, plan.c], DType::F32)?;
        ctx.dispatch(
            BN_STATS_FINISH,
            &[],
            &[x, &partial, &stats, self.running_mean, self.running_var],
            &params,
            plan.per_channel(ctx)?,
        )?;
        let coef = ctx.empty(&[2, plan.c], DType::F32)?;
        ctx.dispatch(
            BN_AFFINE,
            &[("EVAL", 0.0)],
            &[&stats, &stats, self.weight, self.bias, &coef],
            &params,
            plan.per_channel(ctx)?,
        )?;
        Ok((coef, stats))
    }

    /// Eval forward: normalizes with the running statistics.
    pub fn forward_eval(&self, ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
        let coef = self.coefficients_eval(ctx, x)?;
        self.apply_coefficients(ctx, x, &coef)
    }

    /// [`BatchNorm::coefficients_train`] for eval: from the running statistics.
    pub fn coefficients_eval(&self, ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "batch_norm_eval";
        let plan = Plan::of(OP, x)?;
        self.check(OP, plan.c)?;
        let params = plan.params(OP, self.eps, self.momentum)?;
        let coef = ctx.empty(&[2, plan.c], DType::F32)?;
        ctx.dispatch(
            BN_AFFINE,
            &[("EVAL", 1.0)],
            &[
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                &coef,
            ],
            &params,
            plan.per_channel(ctx)?,
        )?;
        Ok(coef)
    }

    /// `y = x coef[0] + coef[1]` per channel.
    pub fn apply_coefficients(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        coef: &Tensor,
    ) -> Result<Tensor> {
        const OP: &str = "batch_norm_apply";
        let plan = Plan::of(OP, x)?;
        coef.expect(OP, &[2, plan.c], DType::F32)?;
        let params = plan.params(OP, self.eps, self.momentum)?;
        self.apply(ctx, &plan, &params, x, coef)
    }

    /// Backward of [`BatchNorm::forward_train`] with its saved `stats`:
    /// `dweight += sum dy xhat`, `dbias += sum dy` (both f32 `[C]`), and returns
    /// `dx = weight inv_std (dy - mean(dy) - xhat mean(dy xhat))` like x.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        dy: &Tensor,
        stats: &Tensor,
        dweight: &Tensor,
        dbias: &Tensor,
    ) -> Result<Tensor> {
        const OP: &str = "batch_norm_backward";
        let plan = Plan::of(OP, x)?;
        self.check(OP, plan.c)?;
        dy.expect(OP, x.shape(), DType::F32)?;
        stats.expect(OP, &[2, plan.c], DType::F32)?;
        dweight.expect(OP, &[plan.c], DType::F32)?;
        dbias.expect(OP, &[plan.c], DType::F32)?;
        if std::ptr::eq(dweight.buffer(), dbias.buffer()) {
            return Err(Error::InvalidArgument(format!(
                "{OP}: dweight and dbias share a buffer"
            )));
        }
        let params = plan.params(OP, self.eps, self.momentum)?;
        let partial = plan.partials(ctx, &params, Sums::BnBackward, x, dy, stats)?;
        let coef = ctx.empty(&[4, plan.c], DType::F32)?;
        ctx.dispatch(
            BN_BACKWARD_FINISH,
            &[],
            &[&partial, stats, self.weight, dweight, dbias, &coef],
            &params,
            plan.per_channel(ctx)?,
        )?;
        let dx = ctx.empty(x.shape(), DType::F32)?;
        ctx.dispatch(
            plan.pick(BN_BACKWARD_DX, BN_BACKWARD_DX_VEC4),
            &[],
            &[x, dy, &coef, &dx],
            &params,
            plan.per_element(ctx)?,
        )?;
        Ok(dx)
    }
}
