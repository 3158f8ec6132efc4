//! Plain-Rust CPU forward (and backward) of every GPU op: the test oracle. Written for
//! clarity, not speed; each mirrors the semantics of its `ops/` twin. The layer
//! references (binarize, conv, elementwise, linear, norm, pool) compute in f64, so that
//! their backward passes can be checked against finite differences.

pub mod attention;
pub mod binarize;
pub mod binary_matmul;
pub mod conv;
pub mod elementwise;
pub mod events;
pub mod layout;
pub mod lif;
pub mod linear;
pub mod loss;
pub mod matmul;
pub mod model;
pub mod norm;
pub mod optim;
pub mod pack;
pub mod pool;
pub mod quant;
pub mod reversible;
pub mod spiking_cnn;
