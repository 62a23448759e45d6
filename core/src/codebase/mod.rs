//! Questions about a code folder: indexing and retrieval.
//!
//! [`CodeIndex::update`] walks the folder ([`walk`]: git's ignore rules, binary / huge /
//! minified / generated files skipped and counted), cuts each file into syntax-aware chunks
//! ([`chunk`]: tree-sitter for eight languages, line windows for the rest) and keeps them in a
//! tantivy index under the data directory: BM25 over the code with identifiers split into words
//! ([`terms`]), symbol names and paths. Updates are incremental — only files whose size and
//! modification time changed are read, and only those whose content hash changed are
//! re-indexed; deleted files leave the index. With an embedding model
//! ([`CodeIndex::with_embedder`]) each chunk also gets a sentence vector, stored in its
//! document beside the words (so only the chunks of changed files are embedded again), and
//! [`CodeIndex::search`] fuses the BM25 ranking with the vectors' (reciprocal rank fusion, the
//! repo map's PageRank as a small prior, at most two chunks of one file in the top results
//! while other files are relevant); without one it ranks by BM25 alone and
//! [`CodeIndex::retrieval`] says so. Hits come back as `path:start-end` ranges.

pub mod answer;
pub mod chunk;
pub mod desk;
pub mod terms;
pub mod walk;
mod watch;

pub use watch::Watch;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING};
use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer};
use tantivy::{doc, Index, IndexReader, TantivyDocument, Term};

use crate::engine::embed::{vector_bytes, vector_from_bytes};

pub use walk::Skip;

/// Bumped when the index layout changes; an index of another version is rebuilt.
const SCHEMA_VERSION: u32 = 3;
const TOKENIZER: &str = "code";

/// Errors from indexing and search.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// The folder does not exist or is not a folder.
    #[error("{} is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// The index could not be read or written.
    #[error("the code index failed: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The embedding model failed on the chunks.
    #[error(transparent)]
    Embed(#[from] crate::engine::embed::EmbedError),
    /// A file of the index could not be read or written.
    #[error("cannot write the code index in {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Path relative to the folder.
    pub path: String,
    /// First line, 1-based.
    pub start_line: usize,
    /// Last line, inclusive.
    pub end_line: usize,
    /// The definition's name, empty for a line window.
    pub symbol: String,
    /// The ranking score: BM25's, or the fused score in hybrid search (higher is better).
    pub score: f32,
}

/// Which retrieval a search used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Retrieval {
    /// Keywords (BM25) and sentence vectors, fused.
    Hybrid {
        /// The embedding model's name.
        model: String,
    },
    /// Keywords (BM25) only.
    Keywords {
        /// Why there are no vectors.
        reason: KeywordsOnly,
    },
}

/// Why a search uses keywords only: each face words it (the app in the user's language).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum KeywordsOnly {
    /// No embedding model is installed (or it is turned off with `ALTIPLANO_EMBEDDING_MODEL=""`).
    NoModel,
    /// The embedding model did not load, or failed on this text.
    ModelFailed {
        /// What went wrong, in English (for logs and the CLI).
        error: String,
    },
}

impl KeywordsOnly {
    /// The model failed with `error`.
    pub fn failed(error: &dyn std::fmt::Display) -> Self {
        Self::ModelFailed { error: error.to_string() }
    }
}

impl std::fmt::Display for KeywordsOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoModel => write!(f, "no embedding model; models/fetch-starter.sh fetches the starter one"),
            Self::ModelFailed { error } => write!(f, "the embedding model failed: {error}"),
        }
    }
}

impl std::fmt::Display for Retrieval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hybrid { model } => write!(f, "hybrid: keywords and {model} embeddings"),
            Self::Keywords { reason } => write!(f, "keywords only ({reason})"),
        }
    }
}

/// How a search ranks, for comparisons (the benchmark); products use [`Ranking::Best`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// Hybrid when an embedding model is there, else keywords.
    Best,
    /// BM25 alone.
    Keywords,
    /// The vectors alone (empty without an embedding model).
    Dense,
}

/// What an update did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexReport {
    /// Files the walk found.
    pub files_seen: u64,
    /// Files read from disk (their size or modification time changed, or they are new).
    pub files_read: u64,
    /// Files (re-)indexed because their content is new or changed.
    pub files_indexed: u64,
    /// Files left as they were.
    pub files_unchanged: u64,
    /// Files that left the index because they are gone.
    pub files_removed: u64,
    /// Files left out, by reason.
    pub skipped: BTreeMap<Skip, u64>,
    /// Chunks written.
    pub chunks_indexed: u64,
    /// Bytes of the files indexed.
    pub bytes_indexed: u64,
    /// Chunks in the whole index.
    pub chunks_total: u64,
    /// Chunks given a new vector by the embedding model.
    pub chunks_embedded: u64,
    /// Milliseconds spent embedding.
    pub embed_ms: u64,
    /// How long it took.
    pub elapsed_ms: u64,
}

