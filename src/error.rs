//! The library's error type: every failure a user can cause or meet is a variant here,
//! with enough context to act on it; nothing in the library panics on bad input.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no GPU adapter was found{filter}; install a Vulkan driver (on Debian/Ubuntu: \
         `apt-get install mesa-vulkan-drivers libvulkan1` for the software driver lavapipe) \
         or choose another backend with --backend / WGPU_BACKEND"
    )]
    NoAdapter { filter: String },

    #[error("could not open the GPU device '{adapter}': {reason}")]
    DeviceRequest { adapter: String, reason: String },

    #[error("GPU validation error in {context}: {message}")]
    Gpu { context: String, message: String },

    #[error("GPU ran out of memory in {context}")]
    OutOfMemory { context: String },

    #[error("shape mismatch in {op}: expected {expected}, got {got}")]
    Shape {
        op: &'static str,
        expected: String,
        got: String,
    },

    #[error("dtype mismatch in {op}: expected {expected:?}, got {got:?}")]
    DType {
        op: &'static str,
        expected: crate::dtype::DType,
        got: crate::dtype::DType,
    },

    #[error(
        "buffer of {bytes} bytes for {what} exceeds the device's limit of {limit} bytes \
         ({limit_name}); use a smaller batch or model"
    )]
    BufferTooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },

    #[error("dispatch of {op} needs {groups} workgroups along one axis, over the device's limit of {limit}")]
    TooManyWorkgroups {
        op: &'static str,
        groups: u64,
        limit: u32,
    },

    #[error("{path}: {message}")]
    Data { path: String, message: String },

    #[error("{field} = {value} is out of range (allowed: {allowed})")]
    OutOfRange {
        field: String,
        value: String,
        allowed: String,
    },

    #[error("{tensor} would take {size}, over {limit}; {advice}")]
    RunTooLarge {
        tensor: String,
        size: String,
        limit: String,
        advice: String,
    },

    #[error(
        "training diverged at {at}: {what}; lower --lr or set --clip-grad (the checkpoints \
         of earlier epochs are kept, nothing was written for this one)"
    )]
    Diverged { at: String, what: String },

    /// The I/O error is part of the message, not a `source`: a chain printed with `{:#}`
    /// would say it twice.
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("cannot draw {what}: {message}")]
    Plot { what: String, message: String },

    #[error("shader {shader} failed validation: {message}")]
    Shader { shader: String, message: String },
}

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
