//! Conv2d 3x3, stride 1, padding 1, no bias, on channel-last images (shaders/conv.wgsl):
//! im2col into columns, then the tuned GEMMs (`matmul`, `binary_matmul`).
//!
//! Layouts (the same everywhere in bitspike):
//! - images `[images, H, W, C]` ("NHWC", T folded into the images: `images = T * B`),
//!   so that a conv is im2col + matmul with C contiguous and the tokenizer's output
//!   `[T * B, H, W, D]` is the tokens `[T, B, N = H * W, D]` by a reshape;
//! - weights `[C_out, 9 * C_in]` with column `(ky * 3 + kx) * C_in + c`, i.e. PyTorch's
//!   `[C_out, C_in, 3, 3]` permuted to `[C_out, 3, 3, C_in]`
//!   ([`conv_weight_from_torch`], [`conv_weight_to_torch`]);
//! - outputs `[images, H, W, C_out]`.
//!
//! The columns are 9x the input, so the ops run over chunks of images whose columns fit
//! [`Conv3x3::max_cols_bytes`] (and the device's binding limit); parameter gradients
//! accumulate over the chunks.

use super::{
    binary_matmul, matmul, matmul_into, pack_bits, spike_weight_grad_into, to_u32, BinaryForm,
    MatmulForm, PackMode,
};
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

const IM2COL: Kernel = Kernel {
    shader: Shader::Conv,
    entry: "im2col",
    bindings: &[Access::Read, Access::ReadWrite],
};

const IM2COL_BITS: Kernel = Kernel {
    shader: Shader::Conv,
    entry: "im2col_bits",
    bindings: &[Access::Read, Access::ReadWrite],
};

const COL2IM: Kernel = Kernel {
    shader: Shader::Conv,
    entry: "col2im",
    bindings: &[Access::Read, Access::ReadWrite],
};

const IM2COL_VEC4: Kernel = Kernel {
    shader: Shader::Conv,
    entry: "im2col_vec4",
    bindings: &[Access::Read, Access::ReadWrite],
};

const COL2IM_VEC4: Kernel = Kernel {
    shader: Shader::Conv,
    entry: "col2im_vec4",
    bindings: &[Access::Read, Access::ReadWrite],
};

/// The scalar kernel, or its 4-channel form when C is a multiple of 4, and the elements
/// each of its invocations moves.
fn by_channels(c: usize, scalar: Kernel, vec4: Kernel) -> (Kernel, usize) {
    if c.is_multiple_of(4) {
        (vec4, 4)
    } else {
        (scalar, 1)
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    h: u32,
    w: u32,
    c: u32,
    first_image: u32,
    total: u32,
    words_per_row: u32,
    in_words_per_row: u32,
}

/// PyTorch's conv weight `[C_out, C_in, 3, 3]` as bitspike's `[C_out, 9 * C_in]`
/// (column `(ky * 3 + kx) * C_in + c`).
pub fn conv_weight_from_torch(w: &[f32], c_out: usize, c_in: usize) -> Result<Vec<f32>> {
    check_weight_len("conv_weight_from_torch", w, c_out, c_in)?;
    let mut out = vec![0f32; w.len()];
    for o in 0..c_out {
        for c in 0..c_in {
            for t in 0..9 {
                out[(o * 9 + t) * c_in + c] = w[(o * c_in + c) * 9 + t];
            }
        }
    }
    Ok(out)
}

/// The inverse of [`conv_weight_from_torch`].
pub fn conv_weight_to_torch(w: &[f32], c_out: usize, c_in: usize) -> Result<Vec<f32>> {
    check_weight_len("conv_weight_to_torch", w, c_out, c_in)?;
    let mut out = vec![0f32; w.len()];
    for o in 0..c_out {
        for c in 0..c_in {
            for t in 0..9 {
                out[(o * c_in + c) * 9 + t] = w[(o * 9 + t) * c_in + c];
            }
        }
    }
    Ok(out)
}

fn check_weight_len(op: &'static str, w: &[f32], c_out: usize, c_in: usize) -> Result<()> {
    if w.len() != c_out * c_in * 9 {
        return Err(Error::Shape {
            op,
            expected: format!("{} weights ({c_out} x {c_in} x 3 x 3)", c_out * c_in * 9),
            got: format!("{}", w.len()),
        });
    }
    Ok(())
}

/// Image geometry of one conv call.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    images: usize,
    h: usize,
    w: usize,
    c_in: usize,
    c_out: usize,
}

impl Geometry {
    fn pixels(&self) -> usize {
        self.h * self.w
    }

    fn k(&self) -> usize {
        9 * self.c_in
    }
}

