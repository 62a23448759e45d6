//! Summarizing a document with the loaded model, with page citations checked in code.
//!
//! Every page's text is headed by a `[p. N]` marker and counted with the model's tokenizer.
//! A document that fits the budget (the model's usable context less the prompt and the space
//! kept for the summary) is summarized in one pass. A larger one goes through a summary tree:
//! chunks cut at page boundaries (a page too long for a chunk is cut at headings, then
//! paragraphs) are summarized with `[p. N]` citations, and the summaries are merged level by
//! level until one remains. After each step every citation is checked against the pages that
//! step covered: a page outside them is removed and counted, never shown. Then every sentence
//! is checked against those pages' text (see [`crate::sourcing`]): it keeps a citation of a
//! page that supports it, gets the page that does, or is marked `[no source]`; merges do not
//! build on marked sentences.
//!
//! Each finished node is saved at once (see `saved`), so a cancelled or interrupted run keeps
//! its work and the next run carries on; a finished tree makes the same file open instantly.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Serialize;

use super::saved::{self, SavedDocument, SummaryNode};
use super::Page;
use crate::engine::{CancellationToken, Engine, EngineError, FinishReason, PromptMessage, Sampling};
use crate::sourcing::{self, Citations, Sources, UNSUPPORTED};
use crate::store::{Role, Store, StoreError};

const LEAF_SYSTEM: &str = "You summarize one part of a longer document for an analyst. Each page of the \
text starts with a marker such as [p. 12]. Write the key facts of this part as short bullet points. End every \
bullet point with the page it comes from, written like [p. 12]. Use only what the text says; add nothing else.";

const MERGE_SYSTEM: &str = "You combine summaries of consecutive parts of one document into a single shorter \
summary for an analyst. Keep the most important points as short bullet points and keep each point's page \
citation such as [p. 12] exactly as written. Never invent a page number; add nothing the summaries do not say.";

const FINAL_SYSTEM: &str = "You write the summary of a document for an analyst. Each page of the material \
starts with a marker such as [p. 12] or is a summary that cites pages that way. Write one short overview \
paragraph, then the key points as bullet points. End every sentence and bullet point with the page it comes \
from, written like [p. 12]. Use only what the material says; add nothing else.";

/// How much of the model a summary may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Context to use (for example the planner's); never more than the model's usable context.
    pub context_tokens: Option<usize>,
    /// Largest chunk, in tokens; by default as much as the budget allows.
    pub chunk_tokens: Option<usize>,
    /// Longest summary of one step, in tokens.
    pub output_tokens: usize,
}

impl Default for SummaryOptions {
    fn default() -> Self {
        Self { context_tokens: None, chunk_tokens: None, output_tokens: 512 }
    }
}

/// What the summarizer is doing, for progress displays.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum SummaryProgress {
    /// Embedding the pages for follow-up search (before the first summary of a document).
    Embedding {
        /// Windows of text embedded.
        done: u64,
        /// Windows to embed.
        total: u64,
    },
    /// Counting tokens, page by page.
    Counting {
        /// Pages counted.
        done: u32,
        /// All pages.
        pages: u32,
    },
    /// Writing one node. `step` of `steps` overall (`steps` is an estimate until the last level
    /// is known); `item` of `items` within the level.
    Writing {
        /// 0 for chunks of the text, then one per merge level.
        level: u32,
        /// 1-based.
        item: u32,
        /// Nodes on this level.
        items: u32,
        /// 1-based step overall.
        step: u32,
        /// Steps overall.
        steps: u32,
        /// First page covered.
        first_page: u32,
        /// Last page covered.
        last_page: u32,
        /// Time left, from the steps done so far.
        eta_ms: Option<u64>,
    },
    /// A node is finished (`reused` when an earlier run had written it).
    Node {
        /// The node.
        node: SummaryNode,
        /// Taken from the database.
        reused: bool,
    },
}

