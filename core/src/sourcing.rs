//! Every sentence a model writes from material, checked against that material.
//!
//! A summary step or an answer is cut into claims: sentences and bullet points, each with the
//! citations that close it (headings, code blocks and fragments of fewer than three content
//! words are not claims). A claim's support by one source (a page, a code excerpt) is the share
//! of the claim's content words that the source contains, each word weighted by how rare it is
//! among the sources (BM25's IDF) and numbers twice, since a wrong figure is the likeliest
//! invention; words are stemmed and stop words left out, as the keyword index does.
//!
//! Then: a claim whose own citation names a source that supports it (by [`KEEP`]) keeps it; one
//! whose citation names a source that does not, or that has none, gets the best-supported source
//! when the support clears [`ATTACH`] (lower bars for code, [`CODE_KEEP`] and [`CODE_ATTACH`]);
//! a claim no source supports loses its citations and is marked
//! [`UNSUPPORTED`], so that it is never passed off as fact. [`Judged::coverage`] is the share of
//! claims left with a checked source.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use regex::Regex;
use serde::Serialize;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer, TokenStream,
};

/// Written after a claim that no source supports.
pub const UNSUPPORTED: &str = "[no source]";
/// Support a claim's own citation needs to be kept (prose sources).
pub const KEEP: f32 = 0.34;
/// Support a source needs to be attached to a claim that does not cite it (prose sources).
pub const ATTACH: f32 = 0.5;
/// [`KEEP`] for code: an answer's prose shares fewer of its words with code than a summary
/// with its pages ("the net amount times the rate" against `net * rate`).
pub const CODE_KEEP: f32 = 0.2;
/// [`ATTACH`] for code.
pub const CODE_ATTACH: f32 = 0.25;
/// A second source is attached too when its support is this close to the best one's.
const TIE: f32 = 0.05;

/// How a claim's source was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Its own citation names a source that supports it.
    Cited,
    /// Its source was found by matching (it had none, or one that did not support it).
    Matched,
    /// No source supports it: marked [`UNSUPPORTED`].
    Unsupported,
}

/// One claim after checking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    /// The sentence or bullet point, without its citations.
    pub text: String,
    /// The sources that support it (indexes into the sources given), best first.
    pub sources: Vec<usize>,
    /// How they were settled.
    pub verdict: Verdict,
    /// The best support any source gives it, 0 to 1.
    pub support: f32,
}

/// A text whose every claim was checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judged {
    /// The text with citations kept, moved or added, and unsupported claims marked.
    pub text: String,
    /// Its claims, in order.
    pub claims: Vec<Claim>,
    /// Citations that were replaced by a better-supported source.
    pub moved: u32,
}

impl Judged {
    /// The share of claims with a checked source; `None` when the text makes no claim.
    pub fn coverage(&self) -> Option<f32> {
        (!self.claims.is_empty()).then(|| {
            let sourced = self.claims.iter().filter(|c| c.verdict != Verdict::Unsupported).count();
            sourced as f32 / self.claims.len() as f32
        })
    }
}

/// How citations are written in a text: found by `pattern`, resolved to the sources they name
/// (none when they name no source given), and written for a list of sources.
pub struct Citations<'a> {
    /// Matches one citation.
    pub pattern: &'a Regex,
    /// The sources one match names.
    pub resolve: &'a dyn Fn(&str) -> Vec<usize>,
    /// The citation of these sources, as the text writes it.
    pub render: &'a dyn Fn(&[usize]) -> String,
}

/// The material a text was written from, ready to be matched against.
pub struct Sources {
    bags: Vec<HashSet<String>>,
    idf: HashMap<String, f32>,
    code: bool,
    keep: f32,
    attach: f32,
}

