//! Follow-up questions about a document, answered from its relevant pages.
//!
//! The pages and the summary tree's nodes are ranked against the question with BM25 (a
//! tantivy index in memory, English stemming) and, when the pages have vectors (see
//! [`super::vectors`]), by their similarity to the question's vector, the two fused by
//! reciprocal rank; the best pages, and the summaries of the parts around them, fill the
//! model's budget (counted with its tokenizer). Every `[p. N]` in the
//! answer must name a page the model was shown, or one a shown summary cites; others are
//! removed and counted.

use std::collections::BTreeSet;

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED};
use tantivy::{doc, Index, TantivyDocument};

use super::saved::SummaryNode;
use super::summary::{check_citations, citations_with_claims, PageCitation};
use super::vectors::PageVectors;
use super::Page;
use crate::codebase::{Ranking, Retrieval};
use crate::engine::{CancellationToken, Engine, EngineError, FinishReason, GenerationStats, PromptMessage, Sampling};
use crate::store::Role;

/// Tokens kept for the answer.
const ANSWER_TOKENS: usize = 768;
/// Pages and summaries considered, best first.
const CANDIDATES: usize = 24;
/// How deep each ranking goes into the fusion.
const FUSION_DEPTH: usize = 60;
/// Reciprocal rank fusion's constant.
const RRF_K: f32 = 60.0;
/// The keyword ranking's weight in the fusion, against 1 for the vectors': chosen on one
/// question set (glpk's gmpl.pdf: recall@5 0.84 at 1, 0.91 at 0.4) and checked on another it
/// was not chosen on (bash.pdf; BENCHMARKS.md). Pages are long and questions paraphrase them,
/// so the vectors deserve more say than in code, where the two are weighed alike.
pub const KEYWORD_WEIGHT: f32 = 0.4;

const SYSTEM: &str = "You answer questions about a document using only the excerpts below. Each page \
excerpt starts with a marker such as [p. 12]; summaries of parts of the document cite pages the same way. \
After every claim, cite the page it comes from, written like [p. 12]. If the excerpts do not answer the \
question, say so.";

/// One page or summary shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// First page.
    pub first_page: u32,
    /// Last page (the same as `first_page` for a page).
    pub last_page: u32,
    /// True for a summary of pages, false for a page's own text.
    pub summary: bool,
    /// What the model saw.
    pub text: String,
}

/// A checked answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentAnswer {
    /// The answer, bad citations removed.
    pub text: String,
    /// Each citation with its claim.
    pub citations: Vec<PageCitation>,
    /// Citations removed because they named a page the model was not shown.
    pub removed_citations: u32,
    /// What the model was shown, best first.
    pub sources: Vec<Source>,
    /// How the pages were found.
    pub retrieval: Retrieval,
    /// Measurements.
    pub stats: GenerationStats,
}

/// The question's vector and the document's page vectors, for hybrid ranking.
#[derive(Debug, Clone, Copy)]
pub struct Dense<'a> {
    /// The question, embedded by the model that embedded the pages.
    pub query: &'a [f32],
    /// The pages.
    pub pages: &'a PageVectors,
}

/// Errors while answering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowUpError {
    /// The in-memory index failed.
    #[error("cannot search the document: {0}")]
    Search(#[from] tantivy::TantivyError),
    /// The model failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The document or its conversation could not be read or saved.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Stopped before the answer began (while the pages were being embedded).
    #[error("the question was stopped before the answer began")]
    Stopped,
}

/// Pages and summary nodes ranked against `question`, best first: by BM25, fused with the
/// pages' similarity to the question when `dense` is given.
pub fn rank(
    question: &str,
    pages: &[Page],
    nodes: &[SummaryNode],
    limit: usize,
    dense: Option<Dense<'_>>,
) -> Result<Vec<Source>, FollowUpError> {
    rank_by(question, pages, nodes, limit, dense, Ranking::Best)
}