/// A finished summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The document.
    pub document_id: i64,
    /// The final text, with `[p. N]` citations.
    pub text: String,
    /// Each citation of the final text with the claim it supports.
    pub citations: Vec<PageCitation>,
    /// Every node of the tree (one when the document fit in one pass).
    pub nodes: Vec<SummaryNode>,
    /// Citations removed anywhere in the tree for naming a page outside their part.
    pub removed_citations: u32,
    /// Each sentence or bullet point of the final text, with the pages that source it.
    pub sentences: Vec<SummarySentence>,
    /// The share of those sentences with a checked source (`None` for a text with none).
    pub coverage: Option<f32>,
    /// True when the summary came from the database without running the model.
    pub cached: bool,
}

/// A sentence or bullet point of a summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummarySentence {
    /// Its text, without citations or marks.
    pub text: String,
    /// The pages it cites, each checked to support it.
    pub pages: Vec<u32>,
    /// False when no page supports it: the text marks it `[no source]`.
    pub sourced: bool,
}

/// A page cited in a summary, and the claim that cites it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageCitation {
    /// The page.
    pub page: u32,
    /// The sentence or bullet point that cites it, without its citations.
    pub text: String,
}

/// Why a summary could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SummaryError {
    /// The document has no text at all.
    #[error("the document has no text to summarize (scanned pages need OCR first)")]
    NoText,
    /// Stopped by the user; finished parts are kept.
    #[error("summarizing was stopped after {done} of about {steps} steps; the finished parts are kept")]
    Cancelled {
        /// Steps finished (and saved).
        done: u32,
        /// Steps overall (estimate).
        steps: u32,
    },
    /// The model's context is too small for any summary.
    #[error("the model's context ({0} tokens) is too small to summarize with; choose a larger model")]
    ContextTooSmall(usize),
    /// The model failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A piece of text from one page, ready for a prompt.
#[derive(Debug, Clone)]
struct Piece {
    page: u32,
    text: String,
    tokens: usize,
}

/// A node to write: its input and the pages it covers.
#[derive(Debug, Clone)]
struct Input {
    first_page: u32,
    last_page: u32,
    text: String,
}

pub(crate) static CITATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\[\s*(?:pp?|pages?)\.?\s*(\d+(?:\s*(?:[-–—,]|and)\s*\d+)*)\s*\]").expect("valid pattern")
});

/// The outcome of [`check_citations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedText {
    /// The text with bad citations removed and good ones written `[p. N]` / `[pp. N–M]`.
    pub text: String,
    /// Pages cited.
    pub pages: BTreeSet<u32>,
    /// Citations (or parts of them) removed.
    pub removed: u32,
}

/// Checks every `[p. N]` (also `[pp. N-M]`, `[page N, M]`) in `text`: pages for which
/// `allowed` is false are removed and counted; the rest are rewritten in one form.
pub fn check_citations(text: &str, allowed: impl Fn(u32) -> bool) -> CheckedText {
    let mut pages = BTreeSet::new();
    let mut removed = 0;
    let number = Regex::new(r"\d+").expect("valid pattern");
    let out = CITATION.replace_all(text, |caps: &regex::Captures<'_>| {
        let list = &caps[1];
        let mut kept: Vec<(u32, u32)> = Vec::new();
        // Parts are single pages or ranges, separated by commas or "and".
        for part in list.split(',').flat_map(|p| p.split("and")) {
            let ends: Vec<u32> = number.find_iter(part).filter_map(|m| m.as_str().parse().ok()).collect();
            let (a, b) = match ends.as_slice() {
                [a] => (*a, *a),
                [a, b] if a <= b => (*a, *b),
                _ => {
                    removed += 1;
                    continue;
                }
            };
            if (a..=b).all(&allowed) && b - a < 1000 {
                pages.extend(a..=b);
                kept.push((a, b));
            } else {
                removed += 1;
            }
        }
        match kept.as_slice() {
            [] => String::new(),
            [(a, b)] if a == b => format!("[p. {a}]"),
            parts => {
                let list: Vec<String> =
                    parts.iter().map(|(a, b)| if a == b { a.to_string() } else { format!("{a}–{b}") }).collect();
                format!("[pp. {}]", list.join(", "))
            }
        }
    });
    CheckedText { text: tidy(&out), pages, removed }
}