impl Sources {
    /// Sources with these texts. `code` splits identifiers into their words (`parseHttp` →
    /// `parse http`), as the code index does.
    pub fn new<'t>(texts: impl IntoIterator<Item = &'t str>, code: bool) -> Self {
        let bags: Vec<HashSet<String>> = texts.into_iter().map(|t| words(t, code).into_iter().collect()).collect();
        let mut df: HashMap<String, usize> = HashMap::new();
        for bag in &bags {
            for word in bag {
                *df.entry(word.clone()).or_default() += 1;
            }
        }
        let n = bags.len() as f32;
        let idf = df.into_iter().map(|(w, d)| (w, idf(n, d as f32))).collect();
        let (keep, attach) = if code { (CODE_KEEP, CODE_ATTACH) } else { (KEEP, ATTACH) };
        Self { bags, idf, code, keep, attach }
    }

    /// How well each source supports `claim`, 0 to 1, in the order given.
    pub fn support(&self, claim: &str) -> Vec<f32> {
        let words: HashSet<String> = words(claim, self.code).into_iter().collect();
        let n = self.bags.len() as f32;
        let weight = |w: &String| {
            let rarity = self.idf.get(w).copied().unwrap_or_else(|| idf(n, 0.0));
            if w.chars().all(|c| c.is_ascii_digit()) {
                2.0 * rarity
            } else {
                rarity
            }
        };
        let total: f32 = words.iter().map(weight).sum();
        self.bags
            .iter()
            .map(|bag| {
                if total <= 0.0 {
                    return 0.0;
                }
                words.iter().filter(|w| bag.contains(*w)).map(weight).sum::<f32>() / total
            })
            .collect()
    }

    /// Checks every claim of `text` against these sources, `citations` being how the text cites
    /// them.
    pub fn judge(&self, text: &str, citations: &Citations<'_>) -> Judged {
        let mut out = String::with_capacity(text.len() + 64);
        let mut judged = Vec::new();
        let mut moved = 0;
        let mut last = 0;
        for (range, claim_text) in claims(text, citations.pattern, self.code) {
            out.push_str(&text[last..range.start]);
            last = range.end;
            let segment = &text[range];
            let cited: Vec<usize> =
                citations.pattern.find_iter(segment).flat_map(|m| (citations.resolve)(m.as_str())).collect();
            let support = self.support(&claim_text);
            let best_cited = cited.iter().map(|&i| support.get(i).copied().unwrap_or(0.0)).fold(0.0, f32::max);
            let mut ranked: Vec<usize> = (0..support.len()).collect();
            ranked.sort_by(|&a, &b| support[b].total_cmp(&support[a]).then(a.cmp(&b)));
            let best = ranked.first().map_or(0.0, |&i| support[i]);
            let (verdict, sources) = if !cited.is_empty() && best_cited >= self.keep {
                let mut kept: Vec<usize> = cited.clone();
                kept.sort_unstable();
                kept.dedup();
                kept.sort_by(|&a, &b| support[b].total_cmp(&support[a]));
                out.push_str(segment);
                (Verdict::Cited, kept)
            } else if best >= self.attach {
                let chosen: Vec<usize> = ranked
                    .iter()
                    .copied()
                    .take(2)
                    .filter(|&i| support[i] >= self.attach && support[i] >= best - TIE)
                    .collect();
                if !cited.is_empty() {
                    moved += 1;
                }
                out.push_str(&with_mark(&claim_text, &(citations.render)(&chosen), segment));
                (Verdict::Matched, chosen)
            } else {
                out.push_str(&with_mark(&claim_text, UNSUPPORTED, segment));
                (Verdict::Unsupported, Vec::new())
            };
            judged.push(Claim { text: strip_bullet(&claim_text), sources, verdict, support: best });
        }
        out.push_str(&text[last..]);
        Judged { text: out, claims: judged, moved }
    }
}

/// The claims of `text` whose citations `citation` matches: each one's byte range (with its
/// citations) and its text without them. Fragments of fewer than three content words are not
/// claims.
pub fn claims(text: &str, citation: &Regex, code: bool) -> Vec<(Range<usize>, String)> {
    claim_ranges(text, citation)
        .into_iter()
        .filter_map(|range| {
            let bare = citation.replace_all(&text[range.clone()], "").replace(UNSUPPORTED, "");
            let claim = squeeze(bare.trim_end());
            (content_words(&claim, code) >= 3).then_some((range, claim))
        })
        .collect()
}

/// `text` without the claims marked [`UNSUPPORTED`] (a bullet point left empty goes too): what
/// a later step may build on.
pub fn without_unsupported(text: &str, citation: &Regex) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        if !line.contains(UNSUPPORTED) {
            lines.push(line.to_owned());
            continue;
        }
        let mut kept = String::with_capacity(line.len());
        let mut last = 0;
        for range in claim_ranges(line, citation) {
            kept.push_str(&line[last..range.start]);
            last = range.end;
            if !line[range.clone()].contains(UNSUPPORTED) {
                kept.push_str(&line[range]);
            }
        }
        kept.push_str(&line[last..]);
        if !kept.trim().trim_start_matches(['-', '*', '•', '+']).trim().is_empty() {
            lines.push(kept.trim_end().to_owned());
        }
    }
    lines.join("\n")
}

