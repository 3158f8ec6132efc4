//! An image as `infer` takes it: decoded within the limits, resized to fill the model's
//! square input and centre-cropped, as grey and as RGB.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::decode;

fuzz_target!(|data: &[u8]| {
    let Ok(img) = decode::decode_image(Path::new("fuzz-input.png"), data) else {
        return;
    };
    let img = img.resize_to_fill(32, 32, image::imageops::FilterType::Triangle);
    assert_eq!(img.to_luma8().len(), 32 * 32);
    assert_eq!(img.to_rgb8().len(), 3 * 32 * 32);
});
