//! Talking to a Hugging Face–compatible endpoint: which files a repo has, what one file's
//! commit, size and hash are, and where its bytes are served.

use std::time::Duration;

use altiplano_formats::hub::{self as wire, WireProblem};
use futures::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, AUTHORIZATION};
use reqwest::{Client, StatusCode};

use super::DownloadError;
use crate::secrets::HfToken;

/// The public Hugging Face Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// Environment variable naming another endpoint (a mirror), as Hugging Face's tools read it.
pub const ENDPOINT_ENV: &str = "HF_ENDPOINT";

/// A Hub endpoint and the token to show it.
#[derive(Debug, Clone)]
pub struct HubClient {
    endpoint: String,
    token: Option<HfToken>,
    /// A token was given but is not sent: the endpoint is plain HTTP on another computer.
    token_withheld: bool,
    /// Offline mode is on: every request fails with [`DownloadError::Offline`] before any
    /// connection is opened.
    offline: Option<super::OfflineReason>,
    http: Client,
}

/// One file of a repo, as the Hub describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Path inside the repo (`/`-separated).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// What the cache names the blob: the SHA-256 of large (LFS) files, the git blob id of
    /// small ones.
    pub etag: String,
}

/// A repo at one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoListing {
    /// The commit the revision resolved to.
    pub commit: String,
    /// Its files.
    pub files: Vec<RemoteFile>,
}

impl HubClient {
    /// A client for `endpoint` (no trailing slash needed).
    pub fn new(endpoint: &str, token: Option<HfToken>) -> Result<Self, DownloadError> {
        let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(DownloadError::BadEndpoint(endpoint));
        }
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("altiplano/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DownloadError::Network { url: endpoint.clone(), message: e.to_string() })?;
        let withheld = token.is_some() && !carries_secrets(&endpoint);
        if withheld {
            tracing::warn!(%endpoint, "the Hugging Face token is not sent over plain HTTP to another computer");
        }
        let token = token.filter(|_| !withheld);
        Ok(Self { endpoint, token, token_withheld: withheld, offline: None, http })
    }

    /// The same client with offline mode on: it opens no connection; each request fails with
    /// [`DownloadError::Offline`].
    pub fn offline(self, reason: super::OfflineReason) -> Self {
        Self { offline: Some(reason), token: None, ..self }
    }

    /// Fails when offline mode is on; called before anything that would connect.
    pub(crate) fn ensure_online(&self) -> Result<(), DownloadError> {
        self.offline.map_or(Ok(()), |reason| Err(DownloadError::Offline(reason)))
    }

    /// A token was given but is not sent to this endpoint (plain HTTP to another computer).
    pub fn token_withheld(&self) -> bool {
        self.token_withheld
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Whether requests carry a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The page where a gated repo's licence is read and accepted.
    pub fn licence_url(&self, repo: &str) -> String {
        format!("{}/{repo}", self.endpoint)
    }

    /// The URL that serves a file's bytes (possibly by redirecting elsewhere).
    pub fn resolve_url(&self, repo: &str, revision: &str, file: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{}",
            self.endpoint,
            encode(revision),
            file.split('/').map(encode).collect::<Vec<_>>().join("/")
        )
    }

