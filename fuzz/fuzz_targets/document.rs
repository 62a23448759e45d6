#![no_main]
//! See altiplano_formats::targets::document. The document parsers are not ours: a panic inside
//! one is caught by `document::read` and reported as a damaged file (the app runs it in a child
//! process too), so libFuzzer's abort-on-any-panic hook is replaced by a quiet one here; a panic
//! that escapes `read` still aborts (libfuzzer-sys catches it) and is reported as a crash.
libfuzzer_sys::fuzz_target!(
    init: std::panic::set_hook(Box::new(|_| {})),
    |data: &[u8]| altiplano_formats::targets::document(data)
);
