//! The repositories on disk and the digests of their files.
//!
//! `root/{org}/{name}/**` is a repository; its files are whatever is in that folder when a request
//! arrives, so a test may add files after the server started. Digests (SHA-256 and git blob id)
//! are computed on first use and cached by path, size and modification time, because hashing a
//! multi-gigabyte file takes seconds.
//!
//! Every method here touches the file system synchronously: call them from blocking tasks.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::SystemTime;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Files at least this large are stored with LFS whatever their extension.
const LFS_SIZE_THRESHOLD: u64 = 10 * 1024 * 1024;

/// Extensions that are always stored with LFS.
const LFS_EXTENSIONS: [&str; 3] = ["gguf", "safetensors", "bin"];

/// The size of the pointer file git stores in place of an LFS file, as the Hub reports it.
pub(crate) const LFS_POINTER_SIZE: u64 = 134;

/// How much of a file is read at a time while hashing it.
const HASH_CHUNK: usize = 1024 * 1024;

/// How many chunks the reader may be ahead of the git blob id hasher.
const HASH_BUFFERS: usize = 4;

/// A repository's identity, `org/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RepoId {
    org: String,
    name: String,
}

impl RepoId {
    /// A repository id from its two path segments, or `None` if either could escape the root.
    pub fn new(org: &str, name: &str) -> Option<Self> {
        (is_safe_segment(org) && is_safe_segment(name)).then(|| Self { org: org.to_owned(), name: name.to_owned() })
    }

    /// `org/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    /// The repository's commit id: the SHA-1 of `org/name`, stable across runs.
    pub fn commit(&self) -> String {
        hex::encode(Sha1::digest(self.id().as_bytes()))
    }

    /// Whether `rev` names the repository's only revision.
    pub fn has_revision(&self, rev: &str) -> bool {
        rev == "main" || rev == self.commit()
    }
}

/// A path segment that names something inside its parent folder.
fn is_safe_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['\\', '\0'])
}

/// One file of a repository, as found on disk.
#[derive(Debug, Clone)]
pub(crate) struct RepoFile {
    /// The path inside the repository, with `/` separators.
    pub path: String,
    /// Where the file is on disk.
    pub location: PathBuf,
    /// The size in bytes.
    pub size: u64,
    modified: Option<SystemTime>,
}

impl RepoFile {
    /// Whether the Hub stores this file with LFS (and serves it through the CDN).
    pub fn is_lfs(&self) -> bool {
        let extension = self.path.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase());
        self.size > LFS_SIZE_THRESHOLD
            || extension.is_some_and(|extension| LFS_EXTENSIONS.contains(&extension.as_str()))
    }
}

/// The two digests the Hub reports for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDigest {
    /// The SHA-256 of the content, in hex; an LFS file's identity.
    pub sha256: String,
    /// The git blob id: SHA-1 of `blob {len}\0` followed by the content, in hex.
    pub git_oid: String,
}

/// A file together with its digests.
#[derive(Debug, Clone)]
pub(crate) struct DigestedFile {
    /// The file.
    pub file: RepoFile,
    /// Its digests.
    pub digest: Arc<FileDigest>,
}

/// A digest remembered for one version of a file.
#[derive(Debug)]
struct CachedDigest {
    size: u64,
    modified: Option<SystemTime>,
    digest: Arc<FileDigest>,
}

/// The repositories under a root folder, with a cache of file digests.
#[derive(Debug)]
pub(crate) struct Catalog {
    root: PathBuf,
    digests: Mutex<HashMap<PathBuf, CachedDigest>>,
    /// Held while hashing, so that two requests for a new file do not both hash it.
    hashing: Mutex<()>,
}