/// Removes spaces left before punctuation by removed citations, and repeated lines (small
/// models loop).
fn tidy(text: &str) -> String {
    let mut seen = BTreeSet::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let line = line.trim_end().replace(" .", ".").replace(" ,", ",").replace("  ", " ");
        let key = line.trim().to_lowercase();
        if !key.is_empty() && !seen.insert(key) {
            continue;
        }
        lines.push(line);
    }
    lines.join("\n").trim().to_owned()
}

/// Each citation in `text` with the sentence or bullet point it closes.
pub fn citations_with_claims(text: &str) -> Vec<PageCitation> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        for m in CITATION.find_iter(line) {
            let before = &line[start..m.start()];
            // The claim starts after the previous sentence's end within this stretch.
            let sentence_start = before
                .char_indices()
                .filter(|&(i, c)| matches!(c, '.' | '!' | '?') && i + 1 < before.len().saturating_sub(1))
                .map(|(i, _)| i + 1)
                .next_back()
                .unwrap_or(0);
            let claim = CITATION.replace_all(&before[sentence_start..], "");
            let claim = claim.trim().trim_start_matches(['-', '*', '•', ' ']).trim().to_owned();
            let claim = if claim.is_empty() { before.trim().to_owned() } else { claim };
            let checked = check_citations(m.as_str(), |_| true);
            for page in checked.pages {
                out.push(PageCitation { page, text: claim.clone() });
            }
            start = m.end();
        }
    }
    out
}

/// Summarizes `doc` (whose pages are `pages`) with `engine`, saving each step in `store`.
/// A finished tree from any earlier run is returned at once unless `fresh`.
pub async fn summarize(
    store: &Store,
    engine: &Engine,
    doc: &SavedDocument,
    pages: &[Page],
    options: SummaryOptions,
    cancel: CancellationToken,
    mut progress: impl FnMut(SummaryProgress),
) -> Result<Summary, SummaryError> {
    if let Some(nodes) = saved::finished_tree(store, doc.id).await? {
        return Ok(finished(doc.id, nodes));
    }
    if pages.iter().all(|p| p.text.trim().is_empty()) {
        return Err(SummaryError::NoText);
    }
    let context = options.context_tokens.unwrap_or(usize::MAX).min(engine.usable_context());
    // The instructions and chat template, counted once with an empty text.
    let overhead = engine
        .count_prompt_tokens(&[PromptMessage::new(Role::System, FINAL_SYSTEM), PromptMessage::new(Role::User, "")])
        .await?
        + 32;
    let output = options.output_tokens.min(context / 4);
    let budget = context.saturating_sub(overhead + output);
    if budget < 256 || output < 64 {
        return Err(SummaryError::ContextTooSmall(context));
    }
    let chunk_budget = options.chunk_tokens.unwrap_or(budget).min(budget);
    let plan = format!("{}|{chunk_budget}|{output}", engine.info().name);
    let mut done_nodes: Vec<SummaryNode> = saved::nodes(store, doc.id, &plan).await?;

    let pieces = count_pieces(engine, pages, chunk_budget, &mut progress).await?;
    let chunks = pack(&pieces, chunk_budget);

    let mut clock = Clock { started: Instant::now(), written: 0, steps: estimate_steps(chunks.len(), budget, output) };
    let mut tracker =
        Tracker { store, engine, doc, pages, plan: &plan, output, cancel: &cancel, done: &mut done_nodes };

    // Level 0: the chunks; then merge until one node is left.
    let mut level = 0u32;
    let mut inputs: Vec<Input> = chunks;
    loop {
        let last = inputs.len() == 1;
        let system = if last {
            FINAL_SYSTEM
        } else if level == 0 {
            LEAF_SYSTEM
        } else {
            MERGE_SYSTEM
        };
        let mut written = Vec::with_capacity(inputs.len());
        let items = inputs.len() as u32;
        for (position, input) in inputs.iter().enumerate() {
            let node =
                tracker.node(level, position as u32, items, input, system, last, &mut clock, &mut progress).await?;
            written.push(node);
        }
        if last {
            break;
        }
        inputs = group(engine, &written, budget).await?;
        level += 1;
        clock.steps = clock.steps.max(clock.written + estimate_steps(inputs.len(), budget, output));
    }
    let nodes = saved::nodes(store, doc.id, &plan).await?;
    Ok(finish(doc.id, nodes, false))
}

