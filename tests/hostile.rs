//! Hostile input: files, arguments, sizes and signals as a careless or hostile user gives
//! them. Each ends in one clear error line that names the problem, with a non-zero exit,
//! no panic, no abort, and well under a minute; nothing is half-written.
//!
//! `hostile_input_battery` runs the table of cases (its count is printed with
//! `cargo test --test hostile -- --nocapture`); the tests after it are the cases that need
//! more than one command (signals, run directories, NaN weights).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitspike::nn::checkpoint::CONFIG_KEY;
use common::cli::{
    assert_clear_error, bitspike, fails_with, idx_dataset, own_lines, small_config, stderr, stdout,
    write_checkpoint,
};

/// The longest any hostile case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// One command that must fail with one clear error holding every `want`.
struct Case {
    args: Vec<String>,
    want: Vec<String>,
}

fn case(args: &[&str], want: &[&str]) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        want: want.iter().map(|s| s.to_string()).collect(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run `case` with a time limit; the stderr it gave.
fn run_case(case: &Case) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitspike"))
        .args(&case.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bitspike binary runs");
    let mut pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        std::io::Read::read_to_string(&mut pipe, &mut err).ok();
        err
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CASE_LIMIT {
            child.kill().ok();
            panic!("{:?} ran past {CASE_LIMIT:?}", case.args);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    let want: Vec<&str> = case.want.iter().map(String::as_str).collect();
    assert_clear_error(&format!("{:?}", case.args), status, &err, &want);
    err
}

/// A safetensors file from its JSON header and data bytes.
fn safetensors(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let h = header.to_string().into_bytes();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

/// The checkpoints a hostile user hands over, by name: broken containers and valid ones
/// whose tensors or config do not fit the model.
fn hostile_checkpoints(dir: &Path, good: &Path) -> Vec<(String, PathBuf)> {
    let bytes = std::fs::read(good).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let data = &bytes[8 + header_len..];
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), vec![]),
        ("seven-bytes".into(), vec![1; 7]),
        (
            "header-length-u64-max".into(),
            u64::MAX.to_le_bytes().to_vec(),
        ),
        ("header-past-the-end".into(), {
            let mut v = 1000u64.to_le_bytes().to_vec();
            v.extend(b"{}");
            v
        }),
        ("header-not-json".into(), {
            let mut v = 5u64.to_le_bytes().to_vec();
            v.extend(b"hello");
            v
        }),
        (
            "header-an-array".into(),
            safetensors(&serde_json::json!([1, 2]), &[]),
        ),
        ("text".into(), b"this is not a checkpoint\n".to_vec()),
        (
            "random-bytes".into(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("truncated-half".into(), bytes[..bytes.len() / 2].to_vec()),
        (
            "truncated-header".into(),
            bytes[..8 + header_len / 2].to_vec(),
        ),
    ];
    let mut edit = |name: &str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut h = header.clone();
        f(&mut h);
        files.push((name.into(), safetensors(&h, data)));
    };
    edit("offsets-past-the-data", &|h| {
        h["head.weight"]["data_offsets"] = serde_json::json!([0, 1u64 << 40]);
    });
    edit("offsets-reversed", &|h| {
        h["head.weight"]["data_offsets"] = serde_json::json!([64, 0]);
    });
    edit("dtype-f64", &|h| h["head.weight"]["dtype"] = "F64".into());
    edit("dtype-unknown", &|h| {
        h["head.weight"]["dtype"] = "Q3".into()
    });
    edit("shape-does-not-match-bytes", &|h| {
        h["head.weight"]["shape"] = serde_json::json!([1_000_000, 1_000_000]);
    });
    edit("tensor-missing", &|h| {
        h.as_object_mut().unwrap().remove("head.weight");
    });
    edit("config-not-json", &|h| {
        h["__metadata__"][CONFIG_KEY] = "{".into();
    });
    edit("config-unknown-arch", &|h| {
        let mut c: serde_json::Value =
            serde_json::from_str(h["__metadata__"][CONFIG_KEY].as_str().unwrap()).unwrap();
        c["arch"] = "tesseract".into();
        h["__metadata__"][CONFIG_KEY] = c.to_string().into();
    });
    for (field, value) in [
        ("image_size", serde_json::json!(0)),
        ("image_size", serde_json::json!(100_000)),
        ("in_channels", serde_json::json!(0)),
        ("in_channels", serde_json::json!(100_000)),
        ("classes", serde_json::json!(0)),
        ("classes", serde_json::json!(1_000_000_000u64)),
        ("dim", serde_json::json!(7)),
        ("depth", serde_json::json!(0)),
        ("depth", serde_json::json!(10_000)),
        ("heads", serde_json::json!(0)),
        ("heads", serde_json::json!(u64::MAX)),
        ("time_steps", serde_json::json!(0)),
        ("time_steps", serde_json::json!(u64::MAX)),
        ("classes", serde_json::json!(-1)),
        ("dim", serde_json::json!("sixty-four")),
    ] {
        edit(&format!("config-{field}-{value}"), &|h| {
            let mut c: serde_json::Value =
                serde_json::from_str(h["__metadata__"][CONFIG_KEY].as_str().unwrap()).unwrap();
            c[field] = value.clone();
            h["__metadata__"][CONFIG_KEY] = c.to_string().into();
        });
    }
    files
        .into_iter()
        .map(|(name, bytes)| {
            let path = dir.join(format!("{name}.safetensors"));
            std::fs::write(&path, bytes).unwrap();
            (name, path)
        })
        .collect()
}

/// Paths that are not regular files, or not there.
fn special_paths(dir: &Path) -> Vec<PathBuf> {
    let mut v = vec![
        dir.join("does-not-exist"),
        dir.to_path_buf(),
        PathBuf::from("/dev/null"),
    ];
    if Path::new("/dev/zero").exists() {
        v.push(PathBuf::from("/dev/zero"));
    }
    if cfg!(unix) {
        let fifo = dir.join("fifo");
        if fifo.exists()
            || Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .is_ok_and(|s| s.success())
        {
            v.push(fifo);
        }
    }
    v
}

/// Image files that are not images, or claim absurd sizes.
fn hostile_images(dir: &Path) -> Vec<PathBuf> {
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/samples/mnist-test-0-label-7.png"
    ))
    .unwrap();
    // A PNG whose header claims 100000 x 100000 pixels (the CRC left wrong: decoders
    // must refuse either way).
    let mut huge = png.clone();
    huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.png", vec![]),
        ("text.png", b"not an image".to_vec()),
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("header-only.png", png[..33].to_vec()),
        ("huge.png", huge),
        (
            "truncated.jpg",
            vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F'],
        ),
        ("garbage.gif", b"GIF89a\xff\xff\xff\xff garbage".to_vec()),
        ("garbage.bmp", b"BM\x00\x00\x00\x00garbage".to_vec()),
        (
            "garbage.webp",
            b"RIFF\x10\x00\x00\x00WEBPVP8 garbage".to_vec(),
        ),
    ];
    files
        .into_iter()
        .map(|(name, bytes)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect()
}

