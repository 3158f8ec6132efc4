//! What one inference computed, as pictures: the input as the model saw it, a spike
//! raster of one layer over the time steps, and each block's binary attention maps per
//! head and time step, upsampled over the input image.

use std::path::Path;

use plotters::prelude::*;

use super::canvas::{text, write_png, Area, DrawResult};
use crate::error::{Error, Result};
use crate::nn::AttentionMaps;

/// An input image as RGB pixels, `size` x `size`, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    /// Side in pixels.
    pub size: usize,
    /// `size * size` RGB pixels.
    pub pixels: Vec<[u8; 3]>,
}

impl Picture {
    /// The picture of a model input `[C, S, S]` (or frames `[T, 2, S, S]` when
    /// `event_frames`) normalized with `mean` / `std`: grey or RGB images undone to [0, 255];
    /// event frames summed over T, ON events red and OFF events blue.
    pub fn of_input(
        input: &[f32],
        channels: usize,
        size: usize,
        mean: &[f32],
        std: &[f32],
        event_frames: bool,
    ) -> Result<Self> {
        let plane = size * size;
        if plane == 0 || channels == 0 || !input.len().is_multiple_of(channels * plane) {
            return Err(Error::InvalidArgument(format!(
                "an input of {} values is not {channels} planes of {size}x{size}",
                input.len()
            )));
        }
        let value = |i: usize| {
            let c = (i / plane) % channels;
            (input[i] * std[c] + mean[c]).clamp(0.0, 1.0)
        };
        let pixels = if event_frames {
            let mut on = vec![0f32; plane];
            let mut off = vec![0f32; plane];
            for i in 0..input.len() {
                let target = if (i / plane).is_multiple_of(channels) {
                    &mut off
                } else {
                    &mut on
                };
                target[i % plane] += value(i);
            }
            let peak = on.iter().chain(&off).copied().fold(1e-6, f32::max);
            (0..plane)
                .map(|p| {
                    let (r, b) = (on[p] / peak, off[p] / peak);
                    [(255.0 * r) as u8, 0, (255.0 * b) as u8]
                })
                .collect()
        } else {
            (0..plane)
                .map(|p| {
                    let c = |k: usize| (255.0 * value(k.min(channels - 1) * plane + p)) as u8;
                    [c(0), c(1), c(2)]
                })
                .collect()
        };
        Ok(Self { size, pixels })
    }
}

/// The input picture, enlarged, into the PNG `out`.
pub fn input_picture(picture: &Picture, out: &Path) -> Result<()> {
    write_png(out, (320, 320), "the input", |root| {
        root.fill(&WHITE)?;
        draw_picture(root, picture, |_, _| None)
    })
}

/// Draw `picture` over all of `area`, each pixel's colour blended with `tint(y, x)`
/// when it gives one (a colour and its weight).
fn draw_picture(
    area: &Area,
    picture: &Picture,
    tint: impl Fn(usize, usize) -> Option<(RGBColor, f64)>,
) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let s = picture.size;
    let cell = |i: usize, extent: u32| (i as u32 * extent / s as u32) as i32;
    for y in 0..s {
        for x in 0..s {
            let [r, g, b] = picture.pixels[y * s + x];
            let colour = match tint(y, x) {
                Some((RGBColor(tr, tg, tb), a)) => {
                    let mix = |p: u8, q: u8| (p as f64 * (1.0 - a) + q as f64 * a) as u8;
                    RGBColor(mix(r, tr), mix(g, tg), mix(b, tb))
                }
                None => RGBColor(r, g, b),
            };
            area.draw(&Rectangle::new(
                [(cell(x, w), cell(y, h)), (cell(x + 1, w), cell(y + 1, h))],
                colour.filled(),
            ))?;
        }
    }
    Ok(())
}

/// The spikes of one sample at one layer: `time_steps` slices of equal size (the layer's
/// input for that sample at each step).
#[derive(Debug, Clone, PartialEq)]
pub struct Raster {
    /// The layer's name.
    pub layer: String,
    /// `[T][neurons]` values, 0 or 1 for spikes.
    pub steps: Vec<Vec<f32>>,
}

impl Raster {
    /// Sample `b`'s slice of a layer input laid out time first, `[T, B, ...]`.
    pub fn of_layer(
        layer: &str,
        x: &[f32],
        time_steps: usize,
        batch: usize,
        b: usize,
    ) -> Result<Self> {
        let slices = time_steps * batch;
        if slices == 0 || !x.len().is_multiple_of(slices) || b >= batch {
            return Err(Error::InvalidArgument(format!(
                "layer {layer}: {} values are not T = {time_steps} x B = {batch} slices",
                x.len()
            )));
        }
        let per = x.len() / slices;
        let steps = (0..time_steps)
            .map(|t| x[(t * batch + b) * per..(t * batch + b + 1) * per].to_vec())
            .collect();
        Ok(Self {
            layer: layer.to_string(),
            steps,
        })
    }