/// The summary a finished tree from the database holds.
pub fn finished(document_id: i64, nodes: Vec<SummaryNode>) -> Summary {
    finish(document_id, nodes, true)
}

fn finish(document_id: i64, nodes: Vec<SummaryNode>, cached: bool) -> Summary {
    let root = nodes.iter().rev().find(|n| n.is_root).cloned();
    let text = root.map(|r| r.text).unwrap_or_default();
    let sentences = sentences(&text);
    let coverage = coverage(&sentences);
    Summary {
        document_id,
        citations: citations_with_claims(&text),
        removed_citations: nodes.iter().map(|n| n.removed_citations).sum(),
        sentences,
        coverage,
        text,
        nodes,
        cached,
    }
}

/// Checks each sentence of a step's `text` against the text of pages `first..=last`.
pub fn source_sentences(text: &str, pages: &[Page], first: u32, last: u32) -> sourcing::Judged {
    let step: Vec<(u32, &str)> =
        pages.iter().filter(|p| (first..=last).contains(&p.number)).map(|p| (p.number, p.text.as_str())).collect();
    source_sentences_in(text, &step)
}

/// Checks each sentence of `text` against `pages` (number and text): a `[p. N]` naming a page
/// not among them counts as no citation.
pub(super) fn source_sentences_in(text: &str, pages: &[(u32, &str)]) -> sourcing::Judged {
    let sources = Sources::new(pages.iter().map(|(_, text)| *text), false);
    let resolve = |citation: &str| -> Vec<usize> {
        let named = check_citations(citation, |p| pages.iter().any(|(n, _)| *n == p)).pages;
        pages.iter().enumerate().filter(|(_, (n, _))| named.contains(n)).map(|(i, _)| i).collect()
    };
    let render = |chosen: &[usize]| -> String {
        let numbers: Vec<String> = chosen.iter().filter_map(|&i| pages.get(i)).map(|(n, _)| n.to_string()).collect();
        match numbers.as_slice() {
            [one] => format!("[p. {one}]"),
            many => format!("[pp. {}]", many.join(", ")),
        }
    };
    sources.judge(text, &Citations { pattern: &CITATION, resolve: &resolve, render: &render })
}

/// The share of `sentences` with a checked source; `None` when there are none.
pub(super) fn coverage(sentences: &[SummarySentence]) -> Option<f32> {
    (!sentences.is_empty()).then(|| sentences.iter().filter(|s| s.sourced).count() as f32 / sentences.len() as f32)
}

/// The sentences of a checked summary (or answer) text, each with the pages it cites.
pub(super) fn sentences(text: &str) -> Vec<SummarySentence> {
    sourcing::claims(text, &CITATION, false)
        .into_iter()
        .map(|(range, claim)| {
            let segment = &text[range];
            let pages: Vec<u32> = check_citations(segment, |_| true).pages.into_iter().collect();
            let sourced = !pages.is_empty() && !segment.contains(UNSUPPORTED);
            SummarySentence { text: sourcing::strip_bullet(&claim), pages, sourced }
        })
        .collect()
}

/// Steps needed for `n` nodes at the bottom: `n`, then merges of about `budget / output` nodes.
fn estimate_steps(n: usize, budget: usize, output: usize) -> u32 {
    let fan_in = (budget / output.max(1)).max(2);
    let (mut steps, mut level) = (n, n);
    while level > 1 {
        level = level.div_ceil(fan_in);
        steps += level;
    }
    steps as u32
}