/// Checks `x [images, H, W, C_in]` (f32) and a weight `[C_out, 9 C_in]` of `w_dtype`.
fn geometry(op: &'static str, x: &Tensor, w: &Tensor, w_dtype: DType) -> Result<Geometry> {
    let &[images, h, wd, c_in] = x.shape() else {
        return Err(Error::Shape {
            op,
            expected: "images [images, H, W, C_in]".into(),
            got: format!("{:?}", x.shape()),
        });
    };
    x.expect(op, x.shape(), DType::F32)?;
    let c_out = w.shape().first().copied().unwrap_or(0);
    w.expect(op, &[c_out, 9 * c_in], w_dtype)?;
    Ok(Geometry {
        images,
        h,
        w: wd,
        c_in,
        c_out,
    })
}

/// What a conv's input holds, which decides how its weight gradient is computed.
#[derive(Debug, Clone, Copy)]
pub enum ConvInput<'a> {
    /// Any real values: dW from the f32 columns.
    Real,
    /// Spikes {0,1}: dW by masked sums of dY over the packed columns.
    Spikes,
    /// Spikes whose packed columns `PackedBits [images * H * W, 9 C_in]` the forward
    /// kept ([`Conv3x3::forward_binary_saved`]).
    SpikeColumns(&'a Tensor),
}

/// A 3x3 convolution's memory plan: the im2col columns of one chunk of images take at
/// most `max_cols_bytes` (at least one image per chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv3x3 {
    /// The most bytes of im2col columns one chunk may take.
    pub max_cols_bytes: u64,
}

impl Default for Conv3x3 {
    fn default() -> Self {
        Self {
            max_cols_bytes: 128 << 20,
        }
    }
}

/// The images `[first, first + count)` of one chunk.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    first: usize,
    count: usize,
}

impl Conv3x3 {
    fn chunks(&self, ctx: &GpuContext, g: &Geometry, row_bytes: usize) -> Vec<Chunk> {
        let budget = self
            .max_cols_bytes
            .min(ctx.limits.max_storage_buffer_binding_size);
        let per_image = (g.pixels() * row_bytes).max(1) as u64;
        let size = ((budget / per_image) as usize).clamp(1, g.images.max(1));
        (0..g.images)
            .step_by(size)
            .map(|first| Chunk {
                first,
                count: size.min(g.images - first),
            })
            .collect()
    }

    /// The f32 columns `[count * H * W, 9 C_in]` of a chunk.
    fn im2col(&self, ctx: &GpuContext, x: &Tensor, g: &Geometry, ch: Chunk) -> Result<Tensor> {
        const OP: &str = "im2col";
        let rows = ch.count * g.pixels();
        let cols = ctx.empty(&[rows, g.k()], DType::F32)?;
        let (kernel, width) = by_channels(g.c_in, IM2COL, IM2COL_VEC4);
        let total = rows * g.k() / width;
        let params = Params {
            h: to_u32(OP, "H", g.h)?,
            w: to_u32(OP, "W", g.w)?,
            c: to_u32(OP, "C", g.c_in)?,
            first_image: to_u32(OP, "first image", ch.first)?,
            total: to_u32(OP, "columns", total)?,
            words_per_row: 0,
            in_words_per_row: 0,
        };
        to_u32(OP, "images", x.len())?;
        ctx.dispatch(
            kernel,
            &[],
            &[x, &cols],
            &params,
            grid_1d(ctx, total.div_ceil(256) as u64)?,
        )?;
        Ok(cols)
    }

    /// The spike columns packed along `9 C_in`: `PackedBits [count * H * W, 9 C_in]`, from
    /// the images' spikes packed per pixel (`pixel_bits`, `PackedBits [images * H * W,
    /// C_in]`).
    fn im2col_bits(
        &self,
        ctx: &GpuContext,
        pixel_bits: &Tensor,
        g: &Geometry,
        ch: Chunk,
    ) -> Result<Tensor> {
        const OP: &str = "im2col_bits";
        let rows = ch.count * g.pixels();
        let bits = ctx.empty(&[rows, g.k()], DType::PackedBits)?;
        let wpr = words_per_row(g.k());
        let words = rows * wpr;
        let params = Params {
            h: to_u32(OP, "H", g.h)?,
            w: to_u32(OP, "W", g.w)?,
            c: to_u32(OP, "C", g.c_in)?,
            first_image: to_u32(OP, "first image", ch.first)?,
            total: to_u32(OP, "words", words)?,
            words_per_row: to_u32(OP, "words per row", wpr)?,
            in_words_per_row: to_u32(OP, "input words per pixel", words_per_row(g.c_in))?,
        };
        to_u32(OP, "input words", pixel_bits.len())?;
        ctx.dispatch(
            IM2COL_BITS,
            &[],
            &[pixel_bits, &bits],
            &params,
            grid_1d(ctx, words.div_ceil(256) as u64)?,
        )?;
        Ok(bits)
    }

