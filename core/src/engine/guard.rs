//! Stops a reply that loops.
//!
//! Small models, and large ones under greedy decoding, sometimes fall into writing the same
//! sentence over and over until the token limit. Penalties make that rarer; this guard ends it
//! when it happens anyway: the text is watched as it streams, and when its tail is one passage
//! repeated ([`REPEATS`] times in a row, the passage at least [`MIN_PERIOD`] characters long),
//! the backend is stopped and the reply finishes with [`FinishReason::Repeating`], so the user
//! is told why it ended.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{EngineError, FinishReason, GenerationEvent};

/// Times a passage must follow itself.
const REPEATS: usize = 3;
/// Shortest passage that counts: shorter repeats are lists, tables and code.
const MIN_PERIOD: usize = 24;
/// Longest passage looked for (a paragraph).
const MAX_PERIOD: usize = 600;
/// A short unit ("hello, ") repeated over this many characters is a loop too: far longer than
/// any list or table a user asks for repeats one row.
const SHORT_RUN: usize = 600;

/// Watches streamed text for a tail made of one passage repeated.
#[derive(Debug, Default)]
pub(crate) struct RepetitionGuard {
    /// The text's last `REPEATS * MAX_PERIOD` characters.
    tail: Vec<char>,
    /// Characters since the last check.
    unchecked: usize,
}

impl RepetitionGuard {
    /// Adds a piece of text; true when the reply now ends in a loop.
    pub(crate) fn push(&mut self, text: &str) -> bool {
        self.tail.extend(text.chars());
        self.unchecked += text.chars().count();
        let keep = REPEATS * MAX_PERIOD;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        // A loop shows at a passage's end; looking every few characters is enough and cheap.
        if self.unchecked < 8 {
            return false;
        }
        self.unchecked = 0;
        self.looping()
    }

    fn looping(&self) -> bool {
        let text = &self.tail;
        // The shortest passage whose repeats make the tail decides: a short unit repeated (a
        // list's "- item", a table row) is left alone even where its multiples are long.
        for period in 1..=MAX_PERIOD.min(text.len() / REPEATS) {
            let window = &text[text.len() - REPEATS * period..];
            let passage = &window[..period];
            if window.chunks(period).all(|chunk| chunk == passage) {
                let wordy = passage.iter().any(|c| c.is_alphanumeric());
                if period < MIN_PERIOD {
                    return wordy && self.run(period) >= SHORT_RUN;
                }
                let words = passage.iter().filter(|c| c.is_whitespace()).count();
                return words >= 2 && wordy;
            }
        }
        false
    }

    /// How many characters at the end of the tail repeat with `period`.
    fn run(&self, period: usize) -> usize {
        let text = &self.tail;
        let mut start = text.len() - period;
        while start > 0 && text[start - 1] == text[start - 1 + period] {
            start -= 1;
        }
        text.len() - start
    }
}

/// Passes a backend's events from `from` to `to`, stopping the backend (`stop`) when the text
/// loops; the reply then finishes as [`FinishReason::Repeating`].
pub(crate) async fn forward(
    mut from: mpsc::Receiver<Result<GenerationEvent, EngineError>>,
    to: mpsc::Sender<Result<GenerationEvent, EngineError>>,
    stop: CancellationToken,
) {
    let mut guard = RepetitionGuard::default();
    let mut tripped = false;
    while let Some(event) = from.recv().await {
        let event = match event {
            Ok(GenerationEvent::Text(text)) => {
                if tripped {
                    continue;
                }
                if guard.push(&text) {
                    tracing::info!("the reply repeats itself; stopped");
                    tripped = true;
                    stop.cancel();
                }
                Ok(GenerationEvent::Text(text))
            }
            Ok(GenerationEvent::Finished { reason, stats }) => {
                let reason =
                    if tripped && reason == FinishReason::Cancelled { FinishReason::Repeating } else { reason };
                Ok(GenerationEvent::Finished { reason, stats })
            }
            Err(e) => Err(e),
        };
        let last = !matches!(event, Ok(GenerationEvent::Text(_)));
        if to.send(event).await.is_err() {
            // Nobody listens any more: same as a Stop.
            stop.cancel();
            return;
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loops(text: &str) -> bool {
        let mut guard = RepetitionGuard::default();
        // Fed a few characters at a time, as tokens come.
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(3).any(|piece| guard.push(&piece.iter().collect::<String>()))
    }

    #[test]
    fn a_sentence_said_three_times_in_a_row_is_a_loop() {
        let sentence = "The function returns the parsed value. ";
        assert!(loops(&format!("Here is the answer. {}", sentence.repeat(3))));
        assert!(!loops(&format!("Here is the answer. {}", sentence.repeat(2))));
    }

    #[test]
    fn ordinary_text_lists_and_code_are_not_loops() {
        assert!(!loops(
            "Paris is the capital of France. It lies on the Seine. It has about two million people, \
             and its metropolitan area about twelve million. The city is known for its museums."
        ));
        assert!(!loops(&"- item\n".repeat(20)));
        assert!(!loops(&"hello, ".repeat(50)), "what a user asks for");
        assert!(!loops(&"| a | b |\n".repeat(10)));
        assert!(!loops(&"        }\n".repeat(10)));
        assert!(!loops(&" ".repeat(500)));
        let rows: String = (0..30).map(|i| format!("let value_{i} = compute(input, {i});\n")).collect();
        assert!(!loops(&rows));
    }

    #[test]
    fn a_short_phrase_repeated_far_past_any_request_is_a_loop() {
        assert!(loops(&format!("Sure! {}", "hello, ".repeat(120))));
    }

    #[test]
    fn a_paragraph_looping_is_caught_however_long() {
        let paragraph = "The parser reads the header first. Then it checks each section's length \
                         against the file size, and stops at the first one that does not fit. ";
        assert!(loops(&paragraph.repeat(3)));
    }
}