struct Clock {
    started: Instant,
    /// Nodes written by the model in this run (reused ones do not count toward the rate).
    written: u32,
    steps: u32,
}

struct Tracker<'a> {
    store: &'a Store,
    engine: &'a Engine,
    doc: &'a SavedDocument,
    pages: &'a [Page],
    plan: &'a str,
    output: usize,
    cancel: &'a CancellationToken,
    done: &'a mut Vec<SummaryNode>,
}

impl Tracker<'_> {
    #[allow(clippy::too_many_arguments, reason = "a node's place, pages and text, each used once")]
    async fn node(
        &mut self,
        level: u32,
        position: u32,
        items: u32,
        input: &Input,
        system: &str,
        is_root: bool,
        clock: &mut Clock,
        progress: &mut impl FnMut(SummaryProgress),
    ) -> Result<SummaryNode, SummaryError> {
        let step = self.done.iter().filter(|n| n.level < level).count() as u32 + position + 1;
        if let Some(node) = self.done.iter().find(|n| {
            n.level == level
                && n.position == position
                && n.first_page == input.first_page
                && n.last_page == input.last_page
                && n.is_root == is_root
        }) {
            progress(SummaryProgress::Node { node: node.clone(), reused: true });
            return Ok(node.clone());
        }
        let eta_ms = (clock.written > 0).then(|| {
            let per_step = clock.started.elapsed().as_millis() as u64 / u64::from(clock.written);
            per_step * u64::from(clock.steps.saturating_sub(step - 1))
        });
        progress(SummaryProgress::Writing {
            level,
            item: position + 1,
            items,
            step,
            steps: clock.steps.max(step),
            first_page: input.first_page,
            last_page: input.last_page,
            eta_ms,
        });
        let pages = if input.first_page == input.last_page {
            format!("page {}", input.first_page)
        } else {
            format!("pages {}–{}", input.first_page, input.last_page)
        };
        let user = format!("From \"{}\", {pages}:\n\n{}", self.doc.title, input.text);
        let messages = vec![PromptMessage::new(Role::System, system), PromptMessage::new(Role::User, user)];
        // No repetition penalty: a summary cites the same pages again and again, as it should.
        let sampling =
            Sampling { temperature: 0.2, max_tokens: self.output, repetition_penalty: 1.0, ..Sampling::default() };
        let reply = self.engine.complete(messages, sampling, self.cancel.clone(), |_| {}).await?;
        let (raw, reason) = (reply.text, reply.reason);
        if reason == FinishReason::Cancelled {
            return Err(SummaryError::Cancelled { done: clock.written, steps: clock.steps });
        }
        let raw = if reason == FinishReason::Length { drop_unfinished_line(&raw) } else { raw };
        let checked = check_citations(&raw, |p| p >= input.first_page && p <= input.last_page);
        let sourced = source_sentences(&checked.text, self.pages, input.first_page, input.last_page);
        let node = SummaryNode {
            level,
            position,
            first_page: input.first_page,
            last_page: input.last_page,
            text: sourced.text,
            removed_citations: checked.removed,
            is_root,
            model: self.engine.info().name.clone(),
        };
        saved::save_node(self.store, self.doc.id, self.plan, &node).await?;
        self.done.push(node.clone());
        clock.written += 1;
        progress(SummaryProgress::Node { node: node.clone(), reused: false });
        Ok(node)
    }
}

