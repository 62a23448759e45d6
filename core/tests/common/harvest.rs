//! PDFs of harvest figures, one fact per page, so a test knows which page answers what.

use std::path::Path;

use pdf_oxide::writer::DocumentBuilder;

pub const CROPS: [&str; 6] = ["barley", "quinoa", "potatoes", "maize", "beans", "oca"];
pub const TOWNS: [&str; 5] = ["Oruro", "Potosi", "Puno", "Uyuni", "Juliaca"];

/// Page `p`'s one fact: a crop, a town and a number that no other page has together.
pub fn fact(p: usize) -> String {
    format!("{}: {} tonnes of {}, season {p}.", TOWNS[p % TOWNS.len()], p * 7 + 3, CROPS[p % CROPS.len()])
}

/// A PDF of `pages` letter pages, page `p` holding `fact(p)`.
pub fn write_pdf(path: &Path, pages: usize) {
    let mut doc = DocumentBuilder::new();
    for p in 1..=pages {
        doc.letter_page().at(72.0, 720.0).text(&fact(p)).done();
    }
    std::fs::write(path, doc.build().expect("build the PDF")).expect("write");
}
