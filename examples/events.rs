//! Read an event recording, bin it into frames as the model was trained, and classify it:
//!
//!     cargo run --example events -- runs/nmnist/best.safetensors assets/samples/nmnist-test-0-label-7.bin
//!
//! The checkpoint must come from a model trained on event data (`bitspike train` on an
//! event dataset stores its frame settings).

use bitspike::data::events;
use bitspike::{Pipeline, Prediction};

/// What the example found: the events read, the events in each frame, the top classes.
pub struct Found {
    /// Events in the file.
    pub events: usize,
    /// Events counted into each of the T frames (both polarities).
    pub per_frame: Vec<u64>,
    /// The three most probable classes.
    pub top: Vec<Prediction>,
}

/// Run the example on `args`: checkpoint, event file.
pub fn run(args: &[String]) -> bitspike::Result<Found> {
    let [checkpoint, file] = args else {
        return Err(bitspike::Error::InvalidArgument(
            "usage: events CHECKPOINT EVENT_FILE".into(),
        ));
    };
    let mut model = Pipeline::load(checkpoint)?;
    let frames = *model.frames().ok_or_else(|| {
        bitspike::Error::data(checkpoint, "was trained on images, not on event data")
    })?;
    // Any format bitspike reads: N-MNIST .bin/.bs2, AEDAT, .npy/.npz.
    let recording = events::read(std::path::Path::new(file))?;
    // The same binning as training: T frames of 2 polarities, frames.size pixels a side.
    let counts = events::frames::integrate(&recording, &frames);
    let plane = 2 * frames.size * frames.size;
    let per_frame = counts
        .chunks(plane)
        .map(|f| f.iter().map(|&c| c as u64).sum())
        .collect();
    let top = model.classify_events(&recording, 3)?;
    Ok(Found {
        events: recording.x.len(),
        per_frame,
        top,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(found) => {
            println!("{} events; per frame: {:?}", found.events, found.per_frame);
            let best: Vec<String> = found
                .top
                .iter()
                .map(|p| format!("{} {:.1}%", p.class, 100.0 * p.probability))
                .collect();
            println!("{}", best.join(", "));
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
