//! CIFAR-10 and CIFAR-100 in their binary format: records of label byte(s) then 3,072
//! pixel bytes, channel-planar R, G, B of 32x32. CIFAR-100 records carry two label
//! bytes (coarse, fine); the fine label is used.

use std::path::{Path, PathBuf};

use super::{ImageDataset, Splits};
use crate::error::{Error, Result};
use crate::input::read_file;

const PIXELS: usize = 3 * 32 * 32;

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The most bytes one batch file may have (CIFAR's largest, CIFAR-100's train.bin, has
/// 154 MB).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

fn read_records(files: &[PathBuf], label_bytes: usize, out: &mut ImageDataset) -> Result<()> {
    for path in files {
        let bytes = read_file(path, MAX_FILE_BYTES, "CIFAR batch")?;
        parse_records(path, &bytes, label_bytes, out)?;
    }
    Ok(())
}

/// Append the records of one batch file's contents `bytes` (`label_bytes` per record: 1
/// for CIFAR-10, 2 for CIFAR-100) to `out`; `path` names the file in errors.
pub fn parse_records(
    path: &Path,
    bytes: &[u8],
    label_bytes: usize,
    out: &mut ImageDataset,
) -> Result<()> {
    if !(1..=2).contains(&label_bytes) {
        return Err(Error::InvalidArgument(format!(
            "CIFAR records have 1 or 2 label bytes, not {label_bytes}"
        )));
    }
    let record = label_bytes + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(Error::data(
            path,
            format!(
                "truncated or not a CIFAR binary batch: {} bytes is not a whole number of \
                 {record}-byte records (the last record starts at offset {})",
                bytes.len(),
                bytes.len() / record * record
            ),
        ));
    }
    for r in bytes.chunks_exact(record) {
        out.labels.push(r[label_bytes - 1] as u32);
        out.images.extend_from_slice(&r[label_bytes..]);
    }
    Ok(())
}

/// A split of 32 x 32 RGB images with these class names and no samples yet, for
/// [`parse_records`] to fill.
pub fn empty_split(classes: Vec<String>) -> ImageDataset {
    ImageDataset {
        images: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
        time_steps: 1,
        classes,
    }
}

/// CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`) or CIFAR-100 (`train.bin`,
/// `test.bin`) in `dir` or in its `cifar-10-batches-bin/` / `cifar-100-binary/`.
pub fn open_dir(dir: &Path) -> Result<Option<Splits>> {
    for d in [
        dir.to_path_buf(),
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar-100-binary"),
    ] {
        let batches: Vec<PathBuf> = (1..=5)
            .map(|i| d.join(format!("data_batch_{i}.bin")))
            .filter(|p| p.is_file())
            .collect();
        if !batches.is_empty() {
            let names: Vec<String> = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
            let (mut train, mut test) = (empty_split(names.clone()), empty_split(names));
            read_records(&batches, 1, &mut train)?;
            read_records(&[d.join("test_batch.bin")], 1, &mut test)?;
            return Ok(Some(Splits {
                train: train.into(),
                test: test.into(),
                format: "CIFAR-10 binary",
                frames: None,
            }));
        }
        if d.join("train.bin").is_file() && d.join("test.bin").is_file() {
            let names: Vec<String> = (0..100).map(|c| c.to_string()).collect();
            let (mut train, mut test) = (empty_split(names.clone()), empty_split(names));
            read_records(&[d.join("train.bin")], 2, &mut train)?;
            read_records(&[d.join("test.bin")], 2, &mut test)?;
            return Ok(Some(Splits {
                train: train.into(),
                test: test.into(),
                format: "CIFAR-100 binary",
                frames: None,
            }));
        }
    }
    Ok(None)
}
