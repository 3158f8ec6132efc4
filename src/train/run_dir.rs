//! A training run's directory: its checkpoints and metrics log, held by one training at a
//! time (an advisory lock that the operating system releases when the process ends, even
//! when it is killed), never silently replaced, and cleared of the temporary files that
//! an interrupted save left behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::nn::checkpoint::{remove_stale_temp_files, write_atomic};

/// What to do with a directory that already holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Start a run; refused where one exists.
    Fresh,
    /// Continue the run from its last checkpoint.
    Resume,
    /// Start over: the old checkpoints and log are removed.
    Overwrite,
}

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// The files that make a directory hold a run.
const RUN_FILES: [&str; 4] = [
    "last.safetensors",
    "best.safetensors",
    "ema.safetensors",
    "metrics.jsonl",
];

/// An open run directory; the lock is held until this is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

impl RunDir {
    /// Create (if needed) and lock `path`, then apply `mode`: a fresh run into a directory
    /// that holds one is an error, as is resuming one that holds no last checkpoint.
    pub fn open(path: &Path, mode: RunMode) -> Result<Self> {
        if path.exists() && !path.is_dir() {
            return Err(Error::data(
                path,
                "is not a directory: --out names the run's directory",
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock_path = path.join(LOCK_FILE);
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = match holder.trim() {
                    "" => String::new(),
                    pid => format!(" (process {pid})"),
                };
                return Err(Error::data(
                    path,
                    format!(
                        "another training is using this run directory{holder}: wait for it to \
                         finish or pass another --out"
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        lock.set_len(0)
            .and_then(|()| write!(lock, "{}", std::process::id()))
            .map_err(|e| Error::io(&lock_path, e))?;
        // Only now, holding the lock, is a temporary file known to be nobody's.
        remove_stale_temp_files(path)?;
        let run = Self {
            path: path.to_path_buf(),
            _lock: lock,
        };
        let present: Vec<&str> = RUN_FILES
            .into_iter()
            .filter(|f| path.join(f).exists())
            .collect();
        match mode {
            RunMode::Fresh if !present.is_empty() => Err(Error::data(
                path,
                format!(
                    "already holds a run ({}): pass --resume to continue it or --overwrite to \
                     start over",
                    present.join(", ")
                ),
            )),
            RunMode::Resume if !run.last_checkpoint().exists() => Err(Error::data(
                path,
                "holds no last.safetensors to resume from: train without --resume first",
            )),
            RunMode::Overwrite => {
                for f in present {
                    let p = path.join(f);
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
                Ok(run)
            }
            _ => Ok(run),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint of the last complete epoch (or of an interrupted one).
    pub fn last_checkpoint(&self) -> PathBuf {
        self.path.join("last.safetensors")
    }

    /// The checkpoint with the best test accuracy so far.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.path.join("best.safetensors")
    }

    /// The moving average of the weights after the last complete epoch (`--model-ema`).
    pub fn ema_checkpoint(&self) -> PathBuf {
        self.path.join("ema.safetensors")
    }

    /// One JSON object per epoch.
    pub fn metrics_log(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    /// Append `line` (one JSON object) to the metrics log, atomically: a reader sees the
    /// old log or the new one, never half a line.
    pub fn append_metrics(&self, line: &str) -> Result<()> {
        let path = self.metrics_log();
        let mut log = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        log.extend(line.bytes());
        log.push(b'\n');
        write_atomic(&path, &log)
    }
}

/// The epochs logged in the run directory `dir` (its `metrics.jsonl`), read without
/// taking the run's lock: a training may be appending to it.
pub fn read_metrics(dir: &Path) -> Result<Vec<super::EpochReport>> {
    let path = dir.join("metrics.jsonl");
    if !path.is_file() {
        return Err(Error::data(
            dir,
            "holds no metrics.jsonl: not a run directory of `bitspike train`",
        ));
    }
    let text = String::from_utf8(crate::input::read_file(&path, 64 << 20, "metrics log")?)
        .map_err(|_| Error::data(&path, "is not UTF-8 text"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::data(&path, format!("line {}: not an epoch record: {e}", i + 1))
            })
        })
        .collect()
}
