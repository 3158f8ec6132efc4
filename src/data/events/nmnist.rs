//! N-MNIST / N-Caltech101 binary events: no header, 5 bytes per event: x, y, then a
//! 24-bit big-endian word whose top bit is the polarity and whose low 23 bits are the
//! timestamp in microseconds.

use std::path::Path;

use super::{corrupt, Events};
use crate::error::Result;

/// Bytes per event in N-MNIST's format.
pub const EVENT_BYTES: usize = 5;

/// The events of an N-MNIST `.bin` / `.bs2` file's bytes (`path` for messages).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Events> {
    if !bytes.len().is_multiple_of(EVENT_BYTES) {
        let whole = bytes.len() / EVENT_BYTES * EVENT_BYTES;
        return Err(corrupt(
            path,
            whole,
            format!(
                "truncated event: {} bytes left over after {} whole 5-byte events",
                bytes.len() - whole,
                whole / EVENT_BYTES
            ),
        ));
    }
    let mut ev = Events::with_capacity(bytes.len() / EVENT_BYTES);
    let mut last = 0i64;
    for (i, e) in bytes.chunks_exact(EVENT_BYTES).enumerate() {
        let t = (((e[2] & 0x7F) as i64) << 16) | ((e[3] as i64) << 8) | e[4] as i64;
        // Recordings are shorter than the 23-bit clock's 8.4 s: a decrease is damage.
        if t < last {
            return Err(corrupt(
                path,
                i * EVENT_BYTES + 2,
                format!("timestamp {t} us goes back from {last} us"),
            ));
        }
        last = t;
        ev.push(e[0] as u16, e[1] as u16, t, e[2] >> 7);
    }
    Ok(ev)
}