/// Dataset directories that are broken, with what the error must say about each.
fn hostile_datasets(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut v = Vec::new();
    let mut add = |name: &str, want: &'static str, make: &dyn Fn(&Path)| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        make(&d);
        v.push((d, want));
    };
    add("empty-dir", "", &|_| {});
    add("idx-bad-magic", "", &|d| {
        idx_dataset(d, 8, &[0, 1], &[0]);
        let p = d.join("train-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[2] = 0x42;
        std::fs::write(p, b).unwrap();
    });
    add("idx-claims-a-billion-images", "", &|d| {
        idx_dataset(d, 8, &[0, 1], &[0]);
        let p = d.join("train-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[4..8].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        std::fs::write(p, b).unwrap();
    });
    add("idx-huge-sides", "", &|d| {
        idx_dataset(d, 8, &[0, 1], &[0]);
        let p = d.join("train-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[8..16].copy_from_slice(&[0xFF; 8]);
        std::fs::write(p, b).unwrap();
    });
    add("idx-label-count-differs", "", &|d| {
        idx_dataset(d, 8, &[0, 1, 2], &[0]);
        let p = d.join("train-labels-idx1-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b.pop();
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        std::fs::write(p, b).unwrap();
    });
    add("idx-no-images", "", &|d| idx_dataset(d, 8, &[], &[]));
    add("idx-labels-missing", "", &|d| {
        idx_dataset(d, 8, &[0, 1], &[0]);
        std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap();
    });
    add("idx-label-200", "label 200", &|d| {
        idx_dataset(d, 8, &[0, 200], &[0])
    });
    add("idx-gz-broken", "", &|d| {
        idx_dataset(d, 8, &[0, 1], &[0]);
        std::fs::remove_file(d.join("train-images-idx3-ubyte")).unwrap();
        let broken = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad, 0xbe, 0xef];
        std::fs::write(d.join("train-images-idx3-ubyte.gz"), broken).unwrap();
    });
    add("cifar-short-record", "", &|d| {
        std::fs::write(d.join("data_batch_1.bin"), vec![1u8; 3073 + 100]).unwrap();
        std::fs::write(d.join("test_batch.bin"), vec![1u8; 3073]).unwrap();
    });
    add("cifar-label-57", "label 57", &|d| {
        let mut r = vec![57u8];
        r.extend(std::iter::repeat_n(9u8, 3072));
        std::fs::write(d.join("data_batch_1.bin"), &r).unwrap();
        std::fs::write(d.join("test_batch.bin"), &r).unwrap();
    });
    add("folder-corrupt-image", "", &|d| {
        for split in ["train", "test"] {
            let c = d.join(split).join("cat");
            std::fs::create_dir_all(&c).unwrap();
            image::GrayImage::from_pixel(8, 8, image::Luma([9]))
                .save(c.join("a.png"))
                .unwrap();
            std::fs::write(c.join("b.png"), b"not a png").unwrap();
        }
    });
    add("folder-test-class-unknown", "", &|d| {
        for (split, class) in [("train", "cat"), ("test", "dog")] {
            let c = d.join(split).join(class);
            std::fs::create_dir_all(&c).unwrap();
            image::GrayImage::from_pixel(8, 8, image::Luma([9]))
                .save(c.join("a.png"))
                .unwrap();
        }
    });
    add("folder-train-empty", "", &|d| {
        std::fs::create_dir_all(d.join("train/cat")).unwrap();
        std::fs::create_dir_all(d.join("test/cat")).unwrap();
    });
    let events = |d: &Path, train_list: &[u8]| {
        std::fs::create_dir_all(d.join("samples")).unwrap();
        let ev: Vec<u8> = (0..40u8)
            .flat_map(|i| [i % 8, i / 5 % 8, (i % 2) << 7, 0, i])
            .collect();
        for id in ["s0", "s1", "s2"] {
            std::fs::write(d.join(format!("samples/{id}.bin")), &ev).unwrap();
        }
        std::fs::write(d.join("train.txt"), train_list).unwrap();
        std::fs::write(d.join("test.txt"), "s2 0\n").unwrap();
    };
    add("events-label-99", "label 99", &|d| {
        events(d, b"s0 1\ns1 99\n")
    });
    add("events-label-u32-max", "label 4294967295", &|d| {
        events(d, b"s0 1\ns1 4294967295\n")
    });
    add("events-label-not-a-number", "", &|d| events(d, b"s0 one\n"));
    add("events-list-not-utf8", "", &|d| events(d, b"s0 \xff\xfe\n"));
    add("events-missing-sample", "", &|d| {
        events(d, b"s0 1\nnobody 2\n")
    });
    add("events-truncated-recording", "", &|d| {
        events(d, b"s0 1\ns1 2\n");
        std::fs::write(d.join("samples/s1.bin"), [1u8, 2, 3]).unwrap();
    });
    v
}

/// The table of single-command cases: arguments, checkpoints, images, datasets, sizes and
/// run directories.
fn battery(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let good_data = dir.join("good-data");
    idx_dataset(&good_data, 8, &[0, 1, 2, 3, 4, 5, 6, 7], &[0, 1, 2, 3]);
    let good = dir.join("good.safetensors");
    write_checkpoint(&good, &small_config(8, 1));
    let png = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/samples/mnist-test-0-label-7.png"
    );
    let (gd, gc) = (s(&good_data).to_string(), s(&good).to_string());
    let (run_t, no_run) = (dir.join("run-t"), dir.join("no-run"));
    let train = ["train", "--model", "spikformer-2-64", "--image-size", "8"];
    let norm = ["--mean", "0.1", "--std", "0.3"];

    // Numbers that are not numbers, or out of their flag's range.
    let float_flags: &[(&[&str], &str, &[&str])] = &[
        (&train, "--lr", &["-1", "0"]),
        (&train, "--min-lr", &["-1e-3"]),
        (&train, "--weight-decay", &["-0.5"]),
        (&train, "--label-smoothing", &["1.5", "-0.1"]),
        (&train, "--tau", &["0", "-2"]),
        (&train, "--rate-reg", &["-1"]),
        (&train, "--warmup-epochs", &["-1"]),
        (&train, "--clip-grad", &["0", "-1"]),
        (&["bench", "model"], "--min-time", &["-1", "1e300"]),
        (&["bench", "matmul"], "--min-time", &["-1"]),
        (&["bench", "lif"], "--min-time", &["1e300"]),
        (
            &["infer", "--checkpoint", "x", "a.png"],
            "--std",
            &["0", "-1"],
        ),
        (
            &["infer", "--checkpoint", "x", "a.png"],
            "--mean",
            &["1e39"],
        ),
        (&["prune", "--checkpoint", "x"], "--ratio", &["1.5", "-0.5"]),
    ];
    for (command, flag, bad) in float_flags {
        for value in ["nan", "inf", "-inf", "abc", ""].iter().chain(bad.iter()) {
            // `--flag=value`: a negative value is not taken for a flag.
            let pair = format!("{flag}={value}");
            let mut args = command.to_vec();
            args.push(&pair);
            cases.push(case(&args, &[flag]));
        }
    }
    // Integers: not numbers, negative, past u64, or outside the flag's range.
    let int_flags: &[(&str, &[&str])] = &[
        ("--epochs", &["2000000"]),
        ("--batch-size", &["0", "100000000"]),
        ("--classes", &["0", "1000000000", "18446744073709551615"]),
        ("--in-channels", &["0", "18446744073709551615"]),
        ("--time-steps", &["0", "18446744073709551615"]),
        ("--image-size", &["0", "100000"]),
        ("--heads", &["0", "3", "4294967295"]),
        ("--weight-bits", &["0", "33"]),
        ("--crop-padding", &["100"]),
        ("--frame-size", &["0", "100000"]),
    ];
    for (flag, bad) in int_flags {
        for value in ["-1", "abc", "18446744073709551616", "1.5"]
            .iter()
            .chain(bad.iter())
        {
            let pair = format!("{flag}={value}");
            let mut args = vec!["train", "--model", "spikformer-2-64"];
            if *flag != "--image-size" {
                args.extend(["--image-size", "8"]);
            }
            args.extend(["--data", &gd, &pair]);
            let name = flag.trim_start_matches("--").replace('-', "_");
            let want = if *flag == "--batch-size" && *value == "100000000" {
                "batch size".to_string()
            } else if *flag == "--weight-bits" && value.parse::<u64>().is_ok() {
                "weight bits".to_string()
            } else if value.parse::<u64>().is_ok()
                && !["--epochs", "--crop-padding", "--frame-size", "--batch-size"].contains(flag)
            {
                name
            } else {
                flag.to_string()
            };
            cases.push(case(&args, &[&want]));
        }
    }
    for (flag, value) in [
        ("--model", "no-such-preset"),
        ("--attention", "telepathy"),
        ("--weight-mode", "quantum"),
        ("--split-by", "mood"),
        ("--sensor", "axb"),
        ("--sensor", "0x0"),
        ("--distill", "osmosis"),
        ("--reversible", "sometimes"),
    ] {
        let mut args = train.to_vec();
        args.retain(|a| *a != "spikformer-2-64" || flag != "--model");
        if flag == "--model" {
            args.retain(|a| *a != "--model");
        }
        args.extend(["--data", &gd, flag, value]);
        cases.push(case(&args, &[value]));
    }

    // Checkpoints, for every command that reads one.
    let out = dir.join("never-written.safetensors");
    let mut checkpoints: Vec<PathBuf> = hostile_checkpoints(dir, &good)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    checkpoints.extend(special_paths(dir));
    let runs: Vec<PathBuf> = (0..checkpoints.len())
        .map(|i| dir.join(format!("run-w{i}")))
        .collect();
    for (ckpt, run) in checkpoints.iter().zip(&runs) {
        let c = s(ckpt);
        let mut infer = vec!["infer", "--checkpoint", c];
        infer.extend(norm);
        infer.push(png);
        cases.push(case(&infer, &[c]));
        cases.push(case(&["eval", "--checkpoint", c, "--data", &gd], &[c]));
        cases.push(case(
            &["export", "--checkpoint", c, "--packed", s(&out)],
            &[c],
        ));
        let mut t = train.to_vec();
        t.extend(["--data", &gd, "--weights", c, "--out", s(run)]);
        cases.push(case(&t, &[c]));
    }
    let mut t = train.to_vec();
    let teacher = dir.join("header-not-json.safetensors");
    t.extend(["--data", &gd, "--teacher", s(&teacher), "--out", s(&run_t)]);
    cases.push(case(&t, &[s(&teacher)]));

    // Images for infer.
    let mut images = hostile_images(dir);
    images.extend(special_paths(dir));
    for img in &images {
        let mut args = vec!["infer", "--checkpoint", &gc];
        args.extend(norm);
        args.push(s(img));
        cases.push(case(&args, &[s(img)]));
    }

    // Datasets, for train and eval.
    let mut datasets = hostile_datasets(dir);
    for p in special_paths(dir) {
        if p != dir {
            datasets.push((p, ""));
        }
    }
    let events = [
        "--frame-size",
        "8",
        "--sensor",
        "8x8",
        "--no-cache",
        "--in-channels",
        "2",
        "--time-steps",
        "2",
    ];
    let runs: Vec<PathBuf> = (0..datasets.len())
        .map(|i| dir.join(format!("run-d{i}")))
        .collect();
    for ((data, want), run) in datasets.iter().zip(&runs) {
        let d = s(data);
        let is_events = d.contains("events-");
        let mut args = train.to_vec();
        args.extend(["--data", d, "--out", s(run)]);
        if is_events {
            args.extend(events);
        }
        let name = data.file_name().unwrap().to_str().unwrap();
        let wants: Vec<&str> = [name, want].into_iter().filter(|w| !w.is_empty()).collect();
        cases.push(case(&args, &wants));
        if !is_events {
            cases.push(case(&["eval", "--checkpoint", &gc, "--data", d], &wants));
        }
    }

    // Sizes past the device's limits.
    cases.push(case(
        &[
            "bench",
            "model",
            "--models",
            "bestformer-2-64",
            "--batch",
            "4294967295",
            "--min-time",
            "0",
        ],
        &["would take", "use a batch size of at most"],
    ));
    let mut args = train.to_vec();
    args.extend([
        "--data",
        &gd,
        "--time-steps",
        "256",
        "--batch-size",
        "100000",
    ]);
    cases.push(case(&args, &["would take", "batch size"]));

    // Run directories.
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut args = train.to_vec();
    args.extend(["--data", &gd, "--out", s(&file)]);
    cases.push(case(&args, &[s(&file)]));
    let mut args = train.to_vec();
    args.extend(["--data", &gd, "--out", s(&no_run), "--resume"]);
    cases.push(case(&args, &["no-run", "no last.safetensors"]));
    let mut args = train.to_vec();
    args.extend(["--data", &gd, "--resume", "--overwrite"]);
    cases.push(case(&args, &["--overwrite"]));
    cases
}

#[test]
fn hostile_input_battery() {
    let dir = tempfile::tempdir().unwrap();
    let cases = battery(dir.path());
    let start = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(c) = cases.get(i) else { break };
                let result = std::panic::catch_unwind(|| run_case(c));
                errors.lock().unwrap().push((i, result.map_err(|_| ())));
            });
        }
    });
    let mut errors = errors.into_inner().unwrap();
    errors.sort();
    if std::env::var_os("BITSPIKE_SHOW_ERRORS").is_some() {
        for (i, err) in &errors {
            if let Ok(err) = err {
                println!("{:?}\n  {}", cases[*i].args, own_lines(err).join("\n  "));
            }
        }
    }
    let failed: Vec<&Vec<String>> = errors
        .iter()
        .filter(|(_, e)| e.is_err())
        .map(|(i, _)| &cases[*i].args)
        .collect();
    assert!(
        failed.is_empty(),
        "{} cases failed: {failed:#?}",
        failed.len()
    );
    println!(
        "{} hostile cases, each one clear error, in {:.0} s",
        cases.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(cases.len() >= 150, "{} cases", cases.len());
    assert!(!dir.path().join("never-written.safetensors").exists());
}

