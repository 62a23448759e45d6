//! `#[tauri::command]` adapters: each takes the session, calls one `altiplano-core` function and
//! maps the result to DTOs. No business logic lives here.

pub mod chat;
pub mod code;
pub mod conversations;
pub mod documents;
pub mod downloads;
pub mod model;

use std::sync::Arc;
use std::time::{Duration, Instant};

use altiplano_core::session::Session;
use tauri::ipc::{Channel, IpcResponse};

/// The app's managed state.
pub type SessionState<'a> = tauri::State<'a, Arc<Session>>;

/// The shortest time between two pieces of streamed text sent to the webview.
const BATCH_INTERVAL: Duration = Duration::from_millis(30);

/// Batches streamed text (chat replies, code and document answers) so the webview gets tens of
/// messages a second, not one per token; `flush` sends what is left when the stream ends.
pub struct TextBatch<E: IpcResponse> {
    channel: Channel<E>,
    event: fn(String) -> E,
    pending: String,
    last_sent: Instant,
}

impl<E: IpcResponse> TextBatch<E> {
    /// Batches text into `channel`, each batch sent as `event(text)`.
    pub fn new(channel: Channel<E>, event: fn(String) -> E) -> Self {
        Self { channel, event, pending: String::new(), last_sent: Instant::now() - BATCH_INTERVAL }
    }

    /// Adds text; sends the batch when the last one went out long enough ago.
    pub fn push(&mut self, text: &str) {
        self.pending.push_str(text);
        if self.last_sent.elapsed() >= BATCH_INTERVAL {
            self.flush();
        }
    }

    /// Sends what is pending.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            let text = std::mem::take(&mut self.pending);
            let _ = self.channel.send((self.event)(text));
            self.last_sent = Instant::now();
        }
    }
}
