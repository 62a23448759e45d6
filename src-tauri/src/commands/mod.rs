//! `#[tauri::command]` adapters: each takes the session, calls one `altiplano-core` function and
//! maps the result to DTOs. No business logic lives here.

pub mod chat;
pub mod code;
pub mod conversations;
pub mod documents;
pub mod downloads;
pub mod model;

use std::sync::Arc;

use altiplano_core::session::Session;

/// The app's managed state.
pub type SessionState<'a> = tauri::State<'a, Arc<Session>>;
