//! Plain-Rust CPU forward (and backward) of every GPU op: the test oracle. Written for
//! clarity, not speed; each mirrors the semantics of its `ops/` twin.

pub mod attention;
pub mod binary_matmul;
pub mod matmul;
pub mod pack;