/// [`rank`] by one `ranking` (keywords or vectors alone, for comparisons; the benchmark).
pub fn rank_by(
    question: &str,
    pages: &[Page],
    nodes: &[SummaryNode],
    limit: usize,
    dense: Option<Dense<'_>>,
    ranking: Ranking,
) -> Result<Vec<Source>, FollowUpError> {
    rank_weighted(question, pages, nodes, limit, dense, ranking, KEYWORD_WEIGHT)
}

/// [`rank_by`] with the keyword ranking's weight in the fusion given (the benchmark tunes it;
/// the vectors' weight is 1).
pub fn rank_weighted(
    question: &str,
    pages: &[Page],
    nodes: &[SummaryNode],
    limit: usize,
    dense: Option<Dense<'_>>,
    ranking: Ranking,
    keyword_weight: f32,
) -> Result<Vec<Source>, FollowUpError> {
    type Key = (u32, u32, bool);
    let keywords: Vec<Key> = if ranking == Ranking::Dense && dense.is_some() {
        Vec::new()
    } else {
        keyword_ranking(question, pages, nodes, if dense.is_some() { FUSION_DEPTH.max(limit) } else { limit })?
    };
    let similar: Vec<Key> = match dense {
        Some(d) if ranking != Ranking::Keywords => {
            let has_text = |n: u32| pages.iter().any(|p| p.number == n && !p.text.trim().is_empty());
            d.pages
                .ranked(d.query)
                .into_iter()
                .filter(|&(n, _)| has_text(n))
                .take(FUSION_DEPTH)
                .map(|(n, _)| (n, n, false))
                .collect()
        }
        _ => Vec::new(),
    };
    let order: Vec<Key> = if similar.is_empty() {
        keywords
    } else if keywords.is_empty() {
        similar
    } else {
        let mut fused: Vec<(Key, f32)> = Vec::new();
        for (list, weight) in [(&keywords, keyword_weight), (&similar, 1.0)] {
            for (rank, key) in list.iter().enumerate() {
                let gain = weight / (RRF_K + rank as f32 + 1.0);
                match fused.iter_mut().find(|(k, _)| k == key) {
                    Some((_, score)) => *score += gain,
                    None => fused.push((*key, gain)),
                }
            }
        }
        fused.sort_by(|a, b| b.1.total_cmp(&a.1));
        fused.into_iter().map(|(k, _)| k).collect()
    };
    let mut out = Vec::with_capacity(limit);
    for (first_page, last_page, is_summary) in order.into_iter().take(limit) {
        let body = if is_summary {
            nodes.iter().find(|n| !n.is_root && n.first_page == first_page && n.last_page == last_page).map(|n| &n.text)
        } else {
            pages.iter().find(|p| p.number == first_page).map(|p| &p.text)
        };
        if let Some(body) = body {
            out.push(Source { first_page, last_page, summary: is_summary, text: body.clone() });
        }
    }
    Ok(out)
}

/// Pages (`first == last`, not a summary) and summary nodes by BM25, best first.
fn keyword_ranking(
    question: &str,
    pages: &[Page],
    nodes: &[SummaryNode],
    limit: usize,
) -> Result<Vec<(u32, u32, bool)>, FollowUpError> {
    let mut builder = Schema::builder();
    // English stemming ("flooding" finds "flooded"): tantivy registers `en_stem` by default.
    let indexing = TextFieldIndexing::default()
        .set_tokenizer("en_stem")
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
    let first = builder.add_u64_field("first", STORED);
    let last = builder.add_u64_field("last", STORED);
    let summary = builder.add_u64_field("summary", STORED);
    let index = Index::create_in_ram(builder.build());
    let mut writer: tantivy::IndexWriter = index.writer(15 << 20)?;
    for page in pages.iter().filter(|p| !p.text.trim().is_empty()) {
        let n = u64::from(page.number);
        writer.add_document(doc!(text => page.text.as_str(), first => n, last => n, summary => 0u64))?;
    }
    for node in nodes.iter().filter(|n| !n.is_root) {
        writer.add_document(doc!(
            text => node.text.as_str(),
            first => u64::from(node.first_page),
            last => u64::from(node.last_page),
            summary => 1u64
        ))?;
    }
    writer.commit()?;
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let (query, _errors) = QueryParser::for_index(&index, vec![text]).parse_query_lenient(&sanitize(question));
    let top = searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
    let mut out = Vec::with_capacity(top.len());
    for (_score, address) in top {
        let found: TantivyDocument = searcher.doc(address)?;
        let number = |field| found.get_first(field).and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        out.push((number(first), number(last), number(summary) == 1));
    }
    Ok(out)
}

