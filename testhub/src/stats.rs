//! What the server saw and sent, for tests to assert on.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Counters for one file, keyed by its path in the repository.
#[derive(Debug, Default, Clone, Copy)]
struct FileStats {
    bytes_served: u64,
    content_requests: u32,
}

#[derive(Debug, Default)]
struct StatsState {
    requests: Vec<String>,
    authorization_headers: Vec<String>,
    files: HashMap<String, FileStats>,
}

/// Request log and per-file counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    state: Mutex<StatsState>,
}

impl Stats {
    fn lock(&self) -> MutexGuard<'_, StatsState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs a request as `METHOD /path`, and its `Authorization` header if it had one.
    pub fn record_request(&self, method: &str, path: &str, authorization: Option<&str>) {
        let mut state = self.lock();
        state.requests.push(format!("{method} {path}"));
        if let Some(authorization) = authorization {
            state.authorization_headers.push(authorization.to_owned());
        }
    }

    /// Counts a GET that started sending `file`'s body.
    pub fn record_content_request(&self, file: &str) {
        self.lock().files.entry(file.to_owned()).or_default().content_requests += 1;
    }

    /// Counts body bytes of `file` written to a socket.
    pub fn record_bytes(&self, file: &str, bytes: u64) {
        let mut state = self.lock();
        // Looking up before inserting avoids allocating a key for every chunk of a large body.
        match state.files.get_mut(file) {
            Some(stats) => stats.bytes_served += bytes,
            None => {
                state.files.insert(file.to_owned(), FileStats { bytes_served: bytes, content_requests: 0 });
            }
        }
    }

    /// Body bytes of `file` written so far.
    pub fn bytes_served(&self, file: &str) -> u64 {
        self.lock().files.get(file).map_or(0, |stats| stats.bytes_served)
    }

    /// GETs that started sending `file`'s body.
    pub fn content_requests(&self, file: &str) -> u32 {
        self.lock().files.get(file).map_or(0, |stats| stats.content_requests)
    }

    /// Every request so far, as `METHOD /path`, in arrival order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// The `Authorization` header of every request that carried one, in arrival order.
    pub fn authorization_headers(&self) -> Vec<String> {
        self.lock().authorization_headers.clone()
    }

    /// Forgets everything recorded.
    pub fn reset(&self) {
        *self.lock() = StatsState::default();
    }
}
