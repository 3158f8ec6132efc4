//! Training curves: loss, train and test accuracy, and learning rate per epoch, for one or
//! several runs on shared axes.

use std::path::Path;

use plotters::prelude::*;

use super::canvas::{text, write_png, Area, DrawResult, PALETTE};
use crate::error::{Error, Result};
use crate::train::EpochReport;

/// One run's epochs under the name its curves carry in the legend.
#[derive(Debug, Clone)]
pub struct Run {
    /// The legend's name of the run (e.g. its directory's name).
    pub name: String,
    /// Its epochs, as `metrics.jsonl` logs them.
    pub epochs: Vec<EpochReport>,
}

/// The picture's size in pixels.
const SIZE: (u32, u32) = (800, 500);

/// Draw `runs` as three charts side by side (training loss; train accuracy dashed and
/// test accuracy solid; learning rate) into the PNG `out`.
pub fn training_curves(runs: &[Run], out: &Path) -> Result<()> {
    if runs.iter().all(|r| r.epochs.is_empty()) {
        return Err(Error::InvalidArgument(
            "no epochs to plot: the runs' metrics logs are empty".into(),
        ));
    }
    write_png(out, SIZE, "training curves", |root| draw(root, runs))
}

/// The values of one chart: `(epoch, value)` per epoch of a run.
type Series = fn(&EpochReport) -> f64;

fn draw(root: &Area, runs: &[Run]) -> DrawResult {
    root.fill(&WHITE)?;
    let last_epoch = runs
        .iter()
        .flat_map(|r| r.epochs.iter().map(|e| e.epoch))
        .max()
        .unwrap_or(1);
    let panels = root.split_evenly((1, 3));
    let loss: &[(Series, bool)] = &[(|e| e.train_loss, false)];
    let accuracy: &[(Series, bool)] = &[
        (|e| 100.0 * e.train_accuracy, true),
        (|e| 100.0 * e.test_accuracy, false),
    ];
    let lr: &[(Series, bool)] = &[(|e| e.lr as f64, false)];
    chart(&panels[0], runs, "training loss", last_epoch, loss, false)?;
    chart(
        &panels[1],
        runs,
        "accuracy % (train dashed, test solid)",
        last_epoch,
        accuracy,
        true,
    )?;
    chart(&panels[2], runs, "learning rate", last_epoch, lr, false)
}

/// One chart of `series` (a function of an epoch, dashed or not) for every run.
fn chart(
    area: &Area,
    runs: &[Run],
    title: &str,
    last_epoch: usize,
    series: &[(Series, bool)],
    legend: bool,
) -> DrawResult {
    let values = || {
        runs.iter()
            .flat_map(|r| r.epochs.iter())
            .flat_map(|e| series.iter().map(move |(f, _)| f(e)))
            .filter(|v| v.is_finite())
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-9);
    let mut chart = ChartBuilder::on(area)
        .caption(title, text(15))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(58)
        .build_cartesian_2d(0.5..last_epoch as f64 + 0.5, (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(last_epoch.min(10) + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format_value(*y))
        .label_style(text(12))
        .axis_desc_style(text(12))
        .light_line_style(WHITE)
        .draw()?;
    for (i, run) in runs.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        for &(f, dashed) in series {
            let points: Vec<(f64, f64)> = run
                .epochs
                .iter()
                .map(|e| (e.epoch as f64, f(e)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            let style = colour.stroke_width(2);
            if dashed {
                chart.draw_series(DashedLineSeries::new(points.clone(), 6, 4, style))?;
            } else {
                let line = chart.draw_series(LineSeries::new(points.clone(), style))?;
                if legend {
                    line.label(run.name.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                }
            }
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .label_font(text(12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
    }
    Ok(())
}

/// A tick label: plain for ordinary magnitudes, scientific for learning rates.
fn format_value(v: f64) -> String {
    match v.abs() {
        0.0 => "0".into(),
        a if a < 0.01 => format!("{v:.1e}"),
        a if a < 10.0 => format!("{v:.2}"),
        _ => format!("{v:.1}"),
    }
}
