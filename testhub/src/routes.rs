//! The Hub's routes: from a parsed request to the reply to send.
//!
//! Handlers return `Result<Reply, Reply>` so that each check (repository, gate, revision, file)
//! can end the request with `?`; both sides are sent the same way.
//!
//! JSON objects are built with their keys in alphabetical order, so the output is the same
//! whether or not another crate in the build turns on serde_json's `preserve_order`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::body::BodySource;
use crate::catalog::{Catalog, DigestedFile, RepoFile, RepoId, LFS_POINTER_SIZE};
use crate::http::{parse_range, RangeRequest, Request, ResponseHead};
use crate::hub::{Access, Hub};

/// A response ready to send.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status and headers.
    pub head: ResponseHead,
    /// What follows the head.
    pub body: ReplyBody,
}

/// The body of a reply.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// A small body held in memory; not sent for HEAD requests.
    Bytes(Vec<u8>),
    /// No body, but a `Content-Length` announcing one (the answer to a HEAD request for content).
    Announced(u64),
    /// A range of a file.
    File(BodySource),
}

impl Reply {
    fn new(head: ResponseHead, body: ReplyBody) -> Self {
        Self { head, body }
    }

    fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.head = self.head.header(name, value);
        self
    }
}

/// Handlers end early by returning the reply to send in place of the normal one.
type Outcome = Result<Reply, Reply>;

/// Answers one request.
pub(crate) async fn route(hub: &Hub, request: &Request) -> Reply {
    if request.method != "GET" && !request.is_head() {
        return error_reply(405, None, "only GET and HEAD are served");
    }
    let path = request.path.strip_prefix('/').unwrap_or(&request.path);
    let segments: Vec<&str> = path.split('/').collect();
    let metadata = segments.first() == Some(&"api") || (request.is_head() && segments.get(2) == Some(&"resolve"));
    if metadata && hub.faults.metadata_hangs() {
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    }
    let outcome = match segments.as_slice() {
        ["api", "models", org, name] => revision(hub, request, org, name, "main").await,
        ["api", "models", org, name, "revision", rev] => revision(hub, request, org, name, rev).await,
        ["api", "models", org, name, "tree", rev, folder @ ..] => {
            tree(hub, request, org, name, rev, &folder.join("/")).await
        }
        ["cdn", sha256] => cdn(hub, request, sha256).await,
        [org, name, "resolve", rev, path @ ..] if !path.is_empty() => {
            resolve(hub, request, org, name, rev, &path.join("/")).await
        }
        _ => Err(error_reply(404, None, &format!("no route for {}", request.path))),
    };
    outcome.unwrap_or_else(|reply| reply)
}

/// A JSON error reply: `{"error": message}`, with `X-Error-Code` when a code is given.
pub(crate) fn error_reply(status: u16, code: Option<&str>, message: &str) -> Reply {
    let reply = json_reply(status, &json!({ "error": message }));
    match code {
        Some(code) => reply.with_header("X-Error-Code", code),
        None => reply,
    }
}

fn json_reply(status: u16, value: &Value) -> Reply {
    let head = ResponseHead::new(status).header("Content-Type", "application/json");
    Reply::new(head, ReplyBody::Bytes(value.to_string().into_bytes()))
}

fn internal_error(error: impl std::fmt::Display) -> Reply {
    error_reply(500, None, &error.to_string())
}

/// Runs file-system work on a blocking thread.
async fn blocking<T: Send + 'static>(hub: &Hub, work: impl FnOnce(&Catalog) -> T + Send + 'static) -> Result<T, Reply> {
    let catalog = Arc::clone(&hub.catalog);
    tokio::task::spawn_blocking(move || work(&catalog)).await.map_err(internal_error)
}

/// Checks that the repository exists and that the request may see it.
async fn open_repo(hub: &Hub, request: &Request, org: &str, name: &str) -> Result<(RepoId, Access), Reply> {
    let not_found = || error_reply(404, Some("RepoNotFound"), &format!("Repository {org}/{name} not found"));
    let repo = RepoId::new(org, name).ok_or_else(not_found)?;
    let exists = {
        let repo = repo.clone();
        blocking(hub, move |catalog| catalog.has_repo(&repo)).await?
    };
    if !exists {
        return Err(not_found());
    }
    let id = repo.id();
    match hub.access(&id, request.header("authorization")) {
        Access::Unauthenticated => Err(error_reply(
            401,
            Some("GatedRepo"),
            &format!(
                "Access to model {id} is restricted. You must have access to it and be authenticated to access it. \
                 Please log in."
            ),
        )),
        Access::Denied => Err(error_reply(
            403,
            Some("GatedRepo"),
            &format!("Access to model {id} is restricted and you are not in the authorized list."),
        )),
        access => Ok((repo, access)),
    }
}

