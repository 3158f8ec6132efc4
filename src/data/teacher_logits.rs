//! A teacher that bitspike does not run: a table of its logits for every training image,
//! written once by `scripts/teacher_logits.py` (any timm or torchvision model, e.g.
//! ViT-B/16) and read here for distillation.
//!
//! The file is a safetensors file with a tensor `logits` `[N, classes]` (f32, f16 or
//! bf16), row `i` for training sample `i` in the order bitspike reads the dataset (see
//! docs/training.md, "Distillation"), and optionally `labels` `[N]`, which must then equal the
//! training split's labels (a check that both sides read the images in one order). A
//! NumPy `.npy` file of a 2-D float array serves as well, without the check.
//!
//! The logits are those of the un-augmented images (the FKD / ReLabel practice): an
//! augmented or mixed sample takes its source image's teacher distribution, mixed as the
//! images were ([`Mix`]).

use std::path::Path;

use super::mixup::Mix;
use crate::error::{Error, Result};
use crate::input::read_file;
use crate::nn::StateDict;

/// The most bytes a `.npy` table may have.
pub const MAX_NPY_BYTES: u64 = 16 << 30;

/// Teacher logits `[samples, classes]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherLogits {
    /// The logits, `[samples, classes]` row by row.
    pub logits: Vec<f32>,
    /// Rows: one per training sample.
    pub samples: usize,
    /// Columns: the classes.
    pub classes: usize,
}

impl TeacherLogits {
    /// Read `path` (safetensors or `.npy`) and check it against the training split: one
    /// row per sample of `labels`, `classes` columns, finite values, and the file's own
    /// labels (when it has them) equal to `labels`.
    pub fn read(path: &Path, labels: &[u32], classes: usize) -> Result<Self> {
        let is_npy = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        let (shape, logits, file_labels) = if is_npy {
            let (shape, data) = read_npy(path)?;
            (shape, data, None)
        } else {
            read_safetensors(path)?
        };
        let bad = |m: String| Err(Error::data(path, m));
        let [samples, columns] = shape[..] else {
            return bad(format!(
                "teacher logits must be a 2-D table [samples, classes], not {shape:?}"
            ));
        };
        if samples != labels.len() {
            return bad(format!(
                "holds teacher logits for {samples} samples, but the training split has {}: \
                 write them for this dataset (scripts/teacher_logits.py)",
                labels.len()
            ));
        }
        if columns != classes {
            return bad(format!(
                "holds teacher logits over {columns} classes, but the model has {classes}"
            ));
        }
        if let Some(i) = logits.iter().position(|v| !v.is_finite()) {
            return bad(format!(
                "teacher logits of sample {} are not finite ({})",
                i / columns,
                logits[i]
            ));
        }
        if let Some(file_labels) = file_labels {
            if let Some(i) = (0..samples).find(|&i| file_labels[i] != labels[i] as f32) {
                return bad(format!(
                    "sample {i} has label {} in the teacher file but {} in the dataset: the \
                     table was written for another dataset or in another order",
                    file_labels[i], labels[i]
                ));
            }
        }
        Ok(Self {
            logits,
            samples,
            classes,
        })
    }

    fn row(&self, sample: usize) -> &[f32] {
        &self.logits[sample * self.classes..(sample + 1) * self.classes]
    }

    /// The logits of the batch's samples `[B, classes]`.
    pub fn rows(&self, samples: &[usize]) -> Vec<f32> {
        samples.iter().flat_map(|&s| self.row(s)).copied().collect()
    }

    /// Hard distillation targets `[B, classes]`: the one-hot teacher argmax of each
    /// sample, mixed as the batch was (one-hot rows when it was not).
    pub fn hard_targets(&self, samples: &[usize], mix: &Mix) -> Vec<f32> {
        let k = self.classes;
        let mut one_hot = vec![0f32; samples.len() * k];
        for (i, &s) in samples.iter().enumerate() {
            one_hot[i * k + argmax(self.row(s))] = 1.0;
        }
        mix.targets(&one_hot, k)
    }

    /// Logits `[B, classes]` for soft distillation at temperature `tau`: the teacher's own
    /// where the batch was not mixed, else `tau * ln p` with `p` the mixed teacher
    /// distributions `softmax(t / tau)` (so that `softmax(logits / tau) = p`).
    pub fn soft_logits(&self, samples: &[usize], mix: &Mix, tau: f32) -> Vec<f32> {
        let rows = self.rows(samples);
        if mix.lam.iter().all(|&l| l >= 1.0) {
            return rows;
        }
        let k = self.classes;
        let probs: Vec<f32> = rows.chunks(k).flat_map(|r| softmax(r, tau)).collect();
        mix.targets(&probs, k)
            .into_iter()
            // The floor keeps ln finite; a probability this small weighs nothing in the KL.
            .map(|p| tau * p.max(1e-30).ln())
            .collect()
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (c, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = c;
        }
    }
    best
}

