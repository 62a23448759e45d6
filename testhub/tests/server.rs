//! Behaviour of the fake Hub, exercised over raw TCP the way a download client sees it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use altiplano_testhub::HubServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The git blob id of `hello\n`, as `git hash-object` prints it.
const HELLO_BLOB_ID: &str = "ce013625030ba8dba906f756967f9e9ca394464a";
/// The SHA-256 of `hello\n`.
const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
/// Bigger than one 1 MiB read chunk, and odd, so bodies cross chunk boundaries unevenly.
const MODEL_SIZE: usize = 2 * 1024 * 1024 + 12_345;

/// A temporary root folder with one repository, `org/model`, removed on drop.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = format!("testhub-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let root = std::env::temp_dir().join(unique);
        let fixture = Self { root };
        fixture.write("org/model/README.md", b"hello\n");
        fixture.write("org/model/sub/nested.txt", b"nested\n");
        fixture.write("org/model/model.gguf", &model_bytes());
        fixture.write("org/model/tiny.bin", b"hello\n");
        fixture
    }

    fn write(&self, path: &str, content: &[u8]) {
        let location = self.root.join(path);
        std::fs::create_dir_all(location.parent().expect("a file path has a parent")).expect("create folders");
        std::fs::write(location, content).expect("write a fixture file");
    }

    fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn model_bytes() -> Vec<u8> {
    (0..MODEL_SIZE).map(|index| (index * 31 + index / 7) as u8).collect()
}

async fn start() -> (Fixture, HubServer) {
    let fixture = Fixture::new();
    let server = HubServer::start(fixture.root().to_path_buf()).await.expect("the server starts");
    (fixture, server)
}

/// A response as read off the wire, until the server closed the connection.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(server: &HubServer, method: &str, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("send the request");
    stream
}

async fn request(server: &HubServer, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = send(server, method, path, headers).await;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the response");
    parse_response(&raw)
}

async fn get(server: &HubServer, path: &str) -> Response {
    request(server, "GET", path, &[]).await
}

fn parse_response(raw: &[u8]) -> Response {
    let end = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("a complete response head");
    let head = std::str::from_utf8(&raw[..end]).expect("a UTF-8 head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("a status code");
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    Response { status, headers, body: raw[end + 4..].to_vec() }
}

/// Where the model's content is served, read from its redirect.
async fn model_cdn_path(server: &HubServer) -> String {
    let redirect = get(server, "/org/model/resolve/main/model.gguf").await;
    redirect.header("Location").expect("a redirect").to_owned()
}

#[tokio::test]
async fn regular_file_is_served_with_its_git_blob_id() {
    let (_fixture, server) = start().await;
    let response = get(&server, "/org/model/resolve/main/README.md").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("ETag"), Some(format!("\"{HELLO_BLOB_ID}\"").as_str()));
    assert_eq!(response.header("Content-Length"), Some("6"));
    assert_eq!(response.header("Accept-Ranges"), Some("bytes"));
    let commit = response.header("X-Repo-Commit").expect("the commit");
    assert!(commit.len() == 40 && commit.bytes().all(|byte| byte.is_ascii_hexdigit()), "{commit}");
    assert_eq!(response.body, b"hello\n");
}

#[tokio::test]
async fn head_announces_the_length_without_a_body() {
    let (_fixture, server) = start().await;
    let response = request(&server, "HEAD", "/org/model/resolve/main/README.md", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Length"), Some("6"));
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn percent_encoded_paths_are_decoded() {
    let (_fixture, server) = start().await;
    let response = get(&server, "/org/model/resolve/main/sub%2Fnested.txt").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"nested\n");
}

#[tokio::test]
async fn lfs_file_redirects_to_the_cdn() {
    let (_fixture, server) = start().await;
    let redirect = get(&server, "/org/model/resolve/main/model.gguf").await;
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("Content-Length"), Some("0"));
    assert_eq!(redirect.header("X-Linked-Size"), Some(MODEL_SIZE.to_string().as_str()));
    assert!(redirect.header("X-Repo-Commit").is_some());
    let location = redirect.header("Location").expect("a Location header");
    let sha256 = location.strip_prefix("/cdn/").expect("a relative CDN location");
    assert_eq!(sha256.len(), 64);
    assert_eq!(redirect.header("X-Linked-Etag"), Some(format!("\"{sha256}\"").as_str()));

    let content = get(&server, location).await;
    assert_eq!(content.status, 200);
    assert_eq!(content.header("ETag"), Some(format!("\"{sha256}\"").as_str()));
    assert_eq!(content.header("Content-Length"), Some(MODEL_SIZE.to_string().as_str()));
    assert!(content.body == model_bytes(), "the CDN serves the file's content");
}