    /// Gather the chunk's column gradients into its images' part of `dx`.
    fn col2im(
        &self,
        ctx: &GpuContext,
        dcols: &Tensor,
        dx: &Tensor,
        g: &Geometry,
        ch: Chunk,
    ) -> Result<()> {
        const OP: &str = "col2im";
        let (kernel, width) = by_channels(g.c_in, COL2IM, COL2IM_VEC4);
        let total = ch.count * g.pixels() * g.c_in / width;
        let params = Params {
            h: to_u32(OP, "H", g.h)?,
            w: to_u32(OP, "W", g.w)?,
            c: to_u32(OP, "C", g.c_in)?,
            first_image: to_u32(OP, "first image", ch.first)?,
            total: to_u32(OP, "elements", total)?,
            words_per_row: 0,
            in_words_per_row: 0,
        };
        to_u32(OP, "images", dx.len())?;
        ctx.dispatch(
            kernel,
            &[],
            &[dcols, dx],
            &params,
            grid_1d(ctx, total.div_ceil(256) as u64)?,
        )
    }

    /// Run `gemm` on each chunk and place its `[rows, C_out]` output in `y`.
    fn forward_chunks(
        &self,
        ctx: &GpuContext,
        g: &Geometry,
        row_bytes: usize,
        mut gemm: impl FnMut(Chunk) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let out_shape = [g.images, g.h, g.w, g.c_out];
        let chunks = self.chunks(ctx, g, row_bytes);
        if let [only] = chunks[..] {
            return gemm(only)?.reshape(&out_shape);
        }
        let y = ctx.empty(&out_shape, DType::F32)?;
        let per_image = g.pixels() * g.c_out;
        for ch in chunks {
            let part = gemm(ch)?;
            super::copy_range(
                ctx,
                &part,
                0,
                &y,
                ch.first * per_image,
                ch.count * per_image,
            )?;
        }
        Ok(y)
    }

    /// `y = conv3x3(x, w)`: x f32 `[images, H, W, C_in]`, w f32 `[C_out, 9 C_in]`,
    /// y f32 `[images, H, W, C_out]`.
    pub fn forward(&self, ctx: &GpuContext, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let g = geometry("conv3x3", x, w, DType::F32)?;
        self.forward_chunks(ctx, &g, 4 * g.k(), |ch| {
            matmul(ctx, &self.im2col(ctx, x, &g, ch)?, w, MatmulForm::ABt)
        })
    }

    /// The binary conv: x f32 spikes {0,1} `[images, H, W, C_in]` (bit = x > 0), w packed
    /// signs `PackedBits [C_out, 9 C_in]` (bit 1 = +1), y f32 `[images, H, W, C_out]`
    /// (exact integer sums). Its backward is [`Conv3x3::backward`] with the f32 sign
    /// weights (straight-through).
    pub fn forward_binary(&self, ctx: &GpuContext, x: &Tensor, w_bits: &Tensor) -> Result<Tensor> {
        Ok(self.forward_binary_saved(ctx, x, w_bits)?.0)
    }

    /// [`Conv3x3::forward_binary`], also returning the packed spike columns when they fit
    /// one chunk: the backward's dW reads them ([`ConvInput::SpikeColumns`]).
    pub fn forward_binary_saved(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        w_bits: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let g = geometry("conv3x3_binary", x, w_bits, DType::PackedBits)?;
        // Packing each pixel once reads every spike once; the columns then copy bit ranges.
        let pixel_bits = pack_bits(
            ctx,
            &x.reshape(&[g.images * g.pixels(), g.c_in])?,
            PackMode::Spikes,
        )?;
        let mut kept = None;
        let y = self.forward_chunks(ctx, &g, 4 * words_per_row(g.k()), |ch| {
            let bits = self.im2col_bits(ctx, &pixel_bits, &g, ch)?;
            let y = binary_matmul(ctx, &bits, w_bits, None, BinaryForm::SpikesSigns)?;
            if ch.count == g.images {
                kept = Some(bits);
            }
            Ok(y)
        })?;
        Ok((y, kept))
    }

    /// The chunk's rows of `dy` as `[rows, C_out]` (a view when there is one chunk).
    fn dy_rows(&self, ctx: &GpuContext, dy: &Tensor, g: &Geometry, ch: Chunk) -> Result<Tensor> {
        let rows = ch.count * g.pixels();
        if ch.count == g.images {
            return dy.reshape(&[rows, g.c_out]);
        }
        let part = ctx.empty(&[rows, g.c_out], DType::F32)?;
        let start = ch.first * g.pixels() * g.c_out;
        super::copy_range(ctx, dy, start, &part, 0, rows * g.c_out)?;
        Ok(part)
    }

