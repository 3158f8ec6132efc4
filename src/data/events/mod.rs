//! Event-camera recordings: readers for the common file formats into one in-memory form
//! ([`Events`]), their integration into T frames of 2 polarity channels, a disk cache of
//! the frames, and the dataset layouts event data comes in.

pub mod aedat;
pub mod aedat4;
pub mod cache;
pub mod dataset;
pub mod frames;
pub mod nmnist;
pub mod numpy;

use std::path::Path;

use crate::error::{Error, Result};

pub use frames::{integrate, FrameSettings, SplitBy};

/// One recording as parallel arrays: pixel column `x`, row `y`, timestamp `t` in
/// microseconds (never decreasing after reading), polarity `p` (1 = ON, 0 = OFF).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Events {
    /// Column of each event.
    pub x: Vec<u16>,
    /// Row of each event.
    pub y: Vec<u16>,
    /// Timestamp of each event, in microseconds.
    pub t: Vec<i64>,
    /// Polarity of each event (1 = ON, 0 = OFF).
    pub p: Vec<u8>,
    /// Sensor width and height when the file says it (AEDAT headers); None otherwise.
    pub sensor: Option<(usize, usize)>,
}

impl Events {
    /// The number of events.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// No events, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            x: Vec::with_capacity(n),
            y: Vec::with_capacity(n),
            t: Vec::with_capacity(n),
            p: Vec::with_capacity(n),
            sensor: None,
        }
    }

    /// Append one event.
    pub fn push(&mut self, x: u16, y: u16, t: i64, p: u8) {
        self.x.push(x);
        self.y.push(y);
        self.t.push(t);
        self.p.push(p);
    }

    /// The smallest sensor holding every event: (max x + 1, max y + 1).
    pub fn extent(&self) -> (usize, usize) {
        let w = self.x.iter().copied().max().map_or(0, |v| v as usize + 1);
        let h = self.y.iter().copied().max().map_or(0, |v| v as usize + 1);
        (w, h)
    }

    /// Order the events by timestamp (stable), for formats whose packets may interleave.
    pub fn sort_by_time(&mut self) {
        if self.t.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.t[i]);
        let pick16 = |v: &[u16]| order.iter().map(|&i| v[i]).collect::<Vec<_>>();
        self.x = pick16(&self.x);
        self.y = pick16(&self.y);
        self.t = order.iter().map(|&i| self.t[i]).collect();
        self.p = order.iter().map(|&i| self.p[i]).collect();
    }
}

/// The event-file extensions the readers recognise.
pub const EXTENSIONS: [&str; 6] = ["bin", "bs2", "aedat", "aedat4", "npy", "npz"];

/// Whether `path` has the extension of an event format bitspike reads.
pub fn is_event_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The most bytes of event data one recording may hold: the file's size, and what its
/// compressed packets or members (AEDAT 4 LZ4, .npz deflate) decompress to in all.
pub const MAX_BYTES: u64 = 1 << 30;

/// The most events one recording may hold where a reader's memory grows faster than the
/// file (numpy columns of small types, compressed AEDAT 4 packets): 33.5 million.
pub const MAX_EVENTS: usize = 1 << 25;

/// An error unless `n` events fit under [`MAX_EVENTS`].
pub(crate) fn check_count(path: &Path, offset: usize, n: usize) -> Result<()> {
    if n > MAX_EVENTS {
        return Err(corrupt(
            path,
            offset,
            format!("{n} events, more than the {MAX_EVENTS} a recording may hold"),
        ));
    }
    Ok(())
}

/// Read an event file, recognising its format by its first bytes (AEDAT, numpy, zip) or
/// else its extension (`.bin`/`.bs2`: N-MNIST / N-Caltech101 5-byte events).
pub fn read(path: &Path) -> Result<Events> {
    let bytes = crate::input::read_file(path, MAX_BYTES, "event recording")?;
    parse(path, &bytes)
}

/// [`read`] on bytes already in memory; `path` names the file in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Events> {
    if bytes.starts_with(b"#!AER-DAT4") {
        return aedat4::parse(path, bytes);
    }
    if bytes.starts_with(b"#!AER-DAT") || bytes.starts_with(b"#") {
        return aedat::parse(path, bytes);
    }
    if bytes.starts_with(numpy::NPY_MAGIC) {
        return numpy::parse_npy_events(path, bytes);
    }
    if bytes.starts_with(b"PK") {
        return numpy::parse_npz_events(path, bytes);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("bin" | "bs2") => nmnist::parse(path, bytes),
        _ => Err(Error::data(
            path,
            "unknown event file format: expected AEDAT 2/3.1/4 (a '#!AER-DAT' header), \
             numpy .npy/.npz, or N-MNIST 5-byte events (.bin, .bs2)",
        )),
    }
}

/// A corrupt-file error naming the byte offset where reading failed.
pub(crate) fn corrupt(path: &Path, offset: usize, what: impl std::fmt::Display) -> Error {
    Error::data(path, format!("corrupt at byte offset {offset}: {what}"))
}
