//! Follow-up questions about a document, answered from its relevant pages.
//!
//! The pages and the summary tree's nodes are ranked against the question with BM25 (a
//! tantivy index in memory, English stemming) and, when the pages have vectors (see
//! [`super::vectors`]), by their similarity to the question's vector, the two fused by
//! reciprocal rank; the best pages, and the summaries of the parts around them, fill the
//! model's budget (counted with its tokenizer). Every `[p. N]` in the
//! answer must name a page the model was shown, or one a shown summary cites; others are
//! removed and counted.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED};
use tantivy::{doc, Index, TantivyDocument};

use super::saved::SummaryNode;
use super::summary::{
    check_citations, citations_with_claims, sentences, source_sentences_in, PageCitation, SummarySentence,
};
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
    /// Its sentences and bullet points, each checked against the pages it could cite.
    pub sentences: Vec<SummarySentence>,
    /// The share of those sentences with a checked source (`None` for a text with none).
    pub coverage: Option<f32>,
    /// What the model was shown, best first.
    pub sources: Vec<Source>,
    /// How the pages were found.
    pub retrieval: Retrieval,
    /// Measurements.
    pub stats: GenerationStats,
}

/// The question's vector and the document's page vectors (and its summary nodes', when they
/// are embedded: [`PageIndex::node_vectors`]), for hybrid ranking.
#[derive(Debug, Clone, Copy)]
pub struct Dense<'a> {
    /// The question, embedded by the model that embedded the pages.
    pub query: &'a [f32],
    /// The pages.
    pub pages: &'a PageVectors,
    /// The summary nodes, by the same model.
    pub nodes: Option<&'a NodeVectors>,
}

/// The summary nodes' vectors (each node's text as one passage), by one embedding model.
#[derive(Debug, Clone, Default)]
pub struct NodeVectors {
    model: String,
    /// The candidate slot of each node and its vector.
    vectors: Vec<(usize, Vec<f32>)>,
}

impl NodeVectors {
    /// Nodes with vectors.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether no node has a vector.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
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

/// Where a candidate is: its first and last page, and whether it is a summary.
type Key = (u32, u32, bool);

/// A document's pages and its summary tree's nodes (the root aside), indexed for follow-up
/// questions: built once per document and summary ([`PageIndexes`] keeps the last few), then
/// ranked against each question in a few milliseconds.
pub struct PageIndex {
    /// Every candidate: the pages with text, then the nodes; a tantivy document's `slot`.
    sources: Vec<Source>,
    /// The nodes' vectors, made on first use by a model (again for another model).
    node_vectors: std::sync::Mutex<Option<Arc<NodeVectors>>>,
    slots: HashMap<Key, usize>,
    searcher: tantivy::Searcher,
    parser: QueryParser,
    slot: tantivy::schema::Field,
}

impl std::fmt::Debug for PageIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageIndex").field("sources", &self.sources.len()).finish()
    }
}