#[test]
fn absurd_model_sizes_on_the_command_line_name_the_field() {
    for (flag, value, field) in [
        (
            "--classes",
            "18446744073709551615",
            "classes = 18446744073709551615",
        ),
        ("--classes", "1000000000", "classes = 1000000000"),
        (
            "--in-channels",
            "18446744073709551615",
            "in_channels = 18446744073709551615",
        ),
        (
            "--time-steps",
            "18446744073709551615",
            "time_steps = 18446744073709551615",
        ),
        ("--image-size", "100000", "image_size = 100000"),
        ("--heads", "4294967295", "heads = 4294967295"),
    ] {
        let args = ["info", "--model", "spikformer-2-64", flag, value];
        fails_with(&args, &[field, "out of range", "allowed: "]);
        let args = ["train", "--model", "bestformer-2-64", flag, value];
        fails_with(&args, &[field, "out of range"]);
    }
}

#[test]
fn a_huge_frame_size_is_refused_before_binning() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        &[
            "train",
            "--model",
            "bestformer-2-64",
            "--data",
            dir.path().to_str().unwrap(),
            "--frame-size",
            "100000",
        ],
        &["frame size (--frame-size) = 100000", "allowed: 1..=1024"],
    );
}

#[test]
fn bench_model_with_a_huge_batch_is_a_buffer_limit_error() {
    fails_with(
        &[
            "bench",
            "model",
            "--models",
            "bestformer-2-64",
            "--batch",
            "4294967295",
            "--min-time",
            "0",
        ],
        &[
            "would take",
            "the device's max_",
            "use a batch size of at most",
        ],
    );
}

