//! GPU tensors: a pooled storage buffer with a shape and a dtype, and the transfers
//! between host and device.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::cache::{size_class, PooledBuffer};
use super::GpuContext;
use crate::dtype::{storage_words, DType};
use crate::error::{Error, Result};

/// A tensor on the GPU: a whole pooled buffer, or a view into part of one (e.g. one
/// parameter of a model's flat parameter buffer). Clones share the buffer.
#[derive(Clone)]
pub struct Tensor {
    buffer: Arc<PooledBuffer>,
    /// Where the data starts in the buffer.
    offset_bytes: u64,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.dtype, self.shape)
    }
}

impl Tensor {
    /// The logical shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The element type of the storage.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Logical element count (bits for `PackedBits`).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the tensor's data occupies (the buffer may be larger).
    pub fn byte_len(&self) -> u64 {
        4 * storage_words(&self.shape, self.dtype) as u64
    }

    /// The buffer holding the tensor (it may be larger, pooled).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer
            .buffer
            .as_ref()
            .expect("a live tensor always holds its buffer")
    }

    /// Byte offset of the data in `buffer()`.
    pub fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }

    /// The binding of exactly the tensor's bytes (at least one word, as bindings must be
    /// non-empty).
    pub(crate) fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.buffer(),
            offset: self.offset_bytes,
            size: wgpu::BufferSize::new(self.byte_len().max(4)),
        })
    }

    /// The same data seen with another shape of the same storage size.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if storage_words(shape, self.dtype) != storage_words(&self.shape, self.dtype)
            || shape.iter().product::<usize>() != self.len()
        {
            return Err(Error::Shape {
                op: "reshape",
                expected: format!("{} elements", self.len()),
                got: format!("{shape:?}"),
            });
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            offset_bytes: self.offset_bytes,
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// A view of `shape` starting `offset_words` into this tensor's storage. The offset
    /// must keep the device's binding alignment (`view_alignment_words`).
    pub fn view(
        &self,
        ctx: &GpuContext,
        offset_words: usize,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        let align = ctx.view_alignment_words();
        let end = offset_words + storage_words(shape, dtype);
        let have = storage_words(&self.shape, self.dtype);
        if !offset_words.is_multiple_of(align) || end > have {
            return Err(Error::InvalidArgument(format!(
                "view of {dtype:?} {shape:?} at word {offset_words} of a tensor of {have} words \
                 (offsets must be multiples of {align} words and the view must fit)"
            )));
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            offset_bytes: self.offset_bytes + 4 * offset_words as u64,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Check shape and dtype in one call, for op wrappers.
    pub fn expect(&self, op: &'static str, shape: &[usize], dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DType {
                op,
                expected: dtype,
                got: self.dtype,
            });
        }
        if self.shape != shape {
            return Err(Error::Shape {
                op,
                expected: format!("{shape:?}"),
                got: format!("{:?}", self.shape),
            });
        }
        Ok(())
    }
}

impl GpuContext {
    /// The granule, in 4-byte words, of view offsets (the device's storage binding
    /// offset alignment).
    pub fn view_alignment_words(&self) -> usize {
        (self.limits.min_storage_buffer_offset_alignment as usize / 4).max(1)
    }

    /// Bytes held by free pooled buffers, waiting for reuse.
    pub fn pooled_idle_bytes(&self) -> u64 {
        let free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
        free.iter().map(|(size, v)| size * v.len() as u64).sum()
    }

