//! Checkpoints: safetensors with the reference names and the config in the metadata;
//! plain converted state_dicts; clear errors for truncated files and other models.

use std::collections::HashMap;

use bitspike::nn::{init_state, param_counts, param_specs, ModelConfig, ParamRole, StateDict};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

#[test]
fn reference_parameter_counts() {
    let s = param_counts(&ModelConfig::preset("spikformer-4-384").unwrap());
    assert_eq!(s.total, 9_324_730, "9.32 M without the unused LayerNorms");
    assert_eq!(s.binary, 0);
    let b = param_counts(&ModelConfig::preset("bestformer-4-384").unwrap());
    assert_eq!(b.total, 9_314_884, "9.31 M");
    assert_eq!(b.binary, 9_275_904, "9.28 M binary");
    assert_eq!(b.float, 38_980, "about 39 K float");
    assert!(
        b.packed_bytes <= 1_500_000,
        "packed export <= 1.5 MB: {}",
        b.packed_bytes
    );
}

#[test]
fn init_write_read_round_trip_with_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let cfg = ModelConfig::preset("bestformer-2-64").unwrap();
    let sd = init_state(&cfg, 7);
    sd.write(&path).unwrap();
    let back = StateDict::read(&path).unwrap();
    assert_eq!(back, sd);
    assert_eq!(back.config(&path).unwrap(), Some(cfg.clone()));
    back.check(&cfg, &path).unwrap();
    assert_eq!(init_state(&cfg, 7), sd, "same seed, same weights");
    assert_ne!(init_state(&cfg, 8).tensors, sd.tensors);
    // Reference initialisation: BN weight 1, running var 1, lambda 1, conv in +-1/sqrt(fan_in).
    assert!(sd.tensors["block.0.attn.q_bn.weight"]
        .data
        .iter()
        .all(|&v| v == 1.0));
    assert!(sd.tensors["block.0.attn.lambda_attn"]
        .data
        .iter()
        .all(|&v| v == 1.0));
    let w = &sd.tensors["patch_embed.block1_conv.weight"];
    let bound = 1.0 / ((8 * 9) as f32).sqrt();
    assert!(
        w.data.iter().all(|v| v.abs() <= bound) && w.data.iter().any(|v| v.abs() > bound / 2.0)
    );
}

#[test]
fn truncated_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    init_state(&ModelConfig::preset("spikformer-2-64").unwrap(), 1)
        .write(&path)
        .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = StateDict::read(&path).unwrap_err().to_string();
    assert!(
        err.contains("m.safetensors") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn another_models_checkpoint_names_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.safetensors");
    let spik = ModelConfig::preset("spikformer-2-64").unwrap();
    let best = ModelConfig::preset("bestformer-2-64").unwrap();
    let sd = init_state(&spik, 1);
    let err = sd.check(&best, &path).unwrap_err().to_string();
    assert!(
        err.contains("patch_embed.block0_conv.weight") && err.contains("missing"),
        "{err}"
    );
    let mut wide = spik.clone();
    wide.classes = 100;
    let err = sd.check(&wide, &path).unwrap_err().to_string();
    assert!(
        err.contains("head.weight") && err.contains("[100, 64]"),
        "{err}"
    );
    let mut extra = sd.clone();
    extra.tensors.insert(
        "block.9.attn.q_linear.weight".into(),
        sd.tensors["head.bias"].clone(),
    );
    let err = extra.check(&spik, &path).unwrap_err().to_string();
    assert!(err.contains("block.9.attn.q_linear.weight"), "{err}");
}

/// What a converted PyTorch state_dict looks like: no metadata, f16 and bf16 tensors,
/// int64 batch counters, Conv1d weights with their unit dimension, unused LayerNorms.
#[test]
fn plain_converted_state_dict_loads() {
    let cfg = ModelConfig::preset("bestformer-2-64").unwrap();
    let mut store: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, spec) in param_specs(&cfg).into_iter().enumerate() {
        let n = spec.len();
        let (dtype, bytes) = match (spec.role, i % 3) {
            (ParamRole::BatchCount, _) => (Dtype::I64, 5i64.to_le_bytes().to_vec()),
            (_, 0) => (
                Dtype::F16,
                (0..n).flat_map(|_| 0x3C00u16.to_le_bytes()).collect(),
            ), // 1.0
            (_, 1) => (
                Dtype::BF16,
                (0..n).flat_map(|_| 0xBF80u16.to_le_bytes()).collect(),
            ), // -1.0
            _ => (
                Dtype::F32,
                (0..n).flat_map(|_| 0.5f32.to_le_bytes()).collect(),
            ),
        };
        store.push((spec.name, dtype, spec.shape, bytes));
    }
    store.push((
        "block.0.norm1.weight".into(),
        Dtype::F32,
        vec![64],
        vec![0; 256],
    ));
    let views: Vec<(String, TensorView)> = store
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let bytes = safetensors::serialize(views, None::<HashMap<String, String>>).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("converted.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let sd = StateDict::read(&path).unwrap();
    assert_eq!(sd.config(&path).unwrap(), None);
    sd.check(&cfg, &path).unwrap();
    let vals: Vec<f32> = param_specs(&cfg)
        .iter()
        .take(3)
        .map(|s| sd.tensors[&s.name].data[0])
        .collect();
    assert_eq!(vals, vec![1.0, -1.0, 0.5]);
}

#[test]
fn failed_write_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("m.safetensors");
    let sd = init_state(&ModelConfig::preset("spikformer-2-64").unwrap(), 1);
    assert!(sd.write(&path).is_err());
    assert!(!path.exists());
    let ok = dir.path().join("m.safetensors");
    sd.write(&ok).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec!["m.safetensors"],
        "no temporary file left behind"
    );
}

#[test]
fn packed_tensors_round_trip_and_are_checked() {
    use bitspike::nn::checkpoint::PackedTensor;
    let cfg = ModelConfig::preset("bestformer-2-64").unwrap();
    let mut sd = init_state(&cfg, 2);
    let name = "block.0.mlp.mlp1_conv.weight"; // [256, 64, 1, 1]: K = 64, 4 words a row
    sd.tensors.remove(name);
    sd.packed.insert(
        name.into(),
        PackedTensor {
            shape: vec![256, 64, 1, 1],
            words: (0..256 * 4u32)
                .map(|i| i.wrapping_mul(2_654_435_761))
                .collect(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    sd.write(&path).unwrap();
    let back = StateDict::read(&path).unwrap();
    assert_eq!(back.packed, sd.packed);
    assert!(back.metadata["bitspike.packing"].contains("least significant bit first"));
    back.check(&cfg, &path).unwrap();
    let mut short = back.clone();
    short.packed.get_mut(name).unwrap().words.pop();
    let err = short.check(&cfg, &path).unwrap_err().to_string();
    assert!(err.contains(name) && err.contains("words"), "{err}");
    let mut float_as_packed = back.clone();
    let bias = float_as_packed.tensors.remove("head.bias").unwrap();
    float_as_packed.packed.insert(
        "head.bias".into(),
        PackedTensor {
            shape: bias.shape,
            words: vec![0; 4],
        },
    );
    let err = float_as_packed.check(&cfg, &path).unwrap_err().to_string();
    assert!(err.contains("head.bias"), "{err}");
}
