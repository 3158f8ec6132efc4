//! Element types of tensor storage and the words they take: below both the GPU layer and
//! the error type, which names dtypes in its messages.

/// Element type of a tensor's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DType {
    /// 32-bit floats.
    F32,
    /// 32-bit unsigned integers.
    U32,
    /// 64-bit two's-complement fixed-point counts, two words each (low word first): the
    /// reversible blocks' streams (see ops::reversible).
    I64,
    /// Bits packed 32 to a `u32` along the last dimension, least significant bit first,
    /// each row zero-padded to a whole number of 128-bit groups (4 words), so kernels
    /// can read rows as `vec4<u32>`. The shape counts bits, not words.
    PackedBits,
}

/// Words of storage per row of `k` packed bits: ceil(k / 128) * 4.
pub fn words_per_row(k: usize) -> usize {
    k.div_ceil(128) * 4
}

/// Number of 4-byte words a tensor of this shape and dtype stores.
pub fn storage_words(shape: &[usize], dtype: DType) -> usize {
    match dtype {
        DType::F32 | DType::U32 => shape.iter().product(),
        DType::I64 => 2 * shape.iter().product::<usize>(),
        DType::PackedBits => match shape.split_last() {
            None => 0,
            Some((k, rows)) => rows.iter().product::<usize>() * words_per_row(*k),
        },
    }
}