fn check_revision(repo: &RepoId, rev: &str) -> Result<(), Reply> {
    if repo.has_revision(rev) {
        Ok(())
    } else {
        Err(error_reply(404, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}")))
    }
}

fn entry_not_found(path: &str) -> Reply {
    error_reply(404, Some("EntryNotFound"), &format!("Entry not found: {path}"))
}

/// Every file of the repository with its digests.
async fn digested_files(hub: &Hub, repo: &RepoId) -> Result<Vec<DigestedFile>, Reply> {
    let repo = repo.clone();
    blocking(hub, move |catalog| catalog.digested_files(&repo)).await?.map_err(internal_error)
}

/// `GET /api/models/{org}/{name}/revision/{rev}`.
async fn revision(hub: &Hub, request: &Request, org: &str, name: &str, rev: &str) -> Outcome {
    let (repo, access) = open_repo(hub, request, org, name).await?;
    check_revision(&repo, rev)?;
    let siblings: Vec<Value> = digested_files(hub, &repo).await?.iter().map(|entry| sibling_json(hub, entry)).collect();
    let gated = if access == Access::Granted { json!("manual") } else { json!(false) };
    Ok(json_reply(
        200,
        &json!({
            "gated": gated,
            "id": repo.id(),
            "modelId": repo.id(),
            "private": false,
            "sha": hub.faults.advertised_commit(repo.commit()),
            "siblings": siblings,
        }),
    ))
}

fn sibling_json(hub: &Hub, entry: &DigestedFile) -> Value {
    let mut sibling = Map::new();
    sibling.insert("blobId".into(), json!(hub.faults.advertised_hash(&entry.file.path, &entry.digest.git_oid)));
    if entry.file.is_lfs() {
        let lfs = json!({
            "pointerSize": LFS_POINTER_SIZE,
            "sha256": hub.faults.advertised_hash(&entry.file.path, &entry.digest.sha256),
            "size": entry.file.size,
        });
        sibling.insert("lfs".into(), lfs);
    }
    sibling.insert("rfilename".into(), json!(entry.file.path));
    sibling.insert("size".into(), json!(entry.file.size));
    Value::Object(sibling)
}

/// `GET /api/models/{org}/{name}/tree/{rev}[/{folder}]`, recursive when `?recursive=true`.
async fn tree(hub: &Hub, request: &Request, org: &str, name: &str, rev: &str, folder: &str) -> Outcome {
    let (repo, _) = open_repo(hub, request, org, name).await?;
    check_revision(&repo, rev)?;
    let recursive = request.query.get("recursive").is_some_and(|value| matches!(value.as_str(), "true" | "1"));
    let files = digested_files(hub, &repo).await?;
    let prefix = if folder.is_empty() { String::new() } else { format!("{folder}/") };
    let under_folder: Vec<&DigestedFile> = files.iter().filter(|entry| entry.file.path.starts_with(&prefix)).collect();
    if under_folder.is_empty() && !folder.is_empty() {
        return Err(entry_not_found(folder));
    }
    let mut entries: Vec<(String, Value)> = Vec::new();
    let mut folders: Vec<String> = Vec::new();
    for entry in under_folder {
        let rest = &entry.file.path[prefix.len()..];
        match rest.split_once('/') {
            Some((child, _)) if !recursive => {
                let child = format!("{prefix}{child}");
                if !folders.contains(&child) {
                    folders.push(child);
                }
            }
            _ => entries.push((entry.file.path.clone(), tree_file_json(entry))),
        }
    }
    entries.extend(folders.into_iter().map(|path| (path.clone(), tree_folder_json(&path))));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(json_reply(200, &Value::Array(entries.into_iter().map(|(_, value)| value).collect())))
}

fn tree_file_json(entry: &DigestedFile) -> Value {
    let mut value = Map::new();
    if entry.file.is_lfs() {
        let lfs = json!({
            "oid": entry.digest.sha256,
            "pointerSize": LFS_POINTER_SIZE,
            "size": entry.file.size,
        });
        value.insert("lfs".into(), lfs);
    }
    value.insert("oid".into(), json!(entry.digest.git_oid));
    value.insert("path".into(), json!(entry.file.path));
    value.insert("size".into(), json!(entry.file.size));
    value.insert("type".into(), json!("file"));
    Value::Object(value)
}

/// A folder entry; its `oid` is a stable stand-in, since folders have no content of their own here.
fn tree_folder_json(path: &str) -> Value {
    use sha1::{Digest, Sha1};
    json!({
        "oid": hex::encode(Sha1::digest(format!("tree {path}").as_bytes())),
        "path": path,
        "size": 0,
        "type": "directory",
    })
}

/// `HEAD|GET /{org}/{name}/resolve/{rev}/{path}`; every reply from here on names the commit.
async fn resolve(hub: &Hub, request: &Request, org: &str, name: &str, rev: &str, path: &str) -> Outcome {
    let (repo, _) = open_repo(hub, request, org, name).await?;
    let commit = hub.faults.advertised_commit(repo.commit());
    match resolve_in_repo(hub, request, repo, rev, path).await {
        Ok(reply) => Ok(reply.with_header("X-Repo-Commit", commit)),
        Err(reply) => Err(reply.with_header("X-Repo-Commit", commit)),
    }
}

async fn resolve_in_repo(hub: &Hub, request: &Request, repo: RepoId, rev: &str, path: &str) -> Outcome {
    check_revision(&repo, rev)?;
    let file = {
        let owned_path = path.to_owned();
        blocking(hub, move |catalog| catalog.file(&repo, &owned_path)).await?.ok_or_else(|| entry_not_found(path))?
    };
    fail_if_armed(hub, &file)?;
    let digest = {
        let file = file.clone();
        blocking(hub, move |catalog| catalog.digest(&file)).await?.map_err(internal_error)?
    };
    if !file.is_lfs() {
        let etag = hub.faults.advertised_hash(&file.path, &digest.git_oid);
        return serve_content(hub, request, file, &etag).await;
    }
    let head = ResponseHead::new(302)
        .header("Location", format!("/cdn/{}", digest.sha256))
        .header("X-Linked-Etag", format!("\"{}\"", hub.faults.advertised_hash(&file.path, &digest.sha256)))
        .header("X-Linked-Size", hub.faults.advertised_size(&file.path, file.size).to_string())
        .header("ETag", format!("\"{}\"", digest.git_oid));
    Ok(Reply::new(head, ReplyBody::Bytes(Vec::new())))
}

/// `HEAD|GET /cdn/{sha256}`: an LFS file's content, from any repository.
async fn cdn(hub: &Hub, request: &Request, sha256: &str) -> Outcome {
    let sha256 = sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(entry_not_found(&sha256));
    }
    let found = {
        let wanted = sha256.clone();
        blocking(hub, move |catalog| catalog.find_by_sha256(&wanted)).await?.ok_or_else(|| entry_not_found(&sha256))?
    };
    fail_if_armed(hub, &found.file)?;
    serve_content(hub, request, found.file, &found.digest.sha256).await
}

