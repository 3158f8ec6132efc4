//! The library's error type: every failure a user can cause or meet is a variant here,
//! with enough context to act on it; nothing in the library panics on bad input.

use thiserror::Error;

/// Every error of the library; its message names what went wrong and where.
#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no GPU adapter was found{filter}; install a Vulkan driver (on Debian/Ubuntu: \
         `apt-get install mesa-vulkan-drivers libvulkan1` for the software driver lavapipe) \
         or choose another backend with --backend / WGPU_BACKEND"
    )]
    /// No GPU adapter matched.
    NoAdapter {
        /// The backend / name filter in effect, as words (empty without one).
        filter: String,
    },

    #[error("could not open the GPU device '{adapter}': {reason}")]
    /// The adapter refused to open a device.
    DeviceRequest {
        /// The adapter.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },

    #[error("replica {replica} of the training run failed: {reason}")]
    /// Another replica of a data-parallel run stopped with an error, so this one cannot
    /// go on (the run ends everywhere).
    ReplicaFailed {
        /// The replica that failed (0-based, over all processes).
        replica: usize,
        /// Its error.
        reason: String,
    },

    #[error("data-parallel communication failed: {0}")]
    /// The process group (MPI) could not reduce.
    Collective(String),

    #[error("GPU validation error in {context}: {message}")]
    /// wgpu reported a validation error.
    Gpu {
        /// The operation that caused it.
        context: String,
        /// What wgpu said.
        message: String,
    },

    #[error("GPU ran out of memory in {context}")]
    /// The device ran out of memory.
    OutOfMemory {
        /// The operation that ran out.
        context: String,
    },

    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    /// A tensor of the wrong shape.
    Shape {
        /// The operation.
        op: &'static str,
        /// The shape it needs.
        expected: String,
        /// The shape it got.
        got: String,
    },

    #[error("dtype mismatch in {op}: expected {expected:?}, got {got:?}")]
    /// A tensor of the wrong element type.
    DType {
        /// The operation.
        op: &'static str,
        /// The type it needs.
        expected: crate::dtype::DType,
        /// The type it got.
        got: crate::dtype::DType,
    },

    #[error(
        "buffer of {bytes} bytes for {what} exceeds the device's limit of {limit} bytes \
         ({limit_name}); use a smaller batch or model"
    )]
    /// A buffer over one of the device's limits.
    BufferTooLarge {
        /// The buffer.
        what: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
        /// The limit's wgpu name.
        limit_name: &'static str,
    },

    #[error("dispatch of {op} needs {groups} workgroups along one axis, over the device's limit of {limit}")]
    /// A dispatch over the device's workgroup limit.
    TooManyWorkgroups {
        /// The kernel.
        op: &'static str,
        /// The workgroups it needs along one axis.
        groups: u64,
        /// The device's limit.
        limit: u32,
    },

    #[error(
        "kernel {kernel} needs {limit} of at least {need}, but adapter '{adapter}' allows \
         {have}; no variant of the kernel fits this adapter (see docs/portability.md)"
    )]
    /// A kernel needs more of a device limit than the adapter allows, and no variant fits.
    KernelOverLimit {
        /// The kernel, `file::entry`.
        kernel: String,
        /// The `wgpu::Limits` field.
        limit: &'static str,
        /// What the kernel needs.
        need: u64,
        /// What the adapter allows.
        have: u64,
        /// The adapter's name.
        adapter: String,
    },

    #[error("{path}: {message}")]
    /// A file that is malformed, truncated or does not fit.
    Data {
        /// The file or directory.
        path: String,
        /// What is wrong with it.
        message: String,
    },

    #[error("{field} = {value} is out of range (allowed: {allowed})")]
    /// A setting outside its range.
    OutOfRange {
        /// The setting.
        field: String,
        /// Its value.
        value: String,
        /// The allowed range.
        allowed: String,
    },

    #[error("{tensor} would take {size}, over {limit}; {advice}")]
    /// A run whose buffers would not fit the device or the host.
    RunTooLarge {
        /// The largest tensor that does not fit.
        tensor: String,
        /// Its size.
        size: String,
        /// The limit, with its name.
        limit: String,
        /// What to change.
        advice: String,
    },

    #[error(
        "training diverged at {at}: {what}; lower --lr or set --clip-grad (the checkpoints \
         of earlier epochs are kept, nothing was written for this one)"
    )]
    /// Training produced numbers that are not finite.
    Diverged {
        /// Where (epoch, step).
        at: String,
        /// What was found.
        what: String,
    },

    /// The I/O error is part of the message, not a `source`: a chain printed with `{:#}`
    /// would say it twice.
    #[error("{path}: {error}")]
    /// An I/O failure.
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        error: std::io::Error,
    },

    #[error("invalid argument: {0}")]
    /// An argument the operation cannot take.
    InvalidArgument(String),

    #[error("cannot draw {what}: {message}")]
    /// A picture that could not be drawn or encoded.
    Plot {
        /// The picture.
        what: String,
        /// Why.
        message: String,
    },

    #[error("shader {shader} failed validation: {message}")]
    /// A shader that failed naga's validation.
    Shader {
        /// The shader file.
        shader: String,
        /// naga's message.
        message: String,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A malformed or truncated data file.
    pub fn data(path: impl AsRef<std::path::Path>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.as_ref().display().to_string(),
            message: message.into(),
        }
    }

    /// An I/O failure on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            error,
        }
    }
}
