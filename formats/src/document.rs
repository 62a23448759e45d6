//! A document's text from its bytes: PDF page by page (pdf_oxide), DOCX (office_oxide), HTML
//! (html2text), Markdown and plain text in any common encoding. Formats without pages come back
//! as one page. The text is raw (the core cleans it up for reading); a file that is damaged,
//! encrypted or of another kind gets a problem that says so, never a panic — the core also runs
//! this in a child process with time and memory limits, since the parsers are not ours.

use std::io::Cursor;

/// Why the bytes gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadProblem {
    /// Password-protected.
    #[error("it is encrypted with a password")]
    Encrypted,
    /// Not a valid file of its kind.
    #[error("{0}")]
    Malformed(String),
    /// A kind this does not read: what it seems to be.
    #[error("it is {0}")]
    Unsupported(String),
}

/// What was read: the raw text of each page, and problems that did not stop the reading.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawPages {
    /// Each page's text, in order.
    pub pages: Vec<String>,
    /// Pages that could not be read, and why.
    pub warnings: Vec<String>,
}

/// Reads `bytes`, a file whose name ends in `.{extension}` (lower case, empty when it has
/// none): a PDF by its signature or extension, DOCX, HTML and text by extension, and text of
/// unknown extension when it looks like text.
pub fn read(bytes: Vec<u8>, extension: &str) -> Result<RawPages, ReadProblem> {
    // The parsers are not ours, and fuzzing found a PDF that makes pdf_oxide 0.3.70 panic (a
    // string sliced inside a character, fuzz/regressions/document/): a parser's panic is a
    // damaged file, not a crash.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_unguarded(bytes, extension))).unwrap_or_else(
        |panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no reason given");
            Err(ReadProblem::Malformed(format!("the reader failed on it ({why})")))
        },
    )
}

fn read_unguarded(bytes: Vec<u8>, extension: &str) -> Result<RawPages, ReadProblem> {
    if bytes.starts_with(b"%PDF") || extension == "pdf" {
        pdf(bytes)
    } else if extension == "docx" {
        let doc = office_oxide::Document::from_reader(Cursor::new(bytes), office_oxide::DocumentFormat::Docx)
            .map_err(|e| ReadProblem::Malformed(e.to_string()))?;
        Ok(one_page(doc.plain_text()))
    } else if matches!(extension, "html" | "htm" | "xhtml") {
        let text = decode_text(&bytes);
        let text = flatten_deep_html(&text, MAX_HTML_DEPTH);
        let plain =
            html2text::from_read(text.as_bytes(), 100_000).map_err(|e| ReadProblem::Malformed(e.to_string()))?;
        Ok(one_page(plain))
    } else if matches!(extension, "md" | "markdown" | "txt" | "text" | "rst" | "csv" | "log" | "") {
        Ok(one_page(decode_text(&bytes)))
    } else if bytes.starts_with(b"PK\x03\x04") {
        Err(ReadProblem::Unsupported("a zip-based file other than .docx".into()))
    } else if std::str::from_utf8(&bytes[..bytes.len().min(4096)]).is_ok() && !bytes.contains(&0) {
        Ok(one_page(decode_text(&bytes)))
    } else {
        Err(ReadProblem::Unsupported(format!("a .{extension} file")))
    }
}

/// Elements nested deeper than this are unwrapped (their text kept) before rendering: html2text's
/// time grows with the square of the depth (20,000 levels took 5 s, found by fuzzing), and real
/// pages nest a few dozen levels.
const MAX_HTML_DEPTH: usize = 256;

/// Elements that never hold content, so they open no level.
const VOID: [&str; 14] =
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"];

/// `html` with the tags of elements nested deeper than `limit` removed (their text stays), in one
/// pass; `html` itself when nothing is that deep.
fn flatten_deep_html(html: &str, limit: usize) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let (mut depth, mut copied, mut flattened) = (0usize, 0usize, false);
    let mut rest = 0;
    while let Some(found) = html[rest..].find('<') {
        let start = rest + found;
        let Some(len) = html[start..].find('>') else { break };
        let end = start + len + 1;
        let tag = &html[start + 1..end - 1];
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        let deep = if tag.starts_with('/') {
            let deep = depth > limit;
            depth = depth.saturating_sub(1);
            deep
        } else if name.is_empty() || tag.ends_with('/') || VOID.contains(&name.to_ascii_lowercase().as_str()) {
            false
        } else {
            depth += 1;
            depth > limit
        };
        if deep {
            out.push_str(&html[copied..start]);
            copied = end;
            flattened = true;
        }
        rest = end;
    }
    if !flattened {
        return std::borrow::Cow::Borrowed(html);
    }
    out.push_str(&html[copied..]);
    std::borrow::Cow::Owned(out)
}

