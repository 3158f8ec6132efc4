//! IDX files (MNIST, Fashion-MNIST), gzipped or not: a big-endian header (magic 0x803
//! for images with count, rows, cols; 0x801 for labels with count), then u8 data.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{ImageDataset, Splits};
use crate::error::{Error, Result};
use crate::input::{mib, read_capped, read_file};

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The most data bytes one IDX file may hold (EMNIST's largest holds 547 MB).
pub const MAX_BYTES: u64 = 2 << 30;

fn is_gz(raw: &[u8]) -> bool {
    raw.starts_with(&[0x1f, 0x8b])
}

fn gz_error(path: &Path, e: std::io::Error) -> Error {
    Error::data(path, format!("corrupt gzip stream: {e}"))
}

/// Read a whole file, gunzipping it when it starts with the gzip magic (to at most
/// [`MAX_BYTES`] and a header's worth).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(path, MAX_BYTES, "IDX file")?;
    if is_gz(&raw) {
        read_capped(flate2::read::GzDecoder::new(&raw[..]), MAX_BYTES + 16)
            .map_err(|e| gz_error(path, e))
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

/// The `header` bytes of an IDX file's contents `raw` (gzipped or not) and exactly the
/// data bytes `promised` says the header promises: a gzip stream is inflated no further,
/// and a promise past [`MAX_BYTES`] or past the bytes that follow is an error.
fn split_idx(
    path: &Path,
    raw: Vec<u8>,
    header: usize,
    promised: impl Fn(&[u8]) -> Result<(u64, String)>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let check = |head: &[u8]| -> Result<(usize, String)> {
        let (want, what) = promised(head)?;
        if want > MAX_BYTES {
            return Err(Error::data(
                path,
                format!(
                    "the header promises {what} ({want} bytes), more than the {} an IDX \
                     file may hold",
                    mib(MAX_BYTES)
                ),
            ));
        }
        Ok((want as usize, what))
    };
    let truncated = |what: &str, want: usize, got: usize| {
        Error::data(
            path,
            format!(
                "truncated: the header promises {what} ({want} bytes after offset {header}) \
                 but {got} bytes follow"
            ),
        )
    };
    if !is_gz(&raw) {
        let (want, what) = check(raw.get(..header).unwrap_or(&raw))?;
        let mut data = raw;
        let head: Vec<u8> = data.drain(..header.min(data.len())).collect();
        if data.len() < want {
            return Err(truncated(&what, want, data.len()));
        }
        data.truncate(want);
        return Ok((head, data));
    }
    let mut gz = flate2::read::GzDecoder::new(&raw[..]);
    let mut head =
        read_capped((&mut gz).take(header as u64), header as u64).map_err(|e| gz_error(path, e))?;
    head.truncate(header);
    let (want, what) = check(&head)?;
    let data = read_capped(gz.take(want as u64), want as u64).map_err(|e| gz_error(path, e))?;
    if data.len() < want {
        return Err(truncated(
            &format!("{what} in the gzip stream"),
            want,
            data.len(),
        ));
    }
    Ok((head, data))
}

/// Images `[count, rows, cols]` as bytes.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize, usize)> {
    parse_images(path, read_file(path, MAX_BYTES, "IDX file")?)
}

/// [`read_images`] on a file's contents `raw` (gzipped or not); `path` names it in errors.
pub fn parse_images(path: &Path, raw: Vec<u8>) -> Result<(Vec<u8>, usize, usize, usize)> {
    let word = |head: &[u8], i: usize| be_u32(path, head, 4 * i);
    let (head, data) = split_idx(path, raw, 16, |head| {
        let magic = word(head, 0)?;
        if magic != IMAGES_MAGIC {
            return Err(Error::data(
                path,
                format!(
                    "not an IDX image file (magic {magic:#010x}, expected {IMAGES_MAGIC:#010x})"
                ),
            ));
        }
        let (count, rows, cols) = (word(head, 1)?, word(head, 2)?, word(head, 3)?);
        if count > 0 && (rows == 0 || cols == 0) {
            return Err(Error::data(
                path,
                format!("the header gives {count} images of {rows}x{cols} pixels"),
            ));
        }
        Ok((
            (count as u64)
                .saturating_mul(rows as u64)
                .saturating_mul(cols as u64),
            format!("{count} images of {rows}x{cols}"),
        ))
    })?;
    let (count, rows, cols) = (word(&head, 1)?, word(&head, 2)?, word(&head, 3)?);
    Ok((data, count as usize, rows as usize, cols as usize))
}

/// The labels of an IDX label file (gzipped or not).
pub fn read_labels(path: &Path) -> Result<Vec<u32>> {
    parse_labels(path, read_file(path, MAX_BYTES, "IDX file")?)
}

/// [`read_labels`] on a file's contents `raw` (gzipped or not); `path` names it in errors.
pub fn parse_labels(path: &Path, raw: Vec<u8>) -> Result<Vec<u32>> {
    let (_, data) = split_idx(path, raw, 8, |head| {
        let magic = be_u32(path, head, 0)?;
        if magic != LABELS_MAGIC {
            return Err(Error::data(
                path,
                format!(
                    "not an IDX label file (magic {magic:#010x}, expected {LABELS_MAGIC:#010x})"
                ),
            ));
        }
        let count = be_u32(path, head, 4)?;
        Ok((count as u64, format!("{count} labels")))
    })?;
    Ok(data.iter().map(|&l| l as u32).collect())
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
        train: train.into(),
        test: test.into(),
        format: "IDX (MNIST-style)",
        frames: None,
    }))
}
