//! Data parallel across processes: `mpirun -n 2 bitspike train` against one process that
//! accumulates the same two halves of each batch, and a rank killed mid-run ending the
//! launch with the last checkpoint intact. Skipped, with a message, where `mpirun` is
//! absent (`.ci/run` installs OpenMPI, so CI runs it).
#![cfg(feature = "mpi")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitspike::nn::StateDict;
use common::cli::tiny_mnist;

const STEPS: usize = 20;
const BATCH: usize = 16;

fn mpirun() -> Option<Command> {
    let found = Command::new("mpirun")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipped: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)");
        return None;
    }
    let mut c = Command::new("mpirun");
    // Two ranks on a machine of any core count; CI runs as root.
    c.args(["-n", "2", "--oversubscribe"])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_btl", "self,vader,tcp");
    Some(c)
}

/// `bitspike train` arguments for `epochs` epochs of `STEPS` updates of `BATCH` images,
/// each update made of `accum` batches.
fn train_args(data: &Path, out: &Path, epochs: usize, accum: usize) -> Vec<String> {
    [
        "train",
        "--model",
        "spikformer-2-64",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--overwrite",
        "--json",
        "--epochs",
        &epochs.to_string(),
        "--batch-size",
        &(BATCH / accum).to_string(),
        "--accum-steps",
        &accum.to_string(),
        "--lr",
        "5e-3",
        "--workers",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn data_dir(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    tiny_mnist(&data, STEPS * BATCH, 32);
    data
}

#[test]
fn two_mpi_ranks_match_one_process_accumulating_the_same_batches() {
    let Some(mut launch) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));

    let single = Command::new(env!("CARGO_BIN_EXE_bitspike"))
        .args(train_args(&data, &one, 1, 2))
        .output()
        .unwrap();
    assert!(
        single.status.success(),
        "{}",
        String::from_utf8_lossy(&single.stderr)
    );
    let ranks = launch
        .arg(env!("CARGO_BIN_EXE_bitspike"))
        .args(train_args(&data, &two, 1, 1))
        .output()
        .unwrap();
    assert!(
        ranks.status.success(),
        "mpirun failed:\n{}",
        String::from_utf8_lossy(&ranks.stderr)
    );

    // Rank 0 alone reports and writes.
    let epoch_lines = |out: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("train_loss").is_some())
            .collect()
    };
    let (a, b) = (epoch_lines(&single.stdout), epoch_lines(&ranks.stdout));
    assert_eq!((a.len(), b.len()), (1, 1), "one epoch line each");
    let (la, lb) = (
        a[0]["train_loss"].as_f64().unwrap(),
        b[0]["train_loss"].as_f64().unwrap(),
    );
    assert!(
        (la - lb).abs() <= 1e-4,
        "train loss: one process {la}, two ranks {lb}"
    );

    let sa = StateDict::read(&one.join("last.safetensors")).unwrap();
    let sb = StateDict::read(&two.join("last.safetensors")).unwrap();
    assert_eq!(
        sb.metadata.get("train.replicas").map(String::as_str),
        Some("2")
    );
    let mut compared = 0;
    for (name, x) in &sa.tensors {
        // As in tests/data_parallel.rs: biases that a BN cancels, and running
        // statistics, which accumulation and replicas move differently by design.
        let bn_bias = name
            .strip_suffix("_linear.bias")
            .or_else(|| name.strip_suffix("_conv.bias"))
            .is_some_and(|stem| sa.tensors.contains_key(&format!("{stem}_bn.running_mean")));
        let stat = [".running_mean", ".running_var", ".num_batches_tracked"]
            .iter()
            .any(|s| name.ends_with(s));
        if bn_bias || stat {
            continue;
        }
        let y = &sb.tensors[name];
        for (i, (p, q)) in x.data.iter().zip(&y.data).enumerate() {
            assert!(
                (p - q).abs() <= 1e-4 * p.abs().max(1.0),
                "{name}[{i}]: one process {p}, two ranks {q}"
            );
        }
        compared += 1;
    }
    assert!(compared > 20, "only {compared} tensors compared");
}

/// The pids of `parent`'s children.
fn children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the parenthesised command: state, ppid, ...
        let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
        if after.split_whitespace().nth(1) == Some(&parent.to_string()) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_killed_rank_ends_the_launch_and_leaves_the_last_checkpoint_whole() {
    let Some(mut launch) = mpirun() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let out = dir.path().join("run");
    let mut child = launch
        .arg(env!("CARGO_BIN_EXE_bitspike"))
        .args(train_args(&data, &out, 50, 1))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let last = out.join("last.safetensors");
    let start = Instant::now();
    while !last.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no checkpoint after 300 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the launch ended early"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ranks: Vec<u32> = children(child.id())
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|v| v == b"OMPI_COMM_WORLD_RANK=1")
            })
        })
        .collect();
    assert_eq!(ranks.len(), 1, "rank 1 among mpirun's children");
    Command::new("kill")
        .args(["-9", &ranks[0].to_string()])
        .status()
        .unwrap();

    let killed = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "rank 0 still running 120 s after rank 1 died"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "the launch succeeded after a rank died");
    // OpenMPI names the rank that died.
    assert!(
        stderr.contains("exited on signal 9") || stderr.contains("Killed"),
        "{stderr}"
    );
    let state = StateDict::read(&last).expect("the last checkpoint reads back");
    assert!(state.tensors.len() > 20);
}
