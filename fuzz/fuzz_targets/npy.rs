//! An event recording read by the npy reader, then binned into frames.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::events::numpy;

fuzz_target!(|data: &[u8]| {
    bitspike_fuzz::use_events(numpy::parse_npy_events(Path::new("fuzz-input.npy"), data));
});
