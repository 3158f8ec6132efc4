//! Tiled f32 matmul with the transposed forms backward passes need
//! (shaders/matmul.wgsl).

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

/// The kernel for this adapter, the C rows x columns one of its workgroups computes for
/// `n` output columns, and its workgroup size (subgroup kernel only).
fn kernel_and_tile(ctx: &GpuContext, n: usize) -> (Kernel, usize, usize, Option<usize>) {
    if ctx.subgroup_kernels {
        let lanes = super::subgroup_tile_lanes(n);
        let kernel = if n.is_multiple_of(4) {
            MATMUL_SUBGROUP_VEC4
        } else {
            MATMUL_SUBGROUP
        };
        (kernel, 16, 4 * lanes, Some(lanes))
    } else {
        (MATMUL, 64, 32, None)
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
    let (m, n, _, batch, batched) = dims(a, b, form)?;
    let shape: Vec<usize> = if batched {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    let c = ctx.empty(&shape, DType::F32)?;
    matmul_into(ctx, a, b, &c, form, false)?;
    Ok(c)
}

/// Split-K for `A^T B` with few output tiles and a long K (weight gradients, whose K is
/// every pixel of every image): that many K-chunks run as a batch of matmuls into partial
/// products, then one channel sum adds them, instead of one workgroup walking all of K.
fn split_k_chunks(
    ctx: &GpuContext,
    form: MatmulForm,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
) -> usize {
    let (_, tile_rows, tile_cols, _) = kernel_and_tile(ctx, n);
    let tiles = batch * m.div_ceil(tile_rows) * n.div_ceil(tile_cols);
    if form != MatmulForm::AtB || batch != 1 || tiles >= 64 || k < 2048 {
        return 1;
    }
    // Chunks of at least 512 along K, enough of them to fill the device, dividing K.
    let want = (256 / tiles).clamp(2, k / 512);
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
    const OP: &str = "matmul";
    let (m, n, k, batch, batched) = dims(a, b, form)?;
    let want: Vec<usize> = if batched {
        vec![batch, m, n]
    } else {
        vec![m, n]
    };
    c.expect(OP, &want, DType::F32)?;
    let chunks = split_k_chunks(ctx, form, m, n, k, batch);
    // CPU drivers read an operand several times faster along its stored rows than down
    // its columns (4x on lavapipe for weight-gradient shapes): a long-K A^T B runs on
    // transposed copies as A' B'^T.
    let k_rows = form == MatmulForm::AtB && batch == 1 && k >= 2048 && ctx.is_cpu_adapter();
    if chunks > 1 || k_rows {
        // A [K, M] and B [K, N] are contiguous in K: a batch of [K / chunks, M] x
        // [K / chunks, N] products, summed over the batch into C.
        let kc = k / chunks;
        let a = a.reshape(&[chunks, kc, m])?;
        let b = b.reshape(&[chunks, kc, n])?;
        let parts = if k_rows {
            let at = layout::transpose_matrices(ctx, &a)?;
            let bt = layout::transpose_matrices(ctx, &b)?;
            matmul(ctx, &at, &bt, MatmulForm::ABt)?
        } else {
            matmul(ctx, &a, &b, MatmulForm::AtB)?
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
    let (kernel, tile_rows, tile_cols, lanes) = kernel_and_tile(ctx, n);
    let mut constants = vec![
        ("TRANS_A", flag(form.trans_a())),
        ("TRANS_B", flag(form.trans_b())),
        ("ACCUMULATE", flag(accumulate)),
    ];
    let mut row_tiles = m.div_ceil(tile_rows);
    if let Some(lanes) = lanes {
        let grouped = super::subgroup_row_tiles(row_tiles * n.div_ceil(tile_cols) * batch);
        row_tiles = row_tiles.div_ceil(grouped);
        constants.push(("WG", lanes as f64));
        constants.push(("ROW_TILES", grouped as f64));
    }
    ctx.dispatch(
        kernel,
        &constants,
        &[&a, &b, c],
        &params,
        [
            to_u32(OP, "column tiles", n.div_ceil(tile_cols))?,
            to_u32(OP, "row tiles", row_tiles)?,
            to_u32(OP, "batch", batch)?,
        ],
    )
}
