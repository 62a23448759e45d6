//! A global pace for body bytes, shared by every connection.
//!
//! Each chunk reserves a slot on a shared timeline whose length is the chunk's size divided by
//! the rate, and is written once its slot has passed. Bytes sent by all connections together
//! therefore never run ahead of the rate.
//!
//! A timer wakes a little late, so the next slot starts where the last one ended, not when the
//! writer woke; otherwise every wake-up's lateness would be lost and the pace would fall well
//! short of the rate. Only when the timeline has been idle for longer than `IDLE_GRACE` does
//! it restart from now, so idle time earns no credit for a later burst.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// The largest chunk written at a time while a pace is set, so that pacing is smooth.
pub(crate) const PACED_CHUNK: usize = 16 * 1024;

/// How far behind the clock the timeline may fall and still be continued rather than restarted.
const IDLE_GRACE: Duration = Duration::from_millis(20);

/// The pace and the end of the last reserved slot.
#[derive(Debug)]
struct PacerState {
    bytes_per_sec: Option<u64>,
    next_free: Instant,
}

/// A rate limit over all connections together.
#[derive(Debug)]
pub(crate) struct Pacer {
    state: Mutex<PacerState>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self { state: Mutex::new(PacerState { bytes_per_sec: None, next_free: Instant::now() }) }
    }
}

impl Pacer {
    fn lock(&self) -> MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the pace; `None` means full speed. A rate of 0 is taken as 1 byte per second.
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        let mut state = self.lock();
        state.bytes_per_sec = bytes_per_sec.map(|rate| rate.max(1));
        // Slots reserved under the old rate must not delay chunks sent under the new one.
        state.next_free = Instant::now();
    }

    /// The current pace.
    pub fn rate(&self) -> Option<u64> {
        self.lock().bytes_per_sec
    }

    /// Reserves a slot for `bytes` body bytes and returns when they may be written; `None` when
    /// there is no pace.
    pub fn reserve(&self, bytes: usize) -> Option<Instant> {
        let mut state = self.lock();
        let rate = state.bytes_per_sec?;
        let now = Instant::now();
        let start = if now > state.next_free + IDLE_GRACE { now } else { state.next_free };
        let slot = Duration::from_secs_f64(bytes as f64 / rate as f64);
        state.next_free = start + slot;
        Some(state.next_free)
    }

    /// Waits until `bytes` body bytes may be written.
    pub async fn wait_for(&self, bytes: usize) {
        if let Some(deadline) = self.reserve(bytes) {
            if deadline > Instant::now() {
                tokio::time::sleep_until(deadline).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_each_other_at_the_rate() {
        let pacer = Pacer::default();
        assert_eq!(pacer.reserve(1000), None);
        let before = Instant::now();
        pacer.set_rate(Some(1000));
        let first = pacer.reserve(500).expect("a pace is set");
        let second = pacer.reserve(500).expect("a pace is set");
        assert!(first >= before + Duration::from_millis(500));
        assert_eq!(second - first, Duration::from_millis(500));
        pacer.set_rate(Some(1000));
        assert!(pacer.reserve(500).expect("a pace is set") < second, "a new rate starts a new timeline");
        pacer.set_rate(None);
        assert_eq!(pacer.reserve(500), None);
    }
}
