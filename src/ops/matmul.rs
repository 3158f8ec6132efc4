//! f32 matmul with the transposed forms backward passes need: register-blocked kernels
//! for CPU drivers (shaders/matmul.wgsl, matmul_subgroup.wgsl) and a workgroup-memory
//! tiled one for GPUs (shaders/matmul_tiled.wgsl).

use super::{layout, to_u32, MatrixShape};
use crate::error::{Error, Result};
use crate::gpu::{Access, DType, GpuContext, Kernel, Shader, Tensor};

const MATMUL: Kernel = Kernel {
    shader: Shader::Matmul,
    entry: "matmul",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const MATMUL_SUBGROUP: Kernel = Kernel {
    shader: Shader::MatmulSubgroup,
    entry: "matmul",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

/// The subgroup kernel storing whole vec4 rows (N a multiple of 4).
const MATMUL_SUBGROUP_VEC4: Kernel = Kernel {
    entry: "matmul_vec4",
    ..MATMUL_SUBGROUP
};

const MATMUL_TILED: Kernel = Kernel {
    shader: Shader::MatmulTiled,
    entry: "matmul_tiled",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

/// The tiled kernel storing whole vec4 rows (N a multiple of 4).
const MATMUL_TILED_VEC4: Kernel = Kernel {
    entry: "matmul_tiled_vec4",
    ..MATMUL_TILED
};

/// Rows and columns of C one workgroup of the tiled kernel computes.
const TILED_TILE: usize = 64;

/// Which f32 matmul kernel runs a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Matmul {
    /// The tiled kernel on GPUs when M and N each fill at least half a tile, the
    /// register-blocked kernels otherwise and on CPU adapters.
    Auto,
    /// Register blocking without workgroup memory (matmul_subgroup.wgsl where the
    /// context has subgroup kernels, else matmul.wgsl): tuned for CPU drivers, whose
    /// barriers and workgroup memory are slow.
    Registers,
    /// Workgroup-memory tiles read along each operand's stored rows
    /// (matmul_tiled.wgsl): for GPUs, where the register-blocked kernels are
    /// memory-bound.
    Tiled,
}

impl F32Matmul {
    /// `Registers` or `Tiled`: the kernel that runs an `m x n` output on this adapter.
    fn resolve(self, ctx: &GpuContext, m: usize, n: usize) -> F32Matmul {
        match self {
            F32Matmul::Auto
                if !ctx.is_cpu_adapter() && m >= TILED_TILE / 2 && n >= TILED_TILE / 2 =>
            {
                F32Matmul::Tiled
            }
            F32Matmul::Auto => F32Matmul::Registers,
            chosen => chosen,
        }
    }
}

/// One launch's kernel and shape: the C rows x columns one workgroup computes, and the
/// subgroup kernel's workgroup size.
struct Launch {
    kernel: Kernel,
    tile_rows: usize,
    tile_cols: usize,
    lanes: Option<usize>,
}

/// The launch of a resolved kernel (`Registers` or `Tiled`) for `n` output columns.
fn launch(ctx: &GpuContext, kernel: F32Matmul, n: usize) -> Launch {
    let vec4_rows = n.is_multiple_of(4);
    if kernel == F32Matmul::Tiled {
        return Launch {
            kernel: if vec4_rows {
                MATMUL_TILED_VEC4
            } else {
                MATMUL_TILED
            },
            tile_rows: TILED_TILE,
            tile_cols: TILED_TILE,
            lanes: None,
        };
    }
    if ctx.subgroup_kernels {
        let lanes = super::subgroup_tile_lanes(n);
        Launch {
            kernel: if vec4_rows {
                MATMUL_SUBGROUP_VEC4
            } else {
                MATMUL_SUBGROUP
            },
            tile_rows: 16,
            tile_cols: 4 * lanes,
            lanes: Some(lanes),
        }
    } else {
        Launch {
            kernel: MATMUL,
            tile_rows: 64,
            tile_cols: 32,
            lanes: None,
        }
    }
}

/// Which operand is stored transposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulForm {
    /// `A [M, K] B [K, N]`
    AB,
    /// `A^T B` with `A [K, M]`, `B [K, N]` (weight gradients: dW = dY^T X).
    AtB,
    /// `A B^T` with `A [M, K]`, `B [N, K]` (linear layers: Y = X W^T).
    ABt,
    /// `A^T B^T` with `A [K, M]`, `B [N, K]` (weight gradients from transposed columns:
    /// B's rows run along K, which CPU drivers read several times faster than `[K, N]`).
    AtBt,
}

impl MatmulForm {
    fn trans_a(self) -> bool {
        matches!(self, MatmulForm::AtB | MatmulForm::AtBt)
    }

    fn trans_b(self) -> bool {
        matches!(self, MatmulForm::ABt | MatmulForm::AtBt)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    lda4: u32,
    ldb4: u32,
    a_batch_stride4: u32,
    b_batch_stride4: u32,
}

/// (M, N, K, batch, output batched?) of `op(a) op(b)`; B of rank 2 is shared over the
/// batch of A.
fn dims(a: &Tensor, b: &Tensor, form: MatmulForm) -> Result<(usize, usize, usize, usize, bool)> {
    const OP: &str = "matmul";
    for t in [a, b] {
        if t.dtype() != DType::F32 {
            return Err(Error::DType {
                op: OP,
                expected: DType::F32,
                got: t.dtype(),
            });
        }
    }
    let ma = MatrixShape::of(OP, a.shape())?;
    let mb = MatrixShape::of(OP, b.shape())?;
    let (m, ka) = if form.trans_a() {
        (ma.cols, ma.rows)
    } else {
        (ma.rows, ma.cols)
    };
    let (n, kb) = if form.trans_b() {
        (mb.rows, mb.cols)
    } else {
        (mb.cols, mb.rows)
    };
    let batch_ok = !mb.batched || (ma.batched && mb.batch == ma.batch);
    if ka != kb || !batch_ok {
        return Err(Error::Shape {
            op: OP,
            expected: format!("operands of {form:?} agreeing on K = {ka} and on the batch"),
            got: format!("{:?} and {:?}", a.shape(), b.shape()),
        });
    }
    Ok((m, n, ka, ma.batch, ma.batched))
}

/// `op(a) op(b)` into a new f32 tensor `[M, N]` or `[batch, M, N]`.
pub fn matmul(ctx: &GpuContext, a: &Tensor, b: &Tensor, form: MatmulForm) -> Result<Tensor> {
    matmul_with(ctx, a, b, form, F32Matmul::Auto)
}

/// `matmul` on a chosen kernel (tests and benchmarks compare them on one adapter).
pub fn matmul_with(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    form: MatmulForm,
    kernel: F32Matmul,
) -> Result<Tensor> {
    let (m, n, _, batch, batched) = dims(a, b, form)?;
    let shape: Vec<usize> = if batched {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    let c = ctx.empty(&shape, DType::F32)?;
    matmul_into_with(ctx, a, b, &c, form, false, kernel)?;
    Ok(c)
}

/// Split-K for `A^T B` with few output tiles and a long K (weight gradients, whose K is
/// every pixel of every image): that many K-chunks run as a batch of matmuls into partial
/// products, then one channel sum adds them, instead of one workgroup walking all of K.
fn split_k_chunks(
    launch: &Launch,
    kernel: F32Matmul,
    form: MatmulForm,
    (m, n, k, batch): (usize, usize, usize, usize),
) -> usize {
    // Below `max_tiles` output tiles, split until about `workgroups` run: the
    // register-blocked kernels' small workgroups fill a CPU with 256; the tiled kernel's
    // 256 invocations fill a GPU's multiprocessors at several per unit (an H100 holds
    // 132 x 8 of them).
    let (max_tiles, workgroups) = match kernel {
        F32Matmul::Tiled => (512, 1024),
        _ => (64, 256),
    };
    let tiles = batch * m.div_ceil(launch.tile_rows) * n.div_ceil(launch.tile_cols);
    if form != MatmulForm::AtB || batch != 1 || tiles >= max_tiles || k < 2048 {
        return 1;
    }
    // Chunks of at least 512 along K, enough of them to fill the device, dividing K.
    let want = (workgroups / tiles).clamp(2, k / 512);
    (2..=want).rev().find(|c| k.is_multiple_of(*c)).unwrap_or(1)
}

/// `c = op(a) op(b)`, or `c += op(a) op(b)` when `accumulate`.
pub fn matmul_into(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    form: MatmulForm,
    accumulate: bool,
) -> Result<()> {
    matmul_into_with(ctx, a, b, c, form, accumulate, F32Matmul::Auto)
}

/// `matmul_into` on a chosen kernel.
pub fn matmul_into_with(
    ctx: &GpuContext,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    form: MatmulForm,
    accumulate: bool,
    kernel: F32Matmul,
) -> Result<()> {
    const OP: &str = "matmul";
    let (m, n, k, batch, batched) = dims(a, b, form)?;
    let want: Vec<usize> = if batched {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    c.expect(OP, &want, DType::F32)?;
    let kernel = kernel.resolve(ctx, m, n);
    let launch = launch(ctx, kernel, n);
    let chunks = split_k_chunks(&launch, kernel, form, (m, n, k, batch));
    // CPU drivers read an operand several times faster along its stored rows than down
    // its columns (4x on lavapipe for weight-gradient shapes): a long-K A^T B runs on
    // transposed copies as A' B'^T. The tiled kernel reads along stored rows already.
    let k_rows = form == MatmulForm::AtB
        && batch == 1
        && k >= 2048
        && kernel == F32Matmul::Registers
        && ctx.is_cpu_adapter();
    if chunks > 1 || k_rows {
        // A [K, M] and B [K, N] are contiguous in K: a batch of [K / chunks, M] x
        // [K / chunks, N] products, summed over the batch into C.
        let kc = k / chunks;
        let a = a.reshape(&[chunks, kc, m])?;
        let b = b.reshape(&[chunks, kc, n])?;
        let parts = if k_rows {
            let at = layout::transpose_matrices(ctx, &a)?;
            let bt = layout::transpose_matrices(ctx, &b)?;
            matmul_with(ctx, &at, &bt, MatmulForm::ABt, kernel)?
        } else {
            matmul_with(ctx, &a, &b, MatmulForm::AtB, kernel)?
        };
        return super::channel_sum_into(
            ctx,
            &parts.reshape(&[chunks, m * n])?,
            &c.reshape(&[m * n])?,
            accumulate,
        );
    }
    let b_shared = b.shape().len() == 2;
    to_u32(OP, "output size", batch * m * n)?;
    // The kernel reads vec4s along each operand's stored rows.
    let a = super::copy::pad_last_dim(ctx, a, 4)?;
    let b = super::copy::pad_last_dim(ctx, b, 4)?;
    let lda = a.shape()[a.shape().len() - 1];
    let a_rows = if form.trans_a() { k } else { m };
    let ldb = b.shape()[b.shape().len() - 1];
    let b_rows = if form.trans_b() { n } else { k };
    let params = Params {
        m: to_u32(OP, "M", m)?,
        n: to_u32(OP, "N", n)?,
        k: to_u32(OP, "K", k)?,
        lda4: to_u32(OP, "A row", lda / 4)?,
        ldb4: to_u32(OP, "B row", ldb / 4)?,
        a_batch_stride4: to_u32(OP, "A batch stride", a_rows * lda / 4)?,
        b_batch_stride4: if b_shared {
            0
        } else {
            to_u32(OP, "B batch stride", b_rows * ldb / 4)?
        },
    };
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    let mut constants = vec![
        ("TRANS_A", flag(form.trans_a())),
        ("TRANS_B", flag(form.trans_b())),
        ("ACCUMULATE", flag(accumulate)),
    ];
    let col_tiles = n.div_ceil(launch.tile_cols);
    let mut row_tiles = m.div_ceil(launch.tile_rows);
    if let Some(lanes) = launch.lanes {
        let grouped = super::subgroup_row_tiles(row_tiles * col_tiles * batch);
        row_tiles = row_tiles.div_ceil(grouped);
        constants.push(("WG", lanes as f64));
        constants.push(("ROW_TILES", grouped as f64));
    }
    ctx.dispatch(
        launch.kernel,
        &constants,
        &[&a, &b, c],
        &params,
        [
            to_u32(OP, "column tiles", col_tiles)?,
            to_u32(OP, "row tiles", row_tiles)?,
            to_u32(OP, "batch", batch)?,
        ],
    )
}