    #[allow(clippy::too_many_arguments)]
    fn backward_impl(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        dw: Option<&Tensor>,
        want_dx: bool,
        input: ConvInput,
    ) -> Result<Option<Tensor>> {
        const OP: &str = "conv3x3_backward";
        let g = geometry(OP, x, w, DType::F32)?;
        dy.expect(OP, &[g.images, g.h, g.w, g.c_out], DType::F32)?;
        if let Some(dw) = dw {
            dw.expect(OP, w.shape(), DType::F32)?;
        }
        let dx = if want_dx {
            Some(ctx.empty(x.shape(), DType::F32)?)
        } else {
            None
        };
        // Spikes: the columns as bits (see `forward_binary`), dW by masked sums of dY;
        // columns the forward kept cover every image at once.
        let pixel_bits = match (input, dw) {
            (ConvInput::SpikeColumns(cols), Some(dw)) => {
                cols.expect(OP, &[g.images * g.pixels(), g.k()], DType::PackedBits)?;
                let dy_rows = dy.reshape(&[g.images * g.pixels(), g.c_out])?;
                spike_weight_grad_into(ctx, &dy_rows, cols, dw, true)?;
                None
            }
            (ConvInput::Spikes, Some(_)) => Some(pack_bits(
                ctx,
                &x.reshape(&[g.images * g.pixels(), g.c_in])?,
                PackMode::Spikes,
            )?),
            _ => None,
        };
        for ch in self.chunks(ctx, &g, 4 * g.k()) {
            let dy_c = self.dy_rows(ctx, dy, &g, ch)?;
            match (dw, &pixel_bits, input) {
                (Some(dw), Some(pixel_bits), _) => {
                    let bits = self.im2col_bits(ctx, pixel_bits, &g, ch)?;
                    spike_weight_grad_into(ctx, &dy_c, &bits, dw, true)?;
                }
                (Some(dw), None, ConvInput::Real) => {
                    let cols = self.im2col(ctx, x, &g, ch)?;
                    matmul_into(ctx, &dy_c, &cols, dw, MatmulForm::AtB, true)?;
                }
                _ => {}
            }
            if let Some(dx) = &dx {
                let dcols = matmul(ctx, &dy_c, w, MatmulForm::AB)?;
                self.col2im(ctx, &dcols, dx, &g, ch)?;
            }
        }
        Ok(dx)
    }

    /// Backward of [`Conv3x3::forward`] (and, with the f32 sign weights, of
    /// [`Conv3x3::forward_binary`]): `dw += dY^T cols(x)` and returns
    /// `dx = col2im(dY w)` `[images, H, W, C_in]`. With [`ConvInput::Spikes`], x must
    /// hold spikes {0,1}: dW then comes from their packed columns.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        dw: &Tensor,
        input: ConvInput,
    ) -> Result<Tensor> {
        let dx = self.backward_impl(ctx, x, w, dy, Some(dw), true, input)?;
        Ok(dx.expect("backward_impl returns dx when asked"))
    }

    /// Only `dw += dY^T cols(x)` (a first layer, whose input needs no gradient).
    pub fn backward_weight(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
        dw: &Tensor,
        input: ConvInput,
    ) -> Result<()> {
        self.backward_impl(ctx, x, w, dy, Some(dw), false, input)?;
        Ok(())
    }

    /// Only `dx = col2im(dY w)` (frozen weights).
    pub fn backward_input(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
    ) -> Result<Tensor> {
        let dx = self.backward_impl(ctx, x, w, dy, None, true, ConvInput::Real)?;
        Ok(dx.expect("backward_impl returns dx when asked"))
    }
}

/// [`Conv3x3::forward`] with the default memory plan.
pub fn conv3x3(ctx: &GpuContext, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    Conv3x3::default().forward(ctx, x, w)
}

/// [`Conv3x3::forward_binary`] with the default memory plan.
pub fn conv3x3_binary(ctx: &GpuContext, x: &Tensor, w_bits: &Tensor) -> Result<Tensor> {
    Conv3x3::default().forward_binary(ctx, x, w_bits)
}

/// [`Conv3x3::backward`] with the default memory plan: `dw += ..`, returns dx.
pub fn conv3x3_backward(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    input: ConvInput,
) -> Result<Tensor> {
    Conv3x3::default().backward(ctx, x, w, dy, dw, input)
}
