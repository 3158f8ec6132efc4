//! Event-to-frame integration as SpikingJelly's `integrate_events_by_fixed_frames_number`:
//! T frames of 2 polarity channels (0 = OFF, 1 = ON), each pixel counting its events.
//! - split by time: with `dt = (t_last - t_first) / T` (integer division), frame i takes
//!   the events with `t_first + i dt <= t < t_first + (i + 1) dt`, the last frame also
//!   everything after;
//! - split by number: with `d = N / T`, frame i takes events `i d .. (i + 1) d`, the last
//!   frame also the remainder.
//!
//! Where SpikingJelly fails (an empty time slice, dt = 0 or N < T) the events fall into
//! the frame the same rule gives with the last frame open-ended.
//! Coordinates are scaled from the sensor to the output size (`x * size / width`), which
//! downsamples 128x128 recordings to 64x64 or 48x48.

use crate::error::{Error, Result};

use super::Events;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
/// How a recording is cut into its T frames (SpikingJelly's `split_by`).
pub enum SplitBy {
    /// Equal spans of time.
    Time,
    /// Equal numbers of events (the last frame takes the remainder).
    Number,
}

impl std::str::FromStr for SplitBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "time" => Ok(SplitBy::Time),
            "number" => Ok(SplitBy::Number),
            other => Err(Error::InvalidArgument(format!(
                "split-by '{other}': expected 'time' or 'number'"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
/// How event recordings become a model's input frames.
pub struct FrameSettings {
    /// Frames T.
    pub time_steps: usize,
    /// How a recording is cut into frames.
    pub split_by: SplitBy,
    /// Sensor width and height the event coordinates refer to.
    pub sensor: (usize, usize),
    /// Side of the square output frames.
    pub size: usize,
}

/// Channels of a frame: OFF events, then ON events.
pub const POLARITIES: usize = 2;

impl FrameSettings {
    /// An error unless every size is positive.
    pub fn validate(&self) -> Result<()> {
        if self.time_steps == 0 || self.size == 0 || self.sensor.0 == 0 || self.sensor.1 == 0 {
            return Err(Error::InvalidArgument(format!(
                "frame settings need positive time steps, size and sensor size: {self:?}"
            )));
        }
        Ok(())
    }

    /// Values per sample: T * 2 * size * size.
    pub fn sample_len(&self) -> usize {
        self.time_steps * POLARITIES * self.size * self.size
    }
}

/// The frame of each event, by the rules above.
fn frame_of(events: &Events, split_by: SplitBy, t_steps: usize) -> impl Fn(usize) -> usize + '_ {
    let n = events.len();
    // In i128: a recording's timestamps may span more than i64 holds.
    let t0 = events.t.first().copied().unwrap_or(0) as i128;
    let dt = (events.t.last().copied().unwrap_or(0) as i128 - t0) / t_steps as i128;
    let di = n / t_steps;
    move |i| {
        let f = match split_by {
            SplitBy::Time if dt > 0 => {
                ((events.t[i] as i128 - t0) / dt).min(t_steps as i128) as usize
            }
            SplitBy::Number if di > 0 => i / di,
            _ => t_steps - 1,
        };
        f.min(t_steps - 1)
    }
}

/// Count the events into frames `[T, 2, size, size]`. Events outside the sensor are
/// dropped; the sum of the frames is the number of the others.
pub fn integrate(events: &Events, s: &FrameSettings) -> Vec<u32> {
    let mut frames = vec![0u32; s.sample_len()];
    let plane = s.size * s.size;
    let (w, h) = s.sensor;
    let frame = frame_of(events, s.split_by, s.time_steps);
    for i in 0..events.len() {
        let (x, y) = (events.x[i] as usize, events.y[i] as usize);
        if x >= w || y >= h {
            continue;
        }
        let (ox, oy) = (x * s.size / w, y * s.size / h);
        let c = (events.p[i] != 0) as usize;
        frames[(frame(i) * POLARITIES + c) * plane + oy * s.size + ox] += 1;
    }
    frames
}

/// [`integrate`] with the counts saturated to u8, the dataset's storage form.
pub fn integrate_u8(events: &Events, s: &FrameSettings) -> Vec<u8> {
    integrate(events, s)
        .into_iter()
        .map(|v| v.min(255) as u8)
        .collect()
}
