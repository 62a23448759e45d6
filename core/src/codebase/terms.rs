//! Words for search: identifiers are indexed whole and split into their parts (`parseHttpRequest`
//! → `parseHttpRequest parse Http Request`; `snake_case` is split by the tokenizer), so a
//! question in plain words finds the code that names those words.

/// Appends the camelCase parts of every identifier in `text` after it; everything else is kept.
pub fn expand_identifiers(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        out.push_str(word);
        let parts = camel_parts(word);
        if parts.len() > 1 {
            for part in parts {
                out.push(' ');
                out.push_str(part);
            }
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `parseHTTPRequest2` → `parse`, `HTTP`, `Request2`; underscores separate too.
fn camel_parts(word: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..chars.len() {
        let (pos, c) = chars[i];
        let prev = chars[i - 1].1;
        let next_lower = chars.get(i + 1).is_some_and(|(_, n)| n.is_lowercase());
        let boundary = c == '_'
            || prev == '_'
            || (prev.is_lowercase() && c.is_uppercase())
            || (prev.is_uppercase() && c.is_uppercase() && next_lower);
        if boundary {
            let part = word[start..pos].trim_matches('_');
            if !part.is_empty() {
                parts.push(part);
            }
            start = pos;
        }
    }
    let last = word[start..].trim_matches('_');
    if !last.is_empty() {
        parts.push(last);
    }
    parts
}

/// Words too common in questions to say anything about code.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "code", "do", "does", "file", "for", "happen", "happens",
    "how", "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "their", "there", "this", "to", "what",
    "when", "where", "which", "who", "why", "with", "you",
];

/// A question turned into search words: identifiers expanded, stop words and punctuation gone.
pub fn query_terms(question: &str) -> Vec<String> {
    let expanded = expand_identifiers(question);
    let mut terms: Vec<String> = Vec::new();
    for word in expanded.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
        for part in word.split('_') {
            let lower = part.to_lowercase();
            if lower.len() > 1 && !STOPWORDS.contains(&lower.as_str()) && !terms.contains(&lower) {
                terms.push(lower);
            }
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_split_into_their_words() {
        assert_eq!(expand_identifiers("fn parseHTTPRequest2(x)"), "fn parseHTTPRequest2 parse HTTP Request2(x)");
        assert_eq!(expand_identifiers("snake_case stays"), "snake_case snake case stays");
        assert_eq!(expand_identifiers("plain words"), "plain words");
    }

    #[test]
    fn questions_keep_the_words_that_matter() {
        assert_eq!(query_terms("Where is the JSON number parsed?"), vec!["json", "number", "parsed"]);
        assert_eq!(query_terms("how does from_str work"), vec!["from", "str", "work"]);
    }
}