#[test]
fn train_run_sizes_are_checked_before_the_first_allocation() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        &[
            "train",
            "--model",
            "spikformer-2-64",
            "--data",
            dir.path().to_str().unwrap(),
            "--batch-size",
            "100000000",
        ],
        &["would take", "use a batch size of at most"],
    );
}

#[test]
fn a_checkpoint_config_out_of_range_is_refused_as_the_command_line_is() {
    use bitspike::nn::checkpoint::CONFIG_KEY;
    let dir = tempfile::tempdir().unwrap();
    let png = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/samples/mnist-test-0-label-7.png"
    );
    for (key, value, want) in [
        (
            "image_size",
            serde_json::json!(100_000),
            "image_size = 100000",
        ),
        (
            "classes",
            serde_json::json!(1_000_000_000u64),
            "classes = 1000000000",
        ),
        (
            "time_steps",
            serde_json::json!(u64::MAX),
            "time_steps = 18446744073709551615",
        ),
    ] {
        let path = dir.path().join(format!("{key}.safetensors"));
        let mut sd = bitspike::nn::init_state(&small_config(28, 1), 0);
        let mut cfg: serde_json::Value = serde_json::from_str(&sd.metadata[CONFIG_KEY]).unwrap();
        cfg[key] = value;
        sd.metadata.insert(CONFIG_KEY.into(), cfg.to_string());
        sd.write(&path).unwrap();
        let ckpt = path.to_str().unwrap();
        let start = std::time::Instant::now();
        let args = [
            "infer",
            "--checkpoint",
            ckpt,
            "--mean",
            "0.1",
            "--std",
            "0.3",
            png,
        ];
        fails_with(&args, &[ckpt, CONFIG_KEY, want, "out of range"]);
        fails_with(&["eval", "--checkpoint", ckpt], &[ckpt, want]);
        fails_with(
            &["export", "--checkpoint", ckpt, "--packed", "/dev/null"],
            &[want],
        );
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    }
}

