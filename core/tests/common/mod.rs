//! Shared helpers for the integration tests: the real starter model and temporary data folders.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::PathBuf;

/// The starter model fetched by `models/fetch-starter.sh`.
pub fn starter_model() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "the starter model is missing at {}; run models/fetch-starter.sh (the test command does)",
        path.display()
    );
    path
}

/// A fresh data folder.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("altiplano-test-").tempdir().expect("temporary folder")
}

/// The question the tiny starter model reliably answers (see DESIGN.md).
pub const FRANCE: &str = "What is the capital of France? Answer in one word.";
/// A prompt that gets a long reply.
pub const STORY: &str = "Write a long story about a dragon who learns to bake bread.";
