//! A code folder, its indexing and the answers about it.

use altiplano_core::codebase::answer::CodeAnswer;
use altiplano_core::codebase::IndexReport;
use altiplano_core::codebase::Skip;
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
    pub fn new(root: &std::path::Path, r: &IndexReport) -> Self {
        Self {
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
}
