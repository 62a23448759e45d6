#![no_main]
//! See altiplano_formats::targets::document.
libfuzzer_sys::fuzz_target!(|data: &[u8]| altiplano_formats::targets::document(data));
