//! Events in numpy files:
//! - `.npy` holding a structured array with fields x, y, t, p (as tonic writes events,
//!   any integer or bool field types), or a 2-D `[N, 4]` numeric array in x, y, t, p order;
//! - `.npz` (a zip of `.npy` members): SpikingJelly's layout of one 1-D array per field
//!   (`x.npy`, `y.npy`, `t.npy`, `p.npy`), or a single structured array member.

use std::path::Path;

use super::{check_count, corrupt, Events, MAX_BYTES};
use crate::error::{Error, Result};
use crate::input::{mib, read_capped};

/// The first bytes of every `.npy` file.
pub const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// One scalar type of a numpy array.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Scalar {
    kind: char,
    bytes: usize,
    big_endian: bool,
}

impl Scalar {
    fn parse(descr: &str) -> Option<Self> {
        let d = descr.trim().trim_matches('\'');
        let (big_endian, rest) = match d.as_bytes().first()? {
            b'>' => (true, &d[1..]),
            b'<' | b'=' | b'|' => (false, &d[1..]),
            _ => (false, d),
        };
        let kind = rest.chars().next()?;
        if rest == "?" {
            return Some(Self {
                kind: 'b',
                bytes: 1,
                big_endian,
            });
        }
        let bytes: usize = rest[kind.len_utf8()..].parse().ok()?;
        matches!(
            (kind, bytes),
            ('i' | 'u', 1 | 2 | 4 | 8) | ('f', 4 | 8) | ('b', 1)
        )
        .then_some(Self {
            kind,
            bytes,
            big_endian,
        })
    }

    /// The value at the start of `b` as an i64 (floats truncated).
    fn read(&self, b: &[u8]) -> i64 {
        let mut buf = [0u8; 8];
        buf[..self.bytes].copy_from_slice(&b[..self.bytes]);
        if self.big_endian {
            buf[..self.bytes].reverse();
        }
        let raw = u64::from_le_bytes(buf);
        let sign_extend = |bits: u32| ((raw << (64 - bits)) as i64) >> (64 - bits);
        match (self.kind, self.bytes) {
            ('i', n) => sign_extend(8 * n as u32),
            ('f', 4) => f32::from_bits(raw as u32) as i64,
            ('f', _) => f64::from_bits(raw) as i64,
            _ => raw as i64,
        }
    }
}

/// A parsed `.npy`: its fields (name, type, byte offset in a record), record size,
/// shape, and where the data starts.
struct Npy<'a> {
    fields: Vec<(String, Scalar, usize)>,
    record: usize,
    shape: Vec<usize>,
    data: &'a [u8],
    data_offset: usize,
}

fn parse_header<'a>(path: &Path, bytes: &'a [u8]) -> Result<Npy<'a>> {
    if !bytes.starts_with(NPY_MAGIC) || bytes.len() < 10 {
        return Err(corrupt(path, 0, "not a numpy .npy array"));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(corrupt(path, 6, format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + len)
        .ok_or_else(|| corrupt(path, start, "truncated .npy header"))?;
    let header = String::from_utf8_lossy(header);
    let bad = |what: &str| corrupt(path, start, format!("bad .npy header ({what}): {header}"));
    let value_of = |key: &str| -> Option<&str> {
        let k = header.find(&format!("'{key}'"))?;
        let rest = &header[k + key.len() + 2..];
        Some(rest[rest.find(':')? + 1..].trim_start())
    };
    if value_of("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(bad("Fortran order is not supported"));
    }
    let shape_text = value_of("shape").ok_or_else(|| bad("no shape"))?;
    let shape_text = shape_text.strip_prefix('(').ok_or_else(|| bad("shape"))?;
    let shape_text = &shape_text[..shape_text.find(')').ok_or_else(|| bad("shape"))?];
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("shape"))?;
    let descr = value_of("descr").ok_or_else(|| bad("no descr"))?;
    let mut fields = Vec::new();
    let record = if let Some(list) = descr.strip_prefix('[') {
        // [('x', '<i8'), ('y', '<i8'), ...]
        let list = &list[..list.find(']').ok_or_else(|| bad("descr"))?];
        let mut offset = 0;
        for item in list
            .split(')')
            .map(|s| s.trim_start_matches([',', ' ', '(']))
        {
            if item.trim().is_empty() {
                continue;
            }
            let mut parts = item.split(',').map(|s| s.trim().trim_matches('\''));
            let (Some(name), Some(ty)) = (parts.next(), parts.next()) else {
                return Err(bad("field"));
            };
            if parts.next().is_some_and(|s| !s.is_empty()) {
                return Err(bad("sub-array fields are not supported"));
            }
            let s = Scalar::parse(ty).ok_or_else(|| bad("field type"))?;
            fields.push((name.to_string(), s, offset));
            offset += s.bytes;
        }
        if fields.is_empty() {
            return Err(bad("a structured type without fields"));
        }
        offset
    } else {
        let quoted = descr.strip_prefix('\'').ok_or_else(|| bad("descr"))?;
        let end = quoted.find('\'').ok_or_else(|| bad("descr"))?;
        let s = Scalar::parse(&quoted[..end]).ok_or_else(|| bad("dtype"))?;
        fields.push((String::new(), s, 0));
        s.bytes
    };
    let data_offset = start + len;
    let need = shape
        .iter()
        .try_fold(record, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad("an array of more bytes than memory has"))?;
    let data = bytes.get(data_offset..).unwrap_or_default();
    if data.len() < need {
        return Err(corrupt(
            path,
            data_offset + data.len() / record.max(1) * record,
            format!(
                "truncated array: {} of {need} data bytes (shape {shape:?})",
                data.len()
            ),
        ));
    }
    Ok(Npy {
        fields,
        record,
        shape,
        data: &data[..need],
        data_offset,
    })
}

