//! Reading documents: PDF (pdf_oxide, page by page), DOCX (office_oxide), HTML (html2text),
//! Markdown and plain text in any common encoding (read by `altiplano_formats::document`, which
//! the fuzz targets drive), cleaned up for reading by a model. Formats without pages (DOCX,
//! HTML, text) come back as one page.
//!
//! PDF parsing runs isolated: [`extract_isolated`] starts a child process (this same program,
//! told by [`CHILD_ENV`] to extract one file and print it as JSON) with a time limit and a memory
//! limit, so a hostile or broken file can fail but never hang, crash or bloat the app. Every
//! program that calls `extract_isolated` starts `main` with [`run_child_if_requested`].
//!
//! Clean-up ([`clean`]): Unicode NFKC (ligatures such as `ﬁ` become `fi`), words hyphenated
//! across line ends joined, and lines repeated at the top or bottom of most pages (running
//! headers, footers, page numbers) removed. Pages without a text layer are reported.

mod clean;
pub mod desk;
pub mod followup;
pub mod saved;
pub mod summary;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use altiplano_formats::document::{self, RawPages, ReadProblem};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

pub use clean::clean;
pub use followup::DocumentAnswer;
pub use saved::{SavedDocument, SummaryNode};
pub use summary::{PageCitation, Summary, SummaryError, SummaryOptions, SummaryProgress};

/// Environment variable that makes a program extract one file and exit (see module docs).
pub const CHILD_ENV: &str = "ALTIPLANO_EXTRACT_CHILD";
/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: u64 = 512 << 20;

/// One page of text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// 1-based page number (for text formats: 1).
    pub number: u32,
    /// The page's text, cleaned.
    pub text: String,
}

/// A document's text, page by page, with what the reader should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The file as given.
    pub file: String,
    /// Its pages.
    pub pages: Vec<Page>,
    /// Problems that did not stop extraction (pages without text, removed headers, …).
    pub warnings: Vec<String>,
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DocumentError {
    /// No such file.
    #[error("{0} does not exist")]
    NotFound(String),
    /// The file could not be read.
    #[error("cannot read {file}: {reason}")]
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A format Altiplano does not read.
    #[error("{file} is not a format Altiplano reads ({what}); use PDF, DOCX, HTML, Markdown or plain text")]
    Unsupported {
        /// The file.
        file: String,
        /// What it seems to be.
        what: String,
    },
    /// Password-protected.
    #[error("{0} is encrypted with a password; open it in a PDF reader, save an unprotected copy, and use that")]
    Encrypted(String),
    /// Not a valid file of its kind.
    #[error("{file} is damaged or not a valid PDF: {reason}")]
    Malformed {
        /// The file.
        file: String,
        /// What the parser said.
        reason: String,
    },
    /// Over [`MAX_FILE_BYTES`].
    #[error("{file} is too large ({size} bytes; the limit is {limit})")]
    TooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Extraction ran out of time.
    #[error("reading {0} took too long and was stopped; the file may be damaged")]
    TimedOut(String),
    /// The extracting process died (out of memory, or a crash in the parser).
    #[error("reading {file} failed ({reason}); the file may be damaged or hostile")]
    Crashed {
        /// The file.
        file: String,
        /// How it ended.
        reason: String,
    },
}

/// Limits for isolated extraction.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time.
    pub time: Duration,
    /// Memory of the child, bytes: its address space where the system limits it, and its
    /// resident memory as the parent watches it everywhere.
    pub memory: u64,
    /// What the child may write (its JSON), bytes.
    pub output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        // The text of a file at the size limit, escaped, with room to spare.
        Self { time: Duration::from_secs(60), memory: 4 << 30, output: 4 * MAX_FILE_BYTES }
    }
}

/// Resolves once the process `pid` holds more than `limit` bytes of resident memory (looked at
/// every 100 ms); never when there is no such process to watch.
async fn over_memory(pid: Option<u32>, limit: u64) {
    let Some(pid) = pid.map(sysinfo::Pid::from_u32) else { return std::future::pending().await };
    let mut system = sysinfo::System::new();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        system.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&[pid]),
            true,
            sysinfo::ProcessRefreshKind::nothing().with_memory(),
        );
        match system.process(pid) {
            Some(process) if process.memory() > limit => return,
            Some(_) => {}
            None => return std::future::pending().await,
        }
    }
}

/// Checks that `path` is a file of at most [`MAX_FILE_BYTES`], before anything reads it.
fn check_size(path: &Path, file: &str) -> Result<(), DocumentError> {
    let meta = std::fs::metadata(path).map_err(|_| DocumentError::NotFound(file.to_string()))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(DocumentError::TooLarge { file: file.to_string(), size: meta.len(), limit: MAX_FILE_BYTES });
    }
    if !meta.is_file() {
        return Err(DocumentError::Unreadable { file: file.to_string(), reason: "it is not a file".into() });
    }
    Ok(())
}

/// Extracts `path` in this process. Use [`extract_isolated`] for files you do not trust.
pub fn extract(path: &Path) -> Result<Document, DocumentError> {
    let file = path.display().to_string();
    check_size(path, &file)?;
    let bytes =
        std::fs::read(path).map_err(|e| DocumentError::Unreadable { file: file.clone(), reason: e.to_string() })?;
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let RawPages { pages: raw_pages, mut warnings } = document::read(bytes, &ext).map_err(|problem| match problem {
        ReadProblem::Encrypted => DocumentError::Encrypted(file.clone()),
        ReadProblem::Malformed(reason) => DocumentError::Malformed { file: file.clone(), reason },
        ReadProblem::Unsupported(what) => DocumentError::Unsupported { file: file.clone(), what },
    })?;
    let (pages, clean_warnings) = clean(raw_pages);
    warnings.extend(clean_warnings);
    Ok(Document { file, pages, warnings })
}

