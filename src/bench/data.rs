//! The input pipeline's rate: batches taken from a [`BatchLoader`] as training takes
//! them (read or decode, augment, normalize, batch, on the loader's workers), on the CPU.

use std::time::{Duration, Instant};

use crate::data::BatchLoader;
use crate::error::Result;

/// How long to measure: for `seconds`, or for `batches` batches when given.
#[derive(Debug, Clone, Copy)]
pub struct DataRun {
    /// Stop after this many seconds of batches.
    pub seconds: f64,
    /// Stop after this many batches instead.
    pub batches: Option<usize>,
}

/// What [`measure`] timed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataRate {
    /// Images prepared.
    pub images: usize,
    /// Batches prepared.
    pub batches: usize,
    /// Wall time of the measurement.
    pub seconds: f64,
    /// Images prepared per second.
    pub images_per_second: f64,
}

/// Take batches from `loader`, epoch after epoch, and time them after a warm-up of one
/// batch per worker (the workers start together, so their first batches come at once
/// and would inflate the rate). Errors of the loader (a corrupt file) end the run.
pub fn measure(loader: &BatchLoader, run: DataRun) -> Result<DataRate> {
    let warm_up = loader.worker_count();
    let budget = Duration::from_secs_f64(run.seconds);
    let (mut taken, mut images, mut batches) = (0usize, 0usize, 0usize);
    let mut start = Instant::now();
    for epoch in 0.. {
        for batch in loader.epoch(epoch) {
            let batch = batch?;
            taken += 1;
            if taken <= warm_up {
                start = Instant::now();
                continue;
            }
            images += batch.len();
            batches += 1;
            let done = match run.batches {
                Some(n) => batches >= n,
                None => start.elapsed() >= budget,
            };
            if done {
                let seconds = start.elapsed().as_secs_f64();
                return Ok(DataRate {
                    images,
                    batches,
                    seconds,
                    images_per_second: images as f64 / seconds.max(1e-9),
                });
            }
        }
        if loader.batches() == 0 {
            break;
        }
    }
    Ok(DataRate {
        images: 0,
        batches: 0,
        seconds: 0.0,
        images_per_second: 0.0,
    })
}
