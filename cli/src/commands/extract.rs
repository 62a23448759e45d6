//! `altiplano extract FILE`: a document's text, page by page (parsed in an isolated process).

use std::path::Path;
use std::process::ExitCode;

use altiplano_core::documents::{self, Limits};

pub async fn run(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let program = std::env::current_exe()?;
    let doc = documents::extract_isolated(&program, file, Limits::default()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for page in &doc.pages {
            println!("--- page {} ---\n{}", page.number, page.text.trim_end());
        }
    }
    for warning in &doc.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
