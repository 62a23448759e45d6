//! The reader child's limits protect the app: a huge file is refused before it is read, a reader
//! that writes without end is stopped at its output cap, and one that takes more memory than its
//! limit is stopped by the parent's watch (the only limit on macOS and Windows).
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use altiplano_core::documents::{self, DocumentError, Limits, OpenError};
use altiplano_core::store::Store;

/// A shell script standing in for a misbehaving reader child.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn document(dir: &Path) -> PathBuf {
    let path = dir.join("report.pdf");
    std::fs::write(&path, b"%PDF-1.4\n").expect("write document");
    path
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_refused_before_it_is_hashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db.sqlite3")).await.expect("store");
    let huge = dir.path().join("dump.pdf");
    // 64 GB that take no disk: hashing them first would take minutes, not milliseconds.
    std::fs::File::create(&huge).expect("create").set_len(64 << 30).expect("sparse");
    let never = Some(PathBuf::from("/nonexistent/reader"));
    let opened = tokio::time::timeout(Duration::from_secs(5), documents::open(&store, never, &huge))
        .await
        .expect("refused at once, not after reading the file");
    match opened {
        Err(OpenError::Document(DocumentError::TooLarge { size, limit, .. })) => {
            assert_eq!(size, 64 << 30);
            assert_eq!(limit, documents::MAX_FILE_BYTES);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(documents::saved::list(&store).await.expect("list").is_empty(), "nothing is saved for a refused file");
}

#[tokio::test]
async fn a_folder_is_not_a_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("db.sqlite3")).await.expect("store");
    let opened = documents::open(&store, Some(PathBuf::from("/nonexistent/reader")), dir.path()).await;
    match opened {
        Err(OpenError::Document(DocumentError::Unreadable { reason, .. })) => assert!(reason.contains("not a file")),
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reader_that_writes_without_end_is_stopped_at_its_output_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = script(dir.path(), "chatty", "exec yes 'page text page text page text'");
    let limits = Limits { time: Duration::from_secs(30), output: 1 << 20, ..Limits::default() };
    let result = documents::extract_isolated(&reader, &document(dir.path()), limits).await;
    match result {
        Err(DocumentError::Crashed { reason, .. }) => {
            assert!(reason.contains("wrote more than 1048576 bytes"), "reason: {reason}")
        }
        other => panic!("expected the reader to be stopped, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reader_that_takes_too_much_memory_is_stopped_by_the_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No address-space limit applies to this reader (it is not ours and sets none), as on macOS
    // and Windows: only the parent's watch of its resident memory can stop it.
    let reader = script(
        dir.path(),
        "hungry",
        "exec python3 -c 'import time; b = bytearray(700 << 20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(30)'",
    );
    let limits = Limits { time: Duration::from_secs(25), memory: 200 << 20, ..Limits::default() };
    let result = documents::extract_isolated(&reader, &document(dir.path()), limits).await;
    match result {
        Err(DocumentError::Crashed { reason, .. }) => {
            assert!(reason.contains("took more than 200.0 MiB"), "reason: {reason}")
        }
        other => panic!("expected the reader to be stopped for its memory, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reader_within_its_limits_still_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A reader that answers like ours, to show the caps leave a normal reading alone.
    let reader = script(
        dir.path(),
        "good",
        r#"printf '{"Ok":{"file":"x","pages":[{"number":1,"text":"Quarterly revenue rose."}],"warnings":[]}}'"#,
    );
    let limits = Limits { memory: 200 << 20, output: 1 << 20, ..Limits::default() };
    let result = documents::extract_isolated(&reader, &document(dir.path()), limits).await;
    match result {
        Ok(doc) => assert!(doc.pages.iter().any(|p| p.text.contains("Quarterly revenue"))),
        Err(e) => panic!("a reader within its limits failed: {e}"),
    }
}
