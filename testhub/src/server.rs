//! The server handle: binding, the accept loop, one task per connection, and the methods a test
//! uses to arm faults and read statistics.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::body::{self, BodySink};
use crate::catalog::Catalog;
use crate::http::{self, ReadError};
use crate::hub::Hub;
use crate::routes::{self, Reply, ReplyBody};

/// How long the accept loop waits after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A running fake Hub on 127.0.0.1.
///
/// The server runs on the tokio runtime that started it. Dropping the handle, or calling
/// [`HubServer::shutdown`], stops accepting connections and aborts the open ones.
#[derive(Debug)]
pub struct HubServer {
    address: SocketAddr,
    hub: Arc<Hub>,
    accept_loop: JoinHandle<()>,
}

impl HubServer {
    /// Serves the repositories under `root` (`root/{org}/{name}/**`) on a free port.
    pub async fn start(root: PathBuf) -> io::Result<Self> {
        Self::start_on(root, 0).await
    }

    /// Serves the repositories under `root` on `port` of 127.0.0.1; port 0 picks a free one.
    pub async fn start_on(root: PathBuf, port: u16) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let address = listener.local_addr()?;
        let hub = Arc::new(Hub::new(Catalog::new(root)));
        let accept_loop = tokio::spawn(accept_connections(listener, Arc::clone(&hub)));
        Ok(Self { address, hub, accept_loop })
    }

    /// The base URL, `http://127.0.0.1:{port}`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Stops accepting connections and aborts the open ones.
    pub fn shutdown(&self) {
        self.accept_loop.abort();
    }

    /// Makes `repo` (`org/name`) gated: its `/api` and `/resolve` routes then require
    /// `Authorization: Bearer {token}` (401 without the header, 403 with another token).
    pub fn gate(&self, repo: &str, token: &str) {
        self.hub.gate(repo, token);
    }

    /// The next `times` GETs of `file` (its path in the repository) send the response head and at
    /// most `after_bytes` body bytes, then close the connection.
    pub fn drop_connection(&self, file: &str, times: u32, after_bytes: u64) {
        self.hub.faults.drop_connection(file, times, after_bytes);
    }

    /// The next GET of `file` whose range includes the byte at offset `size / 2` sends that byte
    /// XOR 0xFF. Only once.
    pub fn corrupt_once(&self, file: &str) {
        self.hub.faults.corrupt_once(file);
    }

    /// Metadata for `file` (`X-Linked-Size` and the API's sizes) claims `size` bytes, as a
    /// server describing a file too large for the client's disk would.
    pub fn advertise_size(&self, file: &str, size: u64) {
        self.hub.faults.advertise_size(file, size);
    }

    /// Metadata for `file` (the listing's `lfs.sha256` and `blobId`, `X-Linked-Etag`, `ETag`)
    /// names `hash` instead of the file's hashes, as a hostile server might (`/home/u/.bashrc`).
    pub fn advertise_hash(&self, file: &str, hash: &str) {
        self.hub.faults.advertise_hash(file, hash);
    }

    /// File listings and HEAD requests on resolve URLs are accepted and never answered (for ten
    /// minutes), as a stalled server's are; content still flows.
    pub fn hang_metadata(&self, hang: bool) {
        self.hub.faults.hang_metadata(hang);
    }

    /// Every repo's listing (`sha`) and resolve replies (`X-Repo-Commit`) name `commit`.
    pub fn advertise_commit(&self, commit: &str) {
        self.hub.faults.advertise_commit(commit);
    }

    /// The next GET of `file` sends `after_bytes` body bytes, then nothing more, keeping the
    /// connection open until the peer closes it or ten minutes pass.
    pub fn stall(&self, file: &str, after_bytes: u64) {
        self.hub.faults.stall(file, after_bytes);
    }

    /// The next `times` GETs or HEADs of `file`, through `/resolve` or `/cdn`, answer `status`
    /// with the body `{}`.
    pub fn fail_status(&self, file: &str, status: u16, times: u32) {
        self.hub.faults.fail_status(file, status, times);
    }

    /// Disarms every fault set with the methods above.
    pub fn clear_faults(&self) {
        self.hub.faults.clear();
    }

    /// Limits the body bytes sent by all connections together to `bytes_per_sec`; `None` removes
    /// the limit. Takes effect for the chunks sent afterwards.
    pub fn throttle(&self, bytes_per_sec: Option<u64>) {
        self.hub.pacer.set_rate(bytes_per_sec);
    }

    /// Body bytes of `file` written to sockets, over all requests and both routes.
    pub fn bytes_served(&self, file: &str) -> u64 {
        self.hub.stats.bytes_served(file)
    }

    /// GETs that started sending `file`'s body.
    pub fn content_requests(&self, file: &str) -> u32 {
        self.hub.stats.content_requests(file)
    }

    /// Every request so far, as `METHOD /path` (percent-decoded, without the query), in order.
    pub fn requests(&self) -> Vec<String> {
        self.hub.stats.requests()
    }

    /// The raw `Authorization` header of every request that carried one, in order.
    pub fn auth_headers_seen(&self) -> Vec<String> {
        self.hub.stats.authorization_headers()
    }

    /// Forgets the requests, headers and counters recorded so far; faults stay armed.
    pub fn reset_stats(&self) {
        self.hub.stats.reset();
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Accepts connections forever, one task each.
///
/// The tasks live in a `JoinSet` owned by this loop, so aborting the loop aborts them too.
async fn accept_connections(listener: TcpListener, hub: Arc<Hub>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(Arc::clone(&hub), stream));
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
            // Reaps finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads one request, answers it and closes the connection.
async fn serve_connection(hub: Arc<Hub>, mut stream: TcpStream) {
    // Heads and paced chunks are small writes that must not wait for acknowledgements.
    let _ = stream.set_nodelay(true);
    let request = match http::read_request(&mut stream).await {
        Ok(request) => request,
        Err(ReadError::Gone) => return,
        Err(ReadError::Malformed) => {
            let reply = routes::error_reply(400, None, "malformed request");
            let _ = send_reply(&hub, &mut stream, reply, false).await;
            return;
        }
    };
    hub.stats.record_request(&request.method, &request.path, request.header("authorization"));
    let reply = routes::route(&hub, &request).await;
    // A failed write means the peer went away; there is nobody left to tell.
    let _ = send_reply(&hub, &mut stream, reply, request.is_head()).await;
}

/// Writes a reply, applying the faults armed for a file body, and ends the connection.
async fn send_reply(hub: &Hub, stream: &mut TcpStream, reply: Reply, head_only: bool) -> io::Result<()> {
    match reply.body {
        ReplyBody::Bytes(body) => {
            let mut bytes = reply.head.encode(body.len() as u64);
            if !head_only {
                bytes.extend_from_slice(&body);
            }
            stream.write_all(&bytes).await?;
            stream.shutdown().await
        }
        ReplyBody::Announced(length) => {
            stream.write_all(&reply.head.encode(length)).await?;
            stream.shutdown().await
        }
        ReplyBody::File(source) => {
            let plan = hub.faults.plan_body(&source.repo_path, source.file_size, source.start, source.end);
            stream.write_all(&reply.head.encode(source.end - source.start)).await?;
            hub.stats.record_content_request(&source.repo_path);
            body::send_body(source, plan, BodySink { stream, pacer: &hub.pacer, stats: &hub.stats }).await
        }
    }
}