/// The question as plain words, without English stop words ("the" on every page would match
/// every page): query syntax (quotes, colons, signs) would only confuse BM25. A question made
/// of stop words alone keeps them.
fn sanitize(question: &str) -> String {
    use tantivy::tokenizer::{Language, LowerCaser, SimpleTokenizer, StopWordFilter, TextAnalyzer, TokenStream};
    let plain: String = question.chars().map(|c| if c.is_alphanumeric() { c } else { ' ' }).collect();
    let Some(stop) = StopWordFilter::new(Language::English) else { return plain };
    let mut analyzer = TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).filter(stop).build();
    let mut words = Vec::new();
    {
        let mut stream = analyzer.token_stream(&plain);
        while stream.advance() {
            words.push(stream.token().text.clone());
        }
    }
    if words.is_empty() {
        plain
    } else {
        words.join(" ")
    }
}

fn render(title: &str, question: &str, overview: &str, sources: &[Source]) -> Vec<PromptMessage> {
    let mut user = format!("Document: \"{title}\"\n\n");
    if !overview.is_empty() {
        user.push_str(&format!("Summary of the whole document:\n{overview}\n\n"));
    }
    let mut ordered: Vec<&Source> = sources.iter().collect();
    ordered.sort_by_key(|s| (s.first_page, s.summary));
    for s in ordered {
        if s.summary {
            user.push_str(&format!("Summary of pages {}–{}:\n{}\n\n", s.first_page, s.last_page, s.text));
        } else {
            user.push_str(&format!("[p. {}]\n{}\n\n", s.first_page, s.text.trim()));
        }
    }
    user.push_str("Question: ");
    user.push_str(question);
    vec![PromptMessage::new(Role::System, SYSTEM), PromptMessage::new(Role::User, user)]
}

