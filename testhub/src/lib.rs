//! A fake Hugging Face Hub on 127.0.0.1 that can misbehave on purpose.
//!
//! The download tests and the download benchmark need a Hub they control: one that serves real
//! files from a folder, speaks the few routes a Hub client uses, and can be told to drop a
//! connection, corrupt a byte, stall, answer an error status or slow down. A general HTTP library
//! would hide the bytes on the wire, so the server is a small HTTP/1.1 implementation written
//! directly over tokio's `TcpListener`.
//!
//! Repositories are folders: `root/{org}/{name}/**`. Start a server on a folder, point a client at
//! [`HubServer::url`], and arm faults or read statistics through the `&self` methods:
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use altiplano_testhub::HubServer;
//!
//! let hub = HubServer::start("/tmp/hub-root".into()).await?;
//! hub.drop_connection("model.gguf", 1, 4096);
//! // ... run the download against hub.url() ...
//! assert_eq!(hub.content_requests("model.gguf"), 2);
//! # Ok(())
//! # }
//! ```
//!
//! Routes (each response closes its connection):
//! - `GET /api/models/{org}/{name}/revision/{rev}`: the repository and its files.
//! - `GET /api/models/{org}/{name}/tree/{rev}[/{folder}]?recursive=true`: the file listing.
//! - `HEAD|GET /{org}/{name}/resolve/{rev}/{path}`: a regular file's content, or a redirect to the
//!   CDN for an LFS file.
//! - `HEAD|GET /cdn/{sha256}`: an LFS file's content.

mod body;
mod catalog;
mod faults;
mod http;
mod hub;
mod pacer;
mod routes;
mod server;
mod stats;

pub use server::HubServer;
