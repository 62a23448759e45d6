//! The state one server shares between its connections and its owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::catalog::Catalog;
use crate::faults::Faults;
use crate::pacer::Pacer;
use crate::stats::Stats;

/// What a request may do with a repository, given its `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The repository is not gated.
    Public,
    /// The repository is gated and the request carried its token.
    Granted,
    /// The repository is gated and the request carried no `Authorization` header.
    Unauthenticated,
    /// The repository is gated and the request carried another token.
    Denied,
}

/// Repositories, faults, pace and statistics of one server.
#[derive(Debug)]
pub(crate) struct Hub {
    /// The repositories on disk.
    pub catalog: Arc<Catalog>,
    /// The armed faults.
    pub faults: Faults,
    /// The global pace.
    pub pacer: Pacer,
    /// What was requested and sent.
    pub stats: Stats,
    /// The token each gated repository (`org/name`) requires.
    gates: Mutex<HashMap<String, String>>,
}

impl Hub {
    /// The state of a server for the repositories of `catalog`, with no gates, faults or pace.
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog: Arc::new(catalog),
            faults: Faults::default(),
            pacer: Pacer::default(),
            stats: Stats::default(),
            gates: Mutex::new(HashMap::new()),
        }
    }

    fn lock_gates(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.gates.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `repo` (`org/name`) require `Authorization: Bearer {token}`.
    pub fn gate(&self, repo: &str, token: &str) {
        self.lock_gates().insert(repo.to_owned(), token.to_owned());
    }

    /// What a request with this `Authorization` header may do with `repo` (`org/name`).
    pub fn access(&self, repo: &str, authorization: Option<&str>) -> Access {
        let gates = self.lock_gates();
        let Some(token) = gates.get(repo) else {
            return Access::Public;
        };
        match authorization {
            None => Access::Unauthenticated,
            Some(value) if value.strip_prefix("Bearer ").map(str::trim) == Some(token.as_str()) => Access::Granted,
            Some(_) => Access::Denied,
        }
    }
}
