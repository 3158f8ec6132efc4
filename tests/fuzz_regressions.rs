//! The fuzz targets' findings and seeds, replayed on stable: every file under
//! `tests/fuzz_regressions/<target>/` goes through the reader that `fuzz/fuzz_targets/
//! <target>.rs` fuzzes, used the same way. Each must come back Ok or Err (never a panic,
//! a hang or an allocation past what its size allows), in well under a second.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitspike::data::events::{self, Events, FrameSettings, SplitBy};
use bitspike::data::{cifar, decode, idx, Normalization};
use bitspike::nn::StateDict;

/// Run `read` on every file of the target's folder; the number of files.
fn replay(target: &str, read: impl Fn(&Path, &[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let start = Instant::now();
        read(path, &bytes);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{} took {took:?}",
            path.display()
        );
    }
    files.len()
}

/// Bin the events into frames, as datasets and `infer` do.
fn use_events(ev: bitspike::Result<Events>) {
    let Ok(ev) = ev else { return };
    let (w, h) = ev.sensor.unwrap_or_else(|| ev.extent());
    for split_by in [SplitBy::Time, SplitBy::Number] {
        let s = FrameSettings {
            time_steps: 4,
            split_by,
            sensor: (w.max(1), h.max(1)),
            size: 16,
        };
        assert_eq!(events::frames::integrate_u8(&ev, &s).len(), s.sample_len());
    }
}

#[test]
fn checkpoint() {
    replay("checkpoint", |path, _| {
        let Ok(sd) = StateDict::read(path) else {
            return;
        };
        if let Ok(Some(cfg)) = sd.config(path) {
            if cfg.validate().is_ok() {
                let _ = sd.check(&cfg, path);
            }
        }
        if let Some(json) = sd.metadata.get("data.normalization") {
            let _ = serde_json::from_str::<Normalization>(json);
        }
    });
}

#[test]
fn idx() {
    replay("idx", |path, bytes| {
        if let Ok((pixels, count, rows, cols)) = idx::parse_images(path, bytes.to_vec()) {
            assert_eq!(pixels.len(), count * rows * cols);
        }
        let _ = idx::parse_labels(path, bytes.to_vec());
    });
}

#[test]
fn cifar() {
    replay("cifar", |path, bytes| {
        for label_bytes in [1, 2] {
            let mut out = cifar::empty_split(Vec::new());
            if cifar::parse_records(path, bytes, label_bytes, &mut out).is_ok() {
                assert_eq!(out.images.len(), out.len() * out.image_len());
            }
        }
    });
}

#[test]
fn image() {
    replay("image", |path, bytes| {
        let Ok(img) = decode::decode_image(path, bytes) else {
            return;
        };
        let img = img.resize_to_fill(32, 32, image::imageops::FilterType::Triangle);
        assert_eq!(img.to_luma8().len(), 32 * 32);
        assert_eq!(img.to_rgb8().len(), 3 * 32 * 32);
    });
}

#[test]
fn nmnist() {
    replay("nmnist", |p, b| use_events(events::nmnist::parse(p, b)));
}

#[test]
fn aedat() {
    replay("aedat", |p, b| use_events(events::aedat::parse(p, b)));
}

#[test]
fn aedat4() {
    replay("aedat4", |p, b| use_events(events::aedat4::parse(p, b)));
}

#[test]
fn npy() {
    replay("npy", |p, b| {
        use_events(events::numpy::parse_npy_events(p, b))
    });
}

#[test]
fn npz() {
    replay("npz", |p, b| {
        use_events(events::numpy::parse_npz_events(p, b))
    });
}

/// What item 3 of issue 17 asks of every reader: a directory, a FIFO or a device where a
/// regular file is needed is a clear error, not a hang or an endless read.
#[cfg(unix)]
#[test]
fn non_regular_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.safetensors");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (path, kind) in [
        (Path::new("/dev/zero"), "a device"),
        (fifo.as_path(), "a FIFO"),
        (dir.path(), "a directory"),
    ] {
        let errors = [
            StateDict::read(path).unwrap_err().to_string(),
            idx::read_images(path).unwrap_err().to_string(),
            events::read(path).unwrap_err().to_string(),
            decode::open_image(path).unwrap_err().to_string(),
        ];
        for err in errors {
            assert!(
                err.contains(&path.display().to_string()) && err.contains(kind),
                "{err}"
            );
        }
    }
}

fn regression(target: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target)
        .join(name)
}

/// Headers that claim more than the file holds, and decompression bombs, stop at the
/// claim or at a limit, with an error that says so.
#[test]
fn false_claims_and_bombs_stop_early() {
    let read = |t: &str, n: &str| std::fs::read(regression(t, n)).unwrap();
    // 4 MB of zeros after a header promising one 4x4 image: 16 bytes are inflated.
    let path = regression("idx", "gz-bomb-idx3-ubyte.gz");
    let (pixels, ..) = idx::parse_images(&path, read("idx", "gz-bomb-idx3-ubyte.gz")).unwrap();
    assert_eq!(pixels.len(), 16);
    for (target, name, says) in [
        ("idx", "huge-claim-idx3-ubyte.gz", "more than the 2048 MiB"),
        ("idx", "overflow-idx3-ubyte", "more than the 2048 MiB"),
        ("npz", "declares-3gib.npz", "past the 1024 MiB"),
        ("npz", "deflate-past-declared.npz", "more than 100 bytes"),
        ("npy", "shape-overflow.npy", "more bytes than memory has"),
        (
            "checkpoint",
            "zero-header.safetensors",
            "not a safetensors file",
        ),
        (
            "checkpoint",
            "header-past-end.safetensors",
            "not a safetensors file",
        ),
        (
            "checkpoint",
            "offset-overflow.safetensors",
            "not a safetensors file",
        ),
    ] {
        let path = regression(target, name);
        let err = match target {
            "idx" => idx::parse_images(&path, read(target, name)).map(|_| ()),
            "npz" => events::numpy::parse_npz_events(&path, &read(target, name)).map(|_| ()),
            "npy" => events::numpy::parse_npy_events(&path, &read(target, name)).map(|_| ()),
            _ => StateDict::read(&path).map(|_| ()),
        }
        .unwrap_err()
        .to_string();
        assert!(err.contains(name) && err.contains(says), "{err}");
    }
}

/// A 20 GB sparse checkpoint is refused from its header, without reading its data.
#[test]
fn a_huge_sparse_checkpoint_is_refused_from_its_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.safetensors");
    let data = 20u64 << 30;
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{data}]}}}}"#,
        data / 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(bytes.len() as u64 + data).unwrap();
    let start = Instant::now();
    let err = StateDict::read(&path).unwrap_err().to_string();
    assert!(err.contains("more than the 4096 MiB"), "{err}");
    // All zeros, as `truncate -s 20G` leaves it: a header length of 0.
    file.set_len(0).unwrap();
    file.set_len(data).unwrap();
    let err = StateDict::read(&path).unwrap_err().to_string();
    assert!(err.contains("not a safetensors file"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(1));
}
