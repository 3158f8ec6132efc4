//! Packed binary matmul in its three forms (shaders/binary_matmul.wgsl):
//! spikes x signs (AND-popcount), signs x signs (XNOR-popcount), spikes x spikes, and
//! f32 activations x packed sign weights; and the weight gradient of a layer fed
//! spikes, `dY^T X` from X's packed bits.

use super::{to_u32, MatrixShape};
use crate::error::{Error, Result};
use crate::gpu::{words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

const BINARY_MATMUL: Kernel = Kernel {
    shader: Shader::BinaryMatmul,
    entry: "binary_matmul",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const BINARY_MATMUL_SUBGROUP: Kernel = Kernel {
    shader: Shader::BinaryMatmulSubgroup,
    entry: "binary_matmul",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const BINARY_MATMUL_SUBGROUP_VEC4: Kernel = Kernel {
    shader: Shader::BinaryMatmulSubgroup,
    entry: "binary_matmul_vec4",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const MATMUL_F32_BITS_SUBGROUP: Kernel = Kernel {
    shader: Shader::BinaryMatmulSubgroup,
    entry: "matmul_f32_bits",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const SPIKE_WEIGHT_GRAD: Kernel = Kernel {
    shader: Shader::BinaryMatmul,
    entry: "spike_weight_grad",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const SPIKE_WEIGHT_GRAD_SUBGROUP: Kernel = Kernel {
    shader: Shader::BinaryMatmulSubgroup,
    ..SPIKE_WEIGHT_GRAD
};

const MATMUL_F32_BITS: Kernel = Kernel {
    shader: Shader::BinaryMatmul,
    entry: "matmul_f32_bits",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

/// A kernel with the C rows x columns one of its workgroups computes, and its
/// workgroup size (subgroup kernels only).
struct Launch {
    kernel: Kernel,
    tile_rows: usize,
    tile_cols: usize,
    lanes: Option<usize>,
}

impl Launch {
    /// A subgroup kernel's launch for `n` output columns.
    fn subgroup(kernel: Kernel, n: usize) -> Self {
        let lanes = super::subgroup_tile_lanes(n);
        Self {
            kernel,
            tile_rows: 16,
            tile_cols: 4 * lanes,
            lanes: Some(lanes),
        }
    }

    fn portable(kernel: Kernel) -> Self {
        Self {
            kernel,
            tile_rows: 64,
            tile_cols: 64,
            lanes: None,
        }
    }
}

/// Which values the two packed operands hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryForm {
    /// (a) A holds spikes {0,1}, B signs {-1,+1}: `2 popcount(a & b) - popcount(a)`.
    SpikesSigns,
    /// (b) both hold signs {-1,+1}: `K - 2 popcount(a ^ b)`.
    SignsSigns,
    /// Both hold spikes {0,1}: `popcount(a & b)` (spike attention scores).
    SpikesSpikes,
}

impl BinaryForm {
    fn mode(self) -> f64 {
        match self {
            BinaryForm::SpikesSigns => 0.0,
            BinaryForm::SignsSigns => 1.0,
            BinaryForm::SpikesSpikes => 2.0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    kw: u32,
    a_batch_stride: u32,
    b_batch_stride: u32,
}

/// Shapes of `out[b] = a[b] . b[b]^T` (B shared when it has rank 2).
struct Plan {
    a: MatrixShape,
    n: usize,
    b_shared: bool,
}

fn plan(op: &'static str, a: &Tensor, b: &Tensor, scale: Option<&Tensor>) -> Result<Plan> {
    let ma = MatrixShape::of(op, a.shape())?;
    let mb = MatrixShape::of(op, b.shape())?;
    if b.dtype() != DType::PackedBits {
        return Err(Error::DType {
            op,
            expected: DType::PackedBits,
            got: b.dtype(),
        });
    }
    if mb.cols != ma.cols || (mb.batched && (mb.batch != ma.batch || !ma.batched)) {
        return Err(Error::Shape {
            op,
            expected: format!(
                "B of [N, {k}] or [{batch}, N, {k}] for A {:?}",
                a.shape(),
                k = ma.cols,
                batch = ma.batch
            ),
            got: format!("{:?}", b.shape()),
        });
    }
    if let Some(s) = scale {
        s.expect(op, &[mb.rows], DType::F32)?;
    }
    Ok(Plan {
        a: ma,
        n: mb.rows,
        b_shared: !mb.batched,
    })
}

/// The operands of one launch, checked by `plan`.
struct Operands<'a> {
    a: &'a Tensor,
    b: &'a Tensor,
    scale: Option<&'a Tensor>,
    plan: Plan,
    a_batch_stride: usize,
}

fn run(
    ctx: &GpuContext,
    launch: Launch,
    constants: &[(&'static str, f64)],
    ops: Operands,
) -> Result<Tensor> {
    let op = launch.kernel.entry;
    let Plan { a: ma, n, b_shared } = ops.plan;
    let out_shape: Vec<usize> = if ma.batched {
        vec![ma.batch, ma.rows, n]
    } else {
        vec![ma.rows, n]
    };
    let out = ctx.empty(&out_shape, DType::F32)?;
    let kw = words_per_row(ma.cols);
    let params = Params {
        m: to_u32(op, "M", ma.rows)?,
        n: to_u32(op, "N", n)?,
        k: to_u32(op, "K", ma.cols)?,
        kw: to_u32(op, "K words", kw)?,
        a_batch_stride: to_u32(op, "A batch stride", ops.a_batch_stride)?,
        b_batch_stride: if b_shared {
            0
        } else {
            to_u32(op, "B batch stride", n * kw)?
        },
    };
    to_u32(op, "output size", ma.batch * ma.rows * n)?;
    // Without a scale the kernel never reads binding 2, but a binding must exist and may
    // not alias the output.
    let unused = ctx.empty(&[1], DType::F32)?;
    let scale_or_unused = ops.scale.unwrap_or(&unused);
    let mut constants = constants.to_vec();
    constants.push(("HAS_SCALE", if ops.scale.is_some() { 1.0 } else { 0.0 }));
    let mut row_tiles = ma.rows.div_ceil(launch.tile_rows);
    if let Some(lanes) = launch.lanes {
        let grouped =
            super::subgroup_row_tiles(row_tiles * n.div_ceil(launch.tile_cols) * ma.batch);
        row_tiles = row_tiles.div_ceil(grouped);
        constants.push(("WG", lanes as f64));
        constants.push(("ROW_TILES", grouped as f64));
    }
    ctx.dispatch(
        launch.kernel,
        &constants,
        &[ops.a, ops.b, scale_or_unused, &out],
        &params,
        [
            to_u32(op, "column tiles", n.div_ceil(launch.tile_cols))?,
            to_u32(op, "row tiles", row_tiles)?,
            to_u32(op, "batch", ma.batch)?,
        ],
    )?;
    Ok(out)
}

/// `out[.., m, n] = scale[n] * dot(a[.., m, :], b[.., n, :])` on packed bits, with the
/// values each operand holds given by `form`. `a` is `PackedBits [M, K]` or
/// `[batch, M, K]`; `b` is `PackedBits [N, K]` (shared over the batch) or
/// `[batch, N, K]`; `scale` is an optional f32 `[N]`. Returns f32 `[.., M, N]`.
pub fn binary_matmul(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    scale: Option<&Tensor>,
    form: BinaryForm,
) -> Result<Tensor> {
    const OP: &str = "binary_matmul";
    if a.dtype() != DType::PackedBits {
        return Err(Error::DType {
            op: OP,
            expected: DType::PackedBits,
            got: a.dtype(),
        });
    }
    let plan = plan(OP, a, b, scale)?;
    let a_batch_stride = plan.a.rows * words_per_row(plan.a.cols);
    let launch = if ctx.subgroup_kernels {
        // Whole rows of vec4s: store each row's 4 outputs at once.
        let kernel = if plan.n % 4 == 0 {
            BINARY_MATMUL_SUBGROUP_VEC4
        } else {
            BINARY_MATMUL_SUBGROUP
        };
        Launch::subgroup(kernel, plan.n)
    } else {
        Launch::portable(BINARY_MATMUL)
    };
    let operands = Operands {
        a,
        b,
        scale,
        plan,
        a_batch_stride,
    };
    run(ctx, launch, &[("MODE", form.mode())], operands)
}

/// Form (c): f32 activations `x [.., M, K]` times packed sign weights `b [.., N, K]`,
/// `out[.., m, n] = scale[n] * sum_k x[.., m, k] * (bit ? +1 : -1)`.
pub fn matmul_f32_bits(
    ctx: &GpuContext,
    x: &Tensor,
    b: &Tensor,
    scale: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "matmul_f32_bits";
    if x.dtype() != DType::F32 {
        return Err(Error::DType {
            op: OP,
            expected: DType::F32,
            got: x.dtype(),
        });
    }
    let plan = plan(OP, x, b, scale)?;
    let (launch, x) = if ctx.subgroup_kernels {
        // The subgroup kernel reads rows of X as vec4s: pad them to a multiple of 4.
        let launch = Launch::subgroup(MATMUL_F32_BITS_SUBGROUP, plan.n);
        (launch, super::copy::pad_last_dim(ctx, x, 4)?)
    } else {
        (Launch::portable(MATMUL_F32_BITS), x.clone())
    };
    let a_batch_stride = plan.a.rows * x.shape()[x.shape().len() - 1];
    let operands = Operands {
        a: &x,
        b,
        scale,
        plan,
        a_batch_stride,
    };
    run(ctx, launch, &[], operands)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SpikeGradParams {
    m: u32,
    o: u32,
    k: u32,
    kw: u32,
    chunk_rows: u32,
}

/// Workgroups that keep a device busy: chunks of rows are added until about this many
/// run.
const SPIKE_GRAD_WORKGROUPS: usize = 512;

/// The weight gradient of a layer whose input is spikes: `dw = dy^T x` (`+=` when
/// `accumulate`), with dy f32 `[M, O]`, x the packed spikes `PackedBits [M, K]` the
/// forward multiplied, dw f32 `[O, K]`. Rows are split into chunks summed afterwards,
/// so a long M (every pixel of every image) still fills the device.
pub fn spike_weight_grad_into(
    ctx: &GpuContext,
    dy: &Tensor,
    x_bits: &Tensor,
    dw: &Tensor,
    accumulate: bool,
) -> Result<()> {
    const OP: &str = "spike_weight_grad";
    let &[m, o] = dy.shape() else {
        return Err(Error::Shape {
            op: OP,
            expected: "dy [M, O]".into(),
            got: format!("{:?}", dy.shape()),
        });
    };
    dy.expect(OP, &[m, o], DType::F32)?;
    let k = x_bits.shape().last().copied().unwrap_or(0);
    x_bits.expect(OP, &[m, k], DType::PackedBits)?;
    dw.expect(OP, &[o, k], DType::F32)?;
    if o * k == 0 {
        return Ok(());
    }
    if m == 0 {
        if !accumulate {
            ctx.fill_zero(dw);
        }
        return Ok(());
    }
    // Workgroups of 16 outputs x 32 bits (subgroups: dy's rows read as vec4s) or 4
    // outputs x 8 bits per invocation, 64 invocations.
    let subgroup = ctx.subgroup_kernels && o.is_multiple_of(4);
    let (kernel, grid_blocks) = if subgroup {
        (SPIKE_WEIGHT_GRAD_SUBGROUP, [k.div_ceil(32), o.div_ceil(16)])
    } else {
        (
            SPIKE_WEIGHT_GRAD,
            [(o.div_ceil(4) * k.div_ceil(8)).div_ceil(64), 1],
        )
    };
    let blocks = grid_blocks[0] * grid_blocks[1];
    // Chunks of at least 256 rows, enough of them to fill the device.
    let chunks = (SPIKE_GRAD_WORKGROUPS / blocks).clamp(1, (m / 256).max(1));
    let chunk_rows = m.div_ceil(chunks);
    let chunks = m.div_ceil(chunk_rows);
    let params = SpikeGradParams {
        m: to_u32(OP, "M", m)?,
        o: to_u32(OP, "O", o)?,
        k: to_u32(OP, "K", k)?,
        kw: to_u32(OP, "words per row", words_per_row(k))?,
        chunk_rows: to_u32(OP, "rows per chunk", chunk_rows)?,
    };
    to_u32(OP, "partial products", chunks * o * k)?;
    let grid = [
        to_u32(OP, "column blocks", grid_blocks[0])?,
        to_u32(OP, "output blocks", grid_blocks[1])?,
        to_u32(OP, "chunks", chunks)?,
    ];
    if chunks == 1 && !accumulate {
        return ctx.dispatch(kernel, &[], &[dy, x_bits, dw], &params, grid);
    }
    let parts = ctx.empty(&[chunks, o * k], DType::F32)?;
    ctx.dispatch(kernel, &[], &[dy, x_bits, &parts], &params, grid)?;
    super::channel_sum_into(ctx, &parts, &dw.reshape(&[o * k])?, accumulate)
}