impl PageIndex {
    /// Indexes `pages` (those with text) and `nodes` (but the root) by BM25 with English
    /// stemming ("flooding" finds "flooded"; tantivy registers `en_stem` by default).
    pub fn build(pages: &[Page], nodes: &[SummaryNode]) -> Result<Self, FollowUpError> {
        let mut builder = Schema::builder();
        let indexing = TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions);
        let text = builder.add_text_field("text", TextOptions::default().set_indexing_options(indexing));
        let slot = builder.add_u64_field("slot", STORED);
        let index = Index::create_in_ram(builder.build());
        let mut sources: Vec<Source> = pages
            .iter()
            .filter(|p| !p.text.trim().is_empty())
            .map(|p| Source { first_page: p.number, last_page: p.number, summary: false, text: p.text.clone() })
            .collect();
        sources.extend(nodes.iter().filter(|n| !n.is_root).map(|n| Source {
            first_page: n.first_page,
            last_page: n.last_page,
            summary: true,
            text: n.text.clone(),
        }));
        // One thread: the index is small, and a writer's threads outnumber these cores.
        let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15 << 20)?;
        for (i, source) in sources.iter().enumerate() {
            writer.add_document(doc!(text => source.text.as_str(), slot => i as u64))?;
        }
        writer.commit()?;
        let searcher = index.reader()?.searcher();
        let mut slots = HashMap::with_capacity(sources.len());
        for (i, s) in sources.iter().enumerate() {
            slots.entry((s.first_page, s.last_page, s.summary)).or_insert(i);
        }
        let parser = QueryParser::for_index(&index, vec![text]);
        Ok(Self { sources, slots, searcher, parser, slot, node_vectors: std::sync::Mutex::new(None) })
    }

    /// The summary nodes' vectors by `embedder`: made once per index and model (a summary of a
    /// few dozen nodes takes a second or so on a laptop CPU), then kept with the index.
    pub fn node_vectors(
        &self,
        embedder: &crate::engine::embed::Embedder,
    ) -> Result<Arc<NodeVectors>, crate::engine::embed::EmbedError> {
        let lock = || self.node_vectors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(kept) = lock().as_ref().filter(|v| v.model == embedder.id()) {
            return Ok(Arc::clone(kept));
        }
        let slots: Vec<usize> = (0..self.sources.len()).filter(|&i| self.sources[i].summary).collect();
        let texts: Vec<&str> = slots.iter().map(|&i| self.sources[i].text.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        let made = Arc::new(NodeVectors {
            model: embedder.id().to_owned(),
            vectors: slots.into_iter().zip(vectors).collect(),
        });
        *lock() = Some(Arc::clone(&made));
        Ok(made)
    }

    /// The text of page `number`, when it has any.
    pub fn page(&self, number: u32) -> Option<&str> {
        self.slots.get(&(number, number, false)).map(|&i| self.sources[i].text.as_str())
    }

    /// Pages and summary nodes ranked against `question`, best first: by BM25, fused with the
    /// pages' similarity to the question when `dense` is given.
    pub fn rank(&self, question: &str, limit: usize, dense: Option<Dense<'_>>) -> Result<Vec<Source>, FollowUpError> {
        self.rank_by(question, limit, dense, Ranking::Best)
    }

    /// [`PageIndex::rank`] by one `ranking` (keywords or vectors alone, for comparisons; the
    /// benchmark).
    pub fn rank_by(
        &self,
        question: &str,
        limit: usize,
        dense: Option<Dense<'_>>,
        ranking: Ranking,
    ) -> Result<Vec<Source>, FollowUpError> {
        self.rank_weighted(question, limit, dense, ranking, KEYWORD_WEIGHT)
    }

    /// [`PageIndex::rank_by`] with the keyword ranking's weight in the fusion given (the
    /// benchmark tunes it; the vectors' weight is 1).
    pub fn rank_weighted(
        &self,
        question: &str,
        limit: usize,
        dense: Option<Dense<'_>>,
        ranking: Ranking,
        keyword_weight: f32,
    ) -> Result<Vec<Source>, FollowUpError> {
        let keywords: Vec<usize> = if ranking == Ranking::Dense && dense.is_some() {
            Vec::new()
        } else {
            self.keyword_ranking(question, if dense.is_some() { FUSION_DEPTH.max(limit) } else { limit })?
        };
        let similar: Vec<usize> = match dense {
            Some(d) if ranking != Ranking::Keywords => {
                // Pages and summary nodes in one list, by their similarity to the question.
                let mut scored: Vec<(usize, f32)> = d
                    .pages
                    .ranked(d.query)
                    .into_iter()
                    .filter_map(|(n, score)| self.slots.get(&(n, n, false)).map(|&slot| (slot, score)))
                    .collect();
                let nodes = d.nodes.map(|n| n.vectors.as_slice()).unwrap_or_default();
                scored.extend(
                    nodes
                        .iter()
                        .filter(|(slot, v)| *slot < self.sources.len() && v.len() == d.query.len())
                        .map(|(slot, v)| (*slot, crate::engine::embed::similarity(d.query, v))),
                );
                scored.sort_by(|a, b| b.1.total_cmp(&a.1));
                scored.into_iter().map(|(slot, _)| slot).take(FUSION_DEPTH).collect()
            }
            _ => Vec::new(),
        };
        let order: Vec<usize> = if similar.is_empty() {
            keywords
        } else if keywords.is_empty() {
            similar
        } else {
            // In the order first seen (keywords first), which settles ties.
            let mut fused: Vec<(usize, f32)> = Vec::with_capacity(keywords.len() + similar.len());
            for (list, weight) in [(&keywords, keyword_weight), (&similar, 1.0)] {
                for (rank, &slot) in list.iter().enumerate() {
                    let gain = weight / (RRF_K + rank as f32 + 1.0);
                    match fused.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, score)) => *score += gain,
                        None => fused.push((slot, gain)),
                    }
                }
            }
            fused.sort_by(|a, b| b.1.total_cmp(&a.1));
            fused.into_iter().map(|(slot, _)| slot).collect()
        };
        Ok(order.into_iter().take(limit).map(|slot| self.sources[slot].clone()).collect())
    }

    /// Candidates by BM25, best first.
    fn keyword_ranking(&self, question: &str, limit: usize) -> Result<Vec<usize>, FollowUpError> {
        Ok(self.keyword_scores(question, limit)?.into_iter().map(|(slot, _)| slot).collect())
    }

    /// Candidates by BM25 with their scores, best first.
    fn keyword_scores(&self, question: &str, limit: usize) -> Result<Vec<(usize, f32)>, FollowUpError> {
        let (query, _errors) = self.parser.parse_query_lenient(&sanitize(question));
        let top = self.searcher.search(&query, &TopDocs::with_limit(limit.max(1)).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let found: TantivyDocument = self.searcher.doc(address)?;
            let slot = found.get_first(self.slot).and_then(|v| v.as_u64()).unwrap_or(u64::MAX) as usize;
            if slot < self.sources.len() {
                out.push((slot, score));
            }
        }
        Ok(out)
    }

    /// Experimental (the benchmark's `RETRIEVAL_EVAL_CONVEX`): pages ranked by a convex mix of
    /// normalized scores, `vector_share` of the similarity (min-max over the pages) and the
    /// rest of BM25 (over its best), in place of rank fusion.
    pub fn rank_convex(
        &self,
        question: &str,
        limit: usize,
        dense: Dense<'_>,
        vector_share: f32,
    ) -> Result<Vec<Source>, FollowUpError> {
        let keywords = self.keyword_scores(question, FUSION_DEPTH.max(limit))?;
        let best = keywords.first().map_or(0.0, |k| k.1).max(1e-6);
        let similar: Vec<(usize, f32)> = dense
            .pages
            .ranked(dense.query)
            .into_iter()
            .filter_map(|(n, score)| self.slots.get(&(n, n, false)).map(|&slot| (slot, score)))
            .collect();
        let (low, high) = similar.iter().fold((f32::MAX, f32::MIN), |(l, h), s| (l.min(s.1), h.max(s.1)));
        let span = (high - low).max(1e-6);
        let mut mixed: HashMap<usize, f32> = HashMap::new();
        for (slot, score) in similar {
            *mixed.entry(slot).or_default() += vector_share * (score - low) / span;
        }
        for (slot, score) in keywords {
            *mixed.entry(slot).or_default() += (1.0 - vector_share) * score / best;
        }
        let mut order: Vec<(usize, f32)> = mixed.into_iter().collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(order.into_iter().take(limit).map(|(slot, _)| self.sources[slot].clone()).collect())
    }
}

