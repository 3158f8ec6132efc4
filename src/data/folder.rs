//! Image folders: `train/<class>/*` and `test/<class>/*` with PNG, JPEG, BMP, GIF or WebP
//! files. Classes are the sorted subfolder names of `train/`; every image takes the
//! colour mode (grey or RGB) of the first one, and the output size (the model's, or the
//! first image's). The files are listed once, sorted; [`Load`] says whether they are
//! decoded into memory or streamed.

use std::path::{Path, PathBuf};

use super::decode::open_image;
use super::{FileList, Fit, Samples, Splits};
use crate::error::{Error, Result};

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

/// Whether an image folder is decoded into memory once or streamed from its files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Load {
    /// Stream when the decoded images would take more than half of the host's available
    /// memory, or when the first training image does not have the output size (an
    /// ImageNet-style folder, where training crops from each full image); else decode
    /// once.
    #[default]
    Auto,
    /// Always decode every image once, into memory.
    InMemory,
    /// Always keep the file list and decode on the loader's workers.
    Stream,
}

/// How [`open_dir`] reads an image folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// The output (model) size, square; None: the first training image's size.
    pub image_size: Option<usize>,
    /// Decode the images up front or as batches are prepared.
    pub load: Load,
}

/// `dir/train/<class>/*` and `dir/test/<class>/*`, if both exist. Every sample has the
/// output size of `options` and the colour mode (grey or RGB) of the first training
/// image: the training split takes each image whole (resized by the loader), the test
/// split timm's eval transform ([`super::resize::eval_center_crop`]). Whether the
/// images are decoded into memory follows [`Load`]; both ways give the same batches.
pub fn open_dir(dir: &Path, options: &FolderOptions) -> Result<Option<Splits>> {
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
    let first_size = (probe.height() as usize, probe.width() as usize);
    let (height, width) = options.image_size.map_or(first_size, |s| (s, s));
    let images = train_files.len() + test_files.len();
    let need = images as u64 * (channels * height * width) as u64;
    let host = crate::nn::limits::host_memory_available();
    // Decoded images stay in memory; leave half of it for the model and the loader.
    let too_big = host.is_some_and(|host| need > host / 2);
    let stream = match options.load {
        Load::Stream => true,
        Load::Auto => too_big || first_size != (height, width),
        Load::InMemory if too_big => {
            return Err(Error::data(
                dir,
                format!(
                    "holds {images} images of {channels}x{height}x{width}: {} MiB decoded, \
                     more than half of this host's available {} MiB; stream them, resize \
                     the images or use a subset",
                    need >> 20,
                    host.unwrap_or(0) >> 20
                ),
            ));
        }
        Load::InMemory => false,
    };
    let split = |files: Vec<(PathBuf, u32)>, fit: Fit| -> Result<Samples> {
        let (files, labels) = files.into_iter().unzip();
        let list = FileList {
            files,
            labels,
            classes: classes.clone(),
            channels,
            height,
            width,
            fit,
        };
        Ok(if stream {
            Samples::Files(list)
        } else {
            Samples::Decoded(list.decode_all()?)
        })
    };
    Ok(Some(Splits {
        train: split(train_files, Fit::Native)?,
        test: split(test_files, Fit::CenterCrop)?,
        format: "image folders",
        frames: None,
    }))
}