    /// The fraction of non-zero values at step `t`.
    pub fn rate(&self, t: usize) -> f64 {
        let s = &self.steps[t];
        s.iter().filter(|&&v| v != 0.0).count() as f64 / s.len().max(1) as f64
    }
}

/// The raster of `neurons` neurons, evenly spread over the layer's, each a row of cells
/// (one per time step, dark where the neuron spiked), into the PNG `out`.
pub fn spike_raster(raster: &Raster, neurons: usize, out: &Path) -> Result<()> {
    let t_steps = raster.steps.len();
    let total = raster.steps.first().map_or(0, Vec::len);
    if t_steps == 0 || total == 0 || neurons == 0 {
        return Err(Error::InvalidArgument(format!(
            "layer {}: no spikes to draw",
            raster.layer
        )));
    }
    let shown = neurons.min(total);
    let picked: Vec<usize> = (0..shown).map(|i| i * total / shown).collect();
    write_png(out, (800, 500), "the spike raster", |root| {
        root.fill(&WHITE)?;
        let rates: Vec<String> = (0..t_steps)
            .map(|t| format!("{:.2}", raster.rate(t)))
            .collect();
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!(
                    "{}: {shown} of {total} inputs; firing rate per step {}",
                    raster.layer,
                    rates.join(" ")
                ),
                text(14),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(50)
            .build_cartesian_2d((0..t_steps as i32 - 1).into_segmented(), 0..shown as i32)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time step")
            .y_desc("neuron")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(t) => t.to_string(),
                _ => String::new(),
            })
            .label_style(text(12))
            .axis_desc_style(text(12))
            .draw()?;
        chart.draw_series((0..t_steps).flat_map(|t| {
            let step = &raster.steps[t];
            let t = t as i32;
            picked
                .iter()
                .enumerate()
                .filter(move |&(_, &n)| step[n] != 0.0)
                .map(move |(row, _)| {
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(t), row as i32),
                            (SegmentValue::Exact(t + 1), row as i32 + 1),
                        ],
                        RGBColor(20, 20, 60).filled(),
                    )
                })
        }))?;
        Ok(())
    })
}

/// Heat colour of `v` in [0, 1]: dark red through orange to yellow.
fn heat(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    RGBColor(
        (80.0 + 175.0 * v.min(0.5) * 2.0) as u8,
        (255.0 * (v - 0.3).max(0.0) / 0.7) as u8,
        0,
    )
}

/// Sample `b`'s maps of one block as a grid (rows: heads, columns: time steps): each
/// panel is `picture` tinted by how many queries attend to each key token (the share of
/// ones in the key's column of the binary map), the token grid upsampled over the image.
/// Written into the PNG `out`.
pub fn attention_maps(maps: &AttentionMaps, b: usize, picture: &Picture, out: &Path) -> Result<()> {
    let grid = (maps.tokens as f64).sqrt().round() as usize;
    if grid * grid != maps.tokens || b >= maps.batch {
        return Err(Error::InvalidArgument(format!(
            "{}: {} tokens do not form a square grid over the image",
            maps.block, maps.tokens
        )));
    }
    let (t_steps, heads) = (maps.time_steps, maps.heads);
    let panel = (720 / t_steps.max(1))
        .min(440 / heads.max(1))
        .clamp(48, 200) as u32;
    let (left, top) = (64u32, 40u32);
    let size = (
        left + panel * t_steps as u32 + 8,
        top + panel * heads as u32 + 8,
    );
    write_png(out, size, "the attention maps", |root| {
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            format!("{}: share of queries attending to each key", maps.block),
            (8, 8),
            text(14),
        ))?;
        for h in 0..heads {
            root.draw(&Text::new(
                format!("head {h}"),
                (4, (top + panel * h as u32 + panel / 2) as i32),
                text(12),
            ))?;
            for t in 0..t_steps {
                let map = maps.map(t, b, h);
                let n = maps.tokens;
                let received: Vec<f64> = (0..n)
                    .map(|j| (0..n).filter(|&i| map[i * n + j] != 0).count() as f64 / n as f64)
                    .collect();
                let peak = received.iter().copied().fold(0.0, f64::max);
                let x0 = left + panel * t as u32;
                let y0 = top + panel * h as u32;
                let area = root
                    .clone()
                    .shrink((x0 + 2, y0 + 2), (panel - 4, panel - 4));
                let s = picture.size;
                draw_picture(&area, picture, |y, x| {
                    let token = (y * grid / s) * grid + x * grid / s;
                    let v = if peak > 0.0 {
                        received[token] / peak
                    } else {
                        0.0
                    };
                    Some((heat(v), 0.25 + 0.5 * v))
                })?;
                if h == 0 {
                    root.draw(&Text::new(
                        format!("t = {t}"),
                        ((x0 + panel / 2 - 16) as i32, (top - 14) as i32),
                        text(12),
                    ))?;
                }
            }
        }
        Ok(())
    })
}