/// The last few documents' [`PageIndex`]es, so that a document's second question does not
/// index it again: kept by document and by what its pages and summary say, so a new summary
/// (or anything else that changes them) builds a new one.
#[derive(Debug, Default)]
pub struct PageIndexes {
    kept: std::sync::Mutex<VecDeque<(u64, Arc<PageIndex>)>>,
}

/// Documents whose indexes are kept.
const KEPT_INDEXES: usize = 4;

impl PageIndexes {
    /// The index of document `document_id`'s `pages` and `nodes`: a kept one, else built (and
    /// kept, the oldest dropped).
    pub fn get(
        &self,
        document_id: i64,
        pages: &[Page],
        nodes: &[SummaryNode],
    ) -> Result<Arc<PageIndex>, FollowUpError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        document_id.hash(&mut hasher);
        for p in pages {
            (p.number, &p.text).hash(&mut hasher);
        }
        for n in nodes {
            (n.first_page, n.last_page, n.is_root, &n.text).hash(&mut hasher);
        }
        let key = hasher.finish();
        let lock = || self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, index)) = lock().iter().find(|(k, _)| *k == key) {
            return Ok(index.clone());
        }
        let index = Arc::new(PageIndex::build(pages, nodes)?);
        let mut kept = lock();
        kept.retain(|(k, _)| *k != key);
        kept.push_back((key, index.clone()));
        while kept.len() > KEPT_INDEXES {
            kept.pop_front();
        }
        Ok(index)
    }
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