/// What [`CodeIndex::embed_pending`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EmbedReport {
    /// Chunks given a vector.
    pub chunks_embedded: u64,
    /// Milliseconds it took.
    pub embed_ms: u64,
}

impl IndexReport {
    /// Files skipped, all reasons.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Progress of an update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IndexProgress {
    /// Files handled so far.
    pub files_done: u64,
    /// Files to handle.
    pub files_total: u64,
    /// Files per second so far.
    pub files_per_second: f64,
    /// Chunks embedded so far (while the embedding model runs; else 0).
    pub chunks_embedded: u64,
    /// Chunks to embed in this update.
    pub chunks_to_embed: u64,
    /// Chunks embedded per second so far.
    pub chunks_per_second: f64,
}

impl IndexProgress {
    fn files(files_done: u64, files_total: u64, files_per_second: f64) -> Self {
        Self {
            files_done,
            files_total,
            files_per_second,
            chunks_embedded: 0,
            chunks_to_embed: 0,
            chunks_per_second: 0.0,
        }
    }

    /// Seconds left of the embedding, from its rate so far.
    pub fn embed_seconds_left(&self) -> Option<f64> {
        (self.chunks_per_second > 0.0 && self.chunks_to_embed > self.chunks_embedded)
            .then(|| (self.chunks_to_embed - self.chunks_embedded) as f64 / self.chunks_per_second)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    root: PathBuf,
    files: HashMap<String, FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct FileEntry {
    size: u64,
    mtime_ns: u128,
    hash: String,
    skip: Option<Skip>,
    /// The definitions in the file (name, first line), for the repo map.
    #[serde(default)]
    symbols: Vec<(String, usize)>,
    /// The embedding model whose vectors the file's chunks carry.
    #[serde(default)]
    embedded: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    path_key: Field,
    path: Field,
    symbol: Field,
    symbol_name: Field,
    content: Field,
    start_line: Field,
    end_line: Field,
    vector: Field,
}

/// A changed file, read and parsed: its hash, its chunks and its text.
type Prepared = (String, Vec<chunk::Chunk>, String);

/// A chunk's place and vector, as dense search scans them.
#[derive(Debug)]
struct DenseRow {
    path: String,
    start_line: usize,
    end_line: usize,
    symbol: String,
    vector: Vec<f32>,
}

/// Reciprocal rank fusion's constant (the usual 60).
const RRF_K: f32 = 60.0;
/// Weight of the repo map's rank of a hit's file, next to the two rankings' weight of 1.
const PRIOR_WEIGHT: f32 = 0.25;
/// Candidates each ranking contributes to fusion.
const FUSION_DEPTH: usize = 60;
/// Chunks of one file in the top results while other files still have relevant chunks.
const PER_FILE: usize = 2;

/// A folder's index. See the module documentation.
pub struct CodeIndex {
    root: PathBuf,
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Held for the whole of an update, so updates run one at a time.
    manifest: std::sync::Mutex<Manifest>,
    repo_map: std::sync::Mutex<Option<(usize, String)>>,
    embedder: Option<Arc<crate::engine::embed::Embedder>>,
    /// Why there is no embedding model, when it failed to load.
    no_vectors: Option<KeywordsOnly>,
    /// The vectors of the index, read once after each update.
    dense: std::sync::Mutex<Option<Arc<Vec<DenseRow>>>>,
    /// Each file's place in the repo map's PageRank order, computed once after each update.
    ranks: std::sync::Mutex<Option<Arc<HashMap<String, usize>>>>,
    /// An [`CodeIndex::embed_pending`] is running.
    embedding: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CodeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeIndex").field("root", &self.root).field("dir", &self.dir).finish()
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |stored: bool| {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let options = TextOptions::default().set_indexing_options(indexing);
        if stored {
            options.set_stored()
        } else {
            options
        }
    };
    let fields = Fields {
        path_key: builder.add_text_field("path_key", STRING | STORED),
        path: builder.add_text_field("path", text(false)),
        symbol: builder.add_text_field("symbol", text(false)),
        symbol_name: builder.add_text_field("symbol_name", STORED),
        content: builder.add_text_field("content", text(false)),
        start_line: builder.add_u64_field("start_line", STORED),
        end_line: builder.add_u64_field("end_line", STORED),
        vector: builder.add_bytes_field("vector", STORED),
    };
    (builder.build(), fields)
}

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(48))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

impl CodeIndex {
    /// Where the index of `root` lives under `data_dir`.
    pub fn index_dir(data_dir: &Path, root: &Path) -> PathBuf {
        let key = hex::encode(sha2::Sha256::digest(root.to_string_lossy().as_bytes()));
        data_dir.join("code").join(&key[..16])
    }

