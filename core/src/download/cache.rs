//! The Hugging Face hub cache, in the layout Hugging Face's own tools use, so files fetched by
//! one tool are found and reused by the others:
//!
//! ```text
//! $HF_HUB_CACHE (or $HF_HOME/hub, or ~/.cache/huggingface/hub)
//! ├── .locks/models--org--name/<etag>.lock       one writer per blob, across processes
//! └── models--org--name/
//!     ├── blobs/<etag>                            verified content, named by its hash
//!     ├── blobs/<etag>.incomplete                 data being fetched (never read by loaders)
//!     ├── blobs/<etag>.incomplete.parts           Altiplano's record of which bytes are there
//!     ├── refs/<revision>                         the commit a branch or tag pointed to
//!     └── snapshots/<commit>/<path>               → ../../blobs/<etag>
//! ```

use std::path::{Path, PathBuf};

/// The hub cache root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    root: PathBuf,
}

impl HubCache {
    /// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub` — the order Hugging Face's Python client uses.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let root = var("HF_HUB_CACHE")
            .or_else(|| var("HF_HOME").map(|home| home.join("hub")))
            .or_else(|| var("XDG_CACHE_HOME").map(|cache| cache.join("huggingface/hub")))
            .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join(".cache/huggingface/hub")))
            .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"));
        Self { root }
    }

    /// A cache at an explicit folder.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `models--org--name` for `org/name`.
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.root.join(format!("models--{}", repo.replace('/', "--")))
    }

    /// Where the verified blob named `etag` lives.
    pub fn blob_path(&self, repo: &str, etag: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(etag)
    }

    /// Where the data of `etag` is gathered while it downloads.
    pub fn incomplete_path(&self, repo: &str, etag: &str) -> PathBuf {
        self.repo_dir(repo).join("blobs").join(format!("{etag}.incomplete"))
    }

    /// The lock file that keeps two processes from writing the same blob.
    pub fn lock_path(&self, repo: &str, etag: &str) -> PathBuf {
        self.root.join(".locks").join(format!("models--{}", repo.replace('/', "--"))).join(format!("{etag}.lock"))
    }

    /// The folder of one commit's files.
    pub fn snapshot_dir(&self, repo: &str, commit: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(commit)
    }

    /// A file of a commit, as loaders see it.
    pub fn snapshot_path(&self, repo: &str, commit: &str, file: &str) -> PathBuf {
        let mut path = self.snapshot_dir(repo, commit);
        path.extend(file.split('/'));
        path
    }

    /// The commit `revision` resolves to without asking the network: the revision itself when
    /// it is a commit id, else what `refs/<revision>` records.
    pub fn local_commit(&self, repo: &str, revision: &str) -> Option<String> {
        if is_commit_id(revision) {
            return Some(revision.to_owned());
        }
        super::hub::validate_revision(revision).ok()?;
        let text = std::fs::read_to_string(self.repo_dir(repo).join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_commit_id(commit).then(|| commit.to_owned())
    }

    /// Records that `revision` pointed at `commit`.
    pub fn write_ref(&self, repo: &str, revision: &str, commit: &str) -> std::io::Result<()> {
        if revision == commit {
            return Ok(());
        }
        super::hub::validate_revision(revision).map_err(std::io::Error::other)?;
        let path = self.repo_dir(repo).join("refs").join(revision);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        write_atomically(&path, commit.as_bytes())
    }

    /// A file of a commit that is already in the cache, with its size; follows the snapshot
    /// link, so a dangling link counts as absent.
    pub fn cached_file(&self, repo: &str, commit: &str, file: &str) -> Option<(PathBuf, u64)> {
        let path = self.snapshot_path(repo, commit, file);
        let meta = std::fs::metadata(&path).ok()?;
        meta.is_file().then_some((path, meta.len()))
    }

    /// Every file under a commit's snapshot folder, as repo paths.
    pub fn snapshot_files(&self, repo: &str, commit: &str) -> Vec<String> {
        let root = self.snapshot_dir(repo, commit);
        let mut found = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                // `metadata` follows the snapshot link to the blob.
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_dir() => stack.push(path),
                    Ok(meta) if meta.is_file() => {
                        if let Ok(relative) = path.strip_prefix(&root) {
                            let parts: Vec<_> =
                                relative.components().map(|c| c.as_os_str().to_string_lossy()).collect();
                            found.push(parts.join("/"));
                        }
                    }
                    _ => {}
                }
            }
        }
        found.sort();
        found
    }

    /// Makes `snapshots/<commit>/<file>` point at the blob `etag` (a relative link, as
    /// Hugging Face's client makes; on systems without symbolic links the blob is moved there).
    pub fn link_snapshot(&self, repo: &str, commit: &str, file: &str, etag: &str) -> std::io::Result<PathBuf> {
        let link = self.snapshot_path(repo, commit, file);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let depth = file.split('/').count() + 1; // snapshots/<commit>/<dirs…>/file → repo dir
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        match std::fs::symlink_metadata(&link) {
            Ok(_) => std::fs::remove_file(&link)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &link)?;
        #[cfg(not(unix))]
        std::fs::rename(self.blob_path(repo, etag), &link)?;
        Ok(link)
    }

    /// Deletes the named files of a commit and every blob no snapshot links to any more;
    /// returns the bytes freed. Empty folders are removed.
    pub fn remove_files(&self, repo: &str, commit: &str, files: &[String]) -> std::io::Result<u64> {
        for file in files {
            let link = self.snapshot_path(repo, commit, file);
            match std::fs::remove_file(&link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let repo_dir = self.repo_dir(repo);
        let mut referenced = std::collections::HashSet::new();
        let mut stack = vec![repo_dir.join("snapshots")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if let Ok(target) = std::fs::read_link(&path) {
                    if let Some(name) = target.file_name() {
                        referenced.insert(name.to_os_string());
                    }
                } else if path.is_dir() {
                    stack.push(path);
                }
            }
        }
        let mut freed = 0;
        if let Ok(entries) = std::fs::read_dir(repo_dir.join("blobs")) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let partial = name.to_string_lossy().contains(".incomplete");
                if !partial && !referenced.contains(&name) {
                    freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        remove_empty_dirs(&self.snapshot_dir(repo, commit));
        Ok(freed)
    }
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_empty_dirs(&entry.path());
            }
        }
    }
    // Fails (and is meant to) when the folder still has files.
    let _ = std::fs::remove_dir(dir);
}

