//! An OpenAI-compatible server's answers, as a remote engine reads them: the model list
//! (`GET /v1/models`), a streamed chat completion (server-sent events, one JSON object per
//! `data:` line, `[DONE]` at the end) and error bodies in each server's shape. A server is
//! trusted no more than a file: each answer is bounded (events, pieces, ids, the list) and a
//! malformed one is a problem that says what is wrong, never a panic.

use serde_json::Value;

/// Largest event a stream may hold before it ends (a piece of text is a few bytes).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Most models a list may name.
pub const MAX_MODELS: usize = 4096;
/// Longest model id.
pub const MAX_ID_BYTES: usize = 512;
/// Longest error message kept.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// What is wrong with an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Not JSON, or not the shape OpenAI's API gives.
    #[error("{0}")]
    Shape(String),
    /// An event longer than [`MAX_EVENT_BYTES`] without its end.
    #[error("an event of more than {MAX_EVENT_BYTES} bytes")]
    EventTooLong,
}

/// One model a server lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    /// Its id, as requests name it.
    pub id: String,
    /// Its context length, when the entry says (`context_length`, vLLM's `max_model_len`,
    /// `max_context_length`, `context_window`, llama.cpp's `meta.n_ctx_train`).
    pub context: Option<usize>,
}

fn listed_context(entry: &Value) -> Option<usize> {
    ["context_length", "max_model_len", "max_context_length", "context_window"]
        .iter()
        .find_map(|k| entry[*k].as_u64())
        .or_else(|| entry["meta"]["n_ctx_train"].as_u64())
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
}

/// `GET /v1/models`'s answer: `{"data": [{"id", …}, …]}`. Entries without a usable id are
/// left out; the list is cut at [`MAX_MODELS`].
pub fn parse_models(body: &[u8]) -> Result<Vec<ListedModel>, Problem> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Problem::Shape(format!("its model list is not JSON ({e}); is this an OpenAI-compatible server?"))
    })?;
    let data = value["data"].as_array().ok_or_else(|| {
        Problem::Shape("its model list has no \"data\" array; is this an OpenAI-compatible server?".to_owned())
    })?;
    Ok(data
        .iter()
        .filter_map(|entry| {
            let id = entry["id"].as_str().filter(|id| !id.is_empty() && id.len() <= MAX_ID_BYTES)?;
            Some(ListedModel { id: id.to_owned(), context: listed_context(entry) })
        })
        .take(MAX_MODELS)
        .collect())
}

/// The message in an error body: OpenAI's `{"error": {"message"}}`, vLLM's `{"message"}`,
/// FastAPI's `{"detail"}`, a plain `{"error": "…"}`, or the text itself; at most
/// [`MAX_MESSAGE_CHARS`], control characters made spaces.
pub fn error_message(body: &[u8]) -> String {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let found = value.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["message"].as_str())
            .or_else(|| v["error"].as_str())
            .or_else(|| v["detail"].as_str())
            .map(str::to_owned)
    });
    let text = found.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    text.trim().chars().take(MAX_MESSAGE_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Why a streamed reply ended, as the server says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `length`: the token limit.
    Length,
    /// Anything else (`stop`, `eos`, …): the model finished.
    Stop,
}

/// What one event of a streamed chat completion carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamEvent {
    /// A piece of the reply's text (never empty when present).
    pub text: Option<String>,
    /// The end, when this event says it.
    pub finish: Option<Finish>,
    /// Token counts, when this event carries the usage (`prompt`, `completion`).
    pub usage: Option<(Option<u64>, Option<u64>)>,
    /// `[DONE]`: nothing more comes.
    pub done: bool,
}

/// Cuts a server-sent event stream into events as its bytes arrive.
#[derive(Debug, Default)]
pub struct EventSplitter {
    pending: Vec<u8>,
}

impl EventSplitter {
    /// A splitter with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes; returns the events they complete, each parsed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<StreamEvent>, Problem> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end).collect();
            events.extend(parse_event(&event)?);
        }
        if self.pending.len() > MAX_EVENT_BYTES {
            return Err(Problem::EventTooLong);
        }
        Ok(events)
    }

    /// The stream ended: what is left, read as a last event (some servers end without the
    /// blank line).
    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, Problem> {
        let rest = std::mem::take(&mut self.pending);
        parse_event(&rest)
    }
}

