//! A code folder, its indexing and the answers about it.

use altiplano_core::codebase::answer::CodeAnswer;
use altiplano_core::codebase::Skip;
use altiplano_core::codebase::{CodeIndex, IndexProgress, IndexReport, KeywordsOnly, Retrieval};
use serde::Serialize;

use super::*;

/// An open code folder and its last indexing.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDto {
    pub root: String,
    pub name: String,
    pub files_seen: u64,
    pub files_indexed: u64,
    pub files_unchanged: u64,
    pub files_removed: u64,
    pub chunks: u64,
    /// Files left out, with why (binary, too_large, minified, generated, not_utf8, …).
    pub skipped: Vec<SkipCountDto>,
    pub elapsed_ms: u64,
    /// How its search ranks code.
    pub retrieval: RetrievalDto,
}

/// How code is found for a question.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RetrievalDto {
    /// Keywords (BM25) and sentence embeddings of this model, fused.
    Hybrid { model: String },
    /// Keywords (BM25) only, for this reason.
    Keywords { reason: KeywordsOnlyDto },
}

/// Why a search uses keywords only; the UI words it.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "why", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum KeywordsOnlyDto {
    /// No embedding model is installed.
    NoModel,
    /// The embedding model did not load or failed; `error` says how (in English).
    ModelFailed { error: String },
}

impl From<&Retrieval> for RetrievalDto {
    fn from(r: &Retrieval) -> Self {
        match r {
            Retrieval::Hybrid { model } => Self::Hybrid { model: model.clone() },
            Retrieval::Keywords { reason } => Self::Keywords {
                reason: match reason {
                    KeywordsOnly::NoModel => KeywordsOnlyDto::NoModel,
                    KeywordsOnly::ModelFailed { error } => KeywordsOnlyDto::ModelFailed { error: error.clone() },
                },
            },
        }
    }
}

/// How many files were left out for one reason.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct SkipCountDto {
    pub reason: SkipReasonDto,
    pub count: u64,
}

/// Why files were left out of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum SkipReasonDto {
    Binary,
    TooLarge,
    Minified,
    Generated,
    NotUtf8,
    NonUtf8Name,
    Unreadable,
    WalkError,
    OutsideFolder,
}

impl From<Skip> for SkipReasonDto {
    fn from(s: Skip) -> Self {
        match s {
            Skip::Binary => Self::Binary,
            Skip::TooLarge => Self::TooLarge,
            Skip::Minified => Self::Minified,
            Skip::Generated => Self::Generated,
            Skip::NotUtf8 => Self::NotUtf8,
            Skip::NonUtf8Name => Self::NonUtf8Name,
            Skip::Unreadable => Self::Unreadable,
            Skip::WalkError => Self::WalkError,
            Skip::OutsideFolder => Self::OutsideFolder,
        }
    }
}

impl ProjectDto {
    pub fn new(index: &CodeIndex, r: &IndexReport) -> Self {
        let root = index.root();
        Self {
            retrieval: (&index.retrieval()).into(),
            root: root.display().to_string(),
            name: root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            files_seen: r.files_seen,
            files_indexed: r.files_indexed,
            files_unchanged: r.files_unchanged,
            files_removed: r.files_removed,
            chunks: r.chunks_total,
            skipped: r
                .skipped
                .iter()
                .map(|(reason, count)| SkipCountDto { reason: (*reason).into(), count: *count })
                .collect(),
            elapsed_ms: r.elapsed_ms,
        }
    }
}

/// Indexing progress.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct IndexProgressDto {
    pub files_done: u64,
    pub files_total: u64,
    pub files_per_second: f64,
    /// Chunks embedded so far, of `chunks_to_embed` (both 0 before embedding starts or without
    /// an embedding model).
    pub chunks_embedded: u64,
    pub chunks_to_embed: u64,
    pub chunks_per_second: f64,
    /// Seconds of embedding left, once a rate is known.
    pub embed_seconds_left: Option<f64>,
}

impl From<&IndexProgress> for IndexProgressDto {
    fn from(p: &IndexProgress) -> Self {
        Self {
            files_done: p.files_done,
            files_total: p.files_total,
            files_per_second: p.files_per_second,
            chunks_embedded: p.chunks_embedded,
            chunks_to_embed: p.chunks_to_embed,
            chunks_per_second: p.chunks_per_second,
            embed_seconds_left: p.embed_seconds_left(),
        }
    }
}

/// A chunk of code shown to the model.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct ExcerptDto {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub symbol: String,
}

/// A citation in an answer that names code the model was shown.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct CitationDto {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
}

/// A finished answer about the code folder.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct CodeAnswerDto {
    /// The answer, citations that named no excerpt removed.
    pub text: String,
    pub citations: Vec<CitationDto>,
    /// Citations removed because the model was not shown that code.
    pub removed_citations: Vec<String>,
    /// Sentences of the answer, each checked against the code shown.
    pub sentences: u32,
    /// Of those, the ones no excerpt supports (marked `[no source]` in the text).
    pub unsourced: u32,
    /// How the excerpts were found.
    pub retrieval: RetrievalDto,
    pub excerpts: Vec<ExcerptDto>,
    pub conversation_id: i64,
}

impl CodeAnswerDto {
    pub fn new(a: &CodeAnswer, conversation_id: i64) -> Self {
        Self {
            text: a.answer.text.clone(),
            citations: a
                .answer
                .citations
                .iter()
                .map(|c| CitationDto { path: c.path.clone(), start_line: c.start_line, end_line: c.end_line })
                .collect(),
            removed_citations: a.answer.removed.clone(),
            retrieval: (&a.context.retrieval).into(),
            sentences: a.answer.sentences.len() as u32,
            unsourced: a.answer.sentences.iter().filter(|s| s.sources.is_empty()).count() as u32,
            excerpts: a
                .context
                .excerpts
                .iter()
                .map(|e| ExcerptDto {
                    path: e.path.clone(),
                    start_line: e.start_line,
                    end_line: e.end_line,
                    symbol: e.symbol.clone(),
                })
                .collect(),
            conversation_id,
        }
    }
}

/// Streamed text of an answer about code.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum CodeStreamEvent {
    Text { text: String },
}

/// A code folder as it is opened in the background — dropped on the window (`dropped`), or the
/// start-up folder — and any folder once opened.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ProjectEventDto {
    /// Indexing progress.
    Indexing { progress: IndexProgressDto, dropped: bool },
    /// The folder is open.
    Opened { project: ProjectDto, dropped: bool },
    /// It could not be opened.
    Failed { error: ApiError, dropped: bool },
    /// The open folder's chunks are being embedded in the background; search uses vectors
    /// for those done so far and keywords for all.
    Embedding { progress: IndexProgressDto },
}
