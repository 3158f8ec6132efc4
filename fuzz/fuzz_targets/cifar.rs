//! A CIFAR-10 and a CIFAR-100 binary batch.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::cifar;

fuzz_target!(|data: &[u8]| {
    for label_bytes in [1, 2] {
        let mut out = cifar::empty_split(Vec::new());
        if cifar::parse_records(Path::new("fuzz-input.bin"), data, label_bytes, &mut out).is_ok() {
            assert_eq!(out.images.len(), out.len() * out.image_len());
        }
    }
});
