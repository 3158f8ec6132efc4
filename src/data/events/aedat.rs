//! jAER AEDAT 2.0 and 3.1 files: `#` header lines, then
//! - 2.0: big-endian (int32 address, int32 timestamp in us) pairs; the address layout is
//!   the chip's (the `# AEChip:` line): DVS128 (x bits 1-7, y bits 8-14, polarity bit 0)
//!   or DAVIS (bit 31 clear for DVS events, y bits 22-30, x bits 12-21, polarity bit 11),
//!   with x (and for DAVIS y) mirrored as jAER shows them;
//! - 3.1: little-endian packets with a 28-byte header (type, source, event size,
//!   timestamp offset, timestamp overflow, capacity, number, valid); polarity packets
//!   (type 1) hold 8-byte events: a data word (bit 0 valid, bit 1 polarity, bits 2-16 y,
//!   bits 17-31 x) and a 31-bit timestamp extended by the packet's overflow counter.

use std::path::Path;

use super::{corrupt, Events};
use crate::error::{Error, Result};

/// The header lines (without `#` or line ends) and the offset of the first data byte.
fn header(bytes: &[u8]) -> (Vec<String>, usize) {
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() && bytes[pos] == b'#' {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let line = String::from_utf8_lossy(&bytes[pos + 1..end]);
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        pos = end;
        let last = line.starts_with("!END-HEADER");
        lines.push(line);
        if last {
            break;
        }
    }
    (lines, pos)
}

/// The events of an AEDAT 2.0 or 3.1 file's bytes (`path` for messages).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Events> {
    let (lines, start) = header(bytes);
    let version = lines
        .first()
        .and_then(|l| l.strip_prefix("!AER-DAT"))
        .map(|v| v.trim().to_string());
    match version.as_deref() {
        Some(v) if v.starts_with('3') => parse_v3(path, bytes, &lines, start),
        // Files without a version line are jAER's original 2.0 layout.
        Some(v) if v.starts_with('2') || v.starts_with('1') => parse_v2(path, bytes, &lines, start),
        None => parse_v2(path, bytes, &lines, start),
        Some(v) => Err(Error::data(
            path,
            format!("AEDAT version {v} is not supported (2.0, 3.1 and 4.0 are)"),
        )),
    }
}

fn chip(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| {
            l.trim()
                .strip_prefix("AEChip:")
                .map(|c| c.trim().to_string())
        })
        .unwrap_or_default()
}

fn parse_v2(path: &Path, bytes: &[u8], lines: &[String], start: usize) -> Result<Events> {
    let body = &bytes[start..];
    if !body.len().is_multiple_of(8) {
        let whole = start + body.len() / 8 * 8;
        return Err(corrupt(
            path,
            whole,
            format!(
                "truncated event: {} bytes after the last whole 8-byte event",
                bytes.len() - whole
            ),
        ));
    }
    let chip = chip(lines).to_ascii_lowercase();
    let davis = chip.contains("davis");
    let (w, h) = if chip.contains("346") {
        (346, 260)
    } else if chip.contains("davis") {
        (240, 180)
    } else {
        (128, 128)
    };
    let mut ev = Events::with_capacity(body.len() / 8);
    ev.sensor = Some((w, h));
    for (i, e) in body.chunks_exact(8).enumerate() {
        let addr = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let t = i32::from_be_bytes([e[4], e[5], e[6], e[7]]) as i64;
        // Raw sensor coordinates; jAER shows them mirrored.
        let (x, y, p, mirror_y) = if davis {
            if addr >> 31 != 0 {
                continue; // an APS (frame) or IMU sample, not a polarity event
            }
            let x = ((addr >> 12) & 0x3FF) as usize;
            let y = ((addr >> 22) & 0x1FF) as usize;
            (x, y, ((addr >> 11) & 1) as u8, true)
        } else {
            if addr & 0x8000 != 0 {
                continue; // an external (special) event
            }
            let x = ((addr >> 1) & 0x7F) as usize;
            let y = ((addr >> 8) & 0x7F) as usize;
            (x, y, (addr & 1) as u8, false)
        };
        if x >= w || y >= h {
            return Err(corrupt(
                path,
                start + i * 8,
                format!("event at ({x}, {y}) outside the {w}x{h} sensor"),
            ));
        }
        let (x, y) = (w - 1 - x, if mirror_y { h - 1 - y } else { y });
        ev.push(x as u16, y as u16, t, p);
    }
    ev.sort_by_time();
    Ok(ev)
}

const PACKET_HEADER: usize = 28;
const POLARITY_EVENT: u16 = 1;

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn parse_v3(path: &Path, bytes: &[u8], lines: &[String], start: usize) -> Result<Events> {
    if !lines.iter().any(|l| l.starts_with("!END-HEADER")) {
        return Err(corrupt(
            path,
            start,
            "AEDAT 3 header has no '#!END-HEADER' line",
        ));
    }
    let mut ev = Events::default();
    if lines.iter().any(|l| l.contains("DVS128")) {
        ev.sensor = Some((128, 128));
    }
    let mut pos = start;
    while pos < bytes.len() {
        if bytes.len() - pos < PACKET_HEADER {
            return Err(corrupt(
                path,
                pos,
                format!(
                    "truncated packet header ({} of {PACKET_HEADER} bytes)",
                    bytes.len() - pos
                ),
            ));
        }
        let kind = u16::from_le_bytes([bytes[pos], bytes[pos + 1]]);
        let size = le_u32(bytes, pos + 4) as usize;
        let ts_offset = le_u32(bytes, pos + 8) as usize;
        let overflow = le_u32(bytes, pos + 12) as i64;
        let capacity = le_u32(bytes, pos + 16) as usize;
        let number = le_u32(bytes, pos + 20) as usize;
        if size == 0 || number > capacity || ts_offset + 4 > size.max(4) {
            return Err(corrupt(
                path,
                pos,
                format!(
                    "bad packet header (event size {size}, {number} of {capacity} events, \
                     timestamp offset {ts_offset})"
                ),
            ));
        }
        let body = pos + PACKET_HEADER;
        let len = size.saturating_mul(capacity);
        if len > bytes.len() - body {
            return Err(corrupt(
                path,
                pos,
                format!(
                    "packet of {len} bytes runs past the end of the file ({} bytes left)",
                    bytes.len() - body
                ),
            ));
        }
        if kind == POLARITY_EVENT {
            if size < 8 {
                return Err(corrupt(
                    path,
                    pos,
                    format!("polarity events of {size} bytes"),
                ));
            }
            for i in 0..number {
                let e = body + i * size;
                let data = le_u32(bytes, e);
                if data & 1 == 0 {
                    continue; // invalidated event
                }
                let t = (overflow << 31) | (le_u32(bytes, e + ts_offset) & 0x7FFF_FFFF) as i64;
                let x = ((data >> 17) & 0x7FFF) as u16;
                let y = ((data >> 2) & 0x7FFF) as u16;
                ev.push(x, y, t, ((data >> 1) & 1) as u8);
            }
        }
        pos = body + len;
    }
    ev.sort_by_time();
    Ok(ev)
}
