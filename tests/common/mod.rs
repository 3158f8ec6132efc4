//! Shared test helpers: one GPU context per test binary, a seeded RNG, and comparisons
//! that name the failing index with both values.
#![allow(dead_code)]

pub mod cli;
pub mod gradcheck;
pub mod training;

use std::sync::OnceLock;

use bitspike::GpuContext;

/// The system's GPU (lavapipe in CI). A missing adapter fails the test loudly: CI must
/// have one, and a silently skipped GPU test proves nothing.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::from_env() {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    })
}

/// The same adapter restricted to the portable kernels, so that both variants of each
/// kernel family are tested wherever the adapter has subgroups.
pub fn portable_ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let mut choice = bitspike::gpu::AdapterChoice::from_env();
        choice.portable_kernels = true;
        match GpuContext::new(&choice) {
            Ok(c) => c,
            Err(e) => panic!("GPU tests need an adapter: {e}"),
        }
    })
}

/// Both contexts: the default one (subgroup kernels where the adapter allows) and the
/// portable one.
pub fn contexts() -> [&'static GpuContext; 2] {
    [ctx(), portable_ctx()]
}

/// The library's seeded generator with the helpers tests use.
pub struct Rng(bitspike::rng::Rng);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(bitspike::rng::Rng::new(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        self.0.uniform()
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }

    /// Spikes {0,1} firing with probability `rate`.
    pub fn spikes(&mut self, n: usize, rate: f32) -> Vec<f32> {
        (0..n)
            .map(|_| if self.uniform() < rate { 1.0 } else { 0.0 })
            .collect()
    }

    /// Signs {-1,+1}.
    pub fn signs(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| if self.next_u64() & 1 == 1 { 1.0 } else { -1.0 })
            .collect()
    }
}

/// Assert `got` matches `want` elementwise within `eps` absolute + relative tolerance,
/// naming the first failing index.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], eps: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            approx::relative_eq!(g, w, epsilon = eps, max_relative = eps),
            "{what}: index {i}: got {g}, want {w}"
        );
    }
}

/// Assert exact equality, naming the first failing index.
pub fn assert_exact<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: index {i}");
    }
}
