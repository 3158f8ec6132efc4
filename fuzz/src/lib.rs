//! What every fuzz target does with its input: read it as bitspike reads such a file,
//! then use the result as the program would. A panic, an abort, a hang or an allocation
//! past libFuzzer's limits is a finding; an `Err` is the expected answer to bad input.

use std::path::PathBuf;

use bitspike::data::events::{self, Events, FrameSettings, SplitBy};

/// Bin the events into frames, as datasets and `infer` do.
pub fn use_events(ev: bitspike::Result<Events>) {
    let Ok(ev) = ev else { return };
    let (w, h) = ev.sensor.unwrap_or_else(|| ev.extent());
    for split_by in [SplitBy::Time, SplitBy::Number] {
        let s = FrameSettings {
            time_steps: 4,
            split_by,
            sensor: (w.max(1), h.max(1)),
            size: 16,
        };
        let frames = events::frames::integrate_u8(&ev, &s);
        assert_eq!(frames.len(), s.sample_len());
    }
}

/// A file holding `data`, for readers that take a path (one per process, rewritten).
pub fn temp_file(name: &str, data: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("bitspike-fuzz-{}-{name}", std::process::id()));
    std::fs::write(&path, data).expect("temp file");
    path
}
