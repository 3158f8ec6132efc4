//! Event datasets on disk, binned into frame datasets (an [`ImageDataset`] whose samples
//! are T frames of 2 channels):
//! - split folders, as N-MNIST ships: `Train/<class>/*.bin` and `Test/<class>/*.bin`
//!   (any case; any event format);
//! - a label file + samples folder, as ../shared/data/nmnist-small: `samples/<id>.<ext>`
//!   with `*train*.txt` and `*test*.txt` lists (`#` comment lines, then `<id> <label>`);
//! - class folders without a split (`<class>/*.aedat`, as CIFAR10-DVS): the first
//!   `train_ratio` of each class's sorted files train, the rest test (SpikingJelly's
//!   `split_to_train_test` with `random_split=False`).

use std::path::{Path, PathBuf};

use super::{cache, frames, is_event_file, FrameSettings, SplitBy};
use crate::data::{ImageDataset, Splits};
use crate::error::{Error, Result};

/// How to bin a dataset's events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventOptions {
    /// Frames per recording (the model's T).
    pub time_steps: usize,
    /// How a recording is cut into frames.
    pub split_by: SplitBy,
    /// Side of the square frames; None: the sensor's larger side.
    pub size: Option<usize>,
    /// Sensor width and height; None: from the file headers, else the events' extent
    /// over the whole dataset.
    pub sensor: Option<(usize, usize)>,
    /// Where binned frames are cached; None: no cache.
    pub cache_dir: Option<PathBuf>,
    /// Training fraction of each class for class folders without a split.
    pub train_ratio: f64,
}

impl Default for EventOptions {
    fn default() -> Self {
        Self {
            time_steps: 16,
            split_by: SplitBy::Number,
            size: None,
            sensor: None,
            cache_dir: cache::default_dir(),
            train_ratio: 0.9,
        }
    }
}

/// Files and labels of both splits, and the class names.
struct Listing {
    train: Vec<(PathBuf, u32)>,
    test: Vec<(PathBuf, u32)>,
    classes: Vec<String>,
    format: &'static str,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Class names with their files.
type ClassFiles = Vec<(String, Vec<PathBuf>)>;

/// `dir/<class>/<event files>`: the class folders and their files, if any holds events.
fn class_folders(dir: &Path) -> Result<Option<ClassFiles>> {
    let mut out = Vec::new();
    for d in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let files: Vec<PathBuf> = sorted_entries(&d)?
            .into_iter()
            .filter(|p| is_event_file(p))
            .collect();
        out.push((name_of(&d), files));
    }
    Ok(out.iter().any(|(_, f)| !f.is_empty()).then_some(out))
}

fn child_ci(dir: &Path, name: &str) -> Option<PathBuf> {
    sorted_entries(dir)
        .ok()?
        .into_iter()
        .find(|p| p.is_dir() && name_of(p).eq_ignore_ascii_case(name))
}

fn split_folders(dir: &Path) -> Result<Option<Listing>> {
    let (Some(train_dir), Some(test_dir)) = (child_ci(dir, "train"), child_ci(dir, "test")) else {
        return Ok(None);
    };
    let Some(train) = class_folders(&train_dir)? else {
        return Ok(None);
    };
    let classes: Vec<String> = train.iter().map(|(c, _)| c.clone()).collect();
    let test = class_folders(&test_dir)?.unwrap_or_default();
    let label = |c: &str, d: &Path| {
        classes
            .iter()
            .position(|k| k == c)
            .map(|l| l as u32)
            .ok_or_else(|| {
                Error::data(
                    d.join(c),
                    "is a class folder that the training split does not have",
                )
            })
    };
    let mut listing = Listing {
        train: Vec::new(),
        test: Vec::new(),
        classes: classes.clone(),
        format: "event files in Train/ and Test/ class folders",
    };
    for (c, files) in train {
        let l = label(&c, &train_dir)?;
        listing.train.extend(files.into_iter().map(|f| (f, l)));
    }
    for (c, files) in test {
        let l = label(&c, &test_dir)?;
        listing.test.extend(files.into_iter().map(|f| (f, l)));
    }
    Ok(Some(listing))
}

/// `<id> <label>` lines (`#` lines are comments), resolved to files in `samples`.
/// The largest label list read (about a million lines).
const MAX_LIST_BYTES: u64 = 64 << 20;

fn read_list(list: &Path, samples: &Path) -> Result<Vec<(PathBuf, u32)>> {
    let bytes = crate::input::read_file(list, MAX_LIST_BYTES, "label list")?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::data(
            list,
            "is not UTF-8 text: a label list has lines 'name label'",
        )
    })?;
    let files: Vec<PathBuf> = sorted_entries(samples)?
        .into_iter()
        .filter(|p| is_event_file(p))
        .collect();
    let by_stem: std::collections::HashMap<String, &PathBuf> = files
        .iter()
        .map(|p| {
            (
                p.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                p,
            )
        })
        .collect();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(id), Some(label)) = (parts.next(), parts.next()) else {
            return Err(Error::data(
                list,
                format!("line {}: expected '<id> <label>'", n + 1),
            ));
        };
        let label: u32 = label.parse().map_err(|_| {
            Error::data(
                list,
                format!("line {}: label '{label}' is not a number", n + 1),
            )
        })?;
        // Bounded before the class list is built from the largest label.
        let classes = crate::nn::config::CLASSES;
        if label as usize >= *classes.end() {
            return Err(Error::data(
                list,
                format!(
                    "line {}: label {label} is over the largest class index {}",
                    n + 1,
                    classes.end() - 1
                ),
            ));
        }
        let stem = Path::new(id)
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(file) = by_stem.get(&stem) else {
            return Err(Error::data(
                list,
                format!(
                    "line {}: no event file for sample '{id}' in {}",
                    n + 1,
                    samples.display()
                ),
            ));
        };
        out.push(((*file).clone(), label));
    }
    Ok(out)
}