#[tokio::test]
async fn a_small_file_with_an_lfs_extension_is_lfs() {
    let (_fixture, server) = start().await;
    let redirect = get(&server, "/org/model/resolve/main/tiny.bin").await;
    assert_eq!(redirect.status, 302);
    assert_eq!(redirect.header("Location"), Some(format!("/cdn/{HELLO_SHA256}").as_str()));
    assert_eq!(redirect.header("ETag"), Some(format!("\"{HELLO_BLOB_ID}\"").as_str()));
    assert_eq!(get(&server, &format!("/cdn/{HELLO_SHA256}")).await.body, b"hello\n");
}

#[tokio::test]
async fn ranges_are_served_as_partial_content() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    let model = model_bytes();

    let middle = request(&server, "GET", &cdn, &[("Range", "bytes=1048570-1048589")]).await;
    assert_eq!(middle.status, 206);
    assert_eq!(middle.header("Content-Range"), Some(format!("bytes 1048570-1048589/{MODEL_SIZE}").as_str()));
    assert_eq!(middle.header("Content-Length"), Some("20"));
    assert_eq!(middle.body, &model[1_048_570..1_048_590]);

    let tail_start = MODEL_SIZE - 5;
    let tail = request(&server, "GET", &cdn, &[("range", &format!("bytes={tail_start}-"))]).await;
    assert_eq!(tail.status, 206);
    assert_eq!(
        tail.header("Content-Range"),
        Some(format!("bytes {tail_start}-{}/{MODEL_SIZE}", MODEL_SIZE - 1).as_str())
    );
    assert_eq!(tail.body, &model[tail_start..]);

    let regular = request(&server, "GET", "/org/model/resolve/main/README.md", &[("Range", "bytes=1-2")]).await;
    assert_eq!(regular.status, 206);
    assert_eq!(regular.body, b"el");
}

#[tokio::test]
async fn a_range_past_the_end_is_unsatisfiable() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    let response = request(&server, "GET", &cdn, &[("Range", &format!("bytes={MODEL_SIZE}-"))]).await;
    assert_eq!(response.status, 416);
    assert_eq!(response.header("Content-Range"), Some(format!("bytes */{MODEL_SIZE}").as_str()));
    assert!(response.body.is_empty());
}