fn softmax(row: &[f32], tau: f32) -> Vec<f32> {
    let m = row.iter().fold(f32::MIN, |a, &b| a.max(b / tau));
    let e: Vec<f64> = row.iter().map(|&v| ((v / tau - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

type Table = (Vec<usize>, Vec<f32>, Option<Vec<f32>>);

fn read_safetensors(path: &Path) -> Result<Table> {
    let sd = StateDict::read(path)?;
    let logits = match sd.tensors.get("logits") {
        Some(t) => t,
        None if sd.tensors.len() == 1 => sd.tensors.values().next().expect("one tensor"),
        None => {
            return Err(Error::data(
                path,
                format!(
                    "has no tensor 'logits' (it holds {})",
                    sd.tensors.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ))
        }
    };
    let labels = match sd.tensors.get("labels") {
        Some(l)
            if l.shape.len() == 1 && l.shape[0] == logits.shape.first().copied().unwrap_or(0) =>
        {
            Some(l.data.clone())
        }
        Some(l) => {
            return Err(Error::data(
                path,
                format!(
                    "its 'labels' tensor has shape {:?}; expected [{}], one per row of 'logits'",
                    l.shape,
                    logits.shape.first().copied().unwrap_or(0)
                ),
            ))
        }
        None => None,
    };
    Ok((logits.shape.clone(), logits.data.clone(), labels))
}

/// A NumPy `.npy` file of a little-endian f32 or f64 array in C order.
fn read_npy(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = read_file(path, MAX_NPY_BYTES, "teacher logits table")?;
    let bad = |m: &str| Error::data(path, format!("not a readable .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("no NumPy magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    let field = |key: &str| {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = header[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest)
    };
    let descr = field("descr").ok_or_else(|| bad("no 'descr'"))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(bad(&format!(
            "dtype {} (expected little-endian float32 '<f4' or float64 '<f8')",
            descr.split(',').next().unwrap_or(descr)
        )));
    };
    if !field("fortran_order").is_some_and(|f| f.starts_with("False")) {
        return Err(bad(
            "Fortran-ordered arrays are not read; save a C-ordered one",
        ));
    }
    let shape_text = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no 'shape'"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| bad(&format!("shape ({shape_text})")))
        })
        .collect::<Result<Vec<usize>>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let data = &bytes[start + header_len..];
    if count.and_then(|c| c.checked_mul(width)) != Some(data.len()) {
        return Err(bad(&format!(
            "truncated: shape {shape:?} of {width}-byte values needs {} bytes, the file holds {}",
            count.unwrap_or(usize::MAX).saturating_mul(width),
            data.len()
        )));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::checkpoint::HostTensor;

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.bytes());
        out.extend(data);
        out
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn reads_npy_tables_and_checks_their_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.npy");
        let values = [1.0f32, 2.0, 3.0, 0.5, -1.0, 4.0];
        std::fs::write(&path, npy("<f4", "(2, 3)", &f32_bytes(&values))).unwrap();
        let t = TeacherLogits::read(&path, &[0, 1], 3).unwrap();
        assert_eq!((t.samples, t.classes, &t.logits[..]), (2, 3, &values[..]));
        let e = TeacherLogits::read(&path, &[0, 1, 2], 3)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("for 2 samples, but the training split has 3"),
            "{e}"
        );
        let e = TeacherLogits::read(&path, &[0, 1], 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("over 3 classes, but the model has 10"), "{e}");
        let f64s: Vec<u8> = values
            .iter()
            .flat_map(|&x| (x as f64).to_le_bytes())
            .collect();
        std::fs::write(&path, npy("<f8", "(2, 3)", &f64s)).unwrap();
        assert_eq!(
            TeacherLogits::read(&path, &[0, 1], 3).unwrap().logits,
            values
        );
        std::fs::write(&path, npy("<f4", "(2, 3)", &f32_bytes(&values[..5]))).unwrap();
        let e = TeacherLogits::read(&path, &[0, 1], 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&path, npy("<i8", "(2, 3)", &[0; 48])).unwrap();
        let e = TeacherLogits::read(&path, &[0, 1], 3)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dtype '<i8'"), "{e}");
        std::fs::write(&path, b"not numpy").unwrap();
        assert!(TeacherLogits::read(&path, &[0, 1], 3).is_err());
    }

    #[test]
    fn reads_safetensors_tables_and_checks_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let mut sd = StateDict::default();
        let table = |shape: Vec<usize>, data: Vec<f32>| HostTensor { shape, data };
        sd.tensors.insert(
            "logits".into(),
            table(vec![3, 2], vec![0.0, 1.0, 2.0, 0.0, 5.0, 5.5]),
        );
        sd.tensors
            .insert("labels".into(), table(vec![3], vec![1.0, 0.0, 1.0]));
        sd.write(&path).unwrap();
        let t = TeacherLogits::read(&path, &[1, 0, 1], 2).unwrap();
        assert_eq!(t.rows(&[2, 0]), vec![5.0, 5.5, 0.0, 1.0]);
        let e = TeacherLogits::read(&path, &[1, 1, 1], 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sample 1 has label 0 in the teacher file but 1"),
            "{e}"
        );
        sd.tensors.insert(
            "logits".into(),
            table(vec![3, 2], vec![0.0, f32::NAN, 2.0, 0.0, 5.0, 5.5]),
        );
        sd.write(&path).unwrap();
        let e = TeacherLogits::read(&path, &[1, 0, 1], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sample 0 are not finite"), "{e}");
    }

    #[test]
    fn mixed_samples_mix_the_teachers_distributions() {
        let t = TeacherLogits {
            logits: vec![2.0, 0.0, 0.0, 0.0, 0.0, 3.0],
            samples: 2,
            classes: 3,
        };
        let unmixed = Mix::none(2);
        assert_eq!(t.soft_logits(&[0, 1], &unmixed, 2.0), t.logits);
        assert_eq!(
            t.hard_targets(&[1, 0], &unmixed),
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        let mix = Mix {
            lam: vec![0.75, 0.75],
        };
        assert_eq!(
            t.hard_targets(&[0, 1], &mix),
            vec![0.75, 0.0, 0.25, 0.25, 0.0, 0.75]
        );
        let tau = 2.0;
        let soft = t.soft_logits(&[0, 1], &mix, tau);
        let (p0, p1) = (softmax(&t.logits[..3], tau), softmax(&t.logits[3..], tau));
        let got = softmax(&soft[..3], tau);
        for c in 0..3 {
            assert!((got[c] - (0.75 * p0[c] + 0.25 * p1[c])).abs() < 1e-6);
        }
    }
}
