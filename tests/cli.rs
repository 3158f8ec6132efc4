//! The `bitspike` binary end to end: info, bench, and clear errors without a GPU.

mod common;

use common::cli::{bitspike, stderr, stdout, tiny_mnist};

/// Run `bitspike args` (which must succeed) and parse each line of its output as JSON.
fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    let out = bitspike(args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect()
}

#[test]
fn info_lists_adapters_as_json_lines() {
    let lines = json_lines(&["info", "--json"]);
    assert!(!lines.is_empty());
    for a in &lines {
        for key in [
            "name",
            "backend",
            "device_type",
            "driver",
            "max_storage_buffer_binding_size",
            "max_compute_workgroup_storage_size",
            "max_compute_invocations_per_workgroup",
            "subgroups",
        ] {
            assert!(a.get(key).is_some(), "missing {key} in {a}");
        }
    }
}

#[test]
fn info_says_which_kernels_run_on_each_adapter_and_which_exceed_it() {
    for portable in [false, true] {
        let mut args = vec!["info", "--json"];
        if portable {
            args.push("--portable");
        }
        for a in json_lines(&args) {
            let kernels = a["kernels"].as_str().unwrap_or_default();
            let because = a["portable_because"].as_str();
            let subgroups = a["subgroups"] == true;
            assert_eq!(kernels == "subgroup", because.is_none(), "{a}");
            if portable || !subgroups {
                assert_eq!(kernels, "portable", "{a}");
            }
            let over = a["over_limits"].as_array().expect("over_limits is a list");
            for o in over {
                for key in ["kernel", "limit", "need", "have", "host"] {
                    let value = o[key].as_str().unwrap_or_default();
                    assert!(!value.is_empty(), "{key} of {o}");
                }
            }
            // Without subgroups, each subgroup kernel is listed with its portable stand-in.
            let stand_ins: Vec<&serde_json::Value> =
                over.iter().filter(|o| o["limit"] == "subgroups").collect();
            if subgroups || portable {
                assert!(stand_ins.is_empty(), "{a}");
            } else {
                assert!(stand_ins.len() >= 2, "{a}");
                for o in stand_ins {
                    let kernel = o["kernel"].as_str().unwrap_or_default();
                    let file = kernel.split("::").next().unwrap_or_default();
                    assert!(file.ends_with("_subgroup.wgsl"), "{o}");
                    let host = o["host"].as_str().unwrap_or_default();
                    assert!(host.contains(&file.replace("_subgroup", "")), "{o}");
                }
            }
        }
    }
    let text = stdout(&bitspike(&["info"], &[]));
    assert!(
        text.contains("  kernels:") && text.contains("  f32 matmul:"),
        "{text}"
    );
}

