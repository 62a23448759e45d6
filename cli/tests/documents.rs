//! Document extraction on PDFs the tests generate with known text on known pages, and on
//! malformed files, through the real `altiplano extract` (which parses in an isolated child).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pdf_oxide::writer::DocumentBuilder;
use serde_json::Value;

/// A word no other page has: `kw` + page + index, spelled with letters only.
fn word(page: usize, i: usize) -> String {
    let letters = |mut n: usize| {
        let mut s = String::new();
        loop {
            s.push((b'a' + (n % 26) as u8) as char);
            n /= 26;
            if n == 0 {
                break s;
            }
        }
    };
    format!("kw{}x{}", letters(page), letters(i))
}

fn write_pdf(path: &Path, pages: usize, words_per_page: usize) {
    let mut doc = DocumentBuilder::new();
    for p in 1..=pages {
        let words: Vec<String> = (0..words_per_page).map(|i| word(p, i)).collect();
        let mut page = doc.letter_page().at(72.0, 720.0);
        for line in words.chunks(8) {
            page = page.text(&line.join(" "));
        }
        page.done();
    }
    std::fs::write(path, doc.build().expect("build the PDF")).expect("write");
}

fn extract(file: &Path) -> (bool, Value, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_altiplano")).arg("extract").arg(file).arg("--json").output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, stderr)
}

/// Share of each page's known words found on that very page.
fn recall(doc: &Value, pages: usize, words_per_page: usize) -> f64 {
    let extracted = doc["pages"].as_array().expect("pages");
    let mut found = 0;
    for p in 1..=pages {
        let page = extracted.iter().find(|e| e["number"] == p).expect("page present");
        let text = page["text"].as_str().expect("text");
        found += (0..words_per_page).filter(|&i| text.split_whitespace().any(|w| w == word(p, i))).count();
    }
    found as f64 / (pages * words_per_page) as f64
}

#[test]
fn known_words_come_back_on_their_own_pages_in_a_300_page_pdf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("long.pdf");
    write_pdf(&file, 300, 24);
    let (ok, doc, stderr) = extract(&file);
    assert!(ok, "{stderr}");
    assert_eq!(doc["pages"].as_array().expect("pages").len(), 300);
    assert_eq!(doc["file"], file.display().to_string());
    let r = recall(&doc, 300, 24);
    eprintln!("recall of known words on their pages: {r:.4}");
    assert!(r >= 0.98, "recall {r}");
}

#[test]
fn both_columns_of_a_two_column_page_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("columns.pdf");
    let words: Vec<String> = (0..120).map(|i| word(1, i)).collect();
    let mut doc = DocumentBuilder::new();
    doc.letter_page().at(72.0, 720.0).columns(2, 24.0, &words.join(" ")).done();
    std::fs::write(&file, doc.build().expect("build")).expect("write");
    let (ok, doc, stderr) = extract(&file);
    assert!(ok, "{stderr}");
    let r = recall(&doc, 1, 120);
    assert!(r >= 0.98, "recall {r}");
}

#[test]
fn encrypted_pdfs_get_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret.pdf");
    let mut doc = DocumentBuilder::new();
    doc.letter_page().at(72.0, 720.0).text("top secret words").done();
    std::fs::write(&file, doc.to_bytes_encrypted("user-password", "owner-password").expect("encrypt")).expect("write");
    let (ok, _, stderr) = extract(&file);
    assert!(!ok);
    assert!(stderr.contains("encrypted with a password"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn malformed_files_fail_quickly_with_a_reason_and_the_next_file_still_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.pdf");
    write_pdf(&good, 2, 8);
    let bytes = std::fs::read(&good).expect("read");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.pdf", bytes[..bytes.len() / 3].to_vec()),
        ("random.pdf", (0..100_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("empty.pdf", Vec::new()),
        (
            "cyclic.pdf",
            b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 /Parent 2 0 R >> endobj\n3 0 obj << /Type /Pages /Kids [2 0 R] /Parent 3 0 R /Count 1 >> endobj\ntrailer << /Root 1 0 R /Size 4 >>\n%%EOF\n".to_vec(),
        ),
    ];
    for (name, content) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).expect("write");
        let started = Instant::now();
        let (ok, doc, stderr) = extract(&file);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{name} took {took:?}");
        if ok {
            // A lenient parser may recover something; then it must be a well-formed answer.
            assert!(doc["pages"].is_array(), "{name}: {doc}");
        } else {
            assert_eq!(stderr.trim().lines().count(), 1, "{name}: one line: {stderr}");
            assert!(stderr.starts_with("altiplano: "), "{name}: {stderr}");
        }
    }
    // A 200 MB file of junk behind a PDF header.
    let huge = dir.path().join("huge.pdf");
    let file = std::fs::File::create(&huge).expect("create");
    std::io::Write::write_all(&mut &file, b"%PDF-1.7\n").expect("write");
    file.set_len(200 << 20).expect("grow");
    let started = Instant::now();
    let (ok, _, stderr) = extract(&huge);
    assert!(started.elapsed() < Duration::from_secs(10), "200 MB took {:?}", started.elapsed());
    assert!(!ok || stderr.is_empty(), "{stderr}");
    let (ok, doc, stderr) = extract(&good);
    assert!(ok, "the next file still works: {stderr}");
    assert_eq!(recall(&doc, 2, 8), 1.0);
}

