//! Answering a question about a code folder with the loaded model.
//!
//! The context is filled, within the model's token budget, with a short repo map (the most
//! referenced files and their definitions, ranked PageRank-style as aider does) and the best
//! chunks from the index, each headed by its `path:start-end`. The model is told to cite those
//! ranges. Afterwards every citation in the answer is checked in code against the excerpts it
//! was shown: a citation that names no excerpt is removed and counted.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use super::{CodeError, CodeIndex, Hit};
use crate::engine::{CancellationToken, Engine, EngineError, FinishReason, GenerationStats, PromptMessage, Sampling};
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
    /// The answer with citations that name no excerpt removed.
    pub text: String,
    /// Citations that name an excerpt, in order, without repeats.
    pub citations: Vec<Citation>,
    /// Citations removed because no excerpt shown to the model contains them.
    pub removed: Vec<String>,
}

static CITATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?P<path>[A-Za-z0-9_.\-/]*[A-Za-z0-9_\-]\.[A-Za-z0-9]+):(?P<start>\d+)(?:\s*[-–]\s*(?P<end>\d+))?")
        .expect("the citation pattern is valid")
});

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
    CheckedAnswer { text: text.into_owned(), citations, removed }
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
    let answer = check_citations(&reply.text, &context.excerpts);
    Ok(CodeAnswer { context, answer, stats: reply.stats, reason: reply.reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(path: &str, start: usize, end: usize) -> Excerpt {
        Excerpt { path: path.into(), start_line: start, end_line: end, symbol: String::new(), text: String::new() }
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
