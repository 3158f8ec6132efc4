//! An event recording read by the npz reader, then binned into frames.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::events::numpy;

fuzz_target!(|data: &[u8]| {
    bitspike_fuzz::use_events(numpy::parse_npz_events(Path::new("fuzz-input.npz"), data));
});
