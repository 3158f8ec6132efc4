//! Benchmark workloads shared by `bitspike bench` and the criterion benches: each sets
//! up its operands once and records one iteration per `run`, so both harnesses time the
//! same kernels. Figures are reported as rates and as ratios measured in one run.

pub mod attention;
pub mod data;
pub mod lif;
pub mod matmul;
pub mod model;

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::gpu::GpuContext;

/// Deterministic operands in [lo, hi) from a cheap hash: benchmark inputs only need to
/// be non-trivial, not statistically good.
pub fn pseudo_random(len: usize, seed: u32, lo: f32, hi: f32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| {
            let h = (i ^ seed)
                .wrapping_mul(0x9E37_79B1)
                .rotate_left(13)
                .wrapping_mul(0x85EB_CA77);
            lo + (hi - lo) * ((h >> 8) as f32 / (1u32 << 24) as f32)
        })
        .collect()
}

/// One timed figure, printed as a table row or a JSON line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    /// The kernel or workload's name.
    pub kernel: String,
    /// The problem size, as printed.
    pub shape: String,
    /// Seconds per run (the median of the timed runs).
    pub seconds: f64,
    /// Work per second, in `unit`.
    pub rate: f64,
    /// The unit of `rate` (GMAC/s, GB/s, images/s).
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// This figure's speed against `ratio_to`'s, measured in the same run.
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The kernel `ratio` compares against.
    pub ratio_to: Option<String>,
}

/// Median seconds per iteration of `run` (recorded, submitted and waited for), after
/// warm-up; repeats until `min_time` has passed and at least `min_samples` were taken.
/// Iterations are batched so that each timed submission lasts about 10 ms: short
/// kernels are then timed by throughput, not by submission and wake-up latency.
pub fn time_iterations(
    ctx: &GpuContext,
    min_time: Duration,
    min_samples: usize,
    mut run: impl FnMut() -> Result<()>,
) -> Result<f64> {
    run()?; // first use builds pipelines
    ctx.sync()?;
    let t = Instant::now();
    run()?;
    ctx.sync()?;
    let one = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.01 / one).ceil() as usize).clamp(1, 1000);
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < min_samples || start.elapsed() < min_time {
        let t = Instant::now();
        for _ in 0..reps {
            run()?;
        }
        ctx.sync()?;
        samples.push(t.elapsed().as_secs_f64() / reps as f64);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok(samples[samples.len() / 2])
}

/// [`time_interleaved`] over `works`, each timed by `run(work)` (at least 3 rounds).
pub fn time_workloads<W>(
    ctx: &GpuContext,
    min_time: Duration,
    works: &[W],
    run: impl Fn(&W) -> Result<()>,
) -> Result<Vec<f64>> {
    let run = &run;
    let mut runs: Vec<Box<dyn FnMut() -> Result<()> + '_>> = works
        .iter()
        .map(|w| Box::new(move || run(w)) as Box<dyn FnMut() -> Result<()>>)
        .collect();
    let mut refs: Vec<&mut dyn FnMut() -> Result<()>> = runs
        .iter_mut()
        .map(|r| r.as_mut() as &mut dyn FnMut() -> Result<()>)
        .collect();
    time_interleaved(ctx, min_time, 3, &mut refs)
}

/// Median seconds per iteration of each workload, measured in interleaved rounds (each
/// round times every workload once, batched like `time_iterations`), so that a ratio
/// between two of them sees the same machine conditions even when these drift.
pub fn time_interleaved(
    ctx: &GpuContext,
    min_time: Duration,
    min_rounds: usize,
    runs: &mut [&mut dyn FnMut() -> Result<()>],
) -> Result<Vec<f64>> {
    let mut reps = Vec::with_capacity(runs.len());
    for run in runs.iter_mut() {
        run()?; // first use builds pipelines
        ctx.sync()?;
        let t = Instant::now();
        run()?;
        ctx.sync()?;
        let one = t.elapsed().as_secs_f64().max(1e-7);
        reps.push(((0.01 / one).ceil() as usize).clamp(1, 1000));
    }
    let mut samples = vec![Vec::new(); runs.len()];
    let start = Instant::now();
    while samples[0].len() < min_rounds || start.elapsed() < min_time {
        for (i, run) in runs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..reps[i] {
                run()?;
            }
            ctx.sync()?;
            samples[i].push(t.elapsed().as_secs_f64() / reps[i] as f64);
        }
    }
    Ok(samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| a.total_cmp(b));
            s[s.len() / 2]
        })
        .collect())
}
