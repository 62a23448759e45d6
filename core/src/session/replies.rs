//! The replies in progress: each runs under a request id the caller chose, registered here for
//! as long as it runs, so [`Replies::stop`] (the app's Stop, Esc) can end it. A registration is
//! a guard: however the request ends — finished, failed, panicked — dropping it unregisters.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

use super::SessionError;

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Replies {
    running: Mutex<HashMap<u32, CancellationToken>>,
}

impl Replies {
    /// Registers `request_id`; its token is cancelled by [`Replies::stop`]. Refused when that
    /// id is running already.
    pub fn register(&self, request_id: u32) -> Result<Request<'_>, SessionError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.contains_key(&request_id) {
            return Err(SessionError::DuplicateRequest(request_id));
        }
        let cancel = CancellationToken::new();
        running.insert(request_id, cancel.clone());
        Ok(Request { replies: self, id: request_id, cancel })
    }

    /// Stops the reply running under `request_id`; false when none is.
    pub fn stop(&self, request_id: u32) -> bool {
        match self.running.lock().unwrap_or_else(|p| p.into_inner()).get(&request_id) {
            Some(cancel) => {
                cancel.cancel();
                true
            }
            None => false,
        }
    }
}

/// A registered request; unregistered when dropped.
#[derive(Debug)]
pub struct Request<'a> {
    replies: &'a Replies,
    id: u32,
    /// Cancelled when the request is stopped.
    pub cancel: CancellationToken,
}

impl Drop for Request<'_> {
    fn drop(&mut self) {
        self.replies.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_stoppable_while_registered_and_gone_after() {
        let replies = Replies::default();
        let request = replies.register(7).expect("free id");
        assert!(matches!(replies.register(7), Err(SessionError::DuplicateRequest(7))));
        assert!(replies.stop(7));
        assert!(request.cancel.is_cancelled());
        drop(request);
        assert!(!replies.stop(7), "unregistered when the request ended");
        assert!(replies.register(7).is_ok(), "the id is free again");
    }
}
