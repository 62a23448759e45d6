//! Faults a test arms ahead of a download, and the plan each request takes from them.
//!
//! Faults are keyed by a file's path inside its repository (e.g. `big.gguf`), so they apply to the
//! file whether it is reached through `/resolve` or `/cdn`. Each fault is consumed by the requests
//! it affects, which lets a test say "fail twice, then succeed".

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// What happens to a connection once a truncated body has been sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cutoff {
    /// Close the socket at once.
    Drop,
    /// Send nothing more, but keep the socket open until the peer gives up.
    Stall,
}

/// How one response body deviates from the file, decided when the body starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BodyPlan {
    /// Send at most this many body bytes, then cut the connection this way.
    pub limit: Option<(u64, Cutoff)>,
    /// Flip the byte at this offset of the file.
    pub corrupt_at: Option<u64>,
}

/// The faults armed for one file.
#[derive(Debug, Default)]
struct FileFaults {
    /// Remaining drops, and how many body bytes each lets through.
    drops: Option<(u32, u64)>,
    /// Whether the middle byte is still to be corrupted.
    corrupt_once: bool,
    /// How many body bytes the next GET sends before stalling.
    stall: Option<u64>,
    /// The status to answer, and how many more times.
    failures: Option<(u16, u32)>,
    /// A size to claim in metadata instead of the real one.
    advertised_size: Option<u64>,
    advertised_hash: Option<String>,
}

/// The armed faults of every file.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    by_file: Mutex<HashMap<String, FileFaults>>,
    advertised_commit: Mutex<Option<String>>,
    hang_metadata: std::sync::atomic::AtomicBool,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, FileFaults>> {
        self.by_file.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn arm(&self, file: &str, change: impl FnOnce(&mut FileFaults)) {
        change(self.lock().entry(file.to_owned()).or_default());
    }

    /// The next `times` GETs of `file` send at most `after_bytes` body bytes, then close.
    pub fn drop_connection(&self, file: &str, times: u32, after_bytes: u64) {
        self.arm(file, |faults| faults.drops = (times > 0).then_some((times, after_bytes)));
    }

    /// The next GET of `file` that sends its middle byte flips that byte.
    pub fn corrupt_once(&self, file: &str) {
        self.arm(file, |faults| faults.corrupt_once = true);
    }

    /// The next GET of `file` sends `after_bytes` body bytes, then stalls.
    pub fn stall(&self, file: &str, after_bytes: u64) {
        self.arm(file, |faults| faults.stall = Some(after_bytes));
    }

    /// The next `times` GETs or HEADs of `file` answer `status`.
    pub fn fail_status(&self, file: &str, status: u16, times: u32) {
        self.arm(file, |faults| faults.failures = (times > 0).then_some((status, times)));
    }

    /// Metadata (`X-Linked-Size`, the API's sizes) claims `size` bytes for `file`.
    pub fn advertise_size(&self, file: &str, size: u64) {
        self.arm(file, |faults| faults.advertised_size = Some(size));
    }

    /// The size metadata should claim for `file`: the armed one, else `real`.
    pub fn advertised_size(&self, file: &str, real: u64) -> u64 {
        self.lock().get(file).and_then(|f| f.advertised_size).unwrap_or(real)
    }

    /// Disarms every fault.
    pub fn advertise_hash(&self, file: &str, hash: &str) {
        self.arm(file, |faults| faults.advertised_hash = Some(hash.to_owned()));
    }

    pub fn advertised_hash(&self, file: &str, real: &str) -> String {
        self.lock().get(file).and_then(|f| f.advertised_hash.clone()).unwrap_or_else(|| real.to_owned())
    }

    pub fn advertise_commit(&self, commit: &str) {
        *self.advertised_commit.lock().unwrap_or_else(|p| p.into_inner()) = Some(commit.to_owned());
    }

    pub fn advertised_commit(&self, real: String) -> String {
        self.advertised_commit.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or(real)
    }

    pub fn hang_metadata(&self, hang: bool) {
        self.hang_metadata.store(hang, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn metadata_hangs(&self) -> bool {
        self.hang_metadata.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn clear(&self) {
        self.hang_metadata(false);
        self.lock().clear();
        *self.advertised_commit.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The status a request for `file` must answer instead of serving it, consuming one failure.
    pub fn take_failure(&self, file: &str) -> Option<u16> {
        let mut by_file = self.lock();
        let faults = by_file.get_mut(file)?;
        let (status, times) = faults.failures?;
        faults.failures = (times > 1).then_some((status, times - 1));
        Some(status)
    }

    /// The plan for a GET body of `file` (of `size` bytes) covering bytes `start..end`.
    ///
    /// A drop is taken before a stall when both are armed. The corruption is taken only if the
    /// middle byte will really be sent, so a truncated body does not use it up.
    pub fn plan_body(&self, file: &str, size: u64, start: u64, end: u64) -> BodyPlan {
        let mut by_file = self.lock();
        let Some(faults) = by_file.get_mut(file) else {
            return BodyPlan::default();
        };
        let limit = take_drop(faults).or_else(|| faults.stall.take().map(|after| (after, Cutoff::Stall)));
        let sent_end = limit.map_or(end, |(after, _)| end.min(start.saturating_add(after)));
        let middle = size / 2;
        let corrupt_at = (faults.corrupt_once && size > 0 && (start..sent_end).contains(&middle)).then(|| {
            faults.corrupt_once = false;
            middle
        });
        BodyPlan { limit, corrupt_at }
    }
}

/// Consumes one drop, if armed.
fn take_drop(faults: &mut FileFaults) -> Option<(u64, Cutoff)> {
    let (times, after_bytes) = faults.drops?;
    faults.drops = (times > 1).then_some((times - 1, after_bytes));
    Some((after_bytes, Cutoff::Drop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_consumed_before_stalls() {
        let faults = Faults::default();
        faults.drop_connection("f", 1, 10);
        faults.stall("f", 20);
        assert_eq!(faults.plan_body("f", 100, 0, 100).limit, Some((10, Cutoff::Drop)));
        assert_eq!(faults.plan_body("f", 100, 0, 100).limit, Some((20, Cutoff::Stall)));
        assert_eq!(faults.plan_body("f", 100, 0, 100), BodyPlan::default());
    }

    #[test]
    fn corruption_waits_for_a_body_that_sends_the_middle_byte() {
        let faults = Faults::default();
        faults.corrupt_once("f");
        assert_eq!(faults.plan_body("f", 100, 0, 50).corrupt_at, None);
        assert_eq!(faults.plan_body("f", 100, 0, 100).corrupt_at, Some(50));
        assert_eq!(faults.plan_body("f", 100, 0, 100).corrupt_at, None);
    }

    #[test]
    fn failures_count_down() {
        let faults = Faults::default();
        faults.fail_status("f", 503, 2);
        assert_eq!(faults.take_failure("f"), Some(503));
        assert_eq!(faults.take_failure("f"), Some(503));
        assert_eq!(faults.take_failure("f"), None);
        assert_eq!(faults.take_failure("other"), None);
    }
}
