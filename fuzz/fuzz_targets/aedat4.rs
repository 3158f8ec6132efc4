//! An event recording read by the aedat4 reader, then binned into frames.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::events::aedat4;

fuzz_target!(|data: &[u8]| {
    bitspike_fuzz::use_events(aedat4::parse(Path::new("fuzz-input.aedat4"), data));
});