#[test]
fn text_files_in_common_encodings_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let latin = dir.path().join("notes.txt");
    std::fs::write(&latin, b"caf\xe9 cr\xe8me br\xfbl\xe9e\n").expect("write");
    let utf16 = dir.path().join("utf16.txt");
    let mut bytes = vec![0xff, 0xfe];
    for unit in "naïve 東京".encode_utf16() {
        bytes.extend(unit.to_le_bytes());
    }
    std::fs::write(&utf16, bytes).expect("write");
    let md = dir.path().join("readme.md");
    std::fs::write(&md, "# Title\n\nThe ﬁrst line.\n").expect("write");
    let (_, doc, _) = extract(&latin);
    assert_eq!(doc["pages"][0]["text"].as_str().expect("text").trim(), "café crème brûlée");
    let (_, doc, _) = extract(&utf16);
    assert_eq!(doc["pages"][0]["text"].as_str().expect("text").trim(), "naïve 東京");
    let (_, doc, _) = extract(&md);
    assert!(
        doc["pages"][0]["text"].as_str().expect("text").contains("The first line."),
        "NFKC unfolds ligatures: {doc}"
    );

    let (ok, _, stderr) = extract(&dir.path().join("missing.pdf"));
    assert!(!ok && stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn docx_and_html_are_read_as_text_and_markup_is_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docx = dir.path().join("memo.docx");
    let mut writer = office_oxide::docx::write::DocxWriter::new();
    writer.add_paragraph("Quarterly revenue grew by twelve percent.");
    writer.add_paragraph("Costs fell in the northern region.");
    writer.save(&docx).expect("write docx");
    let (ok, doc, stderr) = extract(&docx);
    assert!(ok, "{stderr}");
    let text = doc["pages"][0]["text"].as_str().expect("text");
    assert!(text.contains("Quarterly revenue grew by twelve percent.") && text.contains("northern region"), "{text}");

    let html = dir.path().join("page.html");
    std::fs::write(&html, "<html><head><script>alert(1)</script><style>p{}</style></head><body><h1>Report</h1><p>The <b>board</b> approved the plan.</p></body></html>").expect("write");
    let (ok, doc, stderr) = extract(&html);
    assert!(ok, "{stderr}");
    let text = doc["pages"][0]["text"].as_str().expect("text");
    assert!(text.contains("Report") && text.contains("approved the plan"), "{text}");
    assert!(!text.contains("alert(1)") && !text.contains("<b>"), "scripts and tags are gone: {text}");

    let broken = dir.path().join("broken.docx");
    std::fs::write(&broken, b"PK\x03\x04 not really a zip").expect("write");
    let (ok, _, stderr) = extract(&broken);
    assert!(!ok && stderr.contains("damaged"), "{stderr}");
}

/// Words of `text` after the clean-up's NFKC, for comparing with what came back.
fn nfkc_words(text: &str) -> Vec<String> {
    use unicode_normalization::UnicodeNormalization;
    text.nfkc()
        .collect::<String>()
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .collect()
}

#[test]
fn ligatures_and_non_latin_scripts_come_back_on_their_own_pages() {
    use pdf_oxide::writer::EmbeddedFont;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("scripts.pdf");
    // Fonts embedded with a ToUnicode map, as real documents carry them: DejaVu (bundled with
    // pdf_oxide) for ligature glyphs, Greek and Cyrillic; WenQuanYi Micro Hei (Debian's
    // fonts-wqy-microhei, installed by scripts/deps.sh) for Chinese and Japanese.
    let dejavu = EmbeddedFont::from_data(Some("DejaVuSans".into()), pdf_oxide::fonts::bundled::DEJAVU_SANS.to_vec())
        .expect("DejaVu");
    let cjk_path = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";
    let cjk = EmbeddedFont::from_file(cjk_path)
        .unwrap_or_else(|e| panic!("{cjk_path}: {e}; install fonts-wqy-microhei (scripts/deps.sh test does)"));
    let pages: [(&str, &str); 4] = [
        ("DejaVu", "The \u{FB01}rst \u{FB02}oor o\u{FB03}ce and the e\u{FB00}ort were \u{FB01}ne"),
        ("DejaVu", "Η αγορά της πόλης άνοιξε νωρίς το πρωί της Τρίτης"),
        ("DejaVu", "Кооператив продал картофель на рынке в Пуно"),
        ("CJK", "東京の市場は朝早く開きました"),
    ];
    let mut doc = DocumentBuilder::new().register_embedded_font("DejaVu", dejavu).register_embedded_font("CJK", cjk);
    for (font, text) in pages {
        doc.letter_page().font(font, 14.0).at(72.0, 720.0).text(text).done();
    }
    std::fs::write(&file, doc.build().expect("build")).expect("write");

    let (ok, doc, stderr) = extract(&file);
    assert!(ok, "{stderr}");
    let extracted: Vec<&str> =
        doc["pages"].as_array().expect("pages").iter().map(|p| p["text"].as_str().expect("text")).collect();
    assert_eq!(extracted.len(), 4);
    // Ligature glyphs come back as their letters (NFKC), so "first" is found as a word.
    let mut found = 0;
    let mut total = 0;
    for (i, (_, text)) in pages.iter().take(3).enumerate() {
        let got = nfkc_words(extracted[i]);
        for word in nfkc_words(text) {
            total += 1;
            found += usize::from(got.contains(&word));
        }
    }
    let recall = found as f64 / total as f64;
    eprintln!("ligatures, Greek, Cyrillic: {found}/{total} words on their pages\n{extracted:#?}");
    assert!(recall >= 0.98, "recall {recall}");
    assert!(extracted[0].contains("first floor office"), "{}", extracted[0]);
    // CJK has no spaces to split words at: compare the characters.
    let cjk_got: String = extracted[3].chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(cjk_got, pages[3].1, "CJK page: {}", extracted[3]);
}
