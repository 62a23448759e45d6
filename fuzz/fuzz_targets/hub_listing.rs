#![no_main]
//! See altiplano_formats::targets::hub_listing.
libfuzzer_sys::fuzz_target!(|data: &[u8]| altiplano_formats::targets::hub_listing(data));
