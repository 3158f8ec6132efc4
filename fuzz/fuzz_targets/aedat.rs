//! An event recording read by the aedat reader, then binned into frames.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::events::aedat;

fuzz_target!(|data: &[u8]| {
    bitspike_fuzz::use_events(aedat::parse(Path::new("fuzz-input.aedat"), data));
});
