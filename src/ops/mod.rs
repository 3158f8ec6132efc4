//! Host side of each kernel family: shape checks, output allocation, workgroup counts,
//! forward (and, where the family has one, backward). Each `ops/x.rs` has its CPU
//! oracle in `reference/x.rs`.

pub mod attention;
pub mod binary_matmul;
pub mod copy;
pub mod matmul;
pub mod pack;

pub use binary_matmul::{binary_matmul, matmul_f32_bits, BinaryForm};
pub use copy::{copy, pad_last_dim};
pub use matmul::{matmul, matmul_into, MatmulForm};
pub use pack::{pack_bits, PackMode};

use crate::error::{Error, Result};

/// A matrix operand seen as `[batch, rows, cols]`: rank 2 is one matrix (batch 1,
/// `batched = false`), rank 3 a batch of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MatrixShape {
    pub batch: usize,
    pub rows: usize,
    pub cols: usize,
    pub batched: bool,
}

impl MatrixShape {
    pub fn of(op: &'static str, shape: &[usize]) -> Result<Self> {
        match *shape {
            [rows, cols] => Ok(Self {
                batch: 1,
                rows,
                cols,
                batched: false,
            }),
            [batch, rows, cols] => Ok(Self {
                batch,
                rows,
                cols,
                batched: true,
            }),
            _ => Err(Error::Shape {
                op,
                expected: "[rows, cols] or [batch, rows, cols]".into(),
                got: format!("{shape:?}"),
            }),
        }
    }
}

/// Sizes go to shaders as u32: refuse anything larger rather than wrap.
pub(crate) fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::InvalidArgument(format!(
            "{op}: {what} = {v} does not fit the kernel's u32 indices"
        ))
    })
}
