//! A disk cache of binned frames, so that each run (and each epoch) does not re-read and
//! re-bin the event files. One file per list of samples, named by a hash of the frame
//! settings and every file's path, size and modification time: a changed file or setting
//! misses the cache. Written atomically; a damaged or foreign cache file is ignored.

use std::path::{Path, PathBuf};

use super::FrameSettings;
use crate::error::Result;
use crate::nn::checkpoint::write_atomic;

const MAGIC: &[u8; 8] = b"BSFRAME1";

/// FNV-1a, 64 bit: a hash that is the same in every build (std's is not promised to be).
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) {
        for &v in b {
            self.0 ^= v as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// The default cache directory: `$BITSPIKE_CACHE`, else `$XDG_CACHE_HOME/bitspike`, else
/// `$HOME/.cache/bitspike`; None when none is set.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("BITSPIKE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("bitspike")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("bitspike")))
}

/// The cache file for these samples binned as `options` ask.
pub fn key_path(dir: &Path, files: &[PathBuf], options: &impl std::fmt::Debug) -> PathBuf {
    let mut h = Fnv::new();
    h.bytes(format!("{options:?}").as_bytes());
    for f in files {
        h.bytes(f.to_string_lossy().as_bytes());
        h.u64(0xff);
        if let Ok(m) = std::fs::metadata(f) {
            h.u64(m.len());
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as u64);
            h.u64(mtime);
        }
    }
    dir.join(format!("frames-{:016x}.bin", h.0))
}

const HEADER: usize = 8 + 5 * 8;

/// The cached frames of `samples` samples with `time_steps` frames and the settings they
/// were binned with, if the file is there and whole.
pub fn load(path: &Path, samples: usize, time_steps: usize) -> Option<(Vec<u8>, FrameSettings)> {
    let bytes = crate::input::read_file(path, u64::MAX, "frame cache").ok()?;
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return None;
    }
    let word = |i: usize| {
        let b: [u8; 8] = bytes[8 + 8 * i..16 + 8 * i].try_into().unwrap_or_default();
        u64::from_le_bytes(b) as usize
    };
    let split_by = match word(4) {
        0 => super::SplitBy::Time,
        _ => super::SplitBy::Number,
    };
    let settings = FrameSettings {
        time_steps,
        split_by,
        sensor: (word(1), word(2)),
        size: word(3),
    };
    let whole = word(0) == samples
        && settings.validate().is_ok()
        && bytes.len() == HEADER + samples * settings.sample_len();
    whole.then(|| (bytes[HEADER..].to_vec(), settings))
}

/// Write `samples` samples' binned `frames` with their `settings` to the cache file `path`, atomically.
pub fn store(path: &Path, frames: &[u8], samples: usize, settings: &FrameSettings) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    }
    let mut bytes = Vec::with_capacity(HEADER + frames.len());
    bytes.extend_from_slice(MAGIC);
    let s = settings;
    let split = (s.split_by == super::SplitBy::Number) as usize;
    for v in [samples, s.sensor.0, s.sensor.1, s.size, split] {
        bytes.extend_from_slice(&(v as u64).to_le_bytes());
    }
    bytes.extend_from_slice(frames);
    write_atomic(path, &bytes)
}
