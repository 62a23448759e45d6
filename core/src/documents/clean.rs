//! Making extracted text read well: NFKC, joined hyphenations, no running headers or footers.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// Pages whose text is shorter than this (after clean-up) count as having no text layer.
const MIN_PAGE_CHARS: usize = 8;

/// Cleans every page and returns the pages with warnings about what was found.
pub fn clean(raw: Vec<String>) -> (Vec<super::Page>, Vec<String>) {
    let normalized: Vec<String> = raw.iter().map(|p| dehyphenate(&p.nfkc().collect::<String>())).collect();
    let (pages, removed) = remove_running_lines(normalized);
    let mut warnings = Vec::new();
    if removed > 0 {
        warnings.push(format!("{removed} running header or footer lines were removed"));
    }
    let empty: Vec<u32> = pages
        .iter()
        .enumerate()
        .filter(|(_, t)| t.trim().chars().count() < MIN_PAGE_CHARS)
        .map(|(i, _)| i as u32 + 1)
        .collect();
    if !empty.is_empty() && !pages.is_empty() {
        warnings.push(format!(
            "{} {} no text layer (scanned images?); text not available",
            ranges(&empty),
            if empty.len() == 1 { "has" } else { "have" }
        ));
    }
    let pages = pages.into_iter().enumerate().map(|(i, text)| super::Page { number: i as u32 + 1, text }).collect();
    (pages, warnings)
}

/// `pages 3–7, 9` / `page 4`.
fn ranges(numbers: &[u32]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}–{end}") });
        i += 1;
    }
    let word = if numbers.len() == 1 { "page" } else { "pages" };
    format!("{word} {}", parts.join(", "))
}

/// `inter-\nnational` → `international\n`: a word broken at a line end is joined (the line
/// break moves after it). A hyphen before a capital or a digit is kept (`Jean-\nPaul`).
fn dehyphenate(text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut emptied = vec![false; lines.len()];
    for i in 0..lines.len().saturating_sub(1) {
        let breaks_word = {
            let line = &lines[i];
            line.ends_with('-')
                && line[..line.len() - 1].chars().last().is_some_and(char::is_alphabetic)
                && lines[i + 1].trim_start().chars().next().is_some_and(char::is_lowercase)
        };
        if breaks_word {
            let next = lines[i + 1].trim_start().to_owned();
            let split = next.find(char::is_whitespace).unwrap_or(next.len());
            let (fragment, rest) = next.split_at(split);
            lines[i].pop();
            lines[i].push_str(fragment);
            lines[i + 1] = rest.trim_start().to_owned();
            emptied[i + 1] = lines[i + 1].is_empty();
        }
    }
    let mut out = String::with_capacity(text.len());
    for (line, gone) in lines.iter().zip(emptied) {
        if !gone {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Removes lines that appear at the top or bottom of most pages (at least 60% of them, and at
/// least three pages), comparing with digits masked so `Page 3 of 9` matches `Page 4 of 9`.
fn remove_running_lines(pages: Vec<String>) -> (Vec<String>, usize) {
    if pages.len() < 3 {
        return (pages, 0);
    }
    let key =
        |line: &str| -> String { line.trim().chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect() };
    let edges = |text: &str| -> Vec<String> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        // Two lines at each end on a full page; on a short one only the outermost, so a body
        // line is never taken for a header.
        let take = if lines.len() >= 6 { 2 } else { 1 };
        let mut edge: Vec<String> =
            lines.iter().take(take).chain(lines.iter().rev().take(take)).map(|l| key(l)).collect();
        edge.sort();
        edge.dedup();
        edge
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for page in &pages {
        for k in edges(page) {
            *counts.entry(k).or_default() += 1;
        }
    }
    let threshold = (pages.len() * 3).div_ceil(5).max(3);
    let running: Vec<String> =
        counts.into_iter().filter(|(k, n)| *n >= threshold && !k.is_empty()).map(|(k, _)| k).collect();
    if running.is_empty() {
        return (pages, 0);
    }
    let mut removed = 0;
    let pages = pages
        .into_iter()
        .map(|page| {
            let page_edges = edges(&page);
            page.lines()
                .filter(|line| {
                    let k = key(line);
                    let drop = running.contains(&k) && page_edges.contains(&k);
                    removed += usize::from(drop);
                    !drop
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    (pages, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ligatures_are_unfolded_and_hyphenated_words_joined() {
        let (pages, _) =
            clean(vec!["The ﬁnancial state-\nment was inter-\nnational news.\nJean-\nPaul stays.\n".into()]);
        let text = &pages[0].text;
        assert!(text.contains("financial statement\n"), "{text:?}");
        assert!(text.contains("international"), "{text:?}");
        assert!(text.contains("Jean-\nPaul"), "a hyphen before a capital is kept: {text:?}");
    }

    #[test]
    fn running_headers_and_page_numbers_are_removed_and_empty_pages_reported() {
        let pages: Vec<String> = (1..=6)
            .map(|i| {
                if i == 4 {
                    String::new()
                } else {
                    format!("ACME Annual Report\nBody text number {i} here.\nPage {i} of 6")
                }
            })
            .collect();
        let (clean_pages, warnings) = clean(pages);
        assert_eq!(clean_pages[0].text.trim(), "Body text number 1 here.");
        assert!(warnings.iter().any(|w| w.contains("running header")), "{warnings:?}");
        assert!(
            warnings.iter().any(|w| w == "page 4 has no text layer (scanned images?); text not available"),
            "{warnings:?}"
        );
    }

    #[test]
    fn page_ranges_read_naturally() {
        assert_eq!(ranges(&[3, 4, 5, 6, 7, 9]), "pages 3–7, 9");
        assert_eq!(ranges(&[4]), "page 4");
    }
}
