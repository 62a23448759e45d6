//! Answering a question about a code folder with the loaded model.
//!
//! The context is filled, within the model's token budget, with a short repo map (the most
//! referenced files and their definitions, ranked PageRank-style as aider does) and the best
//! chunks from the index, each headed by its `path:start-end`. The model is told to cite those
//! ranges. Afterwards every citation in the answer is checked in code against the excerpts it
//! was shown: a citation that names no excerpt is removed and counted. Then every sentence is
//! checked against the excerpts' code (see [`crate::sourcing`]): it keeps a citation of an
//! excerpt that supports it, gets the excerpt that does, or is marked `[no source]`.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::{CodeError, CodeIndex, Hit};
use crate::engine::{CancellationToken, Engine, EngineError, FinishReason, GenerationStats, PromptMessage, Sampling};
use crate::sourcing::{Citations, Sources};
use crate::store::Role;

/// Tokens kept for the answer.
const ANSWER_TOKENS: usize = 768;
/// Chunks considered for the context, best first.
const CANDIDATES: usize = 24;

const SYSTEM: &str = "You answer questions about a code base using only the excerpts below. \
Each excerpt is headed by its location as path:start-end. After every claim, cite the excerpt it \
comes from exactly as its header writes it, for example (src/main.rs:10-24). If the excerpts do not \
answer the question, say so.";

/// One excerpt shown to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excerpt {
    /// Path relative to the folder.
    pub path: String,
    /// First line.
    pub start_line: usize,
    /// Last line.
    pub end_line: usize,
    /// Definition name, if any.
    pub symbol: String,
    /// The lines.
    pub text: String,
}

/// A `path:start-end` in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citation {
    /// Path.
    pub path: String,
    /// First line.
    pub start_line: usize,
    /// Last line.
    pub end_line: usize,
}

/// The answer's citations, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedAnswer {
    /// The answer with citations that name no excerpt removed (and, once its sentences are
    /// checked, sources attached and unsupported sentences marked `[no source]`).
    pub text: String,
    /// Citations that name an excerpt, in order, without repeats.
    pub citations: Vec<Citation>,
    /// Citations removed because no excerpt shown to the model contains them.
    pub removed: Vec<String>,
    /// Each sentence of the answer with the excerpts that source it (empty until checked).
    pub sentences: Vec<AnswerSentence>,
}

impl CheckedAnswer {
    /// The share of the answer's sentences with a checked source; `None` for none.
    pub fn coverage(&self) -> Option<f32> {
        (!self.sentences.is_empty()).then(|| {
            self.sentences.iter().filter(|s| !s.sources.is_empty()).count() as f32 / self.sentences.len() as f32
        })
    }
}

/// A sentence of an answer about code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerSentence {
    /// Its text, without citations or marks.
    pub text: String,
    /// The excerpts that support it (empty: marked `[no source]`).
    pub sources: Vec<Citation>,
}

static CITATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<path>[A-Za-z0-9_.\-/]*[A-Za-z0-9_\-]\.[A-Za-z0-9]+):(?P<start>\d+)(?:\s*[-–]\s*(?P<end>\d+))?")
        .expect("the citation pattern is valid")
});

/// A citation with the parentheses it is usually written in, so removing one leaves no `()`.
static CITED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\(?{}\)?", CITATION.as_str())).expect("the citation pattern is valid"));

/// Checks each sentence of `checked` (citations already checked) against the code of
/// `excerpts`: a citation of an excerpt that supports it stays, the excerpt that does is
/// attached, or the sentence is marked `[no source]`.
pub fn source_sentences(checked: CheckedAnswer, excerpts: &[Excerpt]) -> CheckedAnswer {
    let sources = Sources::new(
        excerpts
            .iter()
            .map(|e| format!("{} {} {}", e.path, e.symbol, e.text))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
        true,
    );
    let resolve = |citation: &str| -> Vec<usize> {
        check_citations(citation, excerpts)
            .citations
            .iter()
            .flat_map(|c| {
                excerpts
                    .iter()
                    .enumerate()
                    .filter(move |(_, e)| e.path == c.path && c.start_line >= e.start_line && c.end_line <= e.end_line)
            })
            .map(|(i, _)| i)
            .collect()
    };
    let render = |chosen: &[usize]| -> String {
        let cited: Vec<String> = chosen
            .iter()
            .filter_map(|&i| excerpts.get(i))
            .map(|e| format!("{}:{}-{}", e.path, e.start_line, e.end_line))
            .collect();
        format!("({})", cited.join(", "))
    };
    let judged = sources.judge(&checked.text, &Citations { pattern: &CITED, resolve: &resolve, render: &render });
    let sentences = judged
        .claims
        .iter()
        .map(|claim| AnswerSentence {
            text: claim.text.clone(),
            sources: claim
                .sources
                .iter()
                .filter_map(|&i| excerpts.get(i))
                .map(|e| Citation { path: e.path.clone(), start_line: e.start_line, end_line: e.end_line })
                .collect(),
        })
        .collect();
    let again = check_citations(&judged.text, excerpts);
    CheckedAnswer { text: judged.text, citations: again.citations, removed: checked.removed, sentences }
}