fn build(path: &Path, columns: [Vec<i64>; 4], offset: usize) -> Result<Events> {
    let [x, y, t, p] = columns;
    let n = t.len();
    if x.len() != n || y.len() != n || p.len() != n {
        return Err(Error::data(
            path,
            format!(
                "event arrays of unequal lengths (x {}, y {}, t {}, p {})",
                x.len(),
                y.len(),
                n,
                p.len()
            ),
        ));
    }
    let mut ev = Events::with_capacity(n);
    for i in 0..n {
        if !(0..=u16::MAX as i64).contains(&x[i]) || !(0..=u16::MAX as i64).contains(&y[i]) {
            return Err(corrupt(
                path,
                offset,
                format!("event {i} at position ({}, {}) out of range", x[i], y[i]),
            ));
        }
        ev.push(x[i] as u16, y[i] as u16, t[i], (p[i] > 0) as u8);
    }
    ev.sort_by_time();
    Ok(ev)
}

/// The x, y, t, p columns of a structured or `[N, 4]` array.
fn columns(path: &Path, npy: &Npy) -> Result<[Vec<i64>; 4]> {
    let names = ["x", "y", "t", "p"];
    if npy.fields.len() > 1 {
        check_count(path, npy.data_offset, npy.data.len() / npy.record)?;
        let mut out: [Vec<i64>; 4] = Default::default();
        for (col, name) in out.iter_mut().zip(names) {
            let Some((_, s, off)) = npy.fields.iter().find(|(n, ..)| {
                n == name || (name == "t" && n == "ts") || (name == "p" && n == "pol")
            }) else {
                return Err(Error::data(
                    path,
                    format!("structured array has no '{name}' field (it needs x, y, t, p)"),
                ));
            };
            *col = npy
                .data
                .chunks_exact(npy.record)
                .map(|r| s.read(&r[*off..]))
                .collect();
        }
        return Ok(out);
    }
    let s = npy.fields[0].1;
    match npy.shape[..] {
        [n, 4] => {
            check_count(path, npy.data_offset, n)?;
            let mut out: [Vec<i64>; 4] = Default::default();
            for (i, v) in npy.data.chunks_exact(s.bytes).enumerate() {
                out[i % 4].push(s.read(v));
            }
            Ok(out)
        }
        _ => Err(corrupt(
            path,
            npy.data_offset,
            format!(
                "array of shape {:?} is not events: expected a structured array with x, y, \
                 t, p fields or an [N, 4] array",
                npy.shape
            ),
        )),
    }
}

/// The events of a `.npy` structured array with fields x, y, t, p (tonic's layout).
pub fn parse_npy_events(path: &Path, bytes: &[u8]) -> Result<Events> {
    let npy = parse_header(path, bytes)?;
    let cols = columns(path, &npy)?;
    build(path, cols, npy.data_offset)
}

/// A plain 1-D array as i64 values.
fn vector(path: &Path, npy: &Npy) -> Result<Vec<i64>> {
    if npy.fields.len() != 1 || npy.shape.len() != 1 {
        return Err(corrupt(
            path,
            npy.data_offset,
            format!("expected a 1-D array, got shape {:?}", npy.shape),
        ));
    }
    check_count(path, npy.data_offset, npy.shape[0])?;
    let s = npy.fields[0].1;
    Ok(npy.data.chunks_exact(s.bytes).map(|v| s.read(v)).collect())
}

/// The events of a `.npz` archive with arrays x, y, t, p (SpikingJelly's layout).
pub fn parse_npz_events(path: &Path, bytes: &[u8]) -> Result<Events> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| corrupt(path, 0, format!("not a readable .npz (zip) archive: {e}")))?;
    let mut members = Vec::new();
    let mut budget = MAX_BYTES;
    for i in 0..zip.len() {
        let mut f = zip
            .by_index(i)
            .map_err(|e| corrupt(path, 0, format!("zip member {i}: {e}")))?;
        let name = f.name().trim_end_matches(".npy").to_string();
        let offset = f.data_start().unwrap_or(0) as usize;
        let size = f.size();
        if size > budget {
            return Err(corrupt(
                path,
                offset,
                format!(
                    "member '{name}' says it holds {size} bytes: past the {} of event data \
                     a recording may hold",
                    mib(MAX_BYTES)
                ),
            ));
        }
        // No further than the size the archive gives: a bomb stops there.
        let buf = read_capped(&mut f, size).map_err(|e| {
            corrupt(
                path,
                offset,
                format!("member '{name}' does not decompress: {e}"),
            )
        })?;
        budget -= buf.len() as u64;
        members.push((name, buf, offset));
    }
    let member_path = |name: &str| path.join(format!("{name}.npy"));
    let find = |name: &str| members.iter().find(|(n, ..)| n == name);
    if let (Some(x), Some(y), Some(t), Some(p)) = (find("x"), find("y"), find("t"), find("p")) {
        let mut cols: [Vec<i64>; 4] = Default::default();
        for (col, (name, buf, _)) in cols.iter_mut().zip([x, y, t, p]) {
            let mp = member_path(name);
            *col = vector(&mp, &parse_header(&mp, buf)?)?;
        }
        return build(path, cols, 0);
    }
    match &members[..] {
        [(name, buf, offset)] => {
            let mp = member_path(name);
            let npy = parse_header(&mp, buf)?;
            build(path, columns(&mp, &npy)?, *offset)
        }
        _ => Err(Error::data(
            path,
            format!(
                "npz members {:?}: expected x, y, t, p arrays (SpikingJelly) or one \
                 structured event array",
                members.iter().map(|(n, ..)| n.as_str()).collect::<Vec<_>>()
            ),
        )),
    }
}
