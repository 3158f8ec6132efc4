//! Decoding image files (PNG, JPEG, BMP, GIF, WebP) from anywhere, within limits on the
//! file's size, the image's sides and the memory decoding may take.

use std::path::Path;

use crate::error::{Error, Result};
use crate::input::read_file;

/// The most bytes an image file may have.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// The largest width and height a decoded image may have.
pub const MAX_SIDE: u32 = 16384;
/// The most memory decoding one image may take.
pub const MAX_DECODED_BYTES: u64 = 512 << 20;

/// Decode an image file's contents `bytes` (PNG, JPEG, BMP, GIF or WebP, recognised by
/// their first bytes) within [`MAX_SIDE`] and [`MAX_DECODED_BYTES`]; `path` names the
/// file in errors.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<image::DynamicImage> {
    let bad = |e: image::ImageError| Error::data(path, format!("cannot decode image: {e}"));
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    reader.decode().map_err(bad)
}

/// Read and decode the image file `path` as [`decode_image`] does; refuses anything but
/// a regular file of at most [`MAX_FILE_BYTES`].
pub fn open_image(path: &Path) -> Result<image::DynamicImage> {
    decode_image(path, &read_file(path, MAX_FILE_BYTES, "image file")?)
}
