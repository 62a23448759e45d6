#![no_main]
//! See altiplano_formats::targets::safetensors_header.
libfuzzer_sys::fuzz_target!(|data: &[u8]| altiplano_formats::targets::safetensors_header(data));
