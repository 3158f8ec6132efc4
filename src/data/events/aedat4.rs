//! AEDAT 4 (DV / dv-processing) files: `#!AER-DAT4.0\r\n`, a size-prefixed flatbuffer
//! IOHeader (compression, data-table position, an XML description of the streams), then
//! packets: int32 stream id, int32 byte size, and the payload, LZ4-frame compressed when
//! the header says so. Each payload is a size-prefixed flatbuffer; event packets carry
//! the identifier `EVTS` and a vector of 16-byte structs (int64 t, int16 x, int16 y,
//! bool on). Other streams (frames, IMU, triggers) are skipped. The flatbuffers are read
//! by hand: only these few fields are needed.

use std::path::Path;

use super::{check_count, corrupt, Events, MAX_BYTES};
use crate::error::Result;
use crate::input::read_capped;

const MAGIC: &[u8] = b"#!AER-DAT4.0\r\n";
const EVENT_BYTES: usize = 16;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Compression {
    None,
    Lz4,
}

/// A flatbuffer inside `buf`, whose absolute position in the file is `base` (for errors).
struct Flat<'a> {
    buf: &'a [u8],
    base: usize,
    path: &'a Path,
}

impl Flat<'_> {
    fn u32_at(&self, at: usize) -> Result<u32> {
        self.buf
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(self.path, self.base + at, "flatbuffer offset out of range"))
    }

    fn u16_at(&self, at: usize) -> Result<u16> {
        self.buf
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| corrupt(self.path, self.base + at, "flatbuffer offset out of range"))
    }

    /// The root table's position.
    fn root(&self) -> Result<usize> {
        Ok(self.u32_at(0)? as usize)
    }

    /// The position of field `index` of the table at `table`, or None when absent.
    fn field(&self, table: usize, index: usize) -> Result<Option<usize>> {
        let soffset = self.u32_at(table)? as i32 as i64;
        let vtable = table as i64 - soffset;
        if vtable < 0 {
            return Err(corrupt(
                self.path,
                self.base + table,
                "bad flatbuffer vtable offset",
            ));
        }
        let vtable = vtable as usize;
        let vlen = self.u16_at(vtable)? as usize;
        let slot = 4 + 2 * index;
        if slot + 2 > vlen {
            return Ok(None);
        }
        let off = self.u16_at(vtable + slot)? as usize;
        Ok((off != 0).then_some(table + off))
    }

    /// Follow the uoffset stored at `at`.
    fn deref(&self, at: usize) -> Result<usize> {
        Ok(at + self.u32_at(at)? as usize)
    }
}

fn header(path: &Path, bytes: &[u8]) -> Result<(Compression, Option<usize>, String, usize)> {
    if !bytes.starts_with(MAGIC) {
        return Err(corrupt(
            path,
            0,
            "not an AEDAT 4.0 file (no '#!AER-DAT4.0' line)",
        ));
    }
    let at = MAGIC.len();
    let size = bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| corrupt(path, at, "truncated IOHeader size"))?;
    let buf = bytes.get(at + 4..at + 4 + size).ok_or_else(|| {
        corrupt(
            path,
            at,
            format!("IOHeader of {size} bytes runs past the end"),
        )
    })?;
    let fb = Flat {
        buf,
        base: at + 4,
        path,
    };
    let root = fb.root()?;
    let compression = match fb.field(root, 0)? {
        None => 0,
        Some(p) => fb.u32_at(p)?,
    };
    let compression = match compression {
        0 => Compression::None,
        1 | 2 => Compression::Lz4,
        3 | 4 => {
            return Err(corrupt(
                path,
                at,
                "Zstd-compressed AEDAT 4 is not supported (record with LZ4 or no compression)",
            ))
        }
        c => return Err(corrupt(path, at, format!("unknown compression type {c}"))),
    };
    let table = match fb.field(root, 1)? {
        None => None,
        Some(p) => {
            let lo = fb.u32_at(p)? as u64;
            let hi = fb.u32_at(p + 4)? as u64;
            let pos = (hi << 32 | lo) as i64;
            (pos > 0).then_some(pos as usize)
        }
    };
    let info = match fb.field(root, 2)? {
        None => String::new(),
        Some(p) => {
            let s = fb.deref(p)?;
            let len = fb.u32_at(s)? as usize;
            let text = buf
                .get(s + 4..s + 4 + len)
                .ok_or_else(|| corrupt(path, at + 4 + s, "IOHeader info string out of range"))?;
            String::from_utf8_lossy(text).into_owned()
        }
    };
    Ok((compression, table, info, at + 4 + size))
}

