//! A checkpoint as `infer`/`eval` load it: the safetensors file (through a real file, so
//! that the header checks before the data is read take part), its model config and its
//! check against the tensors the config needs.
#![no_main]

use libfuzzer_sys::fuzz_target;

use bitspike::data::Normalization;
use bitspike::nn::StateDict;

fuzz_target!(|data: &[u8]| {
    let path = bitspike_fuzz::temp_file("checkpoint.safetensors", data);
    let Ok(sd) = StateDict::read(&path) else {
        return;
    };
    if let Ok(Some(cfg)) = sd.config(&path) {
        if cfg.validate().is_ok() {
            let _ = sd.check(&cfg, &path);
        }
    }
    if let Some(json) = sd.metadata.get("data.normalization") {
        let _ = serde_json::from_str::<Normalization>(json);
    }
});
