//! The `bitspike` binary end to end: info, bench, and clear errors without a GPU.

use std::process::{Command, Output};

fn bitspike(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitspike"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the bitspike binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn info_lists_adapters_as_json_lines() {
    let out = bitspike(&["info", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect();
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
    let out = bitspike(
        &[
            "bench",
            "matmul",
            "--json",
            "--shapes",
            "37x97x53",
            "--min-time",
            "0",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON object"))
        .collect();
    let kernels: Vec<&str> = rows.iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(
        kernels,
        [
            "matmul_f32",
            "binary_spikes_x_signs",
            "binary_xnor",
            "f32_x_packed_signs"
        ]
    );
    for r in &rows {
        assert_eq!(r["shape"], "37x97x53");
        assert_eq!(r["unit"], "GMAC/s");
        assert!(r["seconds"].as_f64().unwrap() > 0.0);
        assert!(r["rate"].as_f64().unwrap() > 0.0);
    }
    assert!(rows[0].get("ratio").is_none());
    assert!(rows[1]["ratio"].as_f64().unwrap() > 0.0);
    assert_eq!(rows[1]["ratio_to"], "matmul_f32");
}

#[test]
fn bench_rejects_a_malformed_shape() {
    let out = bitspike(&["bench", "matmul", "--shapes", "12x0x3"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("shape '12x0x3'"), "{}", stderr(&out));
}
