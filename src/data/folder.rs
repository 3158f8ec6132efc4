//! Image folders: `train/<class>/*` and `test/<class>/*` with PNG, JPEG, BMP, GIF or WebP
//! files. Classes are the sorted subfolder names of `train/`; every image takes the size
//! and colour mode (grey or RGB) of the first one.

use std::path::{Path, PathBuf};

use super::{ImageDataset, Planar, Splits};
use crate::error::{Error, Result};
use crate::input::read_file;

const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

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

/// Decode one image into channel-planar u8 of the given channels and size.
pub fn decode_planar(path: &Path, channels: usize, height: usize, width: usize) -> Result<Vec<u8>> {
    let img = open_image(path)?;
    let img = if img.width() as usize != width || img.height() as usize != height {
        img.resize_exact(
            width as u32,
            height as u32,
            image::imageops::FilterType::Triangle,
        )
    } else {
        img
    };
    Ok(Planar::from_image(&img, channels).data)
}

fn list_split(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, u32)>> {
    let mut files = Vec::new();
    for class_dir in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let name = class_dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(Error::data(
                &class_dir,
                "is a class folder that train/ does not have",
            ));
        };
        for f in sorted_entries(&class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
        {
            files.push((f, label as u32));
        }
    }
    Ok(files)
}

fn load(
    files: &[(PathBuf, u32)],
    channels: usize,
    height: usize,
    width: usize,
    classes: &[String],
) -> Result<ImageDataset> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut buf = Vec::with_capacity(part.len() * channels * height * width);
                    for (path, _) in part {
                        buf.extend(decode_planar(path, channels, height, width)?);
                    }
                    Ok(buf)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::InvalidArgument(
                        "image decoding thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut images = Vec::with_capacity(files.len() * channels * height * width);
    for p in parts {
        images.extend(p?);
    }
    Ok(ImageDataset {
        images,
        labels: files.iter().map(|(_, l)| *l).collect(),
        channels,
        height,
        width,
        time_steps: 1,
        classes: classes.to_vec(),
    })
}

/// `dir/train/<class>/*` and `dir/test/<class>/*`, if both exist.
pub fn open_dir(dir: &Path) -> Result<Option<Splits>> {
    let (train_dir, test_dir) = (dir.join("train"), dir.join("test"));
    if !train_dir.is_dir() || !test_dir.is_dir() {
        return Ok(None);
    }
    let classes: Vec<String> = sorted_entries(&train_dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let train_files = list_split(&train_dir, &classes)?;
    let test_files = list_split(&test_dir, &classes)?;
    let Some((first, _)) = train_files.first() else {
        return Err(Error::data(
            &train_dir,
            "holds no images in class subfolders",
        ));
    };
    if test_files.is_empty() {
        return Err(Error::data(
            &test_dir,
            "holds no images in class subfolders",
        ));
    }
    let probe = open_image(first)?;
    let channels = if probe.color().has_color() { 3 } else { 1 };
    let (height, width) = (probe.height() as usize, probe.width() as usize);
    let image_bytes = (channels * height * width) as u64;
    let need = (train_files.len() + test_files.len()) as u64 * image_bytes;
    if let Some(host) = crate::nn::limits::host_memory_available() {
        // Decoded images stay in memory; leave half of it for the model and the loader.
        if need > host / 2 {
            return Err(Error::data(
                dir,
                format!(
                    "holds {} images of {channels}x{height}x{width} (the size of {}): {} MiB \
                     decoded, more than half of this host's available {} MiB; resize the \
                     images or use a subset",
                    train_files.len() + test_files.len(),
                    first.display(),
                    need >> 20,
                    host >> 20
                ),
            ));
        }
    }
    Ok(Some(Splits {
        train: load(&train_files, channels, height, width, &classes)?,
        test: load(&test_files, channels, height, width, &classes)?,
        format: "image folders",
        frames: None,
    }))
}
