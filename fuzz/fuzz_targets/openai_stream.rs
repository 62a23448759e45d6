#![no_main]
//! See altiplano_formats::targets::openai_stream.
libfuzzer_sys::fuzz_target!(|data: &[u8]| altiplano_formats::targets::openai_stream(data));
