//! CPU reference of bit packing (shaders/pack.wgsl).

use crate::gpu::words_per_row;
use crate::ops::PackMode;

/// Pack rows `[rows, k]` into `[rows, ceil(k/32)]` words, LSB first, zero-padded.
pub fn pack_bits(x: &[f32], k: usize, mode: PackMode) -> Vec<u32> {
    let rows = x.len().checked_div(k).unwrap_or(0);
    let kw = words_per_row(k);
    let mut out = vec![0u32; rows * kw];
    for r in 0..rows {
        for c in 0..k {
            let v = x[r * k + c];
            let on = match mode {
                PackMode::Spikes => v > 0.0,
                PackMode::Signs => v >= 0.0,
            };
            if on {
                out[r * kw + c / 32] |= 1 << (c % 32);
            }
        }
    }
    out
}

/// The values the bits stand for, `[rows, k]`: {0,1} for spikes, {-1,+1} for signs.
pub fn unpack_bits(words: &[u32], rows: usize, k: usize, mode: PackMode) -> Vec<f32> {
    let kw = words_per_row(k);
    let mut out = Vec::with_capacity(rows * k);
    for r in 0..rows {
        for c in 0..k {
            let on = words[r * kw + c / 32] >> (c % 32) & 1 == 1;
            out.push(match (mode, on) {
                (_, true) => 1.0,
                (PackMode::Spikes, false) => 0.0,
                (PackMode::Signs, false) => -1.0,
            });
        }
    }
    out
}