fn one_page(text: String) -> RawPages {
    RawPages { pages: vec![text], warnings: Vec::new() }
}

/// Text in UTF-8 (with or without BOM), UTF-16 with BOM, or else Windows-1252 (the usual
/// encoding of old "ANSI" text files, and a superset of Latin-1's printable range).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        return encoding.decode_without_bom_handling(&bytes[bom..]).0.into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0.into_owned(),
    }
}

fn pdf(bytes: Vec<u8>) -> Result<RawPages, ReadProblem> {
    let malformed = |e: pdf_oxide::Error| ReadProblem::Malformed(e.to_string());
    let doc = pdf_oxide::PdfDocument::from_bytes(bytes).map_err(|e| {
        if e.to_string().to_lowercase().contains("encrypt") {
            ReadProblem::Encrypted
        } else {
            malformed(e)
        }
    })?;
    // An empty user password is common ("owner password" only): such files open normally.
    if doc.is_encrypted() && !doc.authenticate(b"").unwrap_or(false) {
        return Err(ReadProblem::Encrypted);
    }
    let count = doc.page_count().map_err(malformed)?;
    let mut read = RawPages { pages: Vec::with_capacity(count.min(100_000)), warnings: Vec::new() };
    for index in 0..count {
        match doc.extract_text(index) {
            Ok(text) => read.pages.push(text),
            Err(e) => {
                read.warnings.push(format!("page {}: its text could not be read ({e})", index + 1));
                read.pages.push(String::new());
            }
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_in_common_encodings_is_read() {
        assert_eq!(read("Grüße".as_bytes().to_vec(), "txt").unwrap().pages, ["Grüße"]);
        assert_eq!(read(vec![0x47, 0x72, 0xfc, 0xdf, 0x65], "txt").unwrap().pages, ["Grüße"], "Windows-1252");
        let utf16: Vec<u8> = [0xff, 0xfe].into_iter().chain("hé".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert_eq!(read(utf16, "").unwrap().pages, ["hé"]);
    }

    #[test]
    fn html_nested_thousands_deep_is_unwrapped_and_keeps_its_text() {
        let deep = format!("{}<p>quinoa</p>{}", "<div>".repeat(20_000), "</div>".repeat(20_000));
        let read = read(deep.into_bytes(), "html").unwrap();
        assert!(read.pages[0].contains("quinoa"), "{:?}", read.pages);
        let shallow = "<div><p>a<br>b</p><img src=x></div>";
        assert_eq!(flatten_deep_html(shallow, 2), shallow, "nothing that deep: unchanged");
        assert_eq!(flatten_deep_html("<a><b><c>x</c></b></a>", 2), "<a><b>x</b></a>");
    }

    /// The PDF fuzzing found making pdf_oxide panic is refused as damaged.
    #[test]
    fn a_pdf_that_makes_the_parser_panic_is_a_damaged_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/document");
        let found = std::fs::read(dir.join("crash-cb9528268af34fbdee5e72861bf1c64dae6892ff")).unwrap();
        let problem = read(found[1..].to_vec(), "pdf").unwrap_err();
        assert!(
            matches!(problem, ReadProblem::Malformed(ref why) if why.starts_with("the reader failed on it")),
            "{problem}"
        );
    }

    #[test]
    fn what_is_not_a_document_says_what_it_is() {
        assert_eq!(
            read(b"PK\x03\x04rest".to_vec(), "zip"),
            Err(ReadProblem::Unsupported("a zip-based file other than .docx".into()))
        );
        assert!(matches!(read(vec![0, 1, 2, 3], "bin"), Err(ReadProblem::Unsupported(_))));
        assert!(matches!(read(b"%PDF-1.4 garbage".to_vec(), "pdf"), Err(ReadProblem::Malformed(_))));
        assert!(matches!(read(b"not a zip".to_vec(), "docx"), Err(ReadProblem::Malformed(_))));
    }
}