    /// Opens (or creates) the index of `root` kept under `data_dir`. Nothing is indexed yet:
    /// call [`CodeIndex::update`].
    pub fn open(data_dir: &Path, root: &Path) -> Result<Self, CodeError> {
        let root = std::fs::canonicalize(root).map_err(|_| CodeError::NotAFolder(root.to_path_buf()))?;
        if !root.is_dir() {
            return Err(CodeError::NotAFolder(root));
        }
        let dir = Self::index_dir(data_dir, &root);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CodeError::Io { path, source }
        };
        let manifest_path = dir.join("manifest.json");
        let manifest: Option<Manifest> = std::fs::read(&manifest_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(|m: &Manifest| m.version == SCHEMA_VERSION && m.root == root);
        let (schema, fields) = schema();
        let (index, manifest) = match manifest {
            Some(manifest) => match Index::open_in_dir(dir.join("tantivy")) {
                Ok(index) => (index, manifest),
                Err(_) => Self::create(&dir, &root, schema)?,
            },
            None => Self::create(&dir, &root, schema)?,
        };
        index.tokenizers().register(TOKENIZER, analyzer());
        let reader = index.reader()?;
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self {
            root,
            dir,
            index,
            reader,
            fields,
            manifest: std::sync::Mutex::new(manifest),
            repo_map: std::sync::Mutex::new(None),
            embedder: None,
            no_vectors: None,
            dense: std::sync::Mutex::new(None),
            ranks: std::sync::Mutex::new(None),
            embedding: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// [`CodeIndex::open`] with the embedding model search uses for code
    /// ([`crate::search_models::load`]'s outcome): with one, searches are hybrid; one that
    /// failed to load leaves keywords only, and [`CodeIndex::retrieval`] says why.
    pub fn open_with_model(
        data_dir: &Path,
        root: &Path,
        model: Result<Option<Arc<crate::engine::embed::Embedder>>, String>,
    ) -> Result<Self, CodeError> {
        let index = Self::open(data_dir, root)?;
        Ok(match model {
            Ok(None) => index,
            Ok(Some(embedder)) => index.with_embedder(embedder),
            Err(e) => {
                tracing::warn!("searching code by keywords only: {e}");
                Self { no_vectors: Some(KeywordsOnly::failed(&e)), ..index }
            }
        })
    }

    /// Gives the index an embedding model: the next [`CodeIndex::update`] embeds every chunk
    /// that has no vector from this model yet, and searches become hybrid.
    pub fn with_embedder(mut self, embedder: Arc<crate::engine::embed::Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// The retrieval searches use now.
    pub fn retrieval(&self) -> Retrieval {
        match &self.embedder {
            Some(e) => Retrieval::Hybrid { model: e.name().to_owned() },
            None => Retrieval::Keywords { reason: self.no_vectors.clone().unwrap_or(KeywordsOnly::NoModel) },
        }
    }

    fn create(dir: &Path, root: &Path, schema: Schema) -> Result<(Index, Manifest), CodeError> {
        let tantivy_dir = dir.join("tantivy");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(&tantivy_dir).map_err(|source| CodeError::Io { path: tantivy_dir.clone(), source })?;
        let index = Index::create_in_dir(&tantivy_dir, schema)?;
        Ok((index, Manifest { version: SCHEMA_VERSION, root: root.to_path_buf(), files: HashMap::new() }))
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Brings the index up to date with the folder, vectors included: [`CodeIndex::update_words`]
    /// then [`CodeIndex::embed_pending`]; `progress` is called as files are handled and chunks
    /// embedded. Searches keep working meanwhile; a second update waits for the first.
    pub fn update(&self, mut progress: impl FnMut(IndexProgress)) -> Result<IndexReport, CodeError> {
        let mut report = self.update_words(&mut progress)?;
        let embedded = self.embed_pending(&mut progress, &tokio_util::sync::CancellationToken::new())?;
        report.chunks_embedded = embedded.chunks_embedded;
        report.embed_ms = embedded.embed_ms;
        Ok(report)
    }

    /// Brings the words of the index up to date with the folder (only changed files are read):
    /// keyword search is complete when this returns. Chunks of new or changed files have no
    /// vector yet; [`CodeIndex::embed_pending`] gives them one.
    pub fn update_words(&self, mut progress: impl FnMut(IndexProgress)) -> Result<IndexReport, CodeError> {
        let mut manifest = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let mut report = IndexReport::default();
        let (files, walk_skips) = walk::list(&self.root);
        report.skipped = walk_skips;
        report.files_seen = files.len() as u64;
        let total = files.len() as u64;

        // Files whose size and modification time are as recorded are not even read.
        let mut changed = Vec::new();
        for file in &files {
            match manifest.files.get(&file.path) {
                Some(old) if old.size == file.size && old.mtime_ns == file.mtime_ns => {
                    report.files_unchanged += 1;
                    if let Some(skip) = old.skip {
                        *report.skipped.entry(skip).or_default() += 1;
                    }
                }
                _ => changed.push(file),
            }
        }
        report.files_read = changed.len() as u64;
        progress(IndexProgress::files(total - changed.len() as u64, total, 0.0));

        // Reading, hashing and parsing run on every core; the index writer takes the results.
        let prepared: Vec<(&walk::SourceFile, Result<Prepared, Skip>)> = changed
            .par_iter()
            .map(|file| {
                let result = walk::read_text(file).map(|text| {
                    let hash = hex::encode(sha2::Sha256::digest(text.as_bytes()));
                    let chunks = chunk::chunk_file(&file.path, &text);
                    (hash, chunks, text)
                });
                (*file, result)
            })
            .collect();

        let writer: tantivy::IndexWriter = self.index.writer(64 << 20)?;
        let f = self.fields;
        // Files to (re-)index.
        let mut fresh: Vec<(String, Vec<chunk::Chunk>, String)> = Vec::new();
        for (i, (file, result)) in prepared.into_iter().enumerate() {
            let old = manifest.files.get(&file.path).cloned();
            let entry = match result {
                Err(skip) => {
                    *report.skipped.entry(skip).or_default() += 1;
                    if old.as_ref().is_some_and(|o| o.skip.is_none()) {
                        writer.delete_term(Term::from_field_text(f.path_key, &file.path));
                    }
                    FileEntry {
                        size: file.size,
                        mtime_ns: file.mtime_ns,
                        hash: String::new(),
                        skip: Some(skip),
                        symbols: Vec::new(),
                        embedded: None,
                    }
                }
                Ok((hash, chunks, text)) => {
                    let symbols: Vec<(String, usize)> = chunks
                        .iter()
                        .filter(|c| !c.symbol.is_empty())
                        .map(|c| (c.symbol.clone(), c.start_line))
                        .collect();
                    let same = old.as_ref().is_some_and(|o| o.hash == hash && o.skip.is_none());
                    let embedded = if same {
                        report.files_unchanged += 1;
                        old.as_ref().and_then(|o| o.embedded.clone())
                    } else {
                        writer.delete_term(Term::from_field_text(f.path_key, &file.path));
                        report.files_indexed += 1;
                        report.chunks_indexed += chunks.len() as u64;
                        report.bytes_indexed += text.len() as u64;
                        fresh.push((file.path.clone(), chunks, text));
                        None
                    };
                    FileEntry { size: file.size, mtime_ns: file.mtime_ns, hash, skip: None, symbols, embedded }
                }
            };
            manifest.files.insert(file.path.clone(), entry);
            if i % 64 == 0 {
                let done = total - report.files_read + i as u64 + 1;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                progress(IndexProgress::files(done, total, done as f64 / secs));
            }
        }

        for (path, chunks, text) in &fresh {
            self.add_chunks(&writer, path, chunks, &chunk_bodies(chunks, text), &[])?;
        }

        let present: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let gone: Vec<String> =
            manifest.files.keys().filter(|p| !present.contains(String::as_str(p))).cloned().collect();
        for path in gone {
            writer.delete_term(Term::from_field_text(f.path_key, &path));
            manifest.files.remove(&path);
            report.files_removed += 1;
        }
        let mut writer = writer;
        writer.commit()?;
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        self.save_manifest(&manifest)?;
        drop(manifest);
        *self.repo_map.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.dense.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.ranks.lock().unwrap_or_else(|p| p.into_inner()) = None;
        report.chunks_total = self.reader.searcher().num_docs();
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let secs = started.elapsed().as_secs_f64().max(1e-3);
        progress(IndexProgress::files(total, total, total as f64 / secs));
        Ok(report)
    }

    fn save_manifest(&self, manifest: &Manifest) -> Result<(), CodeError> {
        let path = self.dir.join("manifest.json");
        let bytes = serde_json::to_vec(manifest).map_err(|e| CodeError::Io { path: path.clone(), source: e.into() })?;
        crate::download::cache::write_atomically(&path, &bytes).map_err(|source| CodeError::Io { path, source })
    }

    /// Writes the chunks of the file `path` (their `bodies`, and `vectors` when they have them).
    fn add_chunks(
        &self,
        writer: &tantivy::IndexWriter,
        path: &str,
        chunks: &[chunk::Chunk],
        bodies: &[String],
        vectors: &[Vec<f32>],
    ) -> Result<(), CodeError> {
        let f = self.fields;
        let path_words = terms::expand_identifiers(&path.replace(['/', '.', '-'], " "));
        for (i, (c, body)) in chunks.iter().zip(bodies).enumerate() {
            let vector: Vec<u8> = vectors.get(i).map(|v| vector_bytes(v)).unwrap_or_default();
            writer.add_document(doc!(
                f.path_key => path.to_owned(),
                f.path => path_words.clone(),
                f.symbol => terms::expand_identifiers(&c.symbol),
                f.symbol_name => c.symbol.clone(),
                f.content => terms::expand_identifiers(body),
                f.start_line => c.start_line as u64,
                f.end_line => c.end_line as u64,
                f.vector => vector,
            ))?;
        }
        Ok(())
    }

    /// Gives a vector to every chunk that has none from this index's embedding model, file by
    /// file, committing about every 512 chunks: searches see the vectors as
    /// they come, and a stop (`cancel`) or a killed process keeps what was embedded. Files that
    /// change meanwhile are left to the next update. Runs one at a time: a call while another
    /// runs returns at once (the running one picks up what is pending when it finishes a round).
    pub fn embed_pending(
        &self,
        mut progress: impl FnMut(IndexProgress),
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<EmbedReport, CodeError> {
        let Some(embedder) = self.embedder.as_deref() else { return Ok(EmbedReport::default()) };
        if self.embedding.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return Ok(EmbedReport::default());
        }
        let _running = ClearOnDrop(&self.embedding);
        let started = Instant::now();
        let mut report = EmbedReport::default();
        loop {
            // Files with text whose chunks lack this model's vectors, read and cut again.
            let pending: Vec<(String, String)> = {
                let manifest = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
                let mut pending: Vec<(String, String)> = manifest
                    .files
                    .iter()
                    .filter(|(_, e)| e.skip.is_none() && e.embedded.as_deref() != Some(embedder.id()))
                    .map(|(path, e)| (path.clone(), e.hash.clone()))
                    .collect();
                pending.sort();
                pending
            };
            if pending.is_empty() {
                break;
            }
            let prepared: Vec<(String, String, Vec<chunk::Chunk>, Vec<String>)> = pending
                .par_iter()
                .filter_map(|(path, hash)| {
                    let abs = self.root.join(path);
                    let size = std::fs::metadata(&abs).ok()?.len();
                    let file = walk::SourceFile { path: path.clone(), abs, size, mtime_ns: 0 };
                    let text = walk::read_text(&file).ok()?;
                    let now = hex::encode(sha2::Sha256::digest(text.as_bytes()));
                    (&now == hash).then(|| {
                        let chunks = chunk::chunk_file(path, &text);
                        let bodies = chunk_bodies(&chunks, &text);
                        (path.clone(), hash.clone(), chunks, bodies)
                    })
                })
                .collect();
            if prepared.is_empty() {
                // Every pending file changed on disk since: the next update reads them.
                break;
            }
            let to_embed = report.chunks_embedded + prepared.iter().map(|p| p.2.len() as u64).sum::<u64>();
            let files_total = self.manifest.lock().unwrap_or_else(|p| p.into_inner()).files.len() as u64;
            let mut batch: Vec<EmbeddedFile> = Vec::new();
            let mut batch_chunks = 0;
            let mut files = prepared.into_iter().peekable();
            while files.peek().is_some() {
                if cancel.is_cancelled() {
                    report.chunks_embedded += self.commit_vectors(batch, embedder.id())?;
                    report.embed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    return Ok(report);
                }
                // A group of files embedded together: the model pads each batch to its longest
                // text, and texts of many files sorted by length waste least.
                let mut group: Vec<(String, String, Vec<chunk::Chunk>, Vec<String>)> = Vec::new();
                let mut group_chunks = 0;
                while group_chunks < EMBED_GROUP_CHUNKS {
                    let Some(file) = files.next() else { break };
                    group_chunks += file.2.len();
                    group.push(file);
                }
                let texts: Vec<String> = group
                    .iter()
                    .flat_map(|(path, _, chunks, bodies)| {
                        chunks.iter().zip(bodies).map(|(c, body)| embedding_text(path, &c.symbol, body))
                    })
                    .collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let mut vectors = embedder.embed(&refs)?.into_iter();
                for (path, hash, chunks, bodies) in group {
                    let vectors: Vec<Vec<f32>> = vectors.by_ref().take(chunks.len()).collect();
                    batch_chunks += vectors.len() as u64;
                    batch.push(EmbeddedFile { path, hash, chunks, bodies, vectors });
                }
                let done = report.chunks_embedded + batch_chunks;
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                progress(IndexProgress {
                    chunks_embedded: done,
                    chunks_to_embed: to_embed,
                    chunks_per_second: done as f64 / secs,
                    ..IndexProgress::files(files_total, files_total, 0.0)
                });
                if batch_chunks >= EMBED_COMMIT_CHUNKS || files.peek().is_none() {
                    report.chunks_embedded += self.commit_vectors(std::mem::take(&mut batch), embedder.id())?;
                    batch_chunks = 0;
                }
            }
        }
        report.embed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(report)
    }

    /// Writes the files of `batch` again with their vectors, each only if it is still as it
    /// was read (an update may have come between), and records them as embedded by `model`.
    /// Returns the chunks written.
    fn commit_vectors(&self, batch: Vec<EmbeddedFile>, model: &str) -> Result<u64, CodeError> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut manifest = self.manifest.lock().unwrap_or_else(|p| p.into_inner());
        let writer: tantivy::IndexWriter = self.index.writer(64 << 20)?;
        let mut written = 0;
        let mut done = Vec::new();
        for EmbeddedFile { path, hash, chunks, bodies, vectors } in &batch {
            if manifest.files.get(path).is_none_or(|e| &e.hash != hash || e.skip.is_some()) {
                continue;
            }
            writer.delete_term(Term::from_field_text(self.fields.path_key, path));
            self.add_chunks(&writer, path, chunks, bodies, vectors)?;
            written += chunks.len() as u64;
            done.push(path.clone());
        }
        let mut writer = writer;
        writer.commit()?;
        writer.wait_merging_threads()?;
        for path in done {
            if let Some(entry) = manifest.files.get_mut(&path) {
                entry.embedded = Some(model.to_owned());
            }
        }
        self.save_manifest(&manifest)?;
        self.reader.reload()?;
        *self.dense.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(written)
    }

    /// The best chunks for a question: hybrid when the index has an embedding model, else BM25.
    pub fn search(&self, question: &str, limit: usize) -> Result<Vec<Hit>, CodeError> {
        self.search_ranked(question, limit, Ranking::Best)
    }

    /// [`CodeIndex::search`] with the ranking chosen, for comparing them.
    pub fn search_ranked(&self, question: &str, limit: usize, ranking: Ranking) -> Result<Vec<Hit>, CodeError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Tests mention the code they test; unless the question is about tests, prefer the
        // code itself: weigh test files down.
        let about_tests = question.to_lowercase().contains("test");
        let weigh = |hit: &mut Hit| {
            if !about_tests && is_test_path(&hit.path) {
                hit.score *= TEST_WEIGHT;
            }
        };
        let by_score = |hits: &mut Vec<Hit>| hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        let hybrid = self.embedder.is_some() && ranking == Ranking::Best;
        let keywords = || -> Result<Vec<Hit>, CodeError> {
            let mut hits = self.keyword_hits(question, if hybrid { FUSION_DEPTH } else { limit * 3 })?;
            hits.iter_mut().for_each(weigh);
            by_score(&mut hits);
            Ok(hits)
        };
        let dense = || -> Result<Vec<Hit>, CodeError> {
            let mut hits = self.dense_hits(question, FUSION_DEPTH.max(limit * 3))?;
            hits.iter_mut().for_each(weigh);
            by_score(&mut hits);
            Ok(hits)
        };
        let mut hits = match ranking {
            Ranking::Keywords => keywords()?,
            Ranking::Dense => dense()?,
            Ranking::Best if !hybrid => keywords()?,
            Ranking::Best => {
                let ranks = self.file_ranks();
                let mut fused = fuse(&[keywords()?, dense()?], &ranks);
                fused.iter_mut().for_each(weigh);
                by_score(&mut fused);
                diversify(fused, limit)
            }
        };
        hits.truncate(limit);
        Ok(hits)
    }

    fn keyword_hits(&self, question: &str, limit: usize) -> Result<Vec<Hit>, CodeError> {
        let f = self.fields;
        let mut analyzer = analyzer();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut seen = HashSet::new();
        for word in terms::query_terms(question) {
            let mut stream = analyzer.token_stream(&word);
            while let Some(token) = stream.next() {
                if !seen.insert(token.text.clone()) {
                    continue;
                }
                for (field, boost) in [(f.content, 1.0), (f.symbol, 2.0), (f.path, 1.5)] {
                    let term = TermQuery::new(Term::from_field_text(field, &token.text), IndexRecordOption::WithFreqs);
                    clauses.push((Occur::Should, Box::new(BoostQuery::new(Box::new(term), boost))));
                }
            }
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
            hits.push(Hit {
                path: text(f.path_key),
                start_line: number(f.start_line),
                end_line: number(f.end_line),
                symbol: text(f.symbol_name),
                score,
            });
        }
        Ok(hits)
    }

    fn dense_hits(&self, question: &str, limit: usize) -> Result<Vec<Hit>, CodeError> {
        let Some(embedder) = &self.embedder else { return Ok(Vec::new()) };
        let rows = self.dense_rows()?;
        let query = embedder.embed_query(question)?;
        if query.is_empty() {
            return Ok(Vec::new());
        }
        let mut scored: Vec<(f32, &DenseRow)> = rows
            .iter()
            .filter(|r| r.vector.len() == query.len())
            .map(|r| (crate::engine::embed::similarity(&query, &r.vector), r))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(scored
            .into_iter()
            .take(limit)
            .map(|(score, r)| Hit {
                path: r.path.clone(),
                start_line: r.start_line,
                end_line: r.end_line,
                symbol: r.symbol.clone(),
                score,
            })
            .collect())
    }

    /// Every chunk's vector, read from the index once after each update.
    fn dense_rows(&self) -> Result<Arc<Vec<DenseRow>>, CodeError> {
        if let Some(rows) = self.dense.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(rows);
        }
        let f = self.fields;
        let searcher = self.reader.searcher();
        let mut rows = Vec::new();
        for segment in searcher.segment_readers() {
            let store = segment.get_store_reader(64).map_err(tantivy::TantivyError::from)?;
            let alive = segment.alive_bitset();
            for doc_id in 0..segment.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc_id)) {
                    continue;
                }
                let doc: TantivyDocument = store.get(doc_id)?;
                let vector =
                    doc.get_first(f.vector).and_then(|v| v.as_bytes()).map(vector_from_bytes).unwrap_or_default();
                if vector.is_empty() {
                    continue;
                }
                let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                let number = |field| doc.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0) as usize;
                rows.push(DenseRow {
                    path: text(f.path_key),
                    start_line: number(f.start_line),
                    end_line: number(f.end_line),
                    symbol: text(f.symbol_name),
                    vector,
                });
            }
        }
        let rows = Arc::new(rows);
        *self.dense.lock().unwrap_or_else(|p| p.into_inner()) = Some(rows.clone());
        Ok(rows)
    }

    /// Each file's place in the repo map's order (0 = most referred to).
    fn file_ranks(&self) -> Arc<HashMap<String, usize>> {
        if let Some(ranks) = self.ranks.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return ranks;
        }
        let (files, rank) = self.pagerank_files();
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by(|&a, &b| rank[b].total_cmp(&rank[a]).then(a.cmp(&b)));
        let ranks: HashMap<String, usize> =
            order.into_iter().enumerate().map(|(place, i)| (files[i].0.clone(), place)).collect();
        let ranks = Arc::new(ranks);
        *self.ranks.lock().unwrap_or_else(|p| p.into_inner()) = Some(ranks.clone());
        ranks
    }

    /// A map of the repository for broad questions: files ranked by how much the rest of the
    /// code refers to what they define (PageRank over "file A uses a name file B defines"),
    /// each with its definitions and their lines, cut to `max_chars`.
    pub fn repo_map(&self, max_chars: usize) -> Result<String, CodeError> {
        // The cache lock is never held while the manifest is locked (update takes them the other way).
        let cached = self.repo_map.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((size, map)) = cached.filter(|(size, _)| *size == max_chars) {
            let _ = size;
            return Ok(map);
        }
        let map = self.build_repo_map(max_chars);
        *self.repo_map.lock().unwrap_or_else(|p| p.into_inner()) = Some((max_chars, map.clone()));
        Ok(map)
    }

    /// The indexed files (sorted by path) with their PageRank over cross-file references.
    fn pagerank_files(&self) -> (Vec<(String, FileEntry)>, Vec<f64>) {
        let manifest = self.manifest.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut files: Vec<(String, FileEntry)> =
            manifest.files.into_iter().filter(|(_, e)| e.skip.is_none()).collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let position: HashMap<&str, usize> =
            files.iter().enumerate().map(|(i, (p, _))| (String::as_str(p), i)).collect();
        // Names worth tracking: leaf names of definitions, three characters or more.
        let mut defined_in: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, (_, entry)) in files.iter().enumerate() {
            for (symbol, _) in &entry.symbols {
                let leaf = symbol.rsplit("::").next().unwrap_or(symbol);
                if leaf.len() >= 3 && !leaf.starts_with("impl ") {
                    let slot = defined_in.entry(leaf.to_owned()).or_default();
                    if !slot.contains(&i) {
                        slot.push(i);
                    }
                }
            }
        }
        // Edges: file → files defining the names it uses (weights split among definers).
        let edges: Vec<HashMap<usize, f64>> = files
            .par_iter()
            .map(|(path, _)| {
                let mut out: HashMap<usize, f64> = HashMap::new();
                let Ok(text) = std::fs::read_to_string(self.root.join(String::as_str(path))) else { return out };
                let me = position[String::as_str(path)];
                for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if let Some(definers) = defined_in.get(word) {
                        let share = 1.0 / definers.len() as f64;
                        for &d in definers.iter().filter(|&&d| d != me) {
                            *out.entry(d).or_default() += share;
                        }
                    }
                }
                out
            })
            .collect();
        let rank = pagerank(&edges, 30, 0.85);
        (files, rank)
    }

    fn build_repo_map(&self, max_chars: usize) -> String {
        let (files, rank) = self.pagerank_files();
        let mut order: Vec<usize> = (0..files.len()).collect();
        order.sort_by(|&a, &b| rank[b].total_cmp(&rank[a]).then(a.cmp(&b)));
        let mut map = String::new();
        for i in order {
            let (path, entry) = &files[i];
            if entry.symbols.is_empty() {
                continue;
            }
            let mut line = format!("{path}:");
            for (symbol, start) in entry.symbols.iter().take(12) {
                line.push_str(&format!(" {symbol} ({start}),"));
            }
            line.pop();
            line.push('\n');
            if map.len() + line.len() > max_chars {
                break;
            }
            map.push_str(&line);
        }
        map
    }
}