    /// A GET carrying the token (reqwest drops it when a redirect leaves the host).
    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url).header(ACCEPT_ENCODING, "identity");
        match &self.token {
            Some(token) => request.header(AUTHORIZATION, format!("Bearer {}", token.expose())),
            None => request,
        }
    }

    /// Every file of `repo` at `revision`, with sizes and hashes, each checked
    /// ([`altiplano_formats::hub::parse_listing`]).
    pub async fn list(&self, repo: &str, revision: &str) -> Result<RepoListing, DownloadError> {
        self.ensure_online()?;
        let url = format!("{}/api/models/{repo}/revision/{}?blobs=true", self.endpoint, encode(revision));
        let response = self.get(&url).send().await.map_err(|e| network(&url, &e))?;
        let response = self.check(repo, revision, None, response)?;
        // Read up to the limit only: a server cannot fill the memory with a "file list".
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| network(&url, &e))?;
            if body.len() + chunk.len() > wire::MAX_LISTING_BYTES {
                return Err(DownloadError::Protocol(format!(
                    "{url} sent a file list larger than {} bytes",
                    wire::MAX_LISTING_BYTES
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let listing = wire::parse_listing(&body, repo).map_err(|p| from_wire(&url, p))?;
        let files =
            listing.files.into_iter().map(|f| RemoteFile { path: f.path, size: f.size, etag: f.etag }).collect();
        Ok(RepoListing { commit: listing.commit, files })
    }

    /// One file's commit, size and hash, from the headers of a HEAD request on its resolve URL
    /// (the redirect is not followed: the Hub's own answer carries `X-Repo-Commit`,
    /// `X-Linked-Etag` and `X-Linked-Size`), each checked
    /// ([`altiplano_formats::hub::parse_file_headers`]).
    pub async fn file_metadata(
        &self,
        repo: &str,
        revision: &str,
        file: &str,
    ) -> Result<(String, RemoteFile), DownloadError> {
        self.ensure_online()?;
        let url = self.resolve_url(repo, revision, file);
        let no_redirects = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| network(&url, &e))?;
        let mut request = no_redirects.head(&url).header(ACCEPT_ENCODING, "identity");
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        let response = request.send().await.map_err(|e| network(&url, &e))?;
        let response = self.check(repo, revision, Some(file), response)?;
        let headers = response.headers();
        let (commit, listed) =
            wire::parse_file_headers(|name| header(headers, name), repo, file).map_err(|p| from_wire(&url, p))?;
        Ok((commit, RemoteFile { path: listed.path, size: listed.size, etag: listed.etag }))
    }

    /// Turns an error status into the error a person can act on.
    pub(crate) fn check(
        &self,
        repo: &str,
        revision: &str,
        file: Option<&str>,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, DownloadError> {
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            return Ok(response);
        }
        let code = header(response.headers(), "x-error-code").unwrap_or_default();
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if self.token_withheld => {
                DownloadError::TokenWithheld { repo: repo.to_owned(), endpoint: self.endpoint.clone() }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => DownloadError::Gated {
                repo: repo.to_owned(),
                licence_url: self.licence_url(repo),
                had_token: self.has_token(),
            },
            StatusCode::NOT_FOUND => DownloadError::NotFound(match (code.as_str(), file) {
                ("RevisionNotFound", _) => format!("{repo} has no revision {revision:?}"),
                ("EntryNotFound", Some(file)) => format!("{repo} has no file {file:?} at revision {revision:?}"),
                (_, Some(file)) if code != "RepoNotFound" => {
                    format!("{repo} has no file {file:?} at revision {revision:?} (or the repo does not exist)")
                }
                _ => format!("there is no model repo {repo:?} on {}; check the spelling (org/name)", self.endpoint),
            }),
            _ => DownloadError::Http { url: redact(response.url().as_str()), status: status.as_u16() },
        })
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

pub(crate) fn network(url: &str, e: &reqwest::Error) -> DownloadError {
    // reqwest's Display hides the cause ("error sending request"); the source says why.
    let mut message = crate::error::with_causes(e);
    // Errors are saved with the download and shown: a redirect's signed CDN URL (its query
    // holds the signature) and any user:password must not be.
    if let Some(full) = e.url() {
        message = message.replace(full.as_str(), &redact(full.as_str()));
    }
    DownloadError::Network { url: redact(url), message }
}

/// A URL without what can grant access: its query (signatures, tokens), fragment and
/// user:password; `https://cdn.example/blob/abc` from `https://u:p@cdn.example/blob/abc?X-Amz-Signature=…`.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let hidden = parsed.query().is_some();
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let mut out = parsed.to_string();
            if hidden {
                out.push_str("?…");
            }
            out
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// Checks `org/name`.
pub fn validate_repo_id(repo: &str) -> Result<(), DownloadError> {
    let ok_part = |p: &str| {
        !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    match repo.split_once('/') {
        Some((org, name)) if ok_part(org) && ok_part(name) => Ok(()),
        _ => Err(DownloadError::BadRepoId(repo.to_owned())),
    }
}

/// Whether a secret may travel to `endpoint`: over HTTPS, or over plain HTTP to this computer
/// (a mirror on 127.0.0.0/8, `::1` or `localhost`), where nobody else is on the way.
pub fn carries_secrets(endpoint: &str) -> bool {
    let Ok(url) = url::Url::parse(endpoint) else { return false };
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(name))) => name.eq_ignore_ascii_case("localhost"),
        _ => false,
    }
}

/// Checks a revision the user gave (a branch, tag, `refs/pr/N` or commit id): it names
/// `refs/<revision>` in the cache, so no `..`, no empty or hidden parts, nothing but letters,
/// digits and `-_./`, at most 200 characters.
pub fn validate_revision(revision: &str) -> Result<(), DownloadError> {
    let ok = !revision.is_empty()
        && revision.len() <= 200
        && revision.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        && revision.split('/').all(|p| !p.is_empty() && !p.starts_with('.'));
    if ok {
        Ok(())
    } else {
        Err(DownloadError::BadRevision(revision.to_owned()))
    }
}

