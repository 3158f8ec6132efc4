//! The shader registry: each `shaders/*.wgsl` file is one `Shader`, each entry point a
//! host op dispatches is a `Kernel` with an explicit binding list.

/// One WGSL file per kernel family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shader {
    /// shaders/copy.wgsl
    Copy,
    /// shaders/pack.wgsl
    Pack,
    /// shaders/binary_matmul.wgsl
    BinaryMatmul,
    /// shaders/binary_matmul_subgroup.wgsl
    BinaryMatmulSubgroup,
    /// shaders/matmul.wgsl (register-blocked, for CPU drivers)
    Matmul,
    /// shaders/matmul_subgroup.wgsl
    MatmulSubgroup,
    /// shaders/matmul_tiled.wgsl (workgroup-memory tiles, for GPUs)
    MatmulTiled,
    /// shaders/lif.wgsl
    Lif,
    /// shaders/loss.wgsl
    Loss,
    /// shaders/optim.wgsl
    Optim,
    /// shaders/conv.wgsl
    Conv,
    /// shaders/norm.wgsl
    Norm,
    /// shaders/pool.wgsl
    Pool,
    /// shaders/elementwise.wgsl
    Elementwise,
    /// shaders/binarize.wgsl
    Binarize,
    /// shaders/attention.wgsl
    Attention,
    /// shaders/layout.wgsl
    Layout,
    /// shaders/reversible.wgsl
    Reversible,
}

impl Shader {
    /// Every shader file, each once.
    pub const ALL: &'static [Shader] = &[
        Shader::Copy,
        Shader::Pack,
        Shader::BinaryMatmul,
        Shader::BinaryMatmulSubgroup,
        Shader::Matmul,
        Shader::MatmulSubgroup,
        Shader::MatmulTiled,
        Shader::Lif,
        Shader::Loss,
        Shader::Optim,
        Shader::Conv,
        Shader::Norm,
        Shader::Pool,
        Shader::Elementwise,
        Shader::Binarize,
        Shader::Attention,
        Shader::Layout,
        Shader::Reversible,
    ];

    /// The file's name under shaders/.
    pub fn file_name(self) -> &'static str {
        match self {
            Shader::Copy => "copy.wgsl",
            Shader::Pack => "pack.wgsl",
            Shader::BinaryMatmul => "binary_matmul.wgsl",
            Shader::BinaryMatmulSubgroup => "binary_matmul_subgroup.wgsl",
            Shader::Matmul => "matmul.wgsl",
            Shader::MatmulSubgroup => "matmul_subgroup.wgsl",
            Shader::MatmulTiled => "matmul_tiled.wgsl",
            Shader::Lif => "lif.wgsl",
            Shader::Loss => "loss.wgsl",
            Shader::Optim => "optim.wgsl",
            Shader::Conv => "conv.wgsl",
            Shader::Norm => "norm.wgsl",
            Shader::Pool => "pool.wgsl",
            Shader::Elementwise => "elementwise.wgsl",
            Shader::Binarize => "binarize.wgsl",
            Shader::Attention => "attention.wgsl",
            Shader::Layout => "layout.wgsl",
            Shader::Reversible => "reversible.wgsl",
        }
    }

    /// The shader whose kernels the host runs in place of this subgroup shader's where
    /// the subgroup kernels do not run.
    pub fn portable_variant(self) -> Option<Shader> {
        match self {
            Shader::BinaryMatmulSubgroup => Some(Shader::BinaryMatmul),
            Shader::MatmulSubgroup => Some(Shader::Matmul),
            _ => None,
        }
    }

    /// The WGSL text, compiled in.
    pub fn source(self) -> &'static str {
        match self {
            Shader::Copy => include_str!("../../shaders/copy.wgsl"),
            Shader::Pack => include_str!("../../shaders/pack.wgsl"),
            Shader::BinaryMatmul => include_str!("../../shaders/binary_matmul.wgsl"),
            Shader::BinaryMatmulSubgroup => {
                include_str!("../../shaders/binary_matmul_subgroup.wgsl")
            }
            Shader::Matmul => include_str!("../../shaders/matmul.wgsl"),
            Shader::MatmulSubgroup => include_str!("../../shaders/matmul_subgroup.wgsl"),
            Shader::MatmulTiled => include_str!("../../shaders/matmul_tiled.wgsl"),
            Shader::Lif => include_str!("../../shaders/lif.wgsl"),
            Shader::Loss => include_str!("../../shaders/loss.wgsl"),
            Shader::Optim => include_str!("../../shaders/optim.wgsl"),
            Shader::Conv => include_str!("../../shaders/conv.wgsl"),
            Shader::Norm => include_str!("../../shaders/norm.wgsl"),
            Shader::Pool => include_str!("../../shaders/pool.wgsl"),
            Shader::Elementwise => include_str!("../../shaders/elementwise.wgsl"),
            Shader::Binarize => include_str!("../../shaders/binarize.wgsl"),
            Shader::Attention => include_str!("../../shaders/attention.wgsl"),
            Shader::Layout => include_str!("../../shaders/layout.wgsl"),
            Shader::Reversible => include_str!("../../shaders/reversible.wgsl"),
        }
    }
}

/// How a kernel uses one binding. The convention for every kernel: read-only inputs
/// first, then outputs, then (added by `dispatch`) one uniform block of sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read-only storage.
    Read,
    /// Read-write storage.
    ReadWrite,
}

/// An entry point of a shader with its storage bindings (the uniform comes last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// The shader file.
    pub shader: Shader,
    /// The entry point's name.
    pub entry: &'static str,
    /// How each storage binding is accessed, in binding order.
    pub bindings: &'static [Access],
}

/// Override constants of one pipeline, as (name, value).
pub type Constants = [(&'static str, f64)];
