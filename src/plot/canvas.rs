//! The drawing surface every plot uses: an RGB buffer that plotters draws into, with the
//! shipped font registered, encoded as PNG and written atomically.

use std::path::Path;
use std::sync::OnceLock;

use image::ImageEncoder;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};

/// The font family plots write text in (the font is registered on first use).
pub const FONT_FAMILY: &str = "sans-serif";

/// Colours of successive series (runs, panels), readable on white.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

/// What plotters' drawing code returns.
pub(crate) type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The root area plots draw on.
pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Register the shipped font with plotters, once; whether it parsed.
fn register_font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT).is_ok()
    })
}

/// Draw a `width` x `height` picture with `draw` on a white background and write it to
/// `path` as PNG (through a temporary file, renamed); `what` names it in errors.
pub(crate) fn write_png(
    path: &Path,
    (width, height): (u32, u32),
    what: &str,
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<()> {
    if !register_font() {
        return Err(Error::Plot {
            what: what.into(),
            message: "the shipped font (assets/fonts/DejaVuSansMono.ttf) does not parse".into(),
        });
    }
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root)
            .and_then(|()| root.present().map_err(Into::into))
            .map_err(|e| Error::Plot {
                what: what.into(),
                message: e.to_string(),
            })?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new_with_quality(
        &mut png,
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    )
    .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
    .map_err(|e| Error::Plot {
        what: what.into(),
        message: format!("PNG encoding: {e}"),
    })?;
    crate::nn::checkpoint::write_atomic(path, &png)
}

/// A text style of `size` pixels in the shipped font.
pub(crate) fn text(size: u32) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().into()
}