#[tokio::test]
async fn revision_lists_the_files_with_their_digests() {
    let (_fixture, server) = start().await;
    let response = get(&server, "/api/models/org/model/revision/main?blobs=true").await;
    assert_eq!(response.status, 200);
    let json = response.text();
    assert!(json.contains(r#""id":"org/model""#), "{json}");
    assert!(json.contains(r#""gated":false"#), "{json}");
    let commit = get(&server, "/org/model/resolve/main/README.md").await.header("X-Repo-Commit").map(str::to_owned);
    let commit = commit.expect("the commit");
    assert!(json.contains(&format!(r#""sha":"{commit}""#)), "{json}");
    assert!(json.contains(&format!(r#"{{"blobId":"{HELLO_BLOB_ID}","rfilename":"README.md","size":6}}"#)), "{json}");
    assert!(json.contains(r#""lfs":{"pointerSize":134,"sha256":"#), "{json}");
    assert!(json.contains(&format!(r#""rfilename":"model.gguf","size":{MODEL_SIZE}"#)), "{json}");
    // Siblings come sorted by path.
    let readme = json.find("README.md").expect("README.md is listed");
    let model = json.find("model.gguf").expect("model.gguf is listed");
    let nested = json.find("sub/nested.txt").expect("sub/nested.txt is listed");
    assert!(readme < model && model < nested, "{json}");

    let by_commit = get(&server, &format!("/api/models/org/model/revision/{commit}")).await;
    assert_eq!(by_commit.status, 200);
}

#[tokio::test]
async fn tree_lists_files_recursively() {
    let (_fixture, server) = start().await;
    let response = get(&server, "/api/models/org/model/tree/main?recursive=true").await;
    assert_eq!(response.status, 200);
    let json = response.text();
    let readme = format!(r#"{{"oid":"{HELLO_BLOB_ID}","path":"README.md","size":6,"type":"file"}}"#);
    assert!(json.contains(&readme), "{json}");
    assert!(json.contains(r#""path":"sub/nested.txt""#), "{json}");
    assert!(json.contains(r#""lfs":{"oid":"#), "{json}");
    assert!(json.starts_with('[') && json.ends_with(']'), "{json}");
}

#[tokio::test]
async fn unknown_things_are_not_found_with_an_error_code() {
    let (_fixture, server) = start().await;
    let cases = [
        ("/api/models/org/missing/revision/main", Some("RepoNotFound")),
        ("/api/models/org/model/revision/v2", Some("RevisionNotFound")),
        ("/org/model/resolve/v2/README.md", Some("RevisionNotFound")),
        ("/org/model/resolve/main/missing.txt", Some("EntryNotFound")),
        ("/org/missing/resolve/main/README.md", Some("RepoNotFound")),
        (&format!("/cdn/{}", "0".repeat(64)), Some("EntryNotFound")),
        ("/no/such/route", None),
    ];
    for (path, code) in cases {
        let response = get(&server, path).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.header("X-Error-Code"), code, "{path}");
        assert!(response.text().starts_with(r#"{"error":"#), "{path}: {}", response.text());
    }
}

#[tokio::test]
async fn a_malformed_request_is_refused() {
    let (_fixture, server) = start().await;
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).await.expect("connect");
    stream.write_all(b"NONSENSE\r\n\r\n").await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read the response");
    assert_eq!(parse_response(&raw).status, 400);
}

#[tokio::test]
async fn gated_repos_need_the_token() {
    let (_fixture, server) = start().await;
    server.gate("org/model", "secret");
    let api = "/api/models/org/model/revision/main";
    let file = "/org/model/resolve/main/README.md";

    let anonymous = get(&server, api).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("X-Error-Code"), Some("GatedRepo"));
    assert!(anonymous.text().contains("Access to model org/model is restricted"), "{}", anonymous.text());
    assert_eq!(get(&server, file).await.status, 401);

    let wrong = request(&server, "GET", file, &[("Authorization", "Bearer nope")]).await;
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.header("X-Error-Code"), Some("GatedRepo"));

    let granted = request(&server, "GET", api, &[("Authorization", "Bearer secret")]).await;
    assert_eq!(granted.status, 200);
    assert!(granted.text().contains(r#""gated":"manual""#), "{}", granted.text());
    let content = request(&server, "GET", file, &[("authorization", "Bearer secret")]).await;
    assert_eq!(content.body, b"hello\n");

    let cdn =
        request(&server, "GET", "/org/model/resolve/main/model.gguf", &[("Authorization", "Bearer secret")]).await;
    let location = cdn.header("Location").expect("a redirect");
    assert_eq!(get(&server, location).await.status, 200, "the CDN needs no token");

    assert_eq!(server.auth_headers_seen(), ["Bearer nope", "Bearer secret", "Bearer secret", "Bearer secret"]);
}

#[tokio::test]
async fn drop_connection_cuts_the_body_after_the_given_bytes() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    server.drop_connection("model.gguf", 2, 1000);
    for _ in 0..2 {
        let dropped = get(&server, &cdn).await;
        assert_eq!(dropped.status, 200);
        assert_eq!(dropped.header("Content-Length"), Some(MODEL_SIZE.to_string().as_str()));
        assert_eq!(dropped.body, &model_bytes()[..1000]);
    }
    let resumed = request(&server, "GET", &cdn, &[("Range", "bytes=1000-")]).await;
    assert_eq!(resumed.status, 206);
    assert!(resumed.body == model_bytes()[1000..], "the third request is complete");
    assert_eq!(server.content_requests("model.gguf"), 3);
}

#[tokio::test]
async fn drop_connection_applies_through_resolve_too() {
    let (_fixture, server) = start().await;
    server.drop_connection("README.md", 1, 2);
    assert_eq!(get(&server, "/org/model/resolve/main/README.md").await.body, b"he");
    assert_eq!(get(&server, "/org/model/resolve/main/README.md").await.body, b"hello\n");
}

#[tokio::test]
async fn corrupt_once_flips_the_middle_byte_once() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    let model = model_bytes();
    server.corrupt_once("model.gguf");

    // A range that misses the middle byte does not use up the corruption.
    let head = request(&server, "GET", &cdn, &[("Range", "bytes=0-99")]).await;
    assert_eq!(head.body, &model[..100]);

    let corrupted = get(&server, &cdn).await;
    let differences: Vec<usize> = (0..MODEL_SIZE).filter(|&index| corrupted.body[index] != model[index]).collect();
    assert_eq!(differences, [MODEL_SIZE / 2]);
    assert_eq!(corrupted.body[MODEL_SIZE / 2], model[MODEL_SIZE / 2] ^ 0xFF);

    let clean = get(&server, &cdn).await;
    assert!(clean.body == model, "the second full download is clean");
}

#[tokio::test]
async fn fail_status_answers_the_status_the_given_times() {
    let (_fixture, server) = start().await;
    server.fail_status("README.md", 503, 2);
    let path = "/org/model/resolve/main/README.md";
    assert_eq!(request(&server, "HEAD", path, &[]).await.status, 503);
    let failed = get(&server, path).await;
    assert_eq!(failed.status, 503);
    assert_eq!(failed.body, b"{}");
    assert_eq!(get(&server, path).await.status, 200);
    assert_eq!(server.content_requests("README.md"), 1);
}

#[tokio::test]
async fn stall_sends_some_bytes_then_holds_the_connection() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    server.stall("model.gguf", 500);
    let mut stream = send(&server, "GET", &cdn, &[]).await;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let body_start = loop {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "the connection stays open");
        received.extend_from_slice(&buffer[..read]);
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            if received.len() >= end + 4 + 500 {
                break end + 4;
            }
        }
    };
    assert_eq!(received.len() - body_start, 500);
    let more = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;
    assert!(more.is_err(), "nothing more arrives, and the connection is not closed: {more:?}");
    assert_eq!(server.bytes_served("model.gguf"), 500);
}

#[tokio::test]
async fn bytes_served_counts_body_bytes_on_both_routes() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    get(&server, "/org/model/resolve/main/README.md").await;
    request(&server, "HEAD", "/org/model/resolve/main/README.md", &[]).await;
    request(&server, "GET", &cdn, &[("Range", "bytes=0-9")]).await;
    server.drop_connection("model.gguf", 1, 123);
    get(&server, &cdn).await;
    assert_eq!(server.bytes_served("README.md"), 6);
    assert_eq!(server.bytes_served("model.gguf"), 10 + 123);
    assert_eq!(server.content_requests("model.gguf"), 2);

    server.reset_stats();
    assert_eq!(server.bytes_served("model.gguf"), 0);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn requests_are_logged_in_order() {
    let (_fixture, server) = start().await;
    get(&server, "/api/models/org/model/revision/main?blobs=true").await;
    request(&server, "HEAD", "/org/model/resolve/main/README.md", &[]).await;
    assert_eq!(
        server.requests(),
        ["GET /api/models/org/model/revision/main", "HEAD /org/model/resolve/main/README.md"]
    );
}

#[tokio::test]
async fn files_added_after_start_are_served() {
    let (fixture, server) = start().await;
    fixture.write("org/model/late.txt", b"hello\n");
    fixture.write("other/repo/a.txt", b"a");
    assert_eq!(get(&server, "/org/model/resolve/main/late.txt").await.body, b"hello\n");
    assert_eq!(get(&server, "/api/models/other/repo/revision/main").await.status, 200);
}

#[tokio::test]
async fn throttle_paces_the_body() {
    let (_fixture, server) = start().await;
    let cdn = model_cdn_path(&server).await;
    server.throttle(Some(400_000));
    let started = Instant::now();
    let response = request(&server, "GET", &cdn, &[("Range", "bytes=0-199999")]).await;
    let elapsed = started.elapsed();
    assert_eq!(response.body.len(), 200_000);
    assert!(elapsed >= Duration::from_millis(450), "200 kB at 400 kB/s took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "200 kB at 400 kB/s took {elapsed:?}");

    server.throttle(None);
    let started = Instant::now();
    get(&server, &cdn).await;
    assert!(started.elapsed() < Duration::from_secs(2), "unthrottled took {:?}", started.elapsed());
}

#[tokio::test]
async fn dropping_the_server_stops_accepting() {
    let (_fixture, server) = start().await;
    let port = server.port();
    drop(server);
    // Aborting the accept loop closes the listener on the runtime's next turn.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Err(_) => break,
            Ok(_) if Instant::now() < deadline => tokio::task::yield_now().await,
            Ok(_) => panic!("the server still accepts connections"),
        }
    }
}
