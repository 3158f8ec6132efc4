//! CPU oracle of event-to-frame integration: a literal transcription of SpikingJelly's
//! `cal_fixed_frames_number_segment_index` (segment bounds j_l, j_r per frame from masks)
//! and `integrate_events_segment_to_frame`, extended where SpikingJelly raises (an empty
//! time slice is an empty frame).

use crate::data::events::{Events, FrameSettings, SplitBy};

/// Frames `[T, 2, size, size]` as f64 counts.
pub fn integrate(ev: &Events, s: &FrameSettings) -> Vec<f64> {
    let n = ev.len();
    let t_steps = s.time_steps;
    let mut j_l = vec![0usize; t_steps];
    let mut j_r = vec![0usize; t_steps];
    match s.split_by {
        SplitBy::Number => {
            let di = n / t_steps;
            for i in 0..t_steps {
                j_l[i] = i * di;
                j_r[i] = j_l[i] + di;
            }
        }
        SplitBy::Time => {
            let t0 = ev.t.first().copied().unwrap_or(0);
            let dt = (ev.t.last().copied().unwrap_or(0) - t0) / t_steps as i64;
            for i in 0..t_steps {
                let t_l = dt * i as i64 + t0;
                let t_r = t_l + dt;
                let inside: Vec<usize> = (0..n)
                    .filter(|&j| ev.t[j] >= t_l && ev.t[j] < t_r)
                    .collect();
                match (inside.first(), inside.last()) {
                    (Some(&a), Some(&b)) => {
                        j_l[i] = a;
                        j_r[i] = b + 1;
                    }
                    // Empty slice: an empty frame, or the last frame from the end of the
                    // previous non-empty one.
                    _ => {
                        let from = if i > 0 { j_r[i - 1] } else { 0 };
                        j_l[i] = from;
                        j_r[i] = from;
                    }
                }
            }
        }
    }
    j_r[t_steps - 1] = n;
    let plane = s.size * s.size;
    let mut frames = vec![0f64; t_steps * 2 * plane];
    let (w, h) = s.sensor;
    for i in 0..t_steps {
        for j in j_l[i]..j_r[i] {
            let (x, y) = (ev.x[j] as usize, ev.y[j] as usize);
            if x >= w || y >= h {
                continue;
            }
            let c = ev.p[j] as usize;
            frames[(i * 2 + c) * plane + (y * s.size / h) * s.size + x * s.size / w] += 1.0;
        }
    }
    frames
}