/// BM25's inverse document frequency of a word in `df` of `n` sources.
fn idf(n: f32, df: f32) -> f32 {
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// The claim with `mark` before its closing punctuation (`Water was scarce [p. 3].`), keeping
/// what followed the segment's text (its line end).
fn with_mark(claim: &str, mark: &str, segment: &str) -> String {
    let trailing = &segment[segment.trim_end().len()..];
    let (body, stop) = match claim.char_indices().next_back() {
        Some((i, '.' | '!' | '?' | '।' | '。' | ';' | ':')) => (&claim[..i], &claim[i..]),
        _ => (claim, ""),
    };
    format!("{} {mark}{stop}{trailing}", body.trim_end())
}

/// A claim without its bullet marker.
pub fn strip_bullet(claim: &str) -> String {
    claim.trim_start_matches(['-', '*', '•', '+', ' ']).trim().to_owned()
}

/// Whitespace runs inside a line made one space, and spaces left before punctuation removed.
fn squeeze(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, part) in text.split(' ').filter(|p| !p.is_empty()).enumerate() {
        let glued = part.starts_with(['.', ',', ';', ':', '!', '?', ')']);
        if i > 0 && !glued {
            out.push(' ');
        }
        out.push_str(part);
    }
    let indent = &text[..text.len() - text.trim_start().len()];
    format!("{indent}{out}")
}

/// The byte ranges of the claims in `text`, each with the citations that close it: one per
/// sentence of a line, bullet markers included; headings, blank lines and fenced code left out.
pub fn claim_ranges(text: &str, citation: &Regex) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut fenced = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let trimmed = content.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced || trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('|') {
            continue;
        }
        let cited: Vec<Range<usize>> = citation.find_iter(content).map(|m| m.range()).collect();
        let mut from = 0;
        for end in sentence_ends(content, &cited) {
            if !content[from..end].trim().is_empty() {
                ranges.push(start + from..start + end);
            }
            from = end;
        }
    }
    ranges
}

/// Words that a full stop follows without ending the sentence.
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "prof", "st", "fig", "no", "vol", "inc", "ltd", "vs", "etc", "cf", "jr", "sr", "pp", "eq",
];

/// Where the sentences of one line end: after a full stop (or `!`, `?`, `।`, `。`) that a space
/// and then a capital letter, a digit or a bullet follow, and after the citations that close it.
fn sentence_ends(line: &str, citations: &[Range<usize>]) -> Vec<usize> {
    let inside = |i: usize| citations.iter().any(|r| r.contains(&i));
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut ends = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if matches!(c, '.' | '!' | '?' | '।' | '。') && !inside(at) {
            // A one-letter word before a full stop is an initial or "p.", not a sentence's end;
            // nor are the usual abbreviations of titles and references.
            let word_before = line[..at].rsplit(|ch: char| !ch.is_alphanumeric()).next().unwrap_or("");
            let abbreviation = c == '.'
                && (word_before.chars().count() == 1
                    || ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(word_before)));
            // The citations right after the stop belong to this sentence.
            let mut end = at + c.len_utf8();
            loop {
                let rest = &line[end..];
                let spaces = rest.len() - rest.trim_start().len();
                match citations.iter().find(|r| r.start == end + spaces) {
                    Some(r) => end = r.end,
                    None => break,
                }
            }
            let rest = &line[end..];
            let next = rest.trim_start().chars().next();
            let spaced = rest.starts_with(char::is_whitespace);
            if !abbreviation && spaced && next.is_some_and(|n| n.is_uppercase() || n.is_ascii_digit() || !n.is_ascii())
            {
                ends.push(end);
            }
            while i < chars.len() && chars[i].0 < end {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    ends.push(line.len());
    ends
}

/// Content words: stemmed, lower-cased, stop words left out; in `code`, identifiers are their
/// words (`parseHttp` and `parse_http` are both `pars http`).
fn words(text: &str, code: bool) -> Vec<String> {
    let text = if code { split_camel_case(text) } else { text.to_owned() };
    let builder =
        TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(40)).filter(LowerCaser);
    let mut analyzer = match StopWordFilter::new(Language::English) {
        Some(stop) => builder.filter(stop).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    };
    let mut stream = analyzer.token_stream(&text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// `parseHTTPRequest` → `parse HTTP Request` (underscores already separate words).
fn split_camel_case(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push(' ');
            }
        }
        out.push(c);
    }
    out
}