/// Checks every `path:start[-end]` in `answer` against `excerpts`: it must lie inside one of
/// them. Others are removed from the text and listed.
pub fn check_citations(answer: &str, excerpts: &[Excerpt]) -> CheckedAnswer {
    let mut citations = Vec::new();
    let mut removed = Vec::new();
    let text = CITATION.replace_all(answer, |caps: &regex::Captures<'_>| {
        let path = caps["path"].trim_start_matches("./").to_owned();
        let start: usize = caps["start"].parse().unwrap_or(0);
        let end: usize = caps.name("end").and_then(|m| m.as_str().parse().ok()).unwrap_or(start);
        let inside =
            excerpts.iter().any(|e| e.path == path && start >= e.start_line && end <= e.end_line && start <= end);
        if inside {
            let citation = Citation { path, start_line: start, end_line: end };
            if !citations.contains(&citation) {
                citations.push(citation);
            }
            caps[0].to_owned()
        } else {
            removed.push(caps[0].to_owned());
            String::new()
        }
    });
    CheckedAnswer { text: text.into_owned(), citations, removed, sentences: Vec::new() }
}

/// What was put in front of the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AskContext {
    /// The repo map included.
    pub repo_map: String,
    /// The excerpts included, best first.
    pub excerpts: Vec<Excerpt>,
    /// Candidate chunks left out for lack of room.
    pub left_out: usize,
    /// Which retrieval chose the excerpts.
    pub retrieval: super::Retrieval,
}

/// A finished answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CodeAnswer {
    /// The context the model saw.
    pub context: AskContext,
    /// The answer, citations checked.
    pub answer: CheckedAnswer,
    /// Measurements.
    pub stats: GenerationStats,
    /// How the answer ended (`Cancelled` when stopped: the answer is what was written so far).
    pub reason: FinishReason,
}

/// Errors while answering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] CodeError),
    /// The model failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn excerpt(index: &CodeIndex, hit: &Hit) -> Option<Excerpt> {
    let text = std::fs::read_to_string(index.root().join(&hit.path)).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let start = hit.start_line.max(1);
    let end = hit.end_line.min(lines.len());
    (start <= end).then(|| Excerpt {
        path: hit.path.clone(),
        start_line: start,
        end_line: end,
        symbol: hit.symbol.clone(),
        text: lines[start - 1..end].join("\n"),
    })
}

fn render(question: &str, repo_map: &str, excerpts: &[Excerpt]) -> Vec<PromptMessage> {
    let mut user = String::new();
    if !repo_map.is_empty() {
        user.push_str("Repository map (most referenced files and their definitions):\n");
        user.push_str(repo_map);
        user.push_str("\n\n");
    }
    for e in excerpts {
        user.push_str(&format!("### {}:{}-{}\n```\n{}\n```\n\n", e.path, e.start_line, e.end_line, e.text));
    }
    user.push_str("Question: ");
    user.push_str(question);
    vec![PromptMessage::new(Role::System, SYSTEM), PromptMessage::new(Role::User, user)]
}

/// Chooses what the model sees: the repo map and as many of the best chunks as fit.
pub async fn build_context(index: &CodeIndex, engine: &Engine, question: &str) -> Result<AskContext, AskError> {
    let budget = engine.usable_context().saturating_sub(ANSWER_TOKENS).max(256);
    let hits = index.search(question, CANDIDATES)?;
    let candidates: Vec<Excerpt> = hits.iter().filter_map(|h| excerpt(index, h)).collect();
    // The map gets at most a sixth of the budget (about 3.5 characters per token of code).
    let repo_map = index.repo_map(budget * 35 / 60)?;
    // Add excerpts while the whole prompt, counted with the model's tokenizer, fits.
    let mut chosen: Vec<Excerpt> = Vec::new();
    let mut map = repo_map;
    for candidate in &candidates {
        chosen.push(candidate.clone());
        let tokens = engine.count_prompt_tokens(&render(question, &map, &chosen)).await?;
        if tokens > budget {
            chosen.pop();
        }
    }
    // With nothing fitting, the map itself is too large for this model: drop it.
    if chosen.is_empty() && engine.count_prompt_tokens(&render(question, &map, &[])).await? > budget {
        map.clear();
    }
    Ok(AskContext {
        left_out: candidates.len() - chosen.len(),
        repo_map: map,
        excerpts: chosen,
        retrieval: index.retrieval(),
    })
}

