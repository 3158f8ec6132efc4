//! The energy report as a picture: each layer's input firing rate and its energy per
//! image as horizontal bars, layers in the order they run, top to bottom.

use std::path::Path;

use plotters::prelude::*;

use super::canvas::{text, write_png, Area, DrawResult, PALETTE};
use crate::error::{Error, Result};
use crate::nn::energy::LayerEnergy;

/// Bars of spike-driven layers; the others (fed real values) are grey.
const REAL: RGBColor = RGBColor(150, 150, 150);

/// Draw the firing rate and the energy (uJ per image) of every layer of `layers`
/// (`Pipeline::evaluate` with energy, or `bitspike eval --energy --json`) into the PNG
/// `out`.
pub fn energy_bars(layers: &[LayerEnergy], out: &Path) -> Result<()> {
    if layers.is_empty() {
        return Err(Error::InvalidArgument("no layers to plot".into()));
    }
    let height = (90 + 18 * layers.len()).clamp(300, 4000) as u32;
    write_png(out, (900, height), "the energy report", |root| {
        draw(root, layers)
    })
}

fn draw(root: &Area, layers: &[LayerEnergy]) -> DrawResult {
    root.fill(&WHITE)?;
    let total: f64 = layers.iter().map(|l| l.energy_uj).sum();
    let (left, right) = root.split_horizontally(560);
    bars(
        &left,
        layers,
        "input firing rate (grey: real-valued input)",
        |l| l.firing_rate,
        1.0,
        true,
    )?;
    let max_energy = layers.iter().map(|l| l.energy_uj).fold(0.0, f64::max);
    bars(
        &right,
        layers,
        &format!("energy, uJ per image (total {total:.3})"),
        |l| l.energy_uj,
        max_energy.max(1e-9) * 1.05,
        false,
    )
}

/// One panel of bars `value(layer)` on `0..max`, with the layers' names when `names`.
fn bars(
    area: &Area,
    layers: &[LayerEnergy],
    title: &str,
    value: fn(&LayerEnergy) -> f64,
    max: f64,
    names: bool,
) -> DrawResult {
    let n = layers.len();
    // The first layer on top: row i of the list is segment n - 1 - i.
    let row = |i: usize| (n - 1 - i) as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, text(14))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(if names { 250 } else { 4 })
        .build_cartesian_2d(0.0..max, (0..n as i32).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            // Plotters may ask for segments past either end.
            SegmentValue::CenterOf(r) if names => usize::try_from(n as i32 - 1 - *r)
                .ok()
                .and_then(|i| layers.get(i))
                .map(|l| l.layer.clone())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| format!("{x:.2}"))
        .label_style(text(11))
        .light_line_style(WHITE)
        .draw()?;
    chart.draw_series(layers.iter().enumerate().map(|(i, l)| {
        let colour = if l.spike_driven { PALETTE[0] } else { REAL };
        let r = row(i);
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(r)),
                (value(l).clamp(0.0, max), SegmentValue::Exact(r + 1)),
            ],
            colour.filled(),
        );
        bar.set_margin(2, 2, 0, 0);
        bar
    }))?;
    Ok(())
}
