//! What an inference forward shows when asked (`ParamStore::trace`): the input of every
//! conv and linear layer (spikes, for all but the first layer) and the 1-bit attention map
//! of every block whose form builds one. Recording keeps handles to tensors the forward
//! computes anyway, so it adds no kernel; a forward without a trace records nothing.

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::gpu::{words_per_row, GpuContext, Tensor};

/// The recorded tensors of the forwards since the trace was set, in the order the layers
/// ran.
#[derive(Default)]
pub struct Trace {
    inputs: RefCell<Vec<(String, Tensor)>>,
    maps: RefCell<Vec<(String, Tensor)>>,
}

/// One block's binary attention maps, on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionMaps {
    /// The block's attention module (`block.{i}.attn`).
    pub block: String,
    /// Time steps T.
    pub time_steps: usize,
    /// Samples B of the forward.
    pub batch: usize,
    /// Heads.
    pub heads: usize,
    /// Tokens N: each map is N x N, query rows by key columns.
    pub tokens: usize,
    /// `[T, B, heads, N, N]` bits as 0 / 1.
    pub bits: Vec<u8>,
}

impl AttentionMaps {
    /// The map of sample `b`, head `h` at time step `t`: N rows (queries) of N keys.
    pub fn map(&self, t: usize, b: usize, h: usize) -> &[u8] {
        let n2 = self.tokens * self.tokens;
        let i = (t * self.batch + b) * self.heads + h;
        &self.bits[i * n2..(i + 1) * n2]
    }
}

impl Trace {
    /// Keep `x`, the input of the layer `name`.
    pub fn record_input(&self, name: &str, x: &Tensor) {
        self.inputs.borrow_mut().push((name.to_string(), x.clone()));
    }

    /// Keep block `name`'s packed map `PackedBits [T * B * heads, N, N]`.
    pub fn record_map(&self, name: &str, map: &Tensor) {
        self.maps.borrow_mut().push((name.to_string(), map.clone()));
    }

    /// The names of the layers whose inputs were recorded, in the order they ran.
    pub fn layer_names(&self) -> Vec<String> {
        self.inputs
            .borrow()
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The input of layer `name` (its first recording), as f32 in the layer's layout:
    /// time first, `T * B` slices of equal size.
    pub fn input(&self, ctx: &GpuContext, name: &str) -> Result<Vec<f32>> {
        let inputs = self.inputs.borrow();
        let (_, x) = inputs.iter().find(|(n, _)| n == name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no layer '{name}' in this model; its layers: {}",
                self.layer_names().join(", ")
            ))
        })?;
        ctx.download_f32(x)
    }

    /// Every recorded attention map, unpacked, for forwards of `time_steps` steps,
    /// `batch` samples and `heads` heads.
    pub fn attention_maps(
        &self,
        ctx: &GpuContext,
        time_steps: usize,
        batch: usize,
        heads: usize,
    ) -> Result<Vec<AttentionMaps>> {
        self.maps
            .borrow()
            .iter()
            .map(|(name, map)| {
                let shape = map.shape();
                let (rows, n) = match shape {
                    [maps, n, k] if n == k && *maps == time_steps * batch * heads => (maps * n, *n),
                    _ => {
                        return Err(Error::Shape {
                            op: "attention map readout",
                            expected: format!("[{}, N, N]", time_steps * batch * heads),
                            got: format!("{shape:?}"),
                        })
                    }
                };
                let words: Vec<u32> = ctx.download_words(map)?;
                let per_row = words_per_row(n);
                let bits = (0..rows)
                    .flat_map(|r| {
                        let row = &words[r * per_row..(r + 1) * per_row];
                        (0..n).map(move |j| ((row[j / 32] >> (j % 32)) & 1) as u8)
                    })
                    .collect();
                Ok(AttentionMaps {
                    block: name.clone(),
                    time_steps,
                    batch,
                    heads,
                    tokens: n,
                    bits,
                })
            })
            .collect()
    }
}
