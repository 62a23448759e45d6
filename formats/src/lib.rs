//! Readers of untrusted bytes, each bounded and checked so that a damaged or hostile input gets
//! a clear problem, never a panic, an unbounded allocation or a path outside where it belongs:
//!
//! - [`gguf`]: a GGUF file's header, walked against the file's size;
//! - [`safetensors`]: a safetensors file's header and the spans of its tensors;
//! - [`hub`]: a Hugging Face endpoint's file list and resolve headers (commit ids, hashes, paths);
//! - [`document`]: a document's text from its bytes (PDF, DOCX, HTML, text);
//! - [`openai`]: an OpenAI-compatible server's model list, streamed replies and error bodies.
//!
//! `altiplano-core` uses them for every such input; the `cargo fuzz` targets in `fuzz/` drive
//! them with generated inputs (see BENCHMARKS.md, "Fuzzing").
#![warn(missing_docs)]

pub mod document;
pub mod gguf;
pub mod hub;
pub mod openai;
pub mod safetensors;
#[doc(hidden)]
pub mod targets;
