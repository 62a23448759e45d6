//! The small part of HTTP/1.1 the fake Hub speaks: reading a request head, percent-decoding its
//! path, parsing a `Range` header, and writing a response head.
//!
//! Every response closes its connection, so there is no keep-alive, no chunked encoding and no
//! request bodies to read.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The largest request head accepted, terminator included.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long a client may take to send its request head before the connection is closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed request head.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The method as sent, e.g. `GET`.
    pub method: String,
    /// The percent-decoded path, without the query string.
    pub path: String,
    /// The query parameters, percent-decoded; a repeated key keeps its last value.
    pub query: HashMap<String, String>,
    /// The headers, with lower-case names; a repeated header keeps its last value.
    headers: HashMap<String, String>,
}

impl Request {
    /// The value of a header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Whether the request asks for headers only.
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }
}

/// Why no request could be read from a connection.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed, failed or went silent before sending a complete head; nothing to answer.
    Gone,
    /// The peer sent something that is not a request head we accept; answer 400.
    Malformed,
}

/// Reads one request head (up to the blank line) from `stream` and parses it.
pub(crate) async fn read_request(stream: &mut TcpStream) -> Result<Request, ReadError> {
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(stream)).await.map_err(|_| ReadError::Gone)??;
    parse_request(&head).ok_or(ReadError::Malformed)
}

/// Reads bytes until the `\r\n\r\n` that ends a request head, and returns the head without it.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, ReadError> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.map_err(|_| ReadError::Gone)?;
        if read == 0 {
            return Err(if head.is_empty() { ReadError::Gone } else { ReadError::Malformed });
        }
        // The terminator may straddle two reads, so search from a little before the new bytes.
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = find(&head[search_from..], b"\r\n\r\n") {
            head.truncate(search_from + end);
            return Ok(head);
        }
        if head.len() >= MAX_HEAD_BYTES {
            return Err(ReadError::Malformed);
        }
    }
}

/// The position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Parses a request head (request line and header lines, without the final blank line).
fn parse_request(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let (method, target) = parse_request_line(lines.next()?)?;
    let mut headers = HashMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.is_empty() || name.bytes().any(|byte| byte.is_ascii_whitespace()) {
            return None;
        }
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    Some(Request {
        method: method.to_owned(),
        path: percent_decode(raw_path)?,
        query: parse_query(raw_query)?,
        headers,
    })
}

/// Splits `GET /path HTTP/1.1` into its method and target.
fn parse_request_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && !method.is_empty()
        && method.bytes().all(|byte| byte.is_ascii_alphabetic())
        && target.starts_with('/')
        && version.starts_with("HTTP/1.");
    well_formed.then_some((method, target))
}

/// Parses `a=1&b=2`; a key without `=` gets an empty value.
fn parse_query(raw: &str) -> Option<HashMap<String, String>> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

/// Decodes `%XX` escapes; `None` for a broken escape or a result that is not UTF-8.
pub(crate) fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// What a `Range` header asks of a body of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeRequest {
    /// No usable range: send the whole body with 200.
    Whole,
    /// Send bytes `start..end` (end exclusive) with 206.
    Part { start: u64, end: u64 },
    /// The range starts at or past the end: answer 416.
    Unsatisfiable,
}

/// Interprets a `Range` header for a body of `size` bytes.
///
/// One range is supported: `bytes=a-b`, `bytes=a-` or the suffix form `bytes=-n`. A header that
/// cannot be parsed, or that asks for several ranges, is ignored, as RFC 9110 allows.
pub(crate) fn parse_range(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return suffix_range(last, size);
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeRequest::Whole;
    };
    let end = if last.is_empty() {
        size
    } else {
        match last.parse::<u64>() {
            Ok(last) if last >= start => last.saturating_add(1).min(size),
            _ => return RangeRequest::Whole,
        }
    };
    if start >= size {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Part { start, end }
    }
}

/// Interprets `bytes=-n`: the last `n` bytes.
fn suffix_range(length: &str, size: u64) -> RangeRequest {
    match length.parse::<u64>() {
        Ok(0) => RangeRequest::Unsatisfiable,
        Ok(_) if size == 0 => RangeRequest::Unsatisfiable,
        Ok(length) => RangeRequest::Part { start: size.saturating_sub(length), end: size },
        Err(_) => RangeRequest::Whole,
    }
}

/// A response's status line and headers, before `Content-Length` and `Connection` are added.
#[derive(Debug, Clone)]
pub(crate) struct ResponseHead {
    /// The status code.
    pub status: u16,
    headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// A head with a status and no headers yet.
    pub fn new(status: u16) -> Self {
        Self { status, headers: Vec::new() }
    }

    /// The same head with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The bytes of the head, announcing a body of `content_length` bytes and the closing of the
    /// connection.
    pub fn encode(&self, content_length: u64) -> Vec<u8> {
        let mut text = format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status));
        for (name, value) in &self.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(&format!("Content-Length: {content_length}\r\nConnection: close\r\n\r\n"));
        text.into_bytes()
    }
}

/// The reason phrase for the statuses this server is likely to send.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_range(header: &str, size: u64, expected: RangeRequest) {
        assert_eq!(parse_range(Some(header), size), expected, "{header} of {size} bytes");
    }

    #[test]
    fn ranges() {
        use RangeRequest::*;
        check_range("bytes=0-9", 100, Part { start: 0, end: 10 });
        check_range("bytes=90-", 100, Part { start: 90, end: 100 });
        check_range("bytes=90-500", 100, Part { start: 90, end: 100 });
        check_range("bytes=-10", 100, Part { start: 90, end: 100 });
        check_range("bytes=-500", 100, Part { start: 0, end: 100 });
        check_range("bytes=100-", 100, Unsatisfiable);
        check_range("bytes=0-", 0, Unsatisfiable);
        check_range("bytes=9-3", 100, Whole);
        check_range("bytes=0-1,5-6", 100, Whole);
        check_range("items=0-1", 100, Whole);
        assert_eq!(parse_range(None, 100), Whole);
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("/a%2Fb%20c").as_deref(), Some("/a/b c"));
        assert_eq!(percent_decode("/caf%C3%A9").as_deref(), Some("/café"));
        assert_eq!(percent_decode("/bad%2"), None);
        assert_eq!(percent_decode("/bad%zz"), None);
        assert_eq!(percent_decode("/bad%FF"), None);
    }

    #[test]
    fn parses_a_request_head() {
        let head = b"GET /api/models/a/b/revision/main?blobs=true HTTP/1.1\r\nHost: x\r\nAUTHORIZATION: Bearer t";
        let request = parse_request(head).expect("a valid head");
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/api/models/a/b/revision/main");
        assert_eq!(request.query.get("blobs").map(String::as_str), Some("true"));
        assert_eq!(request.header("Authorization"), Some("Bearer t"));
        assert!(parse_request(b"GET nothing HTTP/1.1").is_none());
        assert!(parse_request(b"GET / HTTP/1.1\r\nno colon").is_none());
    }
}