/// Where the first event in `bytes` ends (after its blank line), if it is all there.
fn event_end(bytes: &[u8]) -> Option<usize> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One event's `data:` lines, each a JSON chunk (or `[DONE]`); comments and other fields are
/// skipped. An `error` object in a chunk is a problem carrying its message.
fn parse_event(event: &[u8]) -> Result<Vec<StreamEvent>, Problem> {
    let text = String::from_utf8_lossy(event);
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
        if data.is_empty() {
            continue;
        }
        if data == "[DONE]" {
            out.push(StreamEvent { done: true, ..StreamEvent::default() });
            continue;
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            let shown: String = data.chars().take(200).collect();
            Problem::Shape(format!("it streamed something that is not OpenAI's JSON ({e}): {shown}"))
        })?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(Problem::Shape(error_message(data.as_bytes())));
        }
        let choice = &value["choices"][0];
        let usage = value
            .get("usage")
            .filter(|u| u.is_object())
            .map(|u| (u["prompt_tokens"].as_u64(), u["completion_tokens"].as_u64()));
        out.push(StreamEvent {
            text: choice["delta"]["content"].as_str().filter(|t| !t.is_empty()).map(str::to_owned),
            finish: choice["finish_reason"].as_str().map(|r| if r == "length" { Finish::Length } else { Finish::Stop }),
            usage,
            done: false,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_however_the_bytes_arrive() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n: a comment\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"length\"}]}\r\n\r\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
        for cut in [1, 3, 17, stream.len()] {
            let mut splitter = EventSplitter::new();
            let mut events = Vec::new();
            for piece in stream.chunks(cut) {
                events.extend(splitter.push(piece).expect("sound"));
            }
            events.extend(splitter.finish().expect("sound"));
            let text: String = events.iter().filter_map(|e| e.text.clone()).collect();
            assert_eq!(text, "Hello", "cut every {cut}");
            assert_eq!(events.iter().find_map(|e| e.finish), Some(Finish::Length));
            assert_eq!(events.iter().find_map(|e| e.usage), Some((Some(7), Some(2))));
            assert!(events.last().is_some_and(|e| e.done));
        }
    }

    #[test]
    fn an_error_in_the_stream_is_a_problem_with_its_message() {
        let mut splitter = EventSplitter::new();
        let problem = splitter.push(b"data: {\"error\": {\"message\": \"out of memory\"}}\n\n").expect_err("an error");
        assert_eq!(problem.to_string(), "out of memory");
        let problem = EventSplitter::new().push(b"data: {not json\n\n").expect_err("not JSON");
        assert!(problem.to_string().contains("not OpenAI's JSON"), "{problem}");
        let mut endless = EventSplitter::new();
        let problem = endless.push(&vec![b'x'; MAX_EVENT_BYTES + 1]).expect_err("too long");
        assert_eq!(problem, Problem::EventTooLong);
    }

    #[test]
    fn model_lists_give_ids_and_context_under_each_servers_name() {
        let list = br#"{"object": "list", "data": [
            {"id": "a", "context_length": 8192},
            {"id": "b", "max_model_len": 131072},
            {"id": "c", "meta": {"n_ctx_train": 4096}},
            {"id": "d", "owned_by": "me"},
            {"id": "", "context_length": 1},
            {"context_length": 1},
            {"id": "e", "context_length": 0}
        ]}"#;
        let models = parse_models(list).expect("sound");
        let got: Vec<_> = models.iter().map(|m| (m.id.as_str(), m.context)).collect();
        assert_eq!(got, [("a", Some(8192)), ("b", Some(131072)), ("c", Some(4096)), ("d", None), ("e", None)]);
        assert!(parse_models(b"<html>").is_err());
        assert!(parse_models(br#"{"models": []}"#).is_err());
    }

    #[test]
    fn error_bodies_are_read_in_each_servers_shape() {
        assert_eq!(error_message(br#"{"error": {"message": "bad key", "type": "x"}}"#), "bad key");
        assert_eq!(error_message(br#"{"message": "vLLM says", "object": "error"}"#), "vLLM says");
        assert_eq!(error_message(br#"{"detail": "Not Found"}"#), "Not Found");
        assert_eq!(error_message(b"plain\ttext\n"), "plain text");
        assert_eq!(error_message("é".repeat(600).as_bytes()).chars().count(), MAX_MESSAGE_CHARS);
    }
}