/// The sensor size of the event stream, from the XML's `sizeX` / `sizeY` attributes.
fn sensor(info: &str) -> Option<(usize, usize)> {
    let attr = |key: &str| {
        let tag = format!("key=\"{key}\" type=\"int\">");
        let start = info.find(&tag)? + tag.len();
        let end = start + info[start..].find('<')?;
        info[start..end].trim().parse().ok()
    };
    Some((attr("sizeX")?, attr("sizeY")?))
}

/// The events of an AEDAT 4 file's bytes (`path` for messages).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Events> {
    let (compression, table, info, mut pos) = header(path, bytes)?;
    let end = table.unwrap_or(bytes.len()).min(bytes.len());
    let mut ev = Events {
        sensor: sensor(&info),
        ..Events::default()
    };
    let mut payload;
    // What the packets may still decompress to: a bomb stops at the cap.
    let mut budget = MAX_BYTES;
    while pos < end {
        if end - pos < 8 {
            return Err(corrupt(path, pos, "truncated packet header"));
        }
        let size = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let body = pos + 8;
        let Some(raw) = bytes.get(body..body + size) else {
            return Err(corrupt(
                path,
                pos,
                format!(
                    "packet of {size} bytes runs past the end of the file ({} bytes left)",
                    bytes.len() - body
                ),
            ));
        };
        let data: &[u8] = match compression {
            Compression::None => raw,
            Compression::Lz4 => {
                payload =
                    read_capped(lz4_flex::frame::FrameDecoder::new(raw), budget).map_err(|e| {
                        corrupt(path, body, format!("LZ4 packet does not decompress: {e}"))
                    })?;
                budget -= payload.len() as u64;
                &payload
            }
        };
        read_packet(path, body, data, &mut ev)?;
        pos = body + size;
    }
    ev.sort_by_time();
    Ok(ev)
}

/// Append the events of one decompressed packet (if it is an event packet).
fn read_packet(path: &Path, at: usize, data: &[u8], ev: &mut Events) -> Result<()> {
    // Size-prefixed: 4 bytes of size, then the root offset, then the identifier.
    if data.len() < 12 {
        return Err(corrupt(path, at, "packet shorter than a flatbuffer header"));
    }
    if &data[8..12] != b"EVTS" {
        return Ok(());
    }
    let fb = Flat {
        buf: &data[4..],
        base: at,
        path,
    };
    let root = fb.root()?;
    let Some(field) = fb.field(root, 0)? else {
        return Ok(());
    };
    let vec = fb.deref(field)?;
    let n = fb.u32_at(vec)? as usize;
    let first = vec + 4;
    let elements = fb
        .buf
        .get(first..first + n.saturating_mul(EVENT_BYTES))
        .ok_or_else(|| corrupt(path, at, format!("event vector of {n} events out of range")))?;
    check_count(path, at, ev.len() + n)?;
    ev.x.reserve(n);
    ev.y.reserve(n);
    ev.t.reserve(n);
    ev.p.reserve(n);
    for e in elements.chunks_exact(EVENT_BYTES) {
        let t = i64::from_le_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        let x = i16::from_le_bytes([e[8], e[9]]);
        let y = i16::from_le_bytes([e[10], e[11]]);
        if x < 0 || y < 0 {
            return Err(corrupt(
                path,
                at,
                format!("event at negative position ({x}, {y})"),
            ));
        }
        ev.push(x as u16, y as u16, t, (e[12] != 0) as u8);
    }
    Ok(())
}
