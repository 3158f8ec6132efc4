//! Classify images with a trained checkpoint:
//!
//!     cargo run --example classify -- runs/demo/best.safetensors assets/samples/*.png
//!
//! prints each image's three most probable classes. `--top K` asks for K.

use bitspike::{Pipeline, Prediction};

/// Each image path with its top classes, for the checkpoint and images in `args`.
pub fn run(args: &[String]) -> bitspike::Result<Vec<(String, Vec<Prediction>)>> {
    let usage =
        || bitspike::Error::InvalidArgument("usage: classify CHECKPOINT IMAGE... [--top K]".into());
    let (checkpoint, rest) = args.split_first().ok_or_else(usage)?;
    let mut top = 3;
    let mut paths = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        if a == "--top" {
            top = it.next().and_then(|k| k.parse().ok()).ok_or_else(usage)?;
        } else {
            paths.push(a.clone());
        }
    }
    if paths.is_empty() {
        return Err(usage());
    }
    // The checkpoint carries the model, its input size and the training normalization.
    let mut model = Pipeline::load(checkpoint)?;
    let images = paths
        .iter()
        .map(|p| image::open(p).map_err(|e| bitspike::Error::data(p, format!("not an image: {e}"))))
        .collect::<bitspike::Result<Vec<_>>>()?;
    // One batched forward for all of them.
    let results = model.classify_batch(&images, top)?;
    Ok(paths.into_iter().zip(results).collect())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(results) => {
            for (path, top) in results {
                let best: Vec<String> = top
                    .iter()
                    .map(|p| format!("{} {:.1}%", p.class, 100.0 * p.probability))
                    .collect();
                println!("{path}: {}", best.join(", "));
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
