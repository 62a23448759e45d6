//! What a Hugging Face–compatible endpoint answers, read and checked before anything acts on
//! it: a repo's file list (`/api/models/{repo}/revision/{rev}?blobs=true`) and the headers of a
//! file's resolve URL. Cache paths are named after the commit ids and hashes a server sends, so
//! every such value must be 40 or 64 hex digits and every file path must stay inside the repo;
//! a server (or anyone on the way of plain HTTP) that sends `../../.bashrc` gets an error.

use serde::Deserialize;

/// The longest file list accepted, bytes (a repo of 10,000 files lists in about 2 MB).
pub const MAX_LISTING_BYTES: usize = 64 << 20;

/// One file of a repo, as the endpoint describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Path inside the repo (`/`-separated), checked by [`check_repo_path`].
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// The SHA-256 of large (LFS) files, the git blob id of small ones; lower-case hex.
    pub etag: String,
}

/// A repo at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The commit the revision resolved to; 40 lower-case hex digits.
    pub commit: String,
    /// Its files.
    pub files: Vec<ListedFile>,
}

/// What is wrong with an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireProblem {
    /// The file list is not the JSON an endpoint sends.
    #[error("answered with an unexpected file list: {0}")]
    UnexpectedListing(String),
    /// A listed file has neither an LFS digest nor a size and blob id.
    #[error("gave no size or hash for {0}; the endpoint may not support `blobs=true`")]
    NoDigest(String),
    /// A header the resolve URL must send is missing.
    #[error("did not send {0}")]
    MissingHeader(&'static str),
    /// A file path that would leave the repo's folder.
    #[error("refusing the unsafe file path {0:?}")]
    UnsafePath(String),
    /// A commit id or file hash that is not one.
    #[error("sent an invalid {what} for {subject} ({value:?} is not {expected})")]
    InvalidHash {
        /// "commit id" or "file hash".
        what: &'static str,
        /// The repo or file it was for.
        subject: String,
        /// The value sent, cut to 80 characters.
        value: String,
        /// What a valid one looks like.
        expected: &'static str,
    },
}

#[derive(Deserialize)]
struct ApiRevision {
    sha: String,
    #[serde(default)]
    siblings: Vec<ApiSibling>,
}

#[derive(Deserialize)]
struct ApiSibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<ApiLfs>,
}

#[derive(Deserialize)]
struct ApiLfs {
    sha256: String,
    size: u64,
}

/// Reads a file list (the body of `/api/models/{repo}/revision/{rev}?blobs=true`) and checks
/// every commit id, hash and path in it.
pub fn parse_listing(body: &[u8], repo: &str) -> Result<Listing, WireProblem> {
    if body.len() > MAX_LISTING_BYTES {
        return Err(WireProblem::UnexpectedListing(format!("{} bytes is more than any repo lists", body.len())));
    }
    let revision: ApiRevision =
        serde_json::from_slice(body).map_err(|e| WireProblem::UnexpectedListing(e.to_string()))?;
    let mut files = Vec::with_capacity(revision.siblings.len());
    for sibling in revision.siblings {
        let (size, etag) = match (sibling.lfs, sibling.size, sibling.blob_id) {
            (Some(lfs), _, _) => (lfs.size, lfs.sha256),
            (None, Some(size), Some(blob)) => (size, blob),
            _ => return Err(WireProblem::NoDigest(sibling.rfilename)),
        };
        check_repo_path(&sibling.rfilename)?;
        let etag = file_hash(&etag, &sibling.rfilename)?;
        files.push(ListedFile { path: sibling.rfilename, size, etag });
    }
    Ok(Listing { commit: commit_id(&revision.sha, repo)?, files })
}

/// Reads one file's commit, size and hash from the headers of a HEAD request on its resolve URL
/// (`X-Repo-Commit`, `X-Linked-Etag` or `ETag`, `X-Linked-Size` or `Content-Length`); `header`
/// gives a header's value by its lower-case name.
pub fn parse_file_headers(
    header: impl Fn(&str) -> Option<String>,
    repo: &str,
    file: &str,
) -> Result<(String, ListedFile), WireProblem> {
    check_repo_path(file)?;
    let commit = header("x-repo-commit").ok_or(WireProblem::MissingHeader("the commit it serves (X-Repo-Commit)"))?;
    let etag = header("x-linked-etag")
        .or_else(|| header("etag"))
        .map(|e| normalize_etag(&e))
        .ok_or(WireProblem::MissingHeader("an ETag"))?;
    let size = header("x-linked-size")
        .or_else(|| header("content-length"))
        .and_then(|s| s.trim().parse().ok())
        .ok_or(WireProblem::MissingHeader("the file's size"))?;
    let commit = commit_id(&commit, repo)?;
    let etag = file_hash(&etag, file)?;
    Ok((commit, ListedFile { path: file.to_owned(), size, etag }))
}