/// Checks a file path inside a repo: relative, no `..`, no empty parts.
pub fn validate_repo_path(path: &str) -> Result<(), DownloadError> {
    wire::check_repo_path(path).map_err(|p| DownloadError::Protocol(p.to_string()))
}

/// A problem with what `url` answered, as the error a person reads.
fn from_wire(url: &str, problem: WireProblem) -> DownloadError {
    match problem {
        WireProblem::InvalidHash { what, subject, value, expected } => {
            DownloadError::InvalidHash { what, subject, value, expected }
        }
        WireProblem::UnsafePath(_) => DownloadError::Protocol(problem.to_string()),
        other => DownloadError::Protocol(format!("{} {other}", redact(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_and_paths_that_could_escape_the_cache_are_refused() {
        assert!(validate_repo_id("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF").is_ok());
        for bad in ["noslash", "a/b/c", "../x", "a/..", "a/b c", "/a"] {
            assert!(validate_repo_id(bad).is_err(), "{bad}");
        }
        assert!(validate_repo_path("sub/w.gguf").is_ok());
        for bad in ["../w", "/etc/passwd", "a//b", "a/./b", "a\\b", ""] {
            assert!(validate_repo_path(bad).is_err(), "{bad}");
        }
    }

    /// A hash that is not one is reported as the server's fault, in the words of the download.
    #[test]
    fn hashes_that_are_not_hex_are_the_servers_fault() {
        let problem = wire::file_hash("/home/u/.bashrc", "w.gguf").unwrap_err();
        let e = from_wire("http://mirror.example/x", problem);
        assert!(e.to_string().contains("the server sent an invalid file hash for w.gguf"), "{e}");
        assert_eq!(e.code(), "network");
        let e = from_wire("http://mirror.example/x", wire::commit_id("../refs", "org/name").unwrap_err());
        assert!(matches!(e, DownloadError::InvalidHash { what: "commit id", .. }), "{e}");
    }

    /// The token goes over HTTPS, or over plain HTTP only to this computer.
    #[test]
    fn the_token_never_crosses_plain_http_to_another_computer() {
        let token = || HfToken::new("hf_abcdefghijklmnopqrstuvwxyz");
        for safe in [
            "https://huggingface.co",
            "https://hf-mirror.example/",
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "http://localhost:1",
        ] {
            let client = HubClient::new(safe, token()).unwrap();
            assert!(client.has_token() && !client.token_withheld(), "{safe}");
        }
        for unsafe_ in
            ["http://hf-mirror.example", "http://192.168.1.5:8080", "http://10.0.0.1", "http://localhost.evil.example"]
        {
            let client = HubClient::new(unsafe_, token()).unwrap();
            assert!(!client.has_token() && client.token_withheld(), "{unsafe_}");
            let sent = client.get(&format!("{unsafe_}/api/models/a/b")).build().unwrap();
            assert!(sent.headers().get(AUTHORIZATION).is_none(), "{unsafe_}: no Authorization header");
        }
        assert!(!HubClient::new("http://hf-mirror.example", None).unwrap().token_withheld(), "nothing to withhold");
    }

    /// A signed CDN URL in a failed request never reaches the message that is saved and shown.
    #[tokio::test]
    async fn errors_name_urls_without_their_signatures() {
        assert_eq!(
            redact("https://user:pw@cdn.example/blobs/abc?X-Amz-Signature=s3cr3t&Expires=1#x"),
            "https://cdn.example/blobs/abc?…"
        );
        assert_eq!(
            redact("http://127.0.0.1:9/org/name/resolve/main/w.gguf"),
            "http://127.0.0.1:9/org/name/resolve/main/w.gguf"
        );
        // A real failed request (nothing listens on port 9 of this machine).
        let signed = "http://127.0.0.1:9/blobs/abc?X-Amz-Signature=s3cr3t";
        let e = reqwest::get(signed).await.expect_err("nothing listens");
        let shown = network(signed, &e).to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:9/blobs/abc"), "{shown}");
    }

    #[test]
    fn revisions_that_could_leave_refs_are_refused() {
        for good in ["main", "v1.0", "refs/pr/1", &"c".repeat(40), "release_2024-07"] {
            assert!(validate_revision(good).is_ok(), "{good}");
        }
        for bad in ["", "../../etc", "a/../b", "/abs", "a//b", ".hidden", "a\\b", "main\n", "x y", &"a".repeat(201)] {
            assert!(matches!(validate_revision(bad), Err(DownloadError::BadRevision(_))), "{bad:?}");
        }
    }

    #[test]
    fn etags_lose_weak_markers_and_quotes() {
        assert_eq!(wire::normalize_etag("W/\"ABC\""), "abc");
        assert_eq!(wire::normalize_etag("\"0123\""), "0123");
    }
}