#[test]
fn an_idx_label_outside_the_classes_stops_train_and_eval_before_the_first_step() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train-bad");
    idx_dataset(&data, 8, &[0, 1, 2, 200, 4, 5, 6, 7], &[0, 1, 2, 3]);
    let run = dir.path().join("run");
    let args = [
        "train",
        "--model",
        "spikformer-2-64",
        "--image-size",
        "8",
        "--data",
        data.to_str().unwrap(),
        "--batch-size",
        "4",
        "--out",
        run.to_str().unwrap(),
    ];
    fails_with(
        &args,
        &[
            data.to_str().unwrap(),
            "train split, sample 3: label 200",
            "10 classes (0..=9)",
        ],
    );
    assert!(!run.exists(), "nothing was written");
    let data = dir.path().join("test-bad");
    idx_dataset(&data, 8, &[0, 1, 2, 3], &[0, 200]);
    let ckpt = dir.path().join("model.safetensors");
    write_checkpoint(&ckpt, &small_config(8, 1));
    let args = [
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    fails_with(&args, &["test split, sample 1: label 200"]);
}

#[test]
fn a_cifar_100_batch_for_a_10_class_model_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cifar-100");
    std::fs::create_dir(&data).unwrap();
    // Records: coarse label, fine label, 3 x 32 x 32 pixels.
    let record = |fine: u8| {
        let mut r = vec![3, fine];
        r.extend(std::iter::repeat_n(128u8, 3 * 32 * 32));
        r
    };
    std::fs::write(data.join("train.bin"), [record(4), record(57)].concat()).unwrap();
    std::fs::write(data.join("test.bin"), record(1)).unwrap();
    let ckpt = dir.path().join("model.safetensors");
    write_checkpoint(&ckpt, &small_config(32, 3));
    let args = [
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    fails_with(&args, &["CIFAR-100", "sample 1: label 57", "10 classes"]);
}