fn label_files(dir: &Path) -> Result<Option<Listing>> {
    let samples = dir.join("samples");
    if !samples.is_dir() {
        return Ok(None);
    }
    let lists: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    let find = |word: &str| {
        lists
            .iter()
            .find(|p| name_of(p).to_ascii_lowercase().contains(word))
    };
    let (Some(train_list), Some(test_list)) = (find("train"), find("test")) else {
        return Ok(None);
    };
    let train = read_list(train_list, &samples)?;
    let test = read_list(test_list, &samples)?;
    let classes = train
        .iter()
        .chain(&test)
        .map(|(_, l)| *l + 1)
        .max()
        .unwrap_or(0);
    Ok(Some(Listing {
        train,
        test,
        classes: (0..classes).map(|c| c.to_string()).collect(),
        format: "event samples with train/test label files",
    }))
}

fn unsplit_class_folders(dir: &Path, train_ratio: f64) -> Result<Option<Listing>> {
    let Some(folders) = class_folders(dir)? else {
        return Ok(None);
    };
    let mut listing = Listing {
        train: Vec::new(),
        test: Vec::new(),
        classes: folders.iter().map(|(c, _)| c.clone()).collect(),
        format: "class folders of event files (split per class)",
    };
    for (l, (_, files)) in folders.into_iter().enumerate() {
        let cut = (files.len() as f64 * train_ratio).round() as usize;
        for (i, f) in files.into_iter().enumerate() {
            let dst = if i < cut {
                &mut listing.train
            } else {
                &mut listing.test
            };
            dst.push((f, l as u32));
        }
    }
    Ok(Some(listing))
}

/// Run `f` on every file on all cores, keeping the order.
fn par_map<T: Send>(files: &[PathBuf], f: impl Fn(&Path) -> Result<T> + Sync) -> Result<Vec<T>> {
    crate::data::parallel::par_map(files, "event reading", |p| f(p))
}

/// The sensor size: given, else the first file's header's, else the extent of all events.
fn sensor_of(files: &[PathBuf], given: Option<(usize, usize)>) -> Result<(usize, usize)> {
    if let Some(s) = given {
        return Ok(s);
    }
    let Some(first) = files.first() else {
        return Err(Error::InvalidArgument("no event files".into()));
    };
    if let Some(s) = super::read(first)?.sensor {
        return Ok(s);
    }
    let extents = par_map(files, |p| Ok(super::read(p)?.extent()))?;
    Ok(extents
        .into_iter()
        .fold((1, 1), |a, e| (a.0.max(e.0), a.1.max(e.1))))
}

/// Bin the files into frames `[N, T, 2, size, size]` (u8 counts), through the cache.
pub fn bin_files(files: &[PathBuf], options: &EventOptions) -> Result<(Vec<u8>, FrameSettings)> {
    let cached = options.cache_dir.as_ref().map(|d| {
        let key = (
            options.time_steps,
            options.split_by,
            options.size,
            options.sensor,
        );
        cache::key_path(d, files, &key)
    });
    if let Some(hit) = cached
        .as_ref()
        .and_then(|p| cache::load(p, files.len(), options.time_steps))
    {
        return Ok(hit);
    }
    let sensor = sensor_of(files, options.sensor)?;
    let settings = FrameSettings {
        time_steps: options.time_steps,
        split_by: options.split_by,
        sensor,
        size: options.size.unwrap_or(sensor.0.max(sensor.1)),
    };
    settings.validate()?;
    let parts = par_map(files, |p| {
        Ok(frames::integrate_u8(&super::read(p)?, &settings))
    })?;
    let all = parts.concat();
    if let Some(path) = &cached {
        // A cache that cannot be written costs time next run, not this one's result.
        if let Err(e) = cache::store(path, &all, files.len(), &settings) {
            eprintln!("warning: frames not cached: {e}");
        }
    }
    Ok((all, settings))
}

/// Open an event dataset directory, or None when `dir` holds no event data.
pub fn open_dir(dir: &Path, options: &EventOptions) -> Result<Option<Splits>> {
    let listing = match split_folders(dir)? {
        Some(l) => l,
        None => match label_files(dir)? {
            Some(l) => l,
            None => match unsplit_class_folders(dir, options.train_ratio)? {
                Some(l) => l,
                None => return Ok(None),
            },
        },
    };
    if listing.train.is_empty() {
        return Err(Error::data(dir, "holds no training event files"));
    }
    let files: Vec<PathBuf> = listing
        .train
        .iter()
        .chain(&listing.test)
        .map(|(p, _)| p.clone())
        .collect();
    let (all, settings) = bin_files(&files, options)?;
    let n = settings.sample_len();
    let dataset = |items: &[(PathBuf, u32)], frames: &[u8]| ImageDataset {
        images: frames.to_vec(),
        labels: items.iter().map(|(_, l)| *l).collect(),
        channels: frames::POLARITIES,
        height: settings.size,
        width: settings.size,
        time_steps: settings.time_steps,
        classes: listing.classes.clone(),
    };
    let split = listing.train.len() * n;
    Ok(Some(Splits {
        train: dataset(&listing.train, &all[..split]).into(),
        test: dataset(&listing.test, &all[split..]).into(),
        format: listing.format,
        frames: Some(settings),
    }))
}