    /// An uninitialised tensor from the pool (kernels overwrite every element).
    pub fn empty(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = (4 * storage_words(shape, dtype) as u64).max(4);
        self.check_buffer_size(&format!("{dtype:?} tensor {shape:?}"), bytes)?;
        let class = size_class(bytes);
        let reused = {
            let mut free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
            free.get_mut(&class).and_then(|v| v.pop())
        };
        let buffer = match reused {
            Some(b) => b,
            None => {
                let _turn = self.device_turn();
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: class,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        Ok(Tensor {
            buffer: Arc::new(PooledBuffer {
                buffer: Some(buffer),
                class,
                pool: Arc::downgrade(&self.pool.free),
            }),
            offset_bytes: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A tensor of zeros.
    pub fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = self.empty(shape, dtype)?;
        self.fill_zero(&t);
        Ok(t)
    }

    /// Set every word of `t` to zero (in order with the recorded work).
    pub fn fill_zero(&self, t: &Tensor) {
        let bytes = t.byte_len();
        if bytes > 0 {
            self.record(|enc| enc.clear_buffer(t.buffer(), t.offset_bytes, Some(bytes)));
        }
    }

    /// An error naming `what` when a buffer of `bytes` exceeds the device's limits.
    pub fn check_buffer_size(&self, what: &str, bytes: u64) -> Result<()> {
        let binding = self.limits.max_storage_buffer_binding_size;
        if bytes > binding {
            return Err(Error::BufferTooLarge {
                what: what.into(),
                bytes,
                limit: binding,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        if size_class(bytes) > self.limits.max_buffer_size {
            return Err(Error::BufferTooLarge {
                what: what.into(),
                bytes,
                limit: self.limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        Ok(())
    }

    /// Upload raw 4-byte words. The copy is recorded in order with the pending work, so
    /// an upload never overtakes a dispatch recorded before it.
    pub fn upload_words<T: bytemuck::Pod>(
        &self,
        data: &[T],
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        let t = self.empty(shape, dtype)?;
        self.write_words(&t, data)?;
        Ok(t)
    }

    /// Overwrite an existing tensor (or view) with raw 4-byte words, in order with the
    /// recorded work.
    pub fn write_words<T: bytemuck::Pod>(&self, t: &Tensor, data: &[T]) -> Result<()> {
        let want = storage_words(t.shape(), t.dtype());
        let bytes: &[u8] = bytemuck::cast_slice(data);
        if bytes.len() != 4 * want {
            return Err(Error::Shape {
                op: "upload",
                expected: format!("{want} words for {:?} {:?}", t.dtype(), t.shape()),
                got: format!("{} words", bytes.len() / 4),
            });
        }
        if want > 0 {
            let staging = {
                let _turn = self.device_turn();
                self.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("upload"),
                        contents: bytes,
                        usage: wgpu::BufferUsages::COPY_SRC,
                    })
            };
            // The recorded copy holds the staging buffer until the GPU is done with it: it
            // is destroyed then, inside a poll that has the device's turn.
            self.record(|enc| {
                enc.copy_buffer_to_buffer(
                    &staging,
                    0,
                    t.buffer(),
                    t.offset_bytes,
                    bytes.len() as u64,
                )
            });
        }
        Ok(())
    }

    /// Upload f32 `data` as a tensor of `shape`.
    pub fn upload_f32(&self, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        self.upload_words(data, shape, DType::F32)
    }

    /// Read a tensor's words back through a staging buffer (waits for the GPU).
    pub fn download_words<T: bytemuck::Pod>(&self, t: &Tensor) -> Result<Vec<T>> {
        let bytes = t.byte_len();
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = {
            let _turn = self.device_turn();
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("download"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let words = self.read_through(&staging, t);
        // Destroying the buffer, its last handle gone, reaches the GL context too.
        let _turn = self.device_turn();
        drop(staging);
        words
    }

    /// Copy `t` into `staging`, map it and read it.
    fn read_through<T: bytemuck::Pod>(&self, staging: &wgpu::Buffer, t: &Tensor) -> Result<Vec<T>> {
        self.record(|enc| {
            enc.copy_buffer_to_buffer(t.buffer(), t.offset_bytes, staging, 0, staging.size())
        });
        self.flush();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let _turn = self.device_turn();
            slice.map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        }
        self.sync()?;
        let mapped = rx.recv().map_err(|_| Error::Gpu {
            context: "download".into(),
            message: "the map callback never ran".into(),
        })?;
        mapped.map_err(|e| Error::Gpu {
            context: "download".into(),
            message: e.to_string(),
        })?;
        let view = slice.get_mapped_range().map_err(|e| Error::Gpu {
            context: "download".into(),
            message: e.to_string(),
        })?;
        let out = bytemuck::pod_collect_to_vec(&view);
        drop(view);
        let _turn = self.device_turn();
        staging.unmap();
        Ok(out)
    }

    /// Download an f32 tensor.
    pub fn download_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        if t.dtype() != DType::F32 {
            return Err(Error::DType {
                op: "download_f32",
                expected: DType::F32,
                got: t.dtype(),
            });
        }
        self.download_words(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_round_up_by_at_most_an_eighth() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes);
            assert!(
                c <= (bytes.max(256) * 9).div_ceil(8) + 256,
                "{bytes} -> {c}"
            );
        }
    }

    #[test]
    fn packed_storage_pads_each_row() {
        assert_eq!(storage_words(&[3, 33], DType::PackedBits), 12);
        assert_eq!(storage_words(&[2, 5, 129], DType::PackedBits), 80);
        assert_eq!(storage_words(&[2, 128], DType::PackedBits), 8);
        assert_eq!(storage_words(&[3, 33], DType::F32), 99);
    }
}
