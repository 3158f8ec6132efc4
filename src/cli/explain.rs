//! `bitspike infer --explain OUT_DIR INPUT`: pictures of one inference: the input, a
//! spike raster of a layer over T, and the binary attention maps of every block.

use std::path::Path;

use anyhow::Context;

use bitspike::plot::explain::{attention_maps, input_picture, spike_raster, Picture, Raster};
use bitspike::Pipeline;

/// Neurons the raster shows.
const RASTER_NEURONS: usize = 64;

pub fn run(
    pipeline: &mut Pipeline,
    input_path: &Path,
    out: &Path,
    layer: Option<&str>,
) -> anyhow::Result<()> {
    let input = pipeline.read_input(input_path)?;
    let norm = pipeline
        .normalization()
        .cloned()
        .context("the checkpoint carries no normalization statistics: pass --mean and --std")?;
    let cfg = pipeline.config().clone();
    let (logits, trace) = pipeline.trace(input.clone())?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let ctx = pipeline.context();
    let picture = Picture::of_input(
        &input,
        cfg.in_channels,
        cfg.image_size,
        &norm.mean,
        &norm.std,
        pipeline.frames().is_some(),
    )?;
    let mut written = vec![out.join("input.png")];
    input_picture(&picture, &written[0])?;

    let names = trace.layer_names();
    // The default raster: the first MLP layer of the first block (spikes in every family
    // with blocks), else the second layer (the first reads the image).
    let layer = match layer {
        Some(l) => l.to_string(),
        None => names
            .iter()
            .find(|n| n.contains("mlp"))
            .or(names.get(1))
            .or(names.first())
            .cloned()
            .context("the forward recorded no layers")?,
    };
    let x = trace.input(ctx, &layer)?;
    let raster = Raster::of_layer(&layer, &x, cfg.time_steps, 1, 0)?;
    let raster_path = out.join("raster.png");
    spike_raster(&raster, RASTER_NEURONS, &raster_path)?;
    written.push(raster_path);

    let heads = cfg.transformer().map_or(0, |t| t.heads);
    let maps = match heads {
        0 => Vec::new(),
        h => trace.attention_maps(ctx, cfg.time_steps, 1, h)?,
    };
    for m in &maps {
        let path = out.join(format!("attention_{}.png", m.block.replace('.', "_")));
        attention_maps(m, 0, &picture, &path)?;
        written.push(path);
    }
    let top = pipeline.top_k(&logits, 3)?;
    let best: Vec<String> = top
        .iter()
        .map(|p| format!("{} {:.1}%", p.class, 100.0 * p.probability))
        .collect();
    println!("{}: {}", input_path.display(), best.join(", "));
    if maps.is_empty() {
        println!(
            "no attention maps: the model's attention form builds no binary N x N map \
             (the binary forms are --attention binary and ssa-bin)"
        );
    }
    for p in written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
