//! Reading files that come from anywhere: only regular files (never a directory, FIFO or
//! device such as /dev/zero), never more bytes than the file holds or a stated limit, and
//! decompressors stopped at a cap instead of growing with a bomb.

use std::fs::{File, FileType};
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

fn kind(t: FileType) -> &'static str {
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

/// Open `path` if it is a regular file (symbolic links followed); returns it with its
/// size. The type is checked before opening, so that a FIFO never blocks the open.
pub fn open_regular(path: &Path) -> Result<(File, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::data(
            path,
            format!("is {}, not a regular file", kind(meta.file_type())),
        ));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok((file, meta.len()))
}

/// A size limit as words, for messages.
pub fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

/// The whole of the regular file `path` (`what` it is, for the message), refused when it
/// is larger than `limit` bytes; never reads past the size the file had when opened.
pub fn read_file(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let (file, size) = open_regular(path)?;
    if size > limit {
        return Err(Error::data(
            path,
            format!(
                "is {size} bytes, more than the {} a {what} may have",
                mib(limit)
            ),
        ));
    }
    let mut out = Vec::with_capacity(size as usize);
    file.take(size)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// What `reader` (a decompressor) yields, at most `cap` bytes: a stream that would give
/// more is an `InvalidData` error, read no further than one byte past the cap.
pub fn read_capped(reader: impl Read, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("more than {cap} bytes, the limit for this input"),
        ));
    }
    Ok(out)
}
