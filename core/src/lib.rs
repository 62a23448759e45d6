//! `altiplano-core`: everything in Altiplano that is not GUI.
//!
//! The desktop shell (`src-tauri`) and the `altiplano` command-line binary are thin layers over
//! this crate. The pieces:
//!
//! - [`config`]: where data lives (`ALTIPLANO_DATA_DIR` or the platform data directory) and
//!   which model to start with.
//! - [`catalog`]: the models Altiplano knows (`models/catalog.toml`), validated at load.
//! - [`cpu`]: checks at start-up that the CPU has the SIMD features this build was compiled for.
//! - [`engine`]: loads a local model with mistral.rs, fully offline, and streams replies.
//! - [`hardware`]: what this machine has (CPU, memory, disk, NVIDIA and Apple GPUs).
//! - [`planner`]: which catalog variant fits this machine, how, and how fast.
//! - [`documents`]: text of PDFs (parsed in an isolated child process), Markdown and plain text,
//!   page by page, cleaned up.
//! - [`download`]: resumable, verified downloads from a Hugging Face endpoint into the hub
//!   cache, with a persistent queue.
//! - [`library`]: the models on disk (downloaded or imported), validated.
//! - [`measure`]: what a model really takes here (memory, decode speed), kept beside the
//!   planner's estimates.
//! - [`secrets`]: the Hugging Face token in the OS keyring.
//! - [`store`]: conversations and messages in SQLite (sqlx), with full-text search.
//! - [`choose`]: making a model the chat model (`models use`, "Use this model"): found on
//!   disk or downloaded, loaded as its plan says, measured, remembered.
//! - [`chat`]: one chat turn end to end — history through the chat template, fitting the
//!   context window, streaming the reply while saving it.
//! - [`codebase`]: indexing a code folder (tree-sitter chunks, tantivy BM25, incremental) and
//!   finding the chunks that answer a question.
//! - [`session`]: the state of a running app — store, loaded model, replies in progress.
//!
//! A typical use:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use altiplano_core::{chat, config::DataDir, engine::{Engine, LoadOptions}, store::Store};
//! let store = Store::open(&DataDir::resolve()?.database_path()).await?;
//! let engine = Engine::load("model.gguf".as_ref(), LoadOptions::default()).await?;
//! let turn = chat::Turn::new(None, "Hello!".into(), chat::ChatOptions::default());
//! let outcome = chat::run(&store, &engine, turn, Default::default(), |_event| {}).await?;
//! println!("{}", outcome.reply.content);
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod chat;
pub mod choose;
pub mod codebase;
pub mod config;
pub mod convert;
pub mod cpu;
pub mod documents;
pub mod download;
pub mod engine;
pub mod error;
pub mod hardware;
pub mod library;
pub mod measure;
pub mod planner;
pub mod remotes;
pub mod search_models;
pub mod secrets;
pub mod session;
pub mod sourcing;
pub mod store;