#[test]
fn no_vulkan_driver_is_one_clear_error_line() {
    let out = bitspike(
        &["info", "--backend", "vulkan"],
        &[
            ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
            ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    let ours: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("error: no GPU"))
        .collect();
    assert_eq!(ours.len(), 1, "{err}");
    assert!(ours[0].contains("mesa-vulkan-drivers"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn unknown_backend_is_an_error() {
    let out = bitspike(&["info", "--backend", "glide"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown backend 'glide'"));
}

#[test]
fn bench_matmul_json_reports_rates_and_ratios() {
    let rows = json_lines(&[
        "bench",
        "matmul",
        "--json",
        "--shapes",
        "37x97x53",
        "--min-time",
        "0",
    ]);
    let kernels: Vec<&str> = rows.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    let mut want = vec![
        "matmul_f32",
        "binary_spikes_x_signs",
        "binary_xnor",
        "f32_x_packed_signs",
    ];
    // Then the f32 kernels on every form, the tiled one against the register-blocked one.
    let forms = ["AB", "AtB", "ABt", "AtBt"];
    let f32_rows: Vec<String> = forms
        .iter()
        .flat_map(|f| {
            [
                format!("matmul_f32_registers/{f}"),
                format!("matmul_f32_tiled/{f}"),
            ]
        })
        .collect();
    want.extend(f32_rows.iter().map(String::as_str));
    assert_eq!(kernels, want);
    for r in &rows {
        assert_eq!(r["shape"], "37x97x53");
        assert_eq!(r["unit"], "GMAC/s");
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
        assert!(r["rate"].as_f64().unwrap() > 0.0);
    }
    assert!(rows[0].get("ratio").is_none());
    assert!(rows[1]["ratio"].as_f64().unwrap() > 0.0);
    assert_eq!(rows[1]["ratio_to"], "matmul_f32");
    for pair in rows[4..].chunks(2) {
        assert!(pair[0].get("ratio").is_none());
        assert!(pair[1]["ratio"].as_f64().unwrap() > 0.0);
        assert_eq!(pair[1]["ratio_to"], pair[0]["kernel"]);
    }
}

#[test]
fn bench_matmul_compares_f32_kernels_on_chosen_forms() {
    let rows = json_lines(&[
        "bench",
        "matmul",
        "--json",
        "--shapes",
        "70x33x65",
        "--forms",
        "atb,abt",
        "--min-time",
        "0",
    ]);
    let kernels: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["kernel"].as_str())
        .filter(|k| k.starts_with("matmul_f32_"))
        .collect();
    assert_eq!(
        kernels,
        [
            "matmul_f32_registers/AtB",
            "matmul_f32_tiled/AtB",
            "matmul_f32_registers/ABt",
            "matmul_f32_tiled/ABt"
        ]
    );
}

/// `bench attention --json`: every form's time with its ratio to f32 SSA, the maps'
/// firing rates, and the bytes each forward keeps for backward (exact for this shape).
#[test]
fn bench_attention_reports_times_rates_and_saved_bytes() {
    let rows = json_lines(&[
        "bench",
        "attention",
        "--json",
        "--shapes",
        "2x2x2x37x19",
        "--min-time",
        "0",
    ]);
    let row = |kernel: &str| {
        rows.iter()
            .find(|r| r["kernel"] == kernel)
            .unwrap_or_else(|| panic!("no row for {kernel}: {rows:?}"))
    };
    let forms = [
        "ssa_f32",
        "ssa_binary_scores",
        "binary_attention_nxn",
        "binary_attention_dxd",
        "ssa_bin",
        "a2os2a",
    ];
    for form in forms {
        for pass in ["forward", "forward+backward"] {
            let r = row(&format!("{form}/{pass}"));
            assert_eq!(r["shape"], "2x2x2x37x19");
            assert!(r["seconds"].as_f64().unwrap() > 0.0);
            if form == "ssa_f32" {
                assert!(r.get("ratio").is_none());
            } else {
                assert!(r["ratio"].as_f64().unwrap() > 0.0);
                assert_eq!(r["ratio_to"], format!("ssa_f32/{pass} (time)"));
            }
        }
        let rate = row(&format!("{form}/firing_rate"))["rate"]
            .as_f64()
            .unwrap();
        assert!((0.0..=1.0).contains(&rate), "{form}: {rate}");
    }
    // 8 maps of 37 x 37: Q, K and V in f32, then f32 scores; the binary forms keep packed
    // rows of 4 words (the N x N map and the packed Q and K; the d x d map and the packed
    // V^T and K^T).
    let saved = |form: &str| {
        row(&format!("{form}/saved_for_backward"))["rate"]
            .as_f64()
            .unwrap()
    };
    let qkv = 3 * 8 * 37 * 19 * 4;
    let (scores, packed_nxn, packed_dxd) =
        (8 * 37 * 37 * 4, 3 * 8 * 37 * 4 * 4, 3 * 8 * 19 * 4 * 4);
    let mb = |bytes: usize| bytes as f64 / 1e6;
    assert_eq!(saved("ssa_f32"), mb(qkv + scores));
    assert_eq!(saved("a2os2a"), mb(qkv + scores));
    assert_eq!(saved("binary_attention_nxn"), mb(qkv + packed_nxn));
    assert_eq!(saved("ssa_bin"), mb(qkv + packed_nxn));
    assert_eq!(saved("binary_attention_dxd"), mb(qkv + packed_dxd));
    let nxn = row("binary_attention_nxn/saved_for_backward");
    assert_eq!(
        nxn["ratio"].as_f64().unwrap(),
        (qkv + scores) as f64 / (qkv + packed_nxn) as f64
    );
    assert_eq!(nxn["ratio_to"], "less memory than ssa_f32");
}

/// `bench data` streams a folder's JPEG and PNG files through the loader, and opens no
/// GPU (an unknown backend and a missing Vulkan driver do not matter).
#[test]
fn bench_data_json_reports_images_per_second_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "test"] {
        for class in ["a", "b"] {
            let d = dir.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..6u8 {
                let img = image::RgbImage::from_pixel(8, 8, image::Rgb([i * 40, 9, 200]));
                let ext = if i % 2 == 0 { "jpg" } else { "png" };
                img.save(d.join(format!("{i}.{ext}"))).unwrap();
            }
        }
    }
    let out = bitspike(
        &[
            "bench",
            "data",
            "--data",
            dir.path().to_str().unwrap(),
            "--batches",
            "4",
            "--batch-size",
            "3",
            "--workers",
            "2",
            "--hflip",
            "--crop-padding",
            "2",
            "--backend",
            "glide",
            "--json",
        ],
        &[("VK_ICD_FILENAMES", "/nonexistent/icd.json")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r["source"], "files");
    assert_eq!(r["shape"], "3x8x8");
    assert_eq!(
        (r["workers"].as_u64(), r["images"].as_u64()),
        (Some(2), Some(12))
    );
    let rate = r["images_per_second"].as_f64().unwrap();
    let per_worker = r["images_per_second_per_worker"].as_f64().unwrap();
    assert!(
        rate > 0.0 && (per_worker * 2.0 - rate).abs() < 1e-6 * rate,
        "{r}"
    );
}

#[test]
fn bench_rejects_a_malformed_shape() {
    let out = bitspike(&["bench", "matmul", "--shapes", "12x0x3"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shape '12x0x3'"), "{}", stderr(&out));
}

/// A tiny IDX dataset cut from the shipped MNIST subset.
#[test]
fn train_end_to_end_writes_checkpoints_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_mnist(&data, 48, 16);
    let run = dir.path().join("run");
    let args = |epochs: &str, extra: &[&str]| {
        let mut a = vec![
            "train",
            "--model",
            "bestformer-2-64",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            epochs,
            "--batch-size",
            "16",
            "--json",
            "--out",
            run.to_str().unwrap(),
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let first = args("1", &[]);
    let out = bitspike(&first.iter().map(|s| s.as_str()).collect::<Vec<_>>(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(report["epoch"], 1);
    assert!(report["train_loss"].as_f64().unwrap().is_finite());
    assert!(run.join("last.safetensors").is_file() && run.join("best.safetensors").is_file());
    // The best checkpoint is a plain model checkpoint: it loads as the model's weights.
    let best = bitspike::nn::StateDict::read(&run.join("best.safetensors")).unwrap();
    best.check(
        &bitspike::nn::ModelConfig::preset("bestformer-2-64").unwrap(),
        &run,
    )
    .unwrap();
    let resumed = args("2", &["--resume"]);
    let out = bitspike(&resumed.iter().map(|s| s.as_str()).collect::<Vec<_>>(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "resume runs only the remaining epoch");
    let report: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(report["epoch"], 2);
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2);
    // The best checkpoint evaluates with its stored config and normalization.
    let best = run.join("best.safetensors");
    let out = bitspike(
        &[
            "eval",
            "--checkpoint",
            best.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--batch-size",
            "16",
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["images"], 16);
    assert!(report["top5"].as_f64().unwrap() >= report["top1"].as_f64().unwrap());
    // Inference on image files: a grey PNG, an RGB JPEG of another size, a corrupt file.
    let png = dir.path().join("digit.png");
    image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (x + y) % 7 < 3 { 255 } else { 0 }])
    })
    .save(&png)
    .unwrap();
    let jpg = dir.path().join("photo.jpg");
    image::RgbImage::from_fn(40, 30, |x, _| image::Rgb([(x * 6) as u8, 100, 50]))
        .save(&jpg)
        .unwrap();
    let rows = json_lines(&[
        "infer",
        "--checkpoint",
        best.to_str().unwrap(),
        "--json",
        "--topk",
        "3",
        png.to_str().unwrap(),
        jpg.to_str().unwrap(),
    ]);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r["topk"].as_array().unwrap().len(), 3);
        assert_eq!(r["logits"].as_array().unwrap().len(), 10);
        let p: f64 = r["topk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["probability"].as_f64().unwrap())
            .sum();
        assert!(p > 0.0 && p <= 1.0 + 1e-5);
    }
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnope").unwrap();
    let out = bitspike(
        &[
            "infer",
            "--checkpoint",
            best.to_str().unwrap(),
            png.to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success(), "a bad image fails the command");
    assert!(
        stdout(&out).contains("digit.png"),
        "the good image still ran: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("broken.png") && stderr(&out).contains("1 of 2 images"),
        "{}",
        stderr(&out)
    );
    // A directory stands for its images; an empty one is an error.
    let out = bitspike(
        &[
            "infer",
            "--checkpoint",
            best.to_str().unwrap(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/assets/samples"),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 3);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = bitspike(
        &[
            "infer",
            "--checkpoint",
            best.to_str().unwrap(),
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds no images"), "{}", stderr(&out));
    // A packed export gives the same logits, at a fraction of the size.
    let packed = dir.path().join("packed.safetensors");
    let out = bitspike(
        &[
            "export",
            "--checkpoint",
            best.to_str().unwrap(),
            "--packed",
            packed.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::metadata(&packed).unwrap().len() * 4 < std::fs::metadata(&best).unwrap().len()
    );
    let logits = |ckpt: &std::path::Path| {
        let out = bitspike(
            &[
                "infer",
                "--checkpoint",
                ckpt.to_str().unwrap(),
                "--json",
                png.to_str().unwrap(),
                jpg.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["logits"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        logits(&packed),
        logits(&best),
        "packed export: identical logits"
    );
    // The energy report: a line per conv/linear layer, then the totals.
    let rows = json_lines(&[
        "eval",
        "--checkpoint",
        best.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--batch-size",
        "16",
        "--energy",
        "--json",
    ]);
    let layers: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r.get("layer").is_some()).collect();
    assert_eq!(
        layers.len(),
        5 + 2 * 8,
        "tokenizer convs, then 6 layers and 2 attention products a block: {rows:?}"
    );
    let av = layers
        .iter()
        .find(|l| l["layer"] == "block.0.attn.av_product")
        .expect("the attention map's product is counted");
    let map_rate = av["firing_rate"].as_f64().unwrap();
    assert!(av["spike_driven"].as_bool().unwrap() && (0.0..=1.0).contains(&map_rate));
    assert!(layers
        .iter()
        .any(|l| l["layer"] == "block.0.attn.qk_product"));
    assert_eq!(layers[0]["layer"], "patch_embed.block0_conv.weight");
    assert_eq!(
        layers[0]["spike_driven"], false,
        "the first conv sees the image"
    );
    assert!(layers[1]["spike_driven"].as_bool().unwrap());
    let rate = layers[1]["firing_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate < 1.0);
    assert_eq!(
        layers[0]["macs"].as_f64().unwrap(),
        (28 * 28 * 9 * 8 * 4) as f64
    );
    let total = rows.iter().find(|r| r.get("total_sops").is_some()).unwrap();
    assert!(
        total["total_sops"].as_f64().unwrap() > 0.0 && total["energy_uj"].as_f64().unwrap() > 0.0
    );
    // A truncated checkpoint is one clear error line.
    let bytes = std::fs::read(&best).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = bitspike(
        &[
            "eval",
            "--checkpoint",
            cut.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cut.safetensors") && stderr(&out).contains("truncated"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn packed_export_of_bestformer_4_384_is_at_most_1_5_mb() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("b.safetensors");
    let out = bitspike(
        &[
            "export",
            "--model",
            "bestformer-4-384",
            "--packed",
            out_path.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::metadata(&out_path).unwrap().len();
    assert!(bytes <= 1_500_000, "{bytes} bytes");
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(report["binary_tensors"], 28);
}

#[test]
fn train_rejects_mismatched_data_and_missing_model() {
    let out = bitspike(&["train", "--data", "assets/mnist-mini"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--model PRESET is required"),
        "{}",
        stderr(&out)
    );
    let out = bitspike(
        &[
            "train",
            "--model",
            "bestformer-4-384",
            "--data",
            concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mnist-mini"),
            // Small enough for lavapipe's 128 MiB bindings: the run's sizes are checked
            // before the data is opened.
            "--batch-size",
            "8",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("1x28x28 images but"),
        "{}",
        stderr(&out)
    );
    let out = bitspike(
        &[
            "train",
            "--model",
            "bestformer-2-64",
            "--data",
            "/nonexistent",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
}

/// `info --model P --attention F --weight-mode M` prints each combination's counts.
#[test]
fn info_counts_every_attention_form_and_weight_mode() {
    let info = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["info", "--model", "spikformer-4-384", "--json"];
        all.extend_from_slice(args);
        let out = bitspike(&all, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).trim()).unwrap()
    };
    let base = info(&[]);
    assert_eq!(base["params"]["binary"], 0);
    let bin = info(&["--attention", "ssa-bin", "--weight-mode", "binary"]);
    assert_eq!(bin["config"]["attention"], "ssa-bin");
    assert_eq!(bin["config"]["weights"], "binary");
    assert_eq!(bin["params"]["total"], base["params"]["total"]);
    assert!(bin["params"]["binary"].as_u64().unwrap() > 9_200_000);
    // The binary map adds lambda [T, 1, heads, 1, 1] to each of the 4 blocks.
    let lambda = info(&["--attention", "binary"]);
    assert_eq!(
        lambda["params"]["total"].as_u64().unwrap(),
        base["params"]["total"].as_u64().unwrap() + 4 * 4 * 12
    );
}

#[test]
fn train_eval_and_infer_on_event_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/nmnist-small");
    let list = std::fs::read_to_string(shared.join("train1K.txt")).unwrap();
    // N-MNIST layout: Train/<digit>/<id>.bin, Test/<digit>/<id>.bin.
    let data = dir.path().join("events");
    let mut files = Vec::new();
    // The first 8 recordings also serve as the test split: every test class is trained.
    for (i, line) in list.lines().skip(1).take(16).enumerate() {
        let (id, label) = line.split_once('\t').unwrap();
        let splits: &[&str] = if i < 8 {
            &["Train", "Test"]
        } else {
            &["Train"]
        };
        for split in splits {
            let class_dir = data.join(split).join(label.trim());
            std::fs::create_dir_all(&class_dir).unwrap();
            let file = class_dir.join(format!("{id}.bin"));
            std::fs::copy(shared.join(format!("samples/{id}.bs2")), &file).unwrap();
            files.push(file);
        }
    }
    let run = dir.path().join("run");
    let cache = dir.path().join("cache");
    let common = [
        "--time-steps",
        "4",
        "--in-channels",
        "2",
        "--image-size",
        "8",
        "--frame-size",
        "8",
    ];
    let mut args = vec![
        "train",
        "--model",
        "bestformer-2-64",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--json",
        "--out",
        run.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--split-by",
        "time",
        "--hflip",
    ];
    args.extend(common);
    let out = bitspike(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(report["epoch"], 1);
    assert!(report["train_loss"].as_f64().unwrap().is_finite());
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "the frames were cached"
    );
    // The checkpoint carries the frame settings: eval and infer bin events the same way.
    let best = run.join("best.safetensors");
    let sd = bitspike::nn::StateDict::read(&best).unwrap();
    let frames: serde_json::Value = serde_json::from_str(&sd.metadata["data.frames"]).unwrap();
    assert_eq!(frames["split_by"], "Time");
    assert_eq!(frames["size"], 8);
    let out = bitspike(
        &[
            "eval",
            "--checkpoint",
            best.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--json",
            "--no-cache",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let eval: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().last().unwrap()).unwrap();
    assert_eq!(eval["images"], 8);
    assert_eq!(
        eval["top1"].as_f64().unwrap(),
        report["test_accuracy"].as_f64().unwrap()
    );
    let lines = json_lines(&[
        "infer",
        "--checkpoint",
        best.to_str().unwrap(),
        "--json",
        "--topk",
        "2",
        files[0].to_str().unwrap(),
        files[9].to_str().unwrap(),
    ]);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["path"], files[9].to_str().unwrap());
    assert_eq!(lines[0]["topk"].as_array().unwrap().len(), 2);
    // An image is not an input for a model trained on events.
    let png = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/samples/mnist-test-0-label-7.png");
    let out = bitspike(
        &[
            "infer",
            "--checkpoint",
            best.to_str().unwrap(),
            png.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("takes event files"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_recipe_trains_with_teacher_logits_mixup_ema_and_accumulation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_mnist(&data, 24, 8);
    // A teacher table for the 24 training images, with the labels as its check.
    let labels = bitspike::data::open(&data).unwrap().train.labels().to_vec();
    let mut table = bitspike::nn::StateDict::default();
    let tensor =
        |shape: Vec<usize>, data: Vec<f32>| bitspike::nn::checkpoint::HostTensor { shape, data };
    let logits: Vec<f32> = (0..24 * 10).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    table
        .tensors
        .insert("logits".into(), tensor(vec![24, 10], logits));
    table.tensors.insert(
        "labels".into(),
        tensor(vec![24], labels.iter().map(|&l| l as f32).collect()),
    );
    let teacher = dir.path().join("teacher.safetensors");
    table.write(&teacher).unwrap();
    let recipe = dir.path().join("recipe.toml");
    std::fs::write(
        &recipe,
        "# a recipe: every key a train flag\n\
         model = \"bestformer-2-64\"\n\
         epochs = 2\n\
         cooldown_epochs = 1\n\
         batch_size = 4\n\
         lr = 1e-3\n\
         hflip = true\n\
         mixup = 0.8\n\
         cutmix = 1.0\n\
         cutmix_minmax = [0.2, 0.8]\n\
         mixup_mode = \"pair\"\n\
         accum_steps = 2\n\
         model_ema = true\n\
         model_ema_decay = 0.9\n\
         distill = \"soft\"\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let train = |extra: &[&str]| {
        let mut a = vec![
            "train",
            "--recipe",
            recipe.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--teacher-logits",
            teacher.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--json",
        ];
        a.extend_from_slice(extra);
        bitspike(&a, &[])
    };
    // The command line overrides the recipe.
    let out = train(&["--batch-size", "8"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "two epochs, the second the cooldown");
    for l in &lines {
        assert!(l["train_loss"].as_f64().unwrap().is_finite(), "{l}");
        assert!(l["ema_test_accuracy"].as_f64().is_some(), "{l}");
    }
    assert!(
        (lines[1]["lr"].as_f64().unwrap() - 1e-5).abs() < 1e-9,
        "cooldown at min-lr"
    );
    // The EMA is a plain checkpoint of the model.
    let ema = bitspike::nn::StateDict::read(&run.join("ema.safetensors")).unwrap();
    ema.check(
        &bitspike::nn::ModelConfig::preset("bestformer-2-64").unwrap(),
        &run,
    )
    .unwrap();
    let last = bitspike::nn::StateDict::read(&run.join("last.safetensors")).unwrap();
    assert!(last.tensors.keys().any(|k| k.starts_with("ema.")));

    // A table for another dataset is refused, naming the mismatch.
    tiny_mnist(&data, 20, 8);
    let out = train(&["--overwrite"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("for 24 samples, but the training split has 20"),
        "{}",
        stderr(&out)
    );
    // A flag named twice (both spellings), and an unknown key with the nearest flag.
    std::fs::write(&recipe, "batch_size = 4\nbatch-size = 8\n").unwrap();
    let out = train(&[]);
    assert!(
        stderr(&out).contains("key 'batch_size': names the flag --batch-size as 'batch-size' does"),
        "{}",
        stderr(&out)
    );
    std::fs::write(&recipe, "mixupp = 0.8\n").unwrap();
    let out = train(&[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("key 'mixupp': not a flag of `bitspike train` (did you mean mixup?)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn doctor_passes_every_check_on_this_adapter() {
    let lines = json_lines(&["doctor", "--json"]);
    let (adapter, checks) = lines.split_first().expect("an adapter line");
    assert!(adapter["adapter"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(checks.len() >= 16, "{} checks", checks.len());
    for c in checks {
        assert_eq!(c["passed"], true, "{c}");
        assert!(c["worst"].as_f64().unwrap() <= c["tolerance"].as_f64().unwrap());
    }
    for family in [
        "Ssa",
        "SsaBin",
        "A2os2a",
        "Binary attention",
        "backward",
        "eval",
        "AdamW",
    ] {
        assert!(
            checks
                .iter()
                .any(|c| c["name"].as_str().unwrap().contains(family)),
            "no check of {family}"
        );
    }
}

#[test]
fn plot_eval_energy_and_explain_write_pictures_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    tiny_mnist(&data, 24, 8);
    let run = dir.path().join("run");
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    let out = bitspike(
        &[
            "train",
            "--model",
            "bestformer-2-64",
            "--data",
            data_s,
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--json",
            "--out",
            run_s,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let png = |p: &std::path::Path| image::open(p).unwrap().to_rgb8();
    let ink = |img: &image::RgbImage| img.pixels().filter(|p| p.0 != [255; 3]).count();

    let curves = dir.path().join("curves.png");
    let out = bitspike(&["plot", run_s, "--out", curves.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let img = png(&curves);
    assert_eq!(img.dimensions(), (800, 500));
    assert!(ink(&img) > 8000, "{}", ink(&img));

    let best = run.join("best.safetensors");
    let energy = dir.path().join("energy.png");
    let out = bitspike(
        &[
            "eval",
            "--checkpoint",
            best.to_str().unwrap(),
            "--data",
            data_s,
            "--energy",
            "--plot",
            energy.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let img = png(&energy);
    assert_eq!(img.width(), 900);
    assert!(ink(&img) > 20000, "{}", ink(&img));

    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/samples");
    let explain = |image: &str, to: &std::path::Path| {
        let out = bitspike(
            &[
                "infer",
                "--checkpoint",
                best.to_str().unwrap(),
                "--explain",
                to.to_str().unwrap(),
                samples.join(image).to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let (seven, two) = (dir.path().join("seven"), dir.path().join("two"));
    let said = explain("mnist-test-0-label-7.png", &seven);
    explain("mnist-test-1-label-2.png", &two);
    for name in [
        "input",
        "raster",
        "attention_block_0_attn",
        "attention_block_1_attn",
    ] {
        let path = seven.join(format!("{name}.png"));
        assert!(said.contains(path.to_str().unwrap()), "{said}");
        assert!(ink(&png(&path)) > 1000, "{name} is blank");
    }
    // The pictures are of the input: another digit, other pixels.
    for name in ["input", "attention_block_0_attn"] {
        let (a, b) = (
            png(&seven.join(format!("{name}.png"))),
            png(&two.join(format!("{name}.png"))),
        );
        assert_eq!(a.dimensions(), b.dimensions());
        let differ = a.pixels().zip(b.pixels()).filter(|(p, q)| p != q).count();
        assert!(differ > 500, "{name}: {differ} pixels differ");
    }

    // Bad input: one clear error line each.
    let out = bitspike(&["plot", data_s], &[]);
    common::cli::assert_clear_error(
        "plot of no run",
        out.status,
        &stderr(&out),
        &["metrics.jsonl"],
    );
    let out = bitspike(
        &[
            "infer",
            "--checkpoint",
            best.to_str().unwrap(),
            "--explain",
            seven.to_str().unwrap(),
            samples.to_str().unwrap(),
        ],
        &[],
    );
    common::cli::assert_clear_error(
        "explain of a directory",
        out.status,
        &stderr(&out),
        &["one input file"],
    );
}