/// Answers `question` about the document (`title`, `pages`, summary tree `nodes`) with
/// `engine`, streaming text to `on_text`; also says how the answer ended (`Cancelled`: what
/// was written before the stop). [`super::desk::ask`] is this, recorded.
#[allow(
    clippy::too_many_arguments,
    reason = "the document, the question and how to answer it: desk::ask is the one caller"
)]
pub async fn ask(
    engine: &Engine,
    title: &str,
    pages: &[Page],
    nodes: &[SummaryNode],
    question: &str,
    search: (Option<Dense<'_>>, Retrieval),
    context_tokens: Option<usize>,
    cancel: CancellationToken,
    on_text: impl FnMut(&str),
) -> Result<(DocumentAnswer, FinishReason), FollowUpError> {
    let context = context_tokens.unwrap_or(usize::MAX).min(engine.usable_context());
    let budget = context.saturating_sub(ANSWER_TOKENS.min(context / 4)).max(256);
    let (dense, retrieval) = search;
    let candidates = rank(question, pages, nodes, CANDIDATES, dense)?;
    let mut overview = nodes.iter().rev().find(|n| n.is_root).map(|n| n.text.clone()).unwrap_or_default();
    if engine.count_prompt_tokens(&render(title, question, &overview, &[])).await? > budget / 3 {
        overview.clear();
    }
    let mut chosen: Vec<Source> = Vec::new();
    for candidate in candidates {
        chosen.push(candidate);
        if engine.count_prompt_tokens(&render(title, question, &overview, &chosen)).await? > budget {
            chosen.pop();
        }
    }
    let messages = render(title, question, &overview, &chosen);
    // No repetition penalty: an answer cites the same pages again and again, as it should.
    let sampling = Sampling {
        temperature: 0.2,
        max_tokens: ANSWER_TOKENS.min(context / 4),
        repetition_penalty: 1.0,
        ..Sampling::default()
    };
    let reply = engine.complete(messages, sampling, cancel, on_text).await?;
    // Pages shown, and pages the shown summaries (and the overview) cite.
    let mut allowed: BTreeSet<u32> = chosen.iter().filter(|s| !s.summary).map(|s| s.first_page).collect();
    for s in chosen.iter().filter(|s| s.summary) {
        allowed.extend(check_citations(&s.text, |_| true).pages);
    }
    allowed.extend(check_citations(&overview, |_| true).pages);
    let checked = check_citations(&reply.text, |p| allowed.contains(&p));
    let answer = DocumentAnswer {
        citations: citations_with_claims(&checked.text),
        text: checked.text,
        removed_citations: checked.removed,
        sources: chosen,
        retrieval,
        stats: reply.stats,
    };
    Ok((answer, reply.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: u32, text: &str) -> Page {
        Page { number, text: text.into() }
    }

    #[test]
    fn the_page_that_answers_ranks_first_with_stemming() {
        let pages = vec![
            page(1, "Introduction to the annual report of the cooperative."),
            page(2, "The cooperative's warehouses flooded in March; inventory losses were large."),
            page(3, "Board members and their terms."),
            page(4, ""),
        ];
        let nodes = vec![SummaryNode {
            level: 0,
            position: 0,
            first_page: 1,
            last_page: 3,
            text: "Report, flood, board [p. 2]".into(),
            removed_citations: 0,
            is_root: false,
            model: "m".into(),
        }];
        let ranked = rank("What happened with the flooding of a warehouse?", &pages, &nodes, 5, None).expect("rank");
        assert_eq!((ranked[0].first_page, ranked[0].summary), (2, false));
        assert!(ranked.iter().any(|s| s.summary && s.first_page == 1 && s.last_page == 3));
        assert!(ranked.iter().all(|s| s.first_page != 4), "empty pages are not candidates");
        // Query syntax in a question is taken as words.
        assert!(rank("board: \"terms\" AND (-", &pages, &nodes, 5, None)
            .expect("rank")
            .iter()
            .any(|s| s.first_page == 3));
    }

    #[test]
    fn vectors_find_the_page_whose_words_differ_and_both_lists_are_fused() {
        let pages = vec![
            page(1, "Board members and their terms."),
            page(2, "Water rose over floors in storehouses during March."),
            page(3, "A flooded warehouse is insured, the policy says."),
        ];
        // The question's vector is closest to page 2 (its meaning), then page 3.
        let vectors = PageVectors::from_pages(std::collections::BTreeMap::from([
            (1, vec![vec![0.0, 1.0]]),
            (2, vec![vec![0.2, 0.98], vec![1.0, 0.0]]),
            (3, vec![vec![0.7, 0.7]]),
        ]));
        let dense = Some(Dense { query: &[1.0, 0.0], pages: &vectors });
        let question = "What happened with the flooding of a warehouse?";
        let by = |ranking| -> Vec<u32> {
            rank_by(question, &pages, &[], 5, dense, ranking).expect("rank").iter().map(|s| s.first_page).collect()
        };
        assert_eq!(by(Ranking::Keywords), vec![3], "BM25 only knows the page that shares the words");
        assert_eq!(by(Ranking::Dense), vec![2, 3, 1], "a page's best window counts");
        assert_eq!(by(Ranking::Best), vec![3, 2, 1], "in both lists beats first in one");
        assert_eq!(rank(question, &pages, &[], 5, None).expect("rank").len(), 1, "no vectors: keywords alone");
    }
}