#[test]
fn a_12_class_image_folder_for_a_10_class_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("folders");
    for split in ["train", "test"] {
        for c in 0..12 {
            let class = data.join(split).join(format!("k{c:02}"));
            std::fs::create_dir_all(&class).unwrap();
            image::GrayImage::from_pixel(8, 8, image::Luma([c * 20]))
                .save(class.join("a.png"))
                .unwrap();
        }
    }
    let ckpt = dir.path().join("model.safetensors");
    write_checkpoint(&ckpt, &small_config(8, 1));
    let args = [
        "eval",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    fails_with(&args, &["label 10 (class 'k10')", "10 classes"]);
    let run = dir.path().join("run");
    let args = [
        "train",
        "--model",
        "spikformer-2-64",
        "--image-size",
        "8",
        "--data",
        data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    fails_with(&args, &["label 10 (class 'k10')"]);
}

#[test]
fn event_labels_outside_the_classes_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    for (label, want) in [
        ("99", "label 99 is outside the model's 10 classes"),
        (
            "4294967295",
            "label 4294967295 is over the largest class index",
        ),
    ] {
        let data = dir.path().join(format!("events-{label}"));
        std::fs::create_dir_all(data.join("samples")).unwrap();
        // N-MNIST events: x, y, then polarity and a 23-bit microsecond timestamp.
        let events: Vec<u8> = (0..40u8)
            .flat_map(|i| [i % 8, i / 5 % 8, (i % 2) << 7, 0, i])
            .collect();
        for id in ["s0", "s1", "s2"] {
            std::fs::write(data.join(format!("samples/{id}.bin")), &events).unwrap();
        }
        std::fs::write(data.join("train.txt"), format!("s0 1\ns1 {label}\n")).unwrap();
        std::fs::write(data.join("test.txt"), "s2 0\n").unwrap();
        let args = [
            "train",
            "--model",
            "spikformer-2-64",
            "--data",
            data.to_str().unwrap(),
            "--time-steps",
            "2",
            "--in-channels",
            "2",
            "--image-size",
            "8",
            "--frame-size",
            "8",
            "--sensor",
            "8x8",
            "--no-cache",
            "--out",
            run.to_str().unwrap(),
        ];
        fails_with(&args, &[want]);
    }
}

