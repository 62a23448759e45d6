//! Documents, their summaries and the answers about them.

use altiplano_core::documents::followup::DocumentAnswer;
use altiplano_core::documents::{PageCitation, SavedDocument, Summary, SummaryProgress};
use serde::Serialize;

use super::*;

/// A document opened for summarizing.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct DocumentDto {
    pub id: i64,
    /// The file name.
    pub title: String,
    /// Where it was opened from.
    pub path: String,
    pub page_count: u32,
    /// Pages without text, removed headers and the like.
    pub warnings: Vec<String>,
    /// The conversation holding its summary and follow-up questions.
    pub conversation_id: Option<i64>,
}

impl From<&SavedDocument> for DocumentDto {
    fn from(d: &SavedDocument) -> Self {
        Self {
            id: d.id,
            title: d.title.clone(),
            path: d.path.clone(),
            page_count: d.page_count,
            warnings: d.warnings.clone(),
            conversation_id: d.conversation_id,
        }
    }
}

/// A page cited in a summary or answer, and the claim citing it.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct PageCitationDto {
    pub page: u32,
    pub text: String,
}

pub(super) fn page_citations(citations: &[PageCitation]) -> Vec<PageCitationDto> {
    citations.iter().map(|c| PageCitationDto { page: c.page, text: c.text.clone() }).collect()
}

/// A finished summary.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct SummaryDto {
    pub document_id: i64,
    /// Markdown with `[p. N]` citations, each checked to name a page of the part it came from.
    pub text: String,
    pub citations: Vec<PageCitationDto>,
    /// Citations removed in the tree for naming pages outside their part.
    pub removed_citations: u32,
    /// Sentences and bullet points of the text, each checked against the pages it cites.
    pub sentences: u32,
    /// Of those, the ones no page supports (marked `[no source]` in the text).
    pub unsourced: u32,
    /// Nodes of the summary tree (1 when the document fit in one pass).
    pub parts: u32,
    /// Levels of the tree.
    pub levels: u32,
    /// The model that wrote it.
    pub model: String,
    /// It came from the database: the same file was summarized before.
    pub cached: bool,
}

impl From<&Summary> for SummaryDto {
    fn from(s: &Summary) -> Self {
        Self {
            document_id: s.document_id,
            text: s.text.clone(),
            citations: page_citations(&s.citations),
            removed_citations: s.removed_citations,
            sentences: s.sentences.len() as u32,
            unsourced: s.sentences.iter().filter(|x| !x.sourced).count() as u32,
            parts: s.nodes.len() as u32,
            levels: s.nodes.iter().map(|n| n.level + 1).max().unwrap_or(0),
            model: s.nodes.iter().find(|n| n.is_root).map(|n| n.model.clone()).unwrap_or_default(),
            cached: s.cached,
        }
    }
}

/// Progress of a summary.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum SummaryProgressDto {
    /// Counting tokens page by page.
    Counting { done: u32, pages: u32 },
    /// Embedding the pages for follow-up search: `done` of `total` passages.
    Embedding { done: u64, total: u64 },
    /// Writing part `item` of `items` on `level` (0: the text itself; then merges); `step` of
    /// `steps` overall.
    Writing {
        level: u32,
        item: u32,
        items: u32,
        step: u32,
        steps: u32,
        first_page: u32,
        last_page: u32,
        eta_ms: Option<u64>,
    },
    /// A part is finished (`reused`: an earlier run had written it).
    Part { level: u32, first_page: u32, last_page: u32, reused: bool },
}

impl From<&SummaryProgress> for SummaryProgressDto {
    fn from(p: &SummaryProgress) -> Self {
        match p {
            SummaryProgress::Embedding { done, total } => Self::Embedding { done: *done, total: *total },
            SummaryProgress::Counting { done, pages } => Self::Counting { done: *done, pages: *pages },
            SummaryProgress::Writing { level, item, items, step, steps, first_page, last_page, eta_ms } => {
                Self::Writing {
                    level: *level,
                    item: *item,
                    items: *items,
                    step: *step,
                    steps: *steps,
                    first_page: *first_page,
                    last_page: *last_page,
                    eta_ms: *eta_ms,
                }
            }
            SummaryProgress::Node { node, reused } => Self::Part {
                level: node.level,
                first_page: node.first_page,
                last_page: node.last_page,
                reused: *reused,
            },
        }
    }
}

/// A document with its summary, if one was finished.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct OpenedDocumentDto {
    pub document: DocumentDto,
    pub summary: Option<SummaryDto>,
}

/// Files dropped on the window (or chosen, or named on the command line), as they open.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum DocumentEventDto {
    /// Reading `name` (the `key` pairs this with its outcome).
    Opening { key: u32, name: String },
    /// It is open.
    Opened { key: u32, opened: OpenedDocumentDto },
    /// It could not be read.
    Failed { key: u32, name: String, error: ApiError },
}

/// A page or summary shown to the model for a follow-up answer.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct PageSourceDto {
    pub first_page: u32,
    pub last_page: u32,
    /// A summary of pages rather than a page's own text.
    pub summary: bool,
}

/// A finished answer about a document.
#[derive(Debug, Clone, Serialize, specta::Type)]
#[serde(rename_all = "camelCase")]
pub struct DocumentAnswerDto {
    /// Markdown with `[p. N]` citations, each naming a page the model was shown.
    pub text: String,
    pub citations: Vec<PageCitationDto>,
    pub removed_citations: u32,
    /// Sentences and bullet points of the answer, each checked against the pages it may cite.
    pub sentences: u32,
    /// Of those, the ones no page supports (marked `[no source]` in the text).
    pub unsourced: u32,
    pub sources: Vec<PageSourceDto>,
    /// How the pages were found.
    pub retrieval: RetrievalDto,
    pub conversation_id: i64,
}

impl DocumentAnswerDto {
    pub fn new(a: &DocumentAnswer, conversation_id: i64) -> Self {
        Self {
            text: a.text.clone(),
            citations: page_citations(&a.citations),
            removed_citations: a.removed_citations,
            sentences: a.sentences.len() as u32,
            unsourced: a.sentences.iter().filter(|s| !s.sourced).count() as u32,
            sources: a
                .sources
                .iter()
                .map(|s| PageSourceDto { first_page: s.first_page, last_page: s.last_page, summary: s.summary })
                .collect(),
            retrieval: (&a.retrieval).into(),
            conversation_id,
        }
    }
}