/// `W/"abc"` → `abc`.
pub fn normalize_etag(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_ascii_lowercase()
}

/// Whether `value` is a commit id: 40 hex digits.
pub fn is_commit_id(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A commit id as the server sent it, checked: 40 hex digits, lower-cased.
pub fn commit_id(value: &str, repo: &str) -> Result<String, WireProblem> {
    let value = value.trim();
    if is_commit_id(value) {
        return Ok(value.to_ascii_lowercase());
    }
    Err(invalid("commit id", repo, value, "40 hexadecimal digits"))
}

/// A file's hash as the server sent it, checked: a SHA-256 (64 hex digits, LFS files) or a git
/// blob id (40 hex digits, small files), lower-cased.
pub fn file_hash(value: &str, file: &str) -> Result<String, WireProblem> {
    let value = value.trim();
    if matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(value.to_ascii_lowercase());
    }
    Err(invalid("file hash", file, value, "a SHA-256 (64 hexadecimal digits) or a git blob id (40)"))
}

fn invalid(what: &'static str, subject: &str, value: &str, expected: &'static str) -> WireProblem {
    WireProblem::InvalidHash { what, subject: subject.to_owned(), value: value.chars().take(80).collect(), expected }
}

/// Checks a file path inside a repo: relative, no `..`, `.` or empty parts, no backslash and
/// no control character (a NUL or a newline in a file name is never a model file).
pub fn check_repo_path(path: &str) -> Result<(), WireProblem> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(WireProblem::UnsafePath(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_escape_the_repo_are_refused() {
        assert!(check_repo_path("sub/w.gguf").is_ok());
        for bad in ["../w", "/etc/passwd", "a//b", "a/./b", "a\\b", "", "w\0.gguf", "w\n.gguf"] {
            assert!(check_repo_path(bad).is_err(), "{bad}");
        }
    }

    /// A server that answers paths where hashes belong must not name a file outside the cache.
    #[test]
    fn hashes_and_commits_that_are_not_hex_are_refused() {
        let sha = "a".repeat(64);
        assert_eq!(file_hash(&sha.to_uppercase(), "w.gguf").unwrap(), sha);
        assert!(file_hash(&"0".repeat(40), "config.json").is_ok(), "git blob ids for small files");
        for bad in ["/home/u/.bashrc", "../../x", "", &"g".repeat(64), &"a".repeat(63), &format!("{sha}/..")] {
            assert!(matches!(file_hash(bad, "w.gguf"), Err(WireProblem::InvalidHash { .. })), "{bad}");
        }
        assert!(commit_id(&"b".repeat(40), "o/r").is_ok());
        assert!(commit_id("../../../../tmp", "o/r").is_err());
    }

    #[test]
    fn a_listing_is_read_and_each_value_checked() {
        let body = format!(
            r#"{{"sha":"{}","siblings":[{{"rfilename":"w.gguf","lfs":{{"sha256":"{}","size":9}}}},
               {{"rfilename":"config.json","size":2,"blobId":"{}"}}]}}"#,
            "c".repeat(40),
            "d".repeat(64),
            "e".repeat(40)
        );
        let listing = parse_listing(body.as_bytes(), "o/r").unwrap();
        assert_eq!(listing.commit, "c".repeat(40));
        assert_eq!(listing.files[0], ListedFile { path: "w.gguf".into(), size: 9, etag: "d".repeat(64) });
        let hostile = body.replace("w.gguf", "../../.bashrc");
        assert_eq!(parse_listing(hostile.as_bytes(), "o/r"), Err(WireProblem::UnsafePath("../../.bashrc".into())));
        assert!(matches!(parse_listing(b"[1,2]", "o/r"), Err(WireProblem::UnexpectedListing(_))));
    }

    #[test]
    fn headers_give_commit_hash_and_size() {
        let headers = |name: &str| match name {
            "x-repo-commit" => Some("A".repeat(40)),
            "etag" => Some(format!("W/\"{}\"", "f".repeat(64))),
            "content-length" => Some("123".into()),
            _ => None,
        };
        let (commit, file) = parse_file_headers(headers, "o/r", "w.gguf").unwrap();
        assert_eq!(commit, "a".repeat(40));
        assert_eq!((file.size, file.etag.len()), (123, 64));
        assert_eq!(
            parse_file_headers(|_| None, "o/r", "w.gguf"),
            Err(WireProblem::MissingHeader("the commit it serves (X-Repo-Commit)"))
        );
    }
}
