//! An IDX file (gzipped or not) read as images and as labels.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::idx;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input-idx3-ubyte.gz");
    if let Ok((pixels, count, rows, cols)) = idx::parse_images(path, data.to_vec()) {
        assert_eq!(pixels.len(), count * rows * cols);
    }
    let _ = idx::parse_labels(path, data.to_vec());
});