/// Answers an armed `fail_status` fault for the file, consuming it.
fn fail_if_armed(hub: &Hub, file: &RepoFile) -> Result<(), Reply> {
    match hub.faults.take_failure(&file.path) {
        Some(status) => Err(json_reply(status, &json!({}))),
        None => Ok(()),
    }
}

/// The file's content, or the part a `Range` header asks for, with `ETag: "{etag}"`.
async fn serve_content(hub: &Hub, request: &Request, file: RepoFile, etag: &str) -> Outcome {
    let size = file.size;
    let head = ResponseHead::new(200)
        .header("Content-Type", "application/octet-stream")
        .header("Accept-Ranges", "bytes")
        .header("ETag", format!("\"{etag}\""));
    let (head, start, end) = match parse_range(request.header("range"), size) {
        RangeRequest::Whole => (head, 0, size),
        RangeRequest::Part { start, end } => {
            let head = head.with_status(206);
            (head.header("Content-Range", format!("bytes {start}-{}/{size}", end - 1)), start, end)
        }
        RangeRequest::Unsatisfiable => {
            let head = head.with_status(416).header("Content-Range", format!("bytes */{size}"));
            return Ok(Reply::new(head, ReplyBody::Bytes(Vec::new())));
        }
    };
    if request.is_head() {
        return Ok(Reply::new(head, ReplyBody::Announced(end - start)));
    }
    let location = file.location.clone();
    let opened = blocking(hub, move |_| std::fs::File::open(location)).await?;
    let opened = opened.map_err(|_| entry_not_found(&file.path))?;
    let source = BodySource { file: opened, repo_path: file.path, file_size: size, start, end };
    Ok(Reply::new(head, ReplyBody::File(source)))
}