/// What the embedding model reads of a chunk: where it is, what it defines, its code.
/// The body is cut at [`EMBED_BODY_BYTES`]: a definition's head (doc comment, signature,
/// first lines) says what it is about, and the model's cost grows with every token.
fn embedding_text(path: &str, symbol: &str, body: &str) -> String {
    let words = terms::expand_identifiers(&format!("{path} {symbol}"));
    let mut cut = body.len().min(EMBED_BODY_BYTES);
    while !body.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{path} {symbol} ({words})\n{}", &body[..cut])
}

/// How much of a chunk's code the embedding model reads (about 150 tokens).
const EMBED_BODY_BYTES: usize = 600;

/// Chunks embedded between two commits of their vectors (a minute or two on two cores).
const EMBED_COMMIT_CHUNKS: u64 = 512;
/// Chunks embedded in one call, between progress reports and looks at the stop.
const EMBED_GROUP_CHUNKS: usize = 64;

/// The lines of each chunk of `text`.
fn chunk_bodies(chunks: &[chunk::Chunk], text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    chunks.iter().map(|c| lines[(c.start_line - 1).min(lines.len())..c.end_line.min(lines.len())].join("\n")).collect()
}

/// A file's chunks with their vectors, waiting to be committed.
struct EmbeddedFile {
    path: String,
    /// The text's hash when it was read.
    hash: String,
    chunks: Vec<chunk::Chunk>,
    bodies: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

/// Clears a flag when dropped, however the holder returns.
struct ClearOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Reciprocal rank fusion of several rankings of chunks, plus the repo map's rank of each
/// hit's file as a small prior.
fn fuse(rankings: &[Vec<Hit>], file_ranks: &HashMap<String, usize>) -> Vec<Hit> {
    let mut fused: Vec<Hit> = Vec::new();
    let mut place: HashMap<(String, usize), usize> = HashMap::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            let gain = 1.0 / (RRF_K + rank as f32 + 1.0);
            let key = (hit.path.clone(), hit.start_line);
            match place.get(&key) {
                Some(&i) => fused[i].score += gain,
                None => {
                    place.insert(key, fused.len());
                    let prior = file_ranks.get(&hit.path).map_or(0.0, |&r| PRIOR_WEIGHT / (RRF_K + r as f32 + 1.0));
                    fused.push(Hit { score: gain + prior, ..hit.clone() });
                }
            }
        }
    }
    fused
}