/// Answers `question` about the document (`title`, its pages and summary nodes in `index`,
/// the finished tree's `nodes` for its overview) with `engine`, streaming text to `on_text`;
/// also says how the answer ended (`Cancelled`: what was written before the stop). Then every
/// sentence is checked against the pages it may cite (see [`crate::sourcing`]).
/// [`super::desk::ask`] is this, recorded.
#[allow(
    clippy::too_many_arguments,
    reason = "the document, the question and how to answer it: desk::ask is the one caller"
)]
pub async fn ask(
    engine: &Engine,
    title: &str,
    index: &PageIndex,
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
    let candidates = index.rank(question, CANDIDATES, dense)?;
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
    Ok((check_answer(&reply.text, index, &chosen, &overview, retrieval, reply.stats), reply.reason))
}

/// The model's `text` checked: a `[p. N]` must name a page shown (in `chosen`) or one a shown
/// summary (or the `overview`) cites, else it is removed; then each sentence is matched to the
/// text of those pages, keeping, moving or adding its citation, or marking it unsupported.
fn check_answer(
    text: &str,
    index: &PageIndex,
    chosen: &[Source],
    overview: &str,
    retrieval: Retrieval,
    stats: GenerationStats,
) -> DocumentAnswer {
    let mut allowed: BTreeSet<u32> = chosen.iter().filter(|s| !s.summary).map(|s| s.first_page).collect();
    for s in chosen.iter().filter(|s| s.summary) {
        allowed.extend(check_citations(&s.text, |_| true).pages);
    }
    allowed.extend(check_citations(overview, |_| true).pages);
    let checked = check_citations(text, |p| allowed.contains(&p));
    let pages: Vec<(u32, &str)> = allowed.iter().filter_map(|&n| index.page(n).map(|t| (n, t))).collect();
    let judged = source_sentences_in(&checked.text, &pages);
    let sentences = sentences(&judged.text);
    let coverage = super::summary::coverage(&sentences);
    DocumentAnswer {
        citations: citations_with_claims(&judged.text),
        text: judged.text,
        removed_citations: checked.removed,
        sentences,
        coverage,
        sources: chosen.to_vec(),
        retrieval,
        stats,
    }
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
        let index = PageIndex::build(&pages, &nodes).expect("index");
        let ranked = index.rank("What happened with the flooding of a warehouse?", 5, None).expect("rank");
        assert_eq!((ranked[0].first_page, ranked[0].summary), (2, false));
        assert!(ranked.iter().any(|s| s.summary && s.first_page == 1 && s.last_page == 3));
        assert!(ranked.iter().all(|s| s.first_page != 4), "empty pages are not candidates");
        // Query syntax in a question is taken as words.
        assert!(index.rank("board: \"terms\" AND (-", 5, None).expect("rank").iter().any(|s| s.first_page == 3));
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
        let dense = Some(Dense { query: &[1.0, 0.0], pages: &vectors, nodes: None });
        let question = "What happened with the flooding of a warehouse?";
        let index = PageIndex::build(&pages, &[]).expect("index");
        let by = |ranking| -> Vec<u32> {
            index.rank_by(question, 5, dense, ranking).expect("rank").iter().map(|s| s.first_page).collect()
        };
        assert_eq!(by(Ranking::Keywords), vec![3], "BM25 only knows the page that shares the words");
        assert_eq!(by(Ranking::Dense), vec![2, 3, 1], "a page's best window counts");
        assert_eq!(by(Ranking::Best), vec![3, 2, 1], "in both lists beats first in one");
        assert_eq!(index.rank(question, 5, None).expect("rank").len(), 1, "no vectors: keywords alone");
    }

    #[test]
    fn a_document_is_indexed_once_until_its_summary_changes() {
        let pages = vec![page(1, "Harvest figures for the valley."), page(2, "Prices at the market fell.")];
        let mut nodes = vec![SummaryNode {
            level: 0,
            position: 0,
            first_page: 1,
            last_page: 2,
            text: "Harvests and prices [p. 1]".into(),
            removed_citations: 0,
            is_root: false,
            model: "m".into(),
        }];
        let kept = PageIndexes::default();
        let first = kept.get(7, &pages, &nodes).expect("index");
        assert!(Arc::ptr_eq(&first, &kept.get(7, &pages, &nodes).expect("index")), "the second question reuses it");
        assert!(!Arc::ptr_eq(&first, &kept.get(8, &pages, &nodes).expect("index")), "another document has its own");
        nodes[0].text = "Market prices [p. 2]".into();
        let rebuilt = kept.get(7, &pages, &nodes).expect("index");
        assert!(!Arc::ptr_eq(&first, &rebuilt), "a new summary is indexed again");
        assert!(rebuilt
            .rank("market prices", 5, None)
            .expect("rank")
            .iter()
            .any(|s| s.summary && s.text.contains("Market")));
        for id in 10..20 {
            kept.get(id, &pages, &nodes).expect("index");
        }
        assert_eq!(kept.kept.lock().expect("lock").len(), KEPT_INDEXES, "only the last few are kept");
    }

    #[test]
    fn every_sentence_of_an_answer_is_checked_against_the_pages_it_may_cite() {
        let pages = vec![
            page(1, "The cooperative bought three refrigerated trucks in April for the dairy route."),
            page(2, "Milk deliveries to the northern villages doubled after the new route opened."),
            page(3, "The auditor's letter is attached."),
        ];
        let index = PageIndex::build(&pages, &[]).expect("index");
        let shown: Vec<Source> = index.rank_by("trucks milk deliveries", 5, None, Ranking::Keywords).expect("rank");
        assert!(shown.iter().all(|s| s.first_page != 3), "page 3 is not shown");
        let text = "The cooperative bought three refrigerated trucks in April [p. 1]. \
Milk deliveries to the northern villages doubled. \
The board approved a new bakery in the capital [p. 3].";
        let answer =
            check_answer(text, &index, &shown, "", Retrieval::Hybrid { model: "m".into() }, GenerationStats::default());
        assert_eq!(answer.removed_citations, 1, "page 3 was not shown");
        assert_eq!(answer.sentences.len(), 3);
        assert_eq!((answer.sentences[0].pages.as_slice(), answer.sentences[0].sourced), (&[1][..], true), "kept");
        assert_eq!((answer.sentences[1].pages.as_slice(), answer.sentences[1].sourced), (&[2][..], true), "found");
        assert!(!answer.sentences[2].sourced, "no page says it");
        assert!(
            answer.text.contains("doubled [p. 2]") && answer.text.contains("capital [no source]"),
            "{}",
            answer.text
        );
        assert_eq!(answer.coverage, Some(2.0 / 3.0));
    }
}