/// Answers `question` from the index with `engine`, streaming text to `on_text`.
pub async fn ask(
    index: &CodeIndex,
    engine: &Engine,
    question: &str,
    sampling: Sampling,
    cancel: CancellationToken,
    on_text: impl FnMut(&str),
) -> Result<CodeAnswer, AskError> {
    let context = build_context(index, engine, question).await?;
    let messages = render(question, &context.repo_map, &context.excerpts);
    let sampling = Sampling { max_tokens: sampling.max_tokens.min(ANSWER_TOKENS), ..sampling };
    let reply = engine.complete(messages, sampling, cancel, on_text).await?;
    let answer = source_sentences(check_citations(&reply.text, &context.excerpts), &context.excerpts);
    Ok(CodeAnswer { context, answer, stats: reply.stats, reason: reply.reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(path: &str, start: usize, end: usize) -> Excerpt {
        Excerpt { path: path.into(), start_line: start, end_line: end, symbol: String::new(), text: String::new() }
    }

    #[test]
    fn each_sentence_of_an_answer_is_sourced_from_the_code_it_describes_or_marked() {
        let excerpts = [
            Excerpt {
                text: "pub fn vat(net: Cents, rate: Rate) -> Cents {\n    net * rate.percent / 100\n}".into(),
                symbol: "vat".into(),
                ..ex("src/tax.rs", 1, 3)
            },
            Excerpt {
                text: "pub fn render_invoice(lines: &[Line]) -> String { lines.iter().map(Line::show).collect() }"
                    .into(),
                symbol: "render_invoice".into(),
                ..ex("src/invoice.rs", 10, 12)
            },
        ];
        let answer = "The value added tax is the net amount times the rate percent (src/invoice.rs:10-12). \
                      Invoices are rendered line by line in render_invoice. \
                      The tax is refunded to exporters every quarter (src/tax.rs:1-3).\n\n```rust\nvat(net, rate)\n```";
        let checked = source_sentences(check_citations(answer, &excerpts), &excerpts);
        let sources: Vec<Vec<String>> = checked
            .sentences
            .iter()
            .map(|s| s.sources.iter().map(|c| format!("{}:{}-{}", c.path, c.start_line, c.end_line)).collect())
            .collect();
        assert_eq!(sources, vec![vec!["src/tax.rs:1-3".to_owned()], vec!["src/invoice.rs:10-12".to_owned()], vec![]]);
        assert_eq!(
            checked.text,
            "The value added tax is the net amount times the rate percent (src/tax.rs:1-3). \
             Invoices are rendered line by line in render_invoice (src/invoice.rs:10-12). \
             The tax is refunded to exporters every quarter [no source].\n\n```rust\nvat(net, rate)\n```"
        );
        assert_eq!(checked.coverage(), Some(2.0 / 3.0));
        assert_eq!(checked.citations.len(), 2);
    }

    #[test]
    fn citations_outside_the_excerpts_are_removed_and_counted() {
        let excerpts = [ex("src/de.rs", 100, 180), ex("src/read.rs", 10, 40)];
        let answer = "Numbers are parsed in (src/de.rs:120-150), escapes in ./src/read.rs:12 \
                      and magic in (src/nope.rs:1-5) and (src/de.rs:170-200). Again src/de.rs:120-150.";
        let checked = check_citations(answer, &excerpts);
        assert_eq!(
            checked.citations,
            vec![
                Citation { path: "src/de.rs".into(), start_line: 120, end_line: 150 },
                Citation { path: "src/read.rs".into(), start_line: 12, end_line: 12 },
            ]
        );
        assert_eq!(checked.removed, vec!["src/nope.rs:1-5", "src/de.rs:170-200"]);
        assert!(!checked.text.contains("nope.rs") && !checked.text.contains("170-200"));
        assert!(checked.text.contains("src/de.rs:120-150"));
    }
}