impl Catalog {
    /// A catalog of the repositories under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root, digests: Mutex::new(HashMap::new()), hashing: Mutex::new(()) }
    }

    /// Whether the repository exists.
    pub fn has_repo(&self, repo: &RepoId) -> bool {
        self.repo_dir(repo).is_dir()
    }

    fn repo_dir(&self, repo: &RepoId) -> PathBuf {
        self.root.join(&repo.org).join(&repo.name)
    }

    /// Every file of the repository, sorted by path.
    pub fn files(&self, repo: &RepoId) -> io::Result<Vec<RepoFile>> {
        let mut files = Vec::new();
        collect_files(&self.repo_dir(repo), "", &mut files)?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The file at `path` (`/`-separated) in the repository, if there is one.
    pub fn file(&self, repo: &RepoId, path: &str) -> Option<RepoFile> {
        let mut location = self.repo_dir(repo);
        for segment in path.split('/') {
            if !is_safe_segment(segment) {
                return None;
            }
            location.push(segment);
        }
        let metadata = fs::metadata(&location).ok().filter(fs::Metadata::is_file)?;
        Some(RepoFile { path: path.to_owned(), location, size: metadata.len(), modified: metadata.modified().ok() })
    }

    /// Every file of the repository with its digests, sorted by path.
    pub fn digested_files(&self, repo: &RepoId) -> io::Result<Vec<DigestedFile>> {
        self.files(repo)?.into_iter().map(|file| Ok(DigestedFile { digest: self.digest(&file)?, file })).collect()
    }

    /// The digests of a file, from the cache when the file has not changed since it was hashed.
    pub fn digest(&self, file: &RepoFile) -> io::Result<Arc<FileDigest>> {
        if let Some(digest) = self.cached_digest(file) {
            return Ok(digest);
        }
        let _hashing = self.hashing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another request may have hashed the file while this one waited for the lock.
        if let Some(digest) = self.cached_digest(file) {
            return Ok(digest);
        }
        let digest = Arc::new(hash_file(&file.location)?);
        let cached = CachedDigest { size: file.size, modified: file.modified, digest: Arc::clone(&digest) };
        self.lock_digests().insert(file.location.clone(), cached);
        Ok(digest)
    }

    fn cached_digest(&self, file: &RepoFile) -> Option<Arc<FileDigest>> {
        let digests = self.lock_digests();
        let cached = digests.get(&file.location)?;
        (cached.size == file.size && cached.modified == file.modified).then(|| Arc::clone(&cached.digest))
    }

    fn lock_digests(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, CachedDigest>> {
        self.digests.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The LFS file whose content has this SHA-256, in any repository.
    ///
    /// Files already hashed are checked first; otherwise every LFS file not yet hashed is.
    pub fn find_by_sha256(&self, sha256: &str) -> Option<DigestedFile> {
        if let Some(found) = self.find_cached(sha256) {
            return Some(found);
        }
        for repo in self.repos() {
            for file in self.files(&repo).unwrap_or_default().into_iter().filter(RepoFile::is_lfs) {
                if let Ok(digest) = self.digest(&file) {
                    if digest.sha256 == sha256 {
                        return Some(DigestedFile { file, digest });
                    }
                }
            }
        }
        None
    }

    fn find_cached(&self, sha256: &str) -> Option<DigestedFile> {
        let candidates: Vec<PathBuf> = self
            .lock_digests()
            .iter()
            .filter(|(_, cached)| cached.digest.sha256 == sha256)
            .map(|(location, _)| location.clone())
            .collect();
        candidates.iter().find_map(|location| {
            let file = self.file_at(location)?;
            let digest = self.cached_digest(&file)?;
            Some(DigestedFile { file, digest })
        })
    }

    /// The repository file at a location on disk, if it still exists.
    fn file_at(&self, location: &Path) -> Option<RepoFile> {
        let relative = location.strip_prefix(&self.root).ok()?;
        let mut segments = relative.iter().map(|segment| segment.to_str());
        let repo = RepoId::new(segments.next()??, segments.next()??)?;
        let path = segments.collect::<Option<Vec<_>>>()?.join("/");
        self.file(&repo, &path)
    }

    /// Every repository under the root.
    fn repos(&self) -> Vec<RepoId> {
        let mut repos = Vec::new();
        for org in subfolders(&self.root) {
            for name in subfolders(&self.root.join(&org)) {
                repos.extend(RepoId::new(&org, &name));
            }
        }
        repos
    }
}

/// The names of the folders directly inside `folder`.
fn subfolders(folder: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(folder) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

/// Adds the files under `folder` to `files`, their paths prefixed with `prefix`.
///
/// A `.git` folder is not part of a repository's content and is skipped, as are names that are
/// not UTF-8.
fn collect_files(folder: &Path, prefix: &str, files: &mut Vec<RepoFile>) -> io::Result<()> {
    for entry in fs::read_dir(folder)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let location = entry.path();
        // `fs::metadata` follows symbolic links, so a linked file is served like a copy.
        let Ok(metadata) = fs::metadata(&location) else {
            continue;
        };
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if metadata.is_dir() {
            if name != ".git" {
                collect_files(&location, &path, files)?;
            }
        } else if metadata.is_file() {
            files.push(RepoFile { path, location, size: metadata.len(), modified: metadata.modified().ok() });
        }
    }
    Ok(())
}

/// Computes both digests of a file in one pass over it.
///
/// SHA-256 runs on this thread and the git blob id on a helper thread, each over the same shared
/// chunks, which nearly halves the time for a multi-gigabyte file.
fn hash_file(location: &Path) -> io::Result<FileDigest> {
    let mut file = fs::File::open(location)?;
    let length = file.metadata()?.len();
    let (to_git, git_chunks) = mpsc::sync_channel::<Arc<Vec<u8>>>(HASH_BUFFERS);
    let (return_buffer, returned_buffers) = mpsc::channel::<Arc<Vec<u8>>>();
    thread::scope(|scope| {
        let git = scope.spawn(move || {
            let mut git = Sha1::new();
            git.update(format!("blob {length}\0").as_bytes());
            for chunk in git_chunks {
                git.update(chunk.as_slice());
                // The reader may have finished; then the buffer is simply freed.
                let _ = return_buffer.send(chunk);
            }
            hex::encode(git.finalize())
        });
        let mut sha256 = Sha256::new();
        let mut hashed = 0u64;
        loop {
            let mut buffer = returned_buffers
                .try_iter()
                .find_map(|chunk| Arc::try_unwrap(chunk).ok())
                .unwrap_or_else(|| vec![0u8; HASH_CHUNK]);
            buffer.resize(HASH_CHUNK, 0);
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            buffer.truncate(read);
            let chunk = Arc::new(buffer);
            sha256.update(chunk.as_slice());
            hashed += read as u64;
            if to_git.send(chunk).is_err() {
                break;
            }
        }
        drop(to_git);
        let git_oid = git.join().map_err(|_| io::Error::other("the git blob id hasher panicked"))?;
        if hashed != length {
            return Err(io::Error::other(format!(
                "{} changed size while it was hashed ({length} bytes, then {hashed}); retry the request",
                location.display()
            )));
        }
        Ok(FileDigest { sha256: hex::encode(sha256.finalize()), git_oid })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_id_matches_git() {
        let folder = std::env::temp_dir().join(format!("testhub-catalog-{}", std::process::id()));
        fs::create_dir_all(&folder).expect("a temporary folder");
        let location = folder.join("hello.txt");
        fs::write(&location, b"hello\n").expect("a temporary file");
        let digest = hash_file(&location).expect("a readable file");
        fs::remove_dir_all(&folder).expect("the temporary folder removed");
        assert_eq!(digest.git_oid, "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(digest.sha256, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
    }

    #[test]
    fn rejects_segments_that_escape() {
        assert!(RepoId::new("..", "x").is_none());
        assert!(RepoId::new("org", "").is_none());
        assert!(RepoId::new("org", "a\\b").is_none());
        assert_eq!(RepoId::new("org", "name").map(|repo| repo.id()).as_deref(), Some("org/name"));
    }
}