/// The top `limit` of hits sorted best first, with at most [`PER_FILE`] chunks of one file
/// while hits from other files remain; the rest fill in after, in order.
fn diversify(sorted: Vec<Hit>, limit: usize) -> Vec<Hit> {
    let mut taken: Vec<Hit> = Vec::with_capacity(limit);
    let mut held: Vec<Hit> = Vec::new();
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for hit in sorted {
        let count = per_file.entry(hit.path.clone()).or_default();
        if *count < PER_FILE && taken.len() < limit {
            *count += 1;
            taken.push(hit);
        } else {
            held.push(hit);
        }
    }
    taken.extend(held);
    taken
}

/// How much a test file's score counts when the question is not about tests.
const TEST_WEIGHT: f32 = 0.6;

/// Test files by the usual conventions: `tests/`, `test/`, `__tests__/`, `*_test.*`,
/// `test_*.py`, `*.test.*`, `*.spec.*`.
fn is_test_path(path: &str) -> bool {
    let lower = path.to_lowercase();
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    lower.split('/').any(|part| matches!(part, "tests" | "test" | "__tests__" | "testdata"))
        || file.contains("_test.")
        || file.starts_with("test_")
        || file.contains(".test.")
        || file.contains(".spec.")
}

/// PageRank over a weighted graph given as outgoing edge weights per node.
fn pagerank(edges: &[HashMap<usize, f64>], iterations: usize, damping: f64) -> Vec<f64> {
    let n = edges.len();
    if n == 0 {
        return Vec::new();
    }
    let mut rank = vec![1.0 / n as f64; n];
    for _ in 0..iterations {
        let mut next = vec![(1.0 - damping) / n as f64; n];
        let mut dangling = 0.0;
        for (from, out) in edges.iter().enumerate() {
            let total: f64 = out.values().sum();
            if total <= 0.0 {
                dangling += rank[from];
                continue;
            }
            for (&to, &w) in out {
                next[to] += damping * rank[from] * w / total;
            }
        }
        for r in &mut next {
            *r += damping * dangling / n as f64;
        }
        rank = next;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_files_are_recognised_by_convention() {
        for path in
            ["tests/stream.rs", "src/test/Foo.java", "pkg/x_test.go", "test_io.py", "a/b.test.ts", "ui/__tests__/x.js"]
        {
            assert!(is_test_path(path), "{path}");
        }
        for path in ["src/ser.rs", "src/attest.rs", "contest/main.c"] {
            assert!(!is_test_path(path), "{path}");
        }
    }

    #[test]
    fn pagerank_favours_what_everything_refers_to() {
        // 0 and 1 both use 2; 2 uses 0.
        let edges = vec![HashMap::from([(2, 1.0)]), HashMap::from([(2, 1.0)]), HashMap::from([(0, 1.0)])];
        let rank = pagerank(&edges, 50, 0.85);
        assert!(rank[2] > rank[0] && rank[0] > rank[1], "{rank:?}");
        assert!((rank.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
}