pub use altiplano_formats::hub::is_commit_id;

/// Writes a small file so that readers see the old or the new content, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}tmp",
        path.extension().map(|e| format!("{}.", e.to_string_lossy())).unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_hugging_face_client() {
        let cache = HubCache::at("/c");
        assert_eq!(cache.repo_dir("org/name"), Path::new("/c/models--org--name"));
        assert_eq!(cache.blob_path("org/name", "ab"), Path::new("/c/models--org--name/blobs/ab"));
        assert_eq!(cache.lock_path("org/name", "ab"), Path::new("/c/.locks/models--org--name/ab.lock"));
        assert_eq!(
            cache.snapshot_path("org/name", "c0ffee", "sub/dir/w.gguf"),
            Path::new("/c/models--org--name/snapshots/c0ffee/sub/dir/w.gguf")
        );
    }

    #[cfg(unix)]
    #[test]
    fn snapshot_links_resolve_to_the_blob_at_any_depth_and_removal_frees_unshared_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = HubCache::at(dir.path());
        let commit = "a".repeat(40);
        for (file, etag, body) in [("w.gguf", "e1", "one"), ("sub/dir/t.json", "e2", "two")] {
            let blob = cache.blob_path("o/r", etag);
            std::fs::create_dir_all(blob.parent().expect("parent")).expect("mkdir");
            std::fs::write(&blob, body).expect("write blob");
            cache.link_snapshot("o/r", &commit, file, etag).expect("link");
            let (path, size) = cache.cached_file("o/r", &commit, file).expect("cached");
            assert_eq!(std::fs::read_to_string(path).expect("read"), body);
            assert_eq!(size, body.len() as u64);
        }
        assert_eq!(cache.snapshot_files("o/r", &commit), vec!["sub/dir/t.json".to_owned(), "w.gguf".to_owned()]);
        cache.write_ref("o/r", "main", &commit).expect("ref");
        assert_eq!(cache.local_commit("o/r", "main"), Some(commit.clone()));

        let freed = cache.remove_files("o/r", &commit, &["w.gguf".to_owned()]).expect("remove");
        assert_eq!(freed, 3);
        assert!(!cache.blob_path("o/r", "e1").exists());
        assert!(cache.blob_path("o/r", "e2").exists(), "a blob still linked is kept");
    }
}