/// Why a document could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Opens a document: one read before (the same bytes) comes from `store` at once, with its
/// summary if one was finished; a new one is read in a child process running `reader`
/// (default: this program; see [`extract_isolated`]) and saved.
pub async fn open(
    store: &crate::store::Store,
    reader: Option<PathBuf>,
    path: &Path,
) -> Result<(SavedDocument, Option<Summary>), OpenError> {
    let shown = path.display().to_string();
    // Sized before it is hashed: a 40 GB drop is refused at once, not after reading 40 GB.
    check_size(path, &shown)?;
    let owned = path.to_path_buf();
    let sha256 = tokio::task::spawn_blocking(move || file_sha256(&owned))
        .await
        .map_err(|e| DocumentError::Crashed { file: shown.clone(), reason: e.to_string() })??;
    if let Some(doc) = saved::find(store, &sha256, &shown).await? {
        let summary = saved::finished_tree(store, doc.id).await?.map(|nodes| summary::finished(doc.id, nodes));
        return Ok((doc, summary));
    }
    let program = match reader {
        Some(program) => program,
        None => std::env::current_exe().map_err(|e| DocumentError::Crashed {
            file: shown.clone(),
            reason: format!("cannot find the reader program: {e}"),
        })?,
    };
    let doc = extract_isolated(&program, path, Limits::default()).await?;
    let title = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(shown);
    Ok((saved::insert(store, &sha256, &title, &doc).await?, None))
}

/// SHA-256 of the file's bytes, hex: the key a document is saved under.
pub fn file_sha256(path: &Path) -> Result<String, DocumentError> {
    use sha2::Digest;
    let file = path.display().to_string();
    let mut reader = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DocumentError::NotFound(file.clone()),
        _ => DocumentError::Unreadable { file: file.clone(), reason: e.to_string() },
    })?;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut reader, &mut hasher)
        .map_err(|e| DocumentError::Unreadable { file: file.clone(), reason: e.to_string() })?;
    Ok(hex::encode(hasher.finalize()))
}

/// If this process was started by [`extract_isolated`], extracts the named file, prints the
/// result as JSON and returns the exit code; otherwise returns `None` at once. Call it first
/// thing in `main`.
pub fn run_child_if_requested() -> Option<std::process::ExitCode> {
    let path = std::env::var_os(CHILD_ENV)?;
    if let Some(limit) = std::env::var("ALTIPLANO_EXTRACT_MEMORY").ok().and_then(|m| m.parse::<u64>().ok()) {
        // Where the system takes an address-space limit, a bomb fails its allocation here; the
        // parent also watches this process's memory and kills it past the limit (macOS and
        // Windows have no such limit to set).
        #[cfg(unix)]
        if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, limit, limit) {
            eprintln!("altiplano-reader: no memory limit ({e}); the parent's watch stays");
        }
        #[cfg(not(unix))]
        let _ = limit;
    }
    let result: Result<Document, DocumentError> = extract(Path::new(&path));
    match serde_json::to_string(&result) {
        Ok(json) => {
            println!("{json}");
            Some(std::process::ExitCode::SUCCESS)
        }
        Err(_) => Some(std::process::ExitCode::FAILURE),
    }
}

/// Extracts `path` in a child process running `program` (normally `std::env::current_exe()`),
/// under `limits`. The child is killed when time runs out.
pub async fn extract_isolated(program: &Path, path: &Path, limits: Limits) -> Result<Document, DocumentError> {
    let file = path.display().to_string();
    let absolute: PathBuf = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if !absolute.exists() {
        return Err(DocumentError::NotFound(file));
    }
    let mut child = tokio::process::Command::new(program)
        .env(CHILD_ENV, &absolute)
        .env("ALTIPLANO_EXTRACT_MEMORY", limits.memory.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| DocumentError::Crashed { file: file.clone(), reason: format!("cannot start the reader: {e}") })?;
    let stdout =
        child.stdout.take().ok_or_else(|| DocumentError::Crashed { file: file.clone(), reason: "no output".into() })?;
    let pid = child.id();
    let run = async {
        // The output is capped: a reader that writes without end (or a bomb's text) never
        // fills the app's memory.
        let mut out = Vec::new();
        stdout.take(limits.output + 1).read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        if out.len() as u64 > limits.output {
            return Ok(Err(format!("the reader wrote more than {} bytes", limits.output)));
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(Ok((out, status)))
    };
    let watched = async {
        tokio::select! {
            done = run => Some(done),
            () = over_memory(pid, limits.memory) => None,
        }
    };
    let (out, status) = match tokio::time::timeout(limits.time, watched).await {
        Err(_) => return Err(DocumentError::TimedOut(file)),
        Ok(None) => {
            return Err(DocumentError::Crashed {
                file,
                reason: format!(
                    "reading it took more than {} of memory; the reader was stopped",
                    crate::download::human_bytes(limits.memory)
                ),
            })
        }
        Ok(Some(Err(reason))) | Ok(Some(Ok(Err(reason)))) => return Err(DocumentError::Crashed { file, reason }),
        Ok(Some(Ok(Ok(done)))) => done,
    };
    match serde_json::from_slice::<Result<Document, DocumentError>>(&out) {
        Ok(result) => result.map(|mut doc| {
            doc.file = file;
            doc
        }),
        Err(_) => Err(DocumentError::Crashed {
            file,
            reason: match status.code() {
                Some(code) => format!("the reader exited with status {code}"),
                None => "the reader was killed (out of memory?)".into(),
            },
        }),
    }
}
