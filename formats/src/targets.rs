//! The fuzz targets' bodies, shared by `fuzz/` (libFuzzer drives them with generated inputs)
//! and `formats/tests/corpus.rs` (which replays every committed corpus file and every crash
//! found, as regression tests). Each runs one reader on `data` and asserts what must hold of
//! any answer it gives; a panic anywhere is a finding.

use std::io::Cursor;

/// A target: runs a reader on the bytes and panics on a finding.
pub type Target = fn(&[u8]);

/// The targets, by name (the names of `fuzz/fuzz_targets/*.rs` and of the corpus folders).
pub const ALL: [(&str, Target); 6] = [
    ("gguf_header", gguf_header),
    ("safetensors_header", safetensors_header),
    ("hub_listing", hub_listing),
    ("hub_headers", hub_headers),
    ("document", document),
    ("openai_stream", openai_stream),
];

/// A GGUF header: every tensor it accepts lies inside the file.
pub fn gguf_header(data: &[u8]) {
    if let Ok(summary) = crate::gguf::check_reader(Cursor::new(data), data.len() as u64) {
        for (name, start, end) in &summary.tensors {
            assert!(start <= end && *end <= data.len() as u64, "tensor {name} at {start}..{end} past the end");
        }
    }
}

/// A safetensors header: every span it accepts lies inside the file.
pub fn safetensors_header(data: &[u8]) {
    if let Ok(spans) = crate::safetensors::read_from(Cursor::new(data), data.len() as u64) {
        for span in spans {
            assert!(span.start <= span.end && span.end <= data.len() as u64, "{span:?} past the end");
        }
    }
}

fn safe_name(value: &str) -> bool {
    matches!(value.len(), 40 | 64) && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn safe_path(path: &str) -> bool {
    !path.starts_with('/') && !path.contains('\\') && path.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

/// A file list: whatever it accepts names cache files by hex only and stays inside the repo.
pub fn hub_listing(data: &[u8]) {
    if let Ok(listing) = crate::hub::parse_listing(data, "org/name") {
        assert!(listing.commit.len() == 40 && safe_name(&listing.commit), "{:?}", listing.commit);
        for file in listing.files {
            assert!(safe_name(&file.etag) && safe_path(&file.path), "{file:?}");
        }
    }
}

/// Resolve headers (`name: value` lines): the same promise as the file list.
pub fn hub_headers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (file, headers) = text.split_once('\n').unwrap_or(("w.gguf", &text));
    let header = |wanted: &str| {
        headers.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim().eq_ignore_ascii_case(wanted).then(|| value.trim().to_owned())
        })
    };
    if let Ok((commit, listed)) = crate::hub::parse_file_headers(header, "org/name", file) {
        assert!(commit.len() == 40 && safe_name(&commit), "{commit:?}");
        assert!(safe_name(&listed.etag) && safe_path(&listed.path), "{listed:?}");
    }
}

/// A document: the first byte picks the kind it is read as, the rest is the file.
pub fn document(data: &[u8]) {
    const KINDS: [&str; 6] = ["pdf", "docx", "html", "txt", "", "md"];
    let Some((&kind, bytes)) = data.split_first() else { return };
    let _ = crate::document::read(bytes.to_vec(), KINDS[kind as usize % KINDS.len()]);
}

/// An OpenAI-compatible server's answers: the bytes as a chat completion stream (arriving in
/// pieces of the first byte's size), as a model list and as an error body. Whatever is
/// accepted is bounded: pieces of text are non-empty, ids non-empty and short, contexts
/// positive, messages short.
pub fn openai_stream(data: &[u8]) {
    use crate::openai::{self, EventSplitter, MAX_ID_BYTES, MAX_MESSAGE_CHARS, MAX_MODELS};
    let (cut, body) = data.split_first().map_or((1, data), |(c, rest)| (usize::from(*c).max(1), rest));
    let mut splitter = EventSplitter::new();
    let mut events = Vec::new();
    let mut failed = false;
    for piece in body.chunks(cut) {
        match splitter.push(piece) {
            Ok(more) => events.extend(more),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !failed {
        events.extend(splitter.finish().unwrap_or_default());
    }
    for event in &events {
        assert!(event.text.as_ref().is_none_or(|t| !t.is_empty()), "an empty piece of text: {event:?}");
    }
    if let Ok(models) = openai::parse_models(body) {
        assert!(models.len() <= MAX_MODELS);
        for m in models {
            assert!(!m.id.is_empty() && m.id.len() <= MAX_ID_BYTES, "{m:?}");
            assert!(m.context.is_none_or(|c| c > 0), "{m:?}");
        }
    }
    assert!(openai::error_message(body).chars().count() <= MAX_MESSAGE_CHARS);
}
