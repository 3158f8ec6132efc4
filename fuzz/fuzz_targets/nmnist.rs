//! An event recording read by the nmnist reader, then binned into frames.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

use bitspike::data::events::nmnist;

fuzz_target!(|data: &[u8]| {
    bitspike_fuzz::use_events(nmnist::parse(Path::new("fuzz-input.bin"), data));
});
