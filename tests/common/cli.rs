//! Running the `bitspike` binary from tests, and the small files that CLI tests feed it.

use std::path::Path;
use std::process::{Command, Output};

/// Run the `bitspike` binary with `args` and extra environment `env`.
pub fn bitspike(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitspike"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the bitspike binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The lines of `stderr` that bitspike wrote (Mesa's notes about XDG_RUNTIME_DIR left
/// out).
pub fn own_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| !l.contains("XDG_RUNTIME_DIR"))
        .collect()
}

/// Check a failed run's `err`: one `error:` line, every `want` in it, no panic or abort.
pub fn assert_clear_error(what: &str, status: std::process::ExitStatus, err: &str, want: &[&str]) {
    assert!(!status.success(), "{what} succeeded: {err}");
    assert!(
        status.code().is_some(),
        "{what} was killed by a signal (an abort?): {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{what}: {err}"
    );
    let errors = own_lines(err)
        .into_iter()
        .filter(|l| l.starts_with("error"))
        .count();
    assert_eq!(errors, 1, "{what}: want one error line in: {err}");
    for w in want {
        assert!(err.contains(w), "{what}: want '{w}' in: {err}");
    }
}

/// Run `bitspike args`, which must fail with one clear error holding every `want`;
/// returns the stderr.
pub fn fails_with(args: &[&str], want: &[&str]) -> String {
    let out = bitspike(args, &[]);
    let err = stderr(&out);
    assert_clear_error(&format!("{args:?}"), out.status, &err, want);
    err
}

/// An IDX dataset of `side` x `side` grey images in `dir` with these labels.
pub fn idx_dataset(dir: &Path, side: usize, train: &[u8], test: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    for (prefix, labels) in [("train", train), ("t10k", test)] {
        let n = labels.len() as u32;
        let mut images = vec![0, 0, 8, 3];
        for v in [n, side as u32, side as u32] {
            images.extend(v.to_be_bytes());
        }
        images.extend((0..labels.len() * side * side).map(|i| (i * 37 % 256) as u8));
        std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
        let mut l = vec![0, 0, 8, 1];
        l.extend(n.to_be_bytes());
        l.extend(labels);
        std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), l).unwrap();
    }
}

/// spikformer-2-64 on `side` x `side` images with `channels` channels, 10 classes.
pub fn small_config(side: usize, channels: usize) -> bitspike::nn::ModelConfig {
    let mut cfg = bitspike::nn::ModelConfig::preset("spikformer-2-64").unwrap();
    cfg.image_size = side;
    cfg.in_channels = channels;
    cfg
}

/// A freshly initialised checkpoint of `cfg` (its config in the metadata) at `path`.
pub fn write_checkpoint(path: &Path, cfg: &bitspike::nn::ModelConfig) {
    bitspike::nn::init_state(cfg, 0).write(path).unwrap();
}

/// The first `train` training and `test` test images of the shipped MNIST subset, as
/// IDX files in `dir`.
pub fn tiny_mnist(dir: &std::path::Path, train: usize, test: usize) {
    use std::io::Write;
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist-mini");
    for (prefix, n) in [("train", train), ("t10k", test)] {
        let images = bitspike::data::idx::read_maybe_gz(
            &assets.join(format!("{prefix}-images-idx3-ubyte.gz")),
        )
        .unwrap();
        let labels = bitspike::data::idx::read_maybe_gz(
            &assets.join(format!("{prefix}-labels-idx1-ubyte.gz")),
        )
        .unwrap();
        let mut f = std::fs::File::create(dir.join(format!("{prefix}-images-idx3-ubyte"))).unwrap();
        f.write_all(&[0, 0, 8, 3]).unwrap();
        f.write_all(&(n as u32).to_be_bytes()).unwrap();
        f.write_all(&images[8..16]).unwrap();
        f.write_all(&images[16..16 + n * 784]).unwrap();
        let mut f = std::fs::File::create(dir.join(format!("{prefix}-labels-idx1-ubyte"))).unwrap();
        f.write_all(&[0, 0, 8, 1]).unwrap();
        f.write_all(&(n as u32).to_be_bytes()).unwrap();
        f.write_all(&labels[8..8 + n]).unwrap();
    }
}
