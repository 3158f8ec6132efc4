//! IDX files (MNIST, Fashion-MNIST), gzipped or not: a big-endian header (magic 0x803
//! for images with count, rows, cols; 0x801 for labels with count), then u8 data.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ImageDataset, Splits};
use crate::error::{Error, Result};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Read a whole file, gunzipping it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::data(path, format!("corrupt gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(path: &Path, bytes: &[u8], offset: usize) -> Result<u32> {
    bytes
        .get(offset..offset + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| {
            Error::data(
                path,
                format!("truncated header: no 4 bytes at offset {offset}"),
            )
        })
}

/// Images `[count, rows, cols]` as bytes.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    let bytes = read_maybe_gz(path)?;
    let magic = be_u32(path, &bytes, 0)?;
    if magic != IMAGES_MAGIC {
        return Err(Error::data(
            path,
            format!("not an IDX image file (magic {magic:#010x}, expected {IMAGES_MAGIC:#010x})"),
        ));
    }
    let count = be_u32(path, &bytes, 4)? as usize;
    let rows = be_u32(path, &bytes, 8)? as usize;
    let cols = be_u32(path, &bytes, 12)? as usize;
    let want = count * rows * cols;
    let data = &bytes[16..];
    if data.len() < want {
        return Err(Error::data(
            path,
            format!(
                "truncated: the header promises {count} images of {rows}x{cols} ({want} bytes \
                 after offset 16) but {} bytes follow",
                data.len()
            ),
        ));
    }
    Ok((data[..want].to_vec(), count, rows, cols))
}

pub fn read_labels(path: &Path) -> Result<Vec<u32>> {
    let bytes = read_maybe_gz(path)?;
    let magic = be_u32(path, &bytes, 0)?;
    if magic != LABELS_MAGIC {
        return Err(Error::data(
            path,
            format!("not an IDX label file (magic {magic:#010x}, expected {LABELS_MAGIC:#010x})"),
        ));
    }
    let count = be_u32(path, &bytes, 4)? as usize;
    let data = &bytes[8..];
    if data.len() < count {
        return Err(Error::data(
            path,
            format!(
                "truncated: the header promises {count} labels after offset 8 but {} bytes follow",
                data.len()
            ),
        ));
    }
    Ok(data[..count].iter().map(|&l| l as u32).collect())
}

fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

fn read_split(dir: &Path, prefix: &str) -> Result<Option<ImageDataset>> {
    let (Some(images), Some(labels)) = (
        find(dir, &format!("{prefix}-images-idx3-ubyte")),
        find(dir, &format!("{prefix}-labels-idx1-ubyte")),
    ) else {
        return Ok(None);
    };
    let (pixels, count, rows, cols) = read_images(&images)?;
    let labels_v = read_labels(&labels)?;
    if labels_v.len() != count {
        return Err(Error::data(
            &labels,
            format!(
                "{} labels for {count} images in {}",
                labels_v.len(),
                images.display()
            ),
        ));
    }
    let classes = labels_v.iter().max().map_or(0, |&m| m as usize + 1).max(10);
    Ok(Some(ImageDataset {
        images: pixels,
        labels: labels_v,
        channels: 1,
        height: rows,
        width: cols,
        time_steps: 1,
        classes: (0..classes).map(|c| c.to_string()).collect(),
    }))
}

/// The IDX train/test pair in `dir`, if its files are there.
pub fn open_dir(dir: &Path) -> Result<Option<Splits>> {
    let Some(train) = read_split(dir, "train")? else {
        return Ok(None);
    };
    let test = read_split(dir, "t10k")?.ok_or_else(|| {
        Error::data(
            dir,
            "has IDX training files but no t10k-images/t10k-labels test files",
        )
    })?;
    Ok(Some(Splits {
        train,
        test,
        format: "IDX (MNIST-style)",
        frames: None,
    }))
}