/// Keeps whole lines of a reply cut off at its token limit.
fn drop_unfinished_line(text: &str) -> String {
    match text.trim_end().rfind('\n') {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// Every page as pieces that fit `budget` tokens: whole pages when they fit, else cut at
/// headings and paragraphs (and, for a paragraph too long by itself, between words).
async fn count_pieces(
    engine: &Engine,
    pages: &[Page],
    budget: usize,
    progress: &mut impl FnMut(SummaryProgress),
) -> Result<Vec<Piece>, EngineError> {
    let mut pieces = Vec::new();
    let total = pages.len() as u32;
    let mut last_report = Instant::now() - Duration::from_secs(1);
    for (i, page) in pages.iter().enumerate() {
        if last_report.elapsed() >= Duration::from_millis(200) || i + 1 == pages.len() {
            progress(SummaryProgress::Counting { done: i as u32 + 1, pages: total });
            last_report = Instant::now();
        }
        if page.text.trim().is_empty() {
            continue;
        }
        let marked = format!("[p. {}]\n{}", page.number, page.text.trim());
        let tokens = engine.count_text_tokens(&marked).await?;
        if tokens <= budget {
            pieces.push(Piece { page: page.number, text: marked, tokens });
            continue;
        }
        // Too long for one chunk: cut into parts, each headed by the page marker again.
        let mut current = String::new();
        let mut current_tokens = 0;
        for block in blocks(&page.text, budget, tokens, page.text.len()) {
            let block_tokens = engine.count_text_tokens(&block).await? + 2;
            let heading = block.trim_start().starts_with('#');
            if !current.is_empty()
                && (current_tokens + block_tokens > budget.saturating_sub(8)
                    || (heading && current_tokens > budget / 2))
            {
                let text = format!("[p. {}]\n{}", page.number, current.trim());
                pieces.push(Piece { page: page.number, tokens: current_tokens + 8, text });
                current.clear();
                current_tokens = 0;
            }
            current.push_str(&block);
            current.push_str("\n\n");
            current_tokens += block_tokens;
        }
        if !current.trim().is_empty() {
            let text = format!("[p. {}]\n{}", page.number, current.trim());
            pieces.push(Piece { page: page.number, tokens: current_tokens + 8, text });
        }
    }
    Ok(pieces)
}

/// Paragraphs of `text` (blank-line separated; headings start their own), with any paragraph
/// longer than about half of `budget` cut between words.
fn blocks(text: &str, budget: usize, text_tokens: usize, text_len: usize) -> Vec<String> {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let heading = line.trim_start().starts_with('#');
        if (line.trim().is_empty() || heading) && !current.trim().is_empty() {
            paragraphs.push(std::mem::take(&mut current));
        }
        if !line.trim().is_empty() {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        paragraphs.push(current);
    }
    // Characters per token of this page, to cut long paragraphs without counting every word.
    let chars_per_token = (text_len as f64 / text_tokens.max(1) as f64).max(1.0);
    let max_chars = ((budget / 2) as f64 * chars_per_token) as usize;
    let mut out = Vec::new();
    for p in paragraphs {
        if p.len() <= max_chars {
            out.push(p.trim_end().to_owned());
            continue;
        }
        let mut part = String::new();
        for word in p.split_whitespace() {
            if part.len() + word.len() + 1 > max_chars && !part.is_empty() {
                out.push(std::mem::take(&mut part));
            }
            if !part.is_empty() {
                part.push(' ');
            }
            part.push_str(word);
        }
        if !part.is_empty() {
            out.push(part);
        }
    }
    out
}

/// Consecutive pieces packed into chunks of at most `budget` tokens, cut only between pieces.
fn pack(pieces: &[Piece], budget: usize) -> Vec<Input> {
    let mut chunks: Vec<Input> = Vec::new();
    let mut tokens = 0;
    for piece in pieces {
        let fits = tokens + piece.tokens + 2 <= budget;
        match chunks.last_mut() {
            Some(chunk) if fits => {
                chunk.text.push_str("\n\n");
                chunk.text.push_str(&piece.text);
                chunk.last_page = piece.page;
                tokens += piece.tokens + 2;
            }
            _ => {
                chunks.push(Input { first_page: piece.page, last_page: piece.page, text: piece.text.clone() });
                tokens = piece.tokens;
            }
        }
    }
    chunks
}

/// The next level's inputs: consecutive nodes grouped while their summaries fit `budget`
/// (at least two per group, so every level is smaller than the one before).
async fn group(engine: &Engine, nodes: &[SummaryNode], budget: usize) -> Result<Vec<Input>, EngineError> {
    let mut out: Vec<Input> = Vec::new();
    let mut members = 0;
    let mut tokens = 0;
    for node in nodes {
        // Sentences no page supports are not passed on as fact.
        let kept = sourcing::without_unsupported(&node.text, &CITATION);
        let text = format!("Summary of {}:\n{kept}", page_span(node.first_page, node.last_page));
        let t = engine.count_text_tokens(&text).await? + 2;
        match out.last_mut() {
            Some(group) if members < 2 || tokens + t <= budget => {
                group.text.push_str("\n\n");
                group.text.push_str(&text);
                group.last_page = node.last_page;
                members += 1;
                tokens += t;
            }
            _ => {
                out.push(Input { first_page: node.first_page, last_page: node.last_page, text });
                members = 1;
                tokens = t;
            }
        }
    }
    // A last group of one would not shrink: it joins the group before.
    if out.len() > 1 && members == 1 {
        if let Some(lone) = out.pop() {
            if let Some(previous) = out.last_mut() {
                previous.text.push_str("\n\n");
                previous.text.push_str(&lone.text);
                previous.last_page = lone.last_page;
            }
        }
    }
    Ok(out)
}

fn page_span(first: u32, last: u32) -> String {
    if first == last {
        format!("page {first}")
    } else {
        format!("pages {first}–{last}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_outside_the_part_are_removed_and_counted() {
        let text = "- Revenue rose 4% [p. 3].\n- Costs fell [p. 9].\n- Both [pp. 3-4, 12].\n- Range [pages 4–5]";
        let checked = check_citations(text, |p| (3..=5).contains(&p));
        assert_eq!(checked.text, "- Revenue rose 4% [p. 3].\n- Costs fell.\n- Both [pp. 3–4].\n- Range [pp. 4–5]");
        assert_eq!(checked.removed, 2);
        assert_eq!(checked.pages, BTreeSet::from([3, 4, 5]));
    }

    #[test]
    fn repeated_lines_from_a_looping_model_are_dropped() {
        let checked = check_citations("- A [p. 1]\n- A [p. 1]\n- B [p. 2]", |_| true);
        assert_eq!(checked.text, "- A [p. 1]\n- B [p. 2]");
    }

    #[test]
    fn each_citation_carries_its_claim() {
        let text = "The firm grew. Revenue rose 4% [p. 3]. Costs fell [p. 9, 10].\n- Hiring paused [P.12]";
        let got = citations_with_claims(text);
        let pairs: Vec<(u32, &str)> = got.iter().map(|c| (c.page, c.text.as_str())).collect();
        assert_eq!(pairs, vec![(3, "Revenue rose 4%"), (9, "Costs fell"), (10, "Costs fell"), (12, "Hiring paused")]);
    }

    fn piece(page: u32, tokens: usize) -> Piece {
        Piece { page, text: format!("[p. {page}]"), tokens }
    }

    #[test]
    fn chunks_are_cut_between_pages_and_fit_the_budget() {
        let pieces: Vec<Piece> = (1..=10).map(|p| piece(p, 300)).collect();
        let chunks = pack(&pieces, 1000);
        let spans: Vec<(u32, u32)> = chunks.iter().map(|c| (c.first_page, c.last_page)).collect();
        assert_eq!(spans, vec![(1, 3), (4, 6), (7, 9), (10, 10)]);
    }

    #[test]
    fn long_paragraphs_are_cut_between_words_and_headings_start_blocks() {
        let long = "word ".repeat(400);
        let text = format!("Intro line\n\n# Heading\nbody\n\n{long}");
        let parts = blocks(&text, 100, 400 + 5, text.len());
        assert_eq!(parts[0], "Intro line");
        assert_eq!(parts[1], "# Heading\nbody");
        assert!(parts.len() > 4, "{}", parts.len());
        assert!(parts[2..].iter().all(|p| p.split_whitespace().all(|w| w == "word")));
    }

    #[test]
    fn step_estimate_counts_every_level() {
        assert_eq!(estimate_steps(1, 4000, 500), 1);
        assert_eq!(estimate_steps(10, 4000, 500), 10 + 2 + 1);
    }
}