#[test]
fn nan_weights_stop_training_and_score_zero_in_eval_and_infer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    idx_dataset(&data, 8, &[0, 1, 2, 3, 4, 5, 6, 7], &[0, 1, 2, 3]);
    let cfg = small_config(8, 1);
    let mut sd = bitspike::nn::init_state(&cfg, 0);
    for v in &mut sd.tensors.get_mut("head.weight").unwrap().data {
        *v = f32::NAN;
    }
    let nan = dir.path().join("nan.safetensors");
    sd.write(&nan).unwrap();
    let run = dir.path().join("run");
    let args = [
        "train",
        "--model",
        "spikformer-2-64",
        "--image-size",
        "8",
        "--data",
        data.to_str().unwrap(),
        "--batch-size",
        "4",
        "--weights",
        nan.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ];
    fails_with(
        &args,
        &[
            "training diverged at epoch 1, step 1 of 2",
            "the training loss is NaN",
        ],
    );
    assert!(!run.join("best.safetensors").exists());
    assert!(!run.join("last.safetensors").exists());
    // eval: NaN logits are wrong predictions, not 100 %.
    let out = bitspike(
        &[
            "eval",
            "--checkpoint",
            nan.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 of 4 images have NaN logits"),
        "{}",
        stderr(&out)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(report["top1"], 0.0);
    assert_eq!(report["top5"], 0.0);
    let png = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/samples/mnist-test-0-label-7.png"
    );
    let args = [
        "infer",
        "--checkpoint",
        nan.to_str().unwrap(),
        "--mean",
        "0.1",
        "--std",
        "0.3",
        png,
    ];
    fails_with(&args, &["logits are all NaN"]);
}

// Run directories and signals.

/// `train` of spikformer-2-64 on `data` (8 x 8 grey images) into `run`, with `extra`.
fn train_args<'a>(data: &'a Path, run: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--model",
        "spikformer-2-64",
        "--image-size",
        "8",
        "--data",
        s(data),
        "--out",
        s(run),
        "--batch-size",
        "2",
        "--json",
    ];
    args.extend(extra);
    args
}

#[test]
fn a_run_directory_that_holds_a_run_needs_resume_or_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    idx_dataset(&data, 8, &[0, 1, 2, 3], &[0, 1]);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("metrics.jsonl"), "{\"epoch\":1}\n").unwrap();
    let err = fails_with(
        &train_args(&data, &run, &["--epochs", "0"]),
        &[
            s(&run),
            "already holds a run (metrics.jsonl)",
            "--resume",
            "--overwrite",
        ],
    );
    assert!(!err.contains("training "), "refused before training: {err}");
    assert!(run.join("metrics.jsonl").exists(), "nothing was removed");
    fails_with(
        &train_args(&data, &run, &["--epochs", "0", "--resume"]),
        &["holds no last.safetensors to resume from"],
    );
    let out = bitspike(
        &train_args(&data, &run, &["--epochs", "0", "--overwrite"]),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !run.join("metrics.jsonl").exists(),
        "--overwrite starts over"
    );
}

#[test]
fn leftover_temporary_files_are_removed_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    idx_dataset(&data, 8, &[0, 1, 2, 3], &[0, 1]);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // What a save cut short by SIGKILL leaves (nn::checkpoint::write_atomic's naming).
    let stale = run.join(".bitspike-Xq3kP1.tmp");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    let notes = run.join("notes.tmp");
    std::fs::write(&notes, "mine").unwrap();
    let out = bitspike(&train_args(&data, &run, &["--epochs", "0"]), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert!(notes.exists(), "other files are left alone");
}

#[test]
fn a_second_training_into_a_locked_run_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    idx_dataset(&data, 8, &[0, 1, 2, 3], &[0, 1]);
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // Hold the lock as a running training does.
    let lock_path = run.join(bitspike::train::run_dir::LOCK_FILE);
    let mut lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    std::io::Write::write_all(&mut lock, std::process::id().to_string().as_bytes()).unwrap();
    let pid = format!("(process {})", std::process::id());
    fails_with(
        &train_args(&data, &run, &["--epochs", "1"]),
        &[
            s(&run),
            "another training is using this run directory",
            &pid,
        ],
    );
    assert!(!run.join("metrics.jsonl").exists());
    lock.unlock().unwrap();
    let out = bitspike(&train_args(&data, &run, &["--epochs", "0"]), &[]);
    assert!(
        out.status.success(),
        "the lock is free again: {}",
        stderr(&out)
    );
}

