//! Pictures of runs and models as PNG files, drawn with plotters: training curves from
//! run directories' metrics logs ([`training_curves`]), per-layer firing rates and energy
//! ([`energy_bars`]), and what an inference computed: the input, a spike raster of one
//! layer and the binary attention maps over the image ([`explain`]). Text uses the DejaVu
//! Sans Mono font shipped in `assets/fonts/`, so no system font is needed.

mod canvas;
mod curves;
mod energy;
pub mod explain;

pub use canvas::{FONT_FAMILY, PALETTE};
pub use curves::{training_curves, Run};
pub use energy::energy_bars;