fn content_words(text: &str, code: bool) -> usize {
    words(text, code).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages() -> Vec<&'static str> {
        vec![
            "The survey counted 412 llamas grazing near Lake Titicaca in June, most of them in herds of twenty.",
            "Water was scarce in August: the wells of Puno ran dry and herders walked their animals to the river.",
            "The cooperative sold alpaca wool in Cusco at a better price than the year before.",
        ]
    }

    fn page_citations() -> (Regex, impl Fn(&str) -> Vec<usize>, impl Fn(&[usize]) -> String) {
        let pattern = Regex::new(r"\[p\. (\d+)\]").expect("pattern");
        let number = Regex::new(r"\d+").expect("pattern");
        let resolve = move |m: &str| -> Vec<usize> {
            number
                .find_iter(m)
                .filter_map(|n| n.as_str().parse::<usize>().ok())
                .filter(|&n| (1..=3).contains(&n))
                .map(|n| n - 1)
                .collect()
        };
        let render = |s: &[usize]| s.iter().map(|i| format!("[p. {}]", i + 1)).collect::<Vec<_>>().join(" ");
        (pattern, resolve, render)
    }

    #[test]
    fn each_sentence_keeps_a_citation_that_supports_it_gets_one_or_is_marked() {
        let sources = Sources::new(pages(), false);
        let (pattern, resolve, render) = page_citations();
        let citations = Citations { pattern: &pattern, resolve: &resolve, render: &render };
        let text = "## Key points\n\
                    - The survey counted 412 llamas near Lake Titicaca [p. 1].\n\
                    - The wells of Puno ran dry in August [p. 3].\n\
                    The cooperative sold its alpaca wool in Cusco. Herders bought new trucks with government loans [p. 2].\n";
        let judged = sources.judge(text, &citations);
        let verdicts: Vec<(Verdict, Vec<usize>)> =
            judged.claims.iter().map(|c| (c.verdict, c.sources.clone())).collect();
        assert_eq!(
            verdicts,
            vec![
                (Verdict::Cited, vec![0]),
                (Verdict::Matched, vec![1]),
                (Verdict::Matched, vec![2]),
                (Verdict::Unsupported, vec![]),
            ],
            "{judged:#?}"
        );
        assert_eq!(judged.moved, 1, "the wells' citation moved from page 3 to page 2");
        assert_eq!(
            judged.text,
            "## Key points\n\
             - The survey counted 412 llamas near Lake Titicaca [p. 1].\n\
             - The wells of Puno ran dry in August [p. 2].\n\
             The cooperative sold its alpaca wool in Cusco [p. 3]. Herders bought new trucks with government loans [no source].\n"
        );
        assert_eq!(judged.coverage(), Some(0.75));
        assert_eq!(judged.claims[3].text, "Herders bought new trucks with government loans.");
    }

    #[test]
    fn later_steps_do_not_build_on_unsupported_claims() {
        let pattern = Regex::new(r"\[p\. \d+\]").expect("pattern");
        let text = "Overview. Wool sold well [p. 3]. Trucks were bought [no source].\n- Loans came [no source].\n- Wells ran dry [p. 2].";
        assert_eq!(without_unsupported(text, &pattern), "Overview. Wool sold well [p. 3].\n- Wells ran dry [p. 2].");
    }

    #[test]
    fn a_wrong_number_is_not_supported_by_a_page_with_the_same_words() {
        let sources = Sources::new(pages(), false);
        let right = sources.support("The survey counted 412 llamas.");
        let wrong = sources.support("The survey counted 9000 llamas.");
        assert!(right[0] > wrong[0], "{right:?} vs {wrong:?}");
        assert!(wrong[0] < ATTACH, "a made-up figure does not clear the bar: {wrong:?}");
    }

    #[test]
    fn sentences_end_at_their_citations_not_at_abbreviations() {
        let pattern = Regex::new(r"\[p\. \d+\]").expect("pattern");
        let line = "Prices rose, e.g. for wool. [p. 2] Dr. Quispe led the count [p. 1]. It ended in June.";
        let parts: Vec<&str> = claim_ranges(line, &pattern).into_iter().map(|r| line[r].trim()).collect();
        assert_eq!(
            parts,
            vec!["Prices rose, e.g. for wool. [p. 2]", "Dr. Quispe led the count [p. 1].", "It ended in June."]
        );
    }

    #[test]
    fn code_and_headings_and_fragments_are_not_claims() {
        let sources = Sources::new(pages(), false);
        let (pattern, resolve, render) = page_citations();
        let citations = Citations { pattern: &pattern, resolve: &resolve, render: &render };
        let text = "# Summary\n\n```\nlet llamas = 412;\n```\n\nKey points:\n";
        let judged = sources.judge(text, &citations);
        assert!(judged.claims.is_empty(), "{judged:?}");
        assert_eq!(judged.text, text);
        assert_eq!(judged.coverage(), None);
    }

    #[test]
    fn identifiers_in_code_match_the_words_of_a_sentence() {
        let sources =
            Sources::new(["fn parse_http_request(buf: &[u8]) -> Request { todo!() }", "fn render_page() {}"], true);
        let support = sources.support("The HTTP request is parsed by parseHttpRequest.");
        assert!(support[0] >= CODE_ATTACH && support[1] < CODE_KEEP, "{support:?}");
    }
}