/// Send `signal` (e.g. "INT") to process `pid`.
#[cfg(unix)]
fn send(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// Start `args` and wait for its first line of output (an epoch's report).
#[cfg(unix)]
fn start_and_wait_for_an_epoch(args: &[&str]) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitspike"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"epoch\":"), "{line}");
    (child, line)
}

/// Wait for `child` at most `limit`; its exit status and stderr.
#[cfg(unix)]
fn finish(mut child: std::process::Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().ok();
            panic!("still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status, err)
}

/// The tensors of a safetensors file by name, as raw bytes, and its metadata.
fn tensors_and_metadata(path: &Path) -> (Vec<(String, Vec<u8>)>, serde_json::Value) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut tensors: Vec<(String, Vec<u8>)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let o = &v["data_offsets"];
            let (a, b) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            (k.clone(), data[a..b].to_vec())
        })
        .collect();
    tensors.sort();
    (tensors, header["__metadata__"].clone())
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_within_a_step_saves_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let labels: Vec<u8> = (0..240).map(|i| (i * 7 % 10) as u8).collect();
    idx_dataset(&data, 8, &labels, &labels[..20]);
    let steps = labels.len() / 2;
    let (run, whole) = (dir.path().join("run"), dir.path().join("whole"));
    // --report-every past the epoch: the stop must not wait for a report.
    let extra = [
        "--epochs",
        "2",
        "--report-every",
        "100000",
        "--hflip",
        "--crop-padding",
        "1",
    ];
    let (child, first) = start_and_wait_for_an_epoch(&train_args(&data, &run, &extra));
    let report: serde_json::Value = serde_json::from_str(&first).unwrap();
    let step_seconds = report["seconds"].as_f64().unwrap() / steps as f64;
    std::thread::sleep(Duration::from_secs_f64((10.0 * step_seconds).max(0.2)));
    let signalled = Instant::now();
    send("INT", child.id());
    let (status, err) = finish(child, Duration::from_secs(30));
    let took = signalled.elapsed().as_secs_f64();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = run.join("last.safetensors");
    assert!(
        err.contains("interrupted in epoch 2 after step") && err.contains(s(&last)),
        "{err}"
    );
    let (_, meta) = tensors_and_metadata(&last);
    assert_eq!(meta["train.epochs_done"], "1");
    let partial: serde_json::Value =
        serde_json::from_str(meta["train.partial_epoch"].as_str().unwrap()).unwrap();
    let done = partial["steps_done"].as_u64().unwrap() as usize;
    assert!(
        0 < done && done < steps,
        "stopped inside the epoch: {partial}"
    );
    println!(
        "stopped {took:.2} s after SIGINT ({step_seconds:.3} s a step), at step {done} of {steps}"
    );

    // Resumed, the run ends where an uninterrupted one does, bit for bit.
    let out = bitspike(
        &train_args(&data, &run, &[&extra[..], &["--resume"]].concat()),
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bitspike(&train_args(&data, &whole, &extra), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (resumed, meta) = tensors_and_metadata(&last);
    let (uninterrupted, _) = tensors_and_metadata(&whole.join("last.safetensors"));
    assert_eq!(meta["train.epochs_done"], "2");
    assert!(meta.get("train.partial_epoch").is_none());
    assert_eq!(resumed.len(), uninterrupted.len());
    for ((name, a), (_, b)) in resumed.iter().zip(&uninterrupted) {
        assert!(
            a == b,
            "{name} differs between the resumed and the uninterrupted run"
        );
    }
    let log = |d: &Path| std::fs::read_to_string(d.join("metrics.jsonl")).unwrap();
    let losses = |text: String| -> Vec<f64> {
        text.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(losses(log(&run)), losses(log(&whole)));
}

#[cfg(unix)]
#[test]
fn sigterm_stops_like_ctrl_c_and_a_second_signal_quits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let labels: Vec<u8> = (0..240).map(|i| (i * 3 % 10) as u8).collect();
    idx_dataset(&data, 8, &labels, &labels[..20]);
    let run = dir.path().join("run");
    let extra = ["--epochs", "3"];
    let (child, _) = start_and_wait_for_an_epoch(&train_args(&data, &run, &extra));
    send("TERM", child.id());
    let (status, err) = finish(child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted in epoch 2 after step"), "{err}");

    let resume = [&extra[..], &["--resume"]].concat();
    let (child, _) = start_and_wait_for_an_epoch(&train_args(&data, &run, &resume));
    send("INT", child.id());
    send("INT", child.id());
    let (status, err) = finish(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let second = err.contains("interrupted again: quitting without saving");
    // The second signal can come after the save of the first finished.
    assert!(second || err.contains("interrupted in epoch 3"), "{err}");
    // Whatever the second signal cut short, the run resumes from an intact checkpoint.
    let out = bitspike(&train_args(&data, &run, &resume), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, meta) = tensors_and_metadata(&run.join("last.safetensors"));
    assert_eq!(meta["train.epochs_done"], "3");
}
