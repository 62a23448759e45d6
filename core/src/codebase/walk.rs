//! Which files of a folder to index: what `git` would track (`.gitignore`, `.ignore`, global
//! excludes) minus what is not source a person reads — binary, very large, minified or
//! generated files, unreadable files and names that are not UTF-8. Each skip is counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Files larger than this are not indexed.
pub const MAX_FILE_BYTES: u64 = 2 << 20;

/// Why a file was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// Contains NUL bytes.
    Binary,
    /// Over [`MAX_FILE_BYTES`].
    TooLarge,
    /// Long lines or little text: minified or generated.
    Minified,
    /// Says it is generated (`@generated`, `DO NOT EDIT`).
    Generated,
    /// Not valid UTF-8 text.
    NotUtf8,
    /// The file name is not valid UTF-8.
    NonUtf8Name,
    /// Could not be read (permissions, vanished).
    Unreadable,
    /// A symbolic link loop, or a walk error.
    WalkError,
    /// A symbolic link to a file or folder outside the chosen folder (`key.txt -> ~/.ssh/id_rsa`,
    /// `all -> /`): left out unless `ALTIPLANO_CODE_OUTSIDE_LINKS=1`.
    OutsideFolder,
}

/// Environment variable that, set to `1`, follows symbolic links out of the code folder.
pub const OUTSIDE_LINKS_ENV: &str = "ALTIPLANO_CODE_OUTSIDE_LINKS";

/// A file to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the root, `/`-separated.
    pub path: String,
    /// Absolute path.
    pub abs: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns since the epoch), 0 when unknown.
    pub mtime_ns: u128,
}

/// The files under `root` to consider, and the walk's own skips. Links inside the folder are
/// followed; links out of it are skipped and counted ([`Skip::OutsideFolder`]) unless
/// `ALTIPLANO_CODE_OUTSIDE_LINKS=1`.
pub fn list(root: &Path) -> (Vec<SourceFile>, BTreeMap<Skip, u64>) {
    list_following(root, std::env::var(OUTSIDE_LINKS_ENV).is_ok_and(|v| v.trim() == "1"))
}

/// [`list`], following links out of the folder or not.
pub fn list_following(root: &Path, outside_links: bool) -> (Vec<SourceFile>, BTreeMap<Skip, u64>) {
    let mut files = Vec::new();
    let mut skipped = BTreeMap::new();
    let outside = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut builder = ignore::WalkBuilder::new(root);
    // Links are followed (the walker detects loops and reports them), but only where they
    // stay in the folder: a link is judged by where it really leads.
    builder.follow_links(true).require_git(false);
    if !outside_links {
        let inside = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let counted = std::sync::Arc::clone(&outside);
        builder.filter_entry(move |entry| {
            if !entry.path_is_symlink() {
                return true;
            }
            match std::fs::canonicalize(entry.path()) {
                Ok(target) if !target.starts_with(&inside) => {
                    counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    false
                }
                // Inside, or broken (the walker reports a broken link itself).
                _ => true,
            }
        });
    }
    let walker = builder.build();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "skipped while walking");
                *skipped.entry(Skip::WalkError).or_default() += 1;
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let abs = entry.path().to_path_buf();
        let Some(path) = abs.strip_prefix(root).ok().and_then(|p| p.to_str()).map(|p| p.replace('\\', "/")) else {
            *skipped.entry(Skip::NonUtf8Name).or_default() += 1;
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            *skipped.entry(Skip::Unreadable).or_default() += 1;
            continue;
        };
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        files.push(SourceFile { path, abs, size: meta.len(), mtime_ns });
    }
    let outside = outside.load(std::sync::atomic::Ordering::Relaxed);
    if outside > 0 {
        skipped.insert(Skip::OutsideFolder, outside);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    (files, skipped)
}

/// The text of a file worth indexing, or why not.
pub fn read_text(file: &SourceFile) -> Result<String, Skip> {
    if file.size > MAX_FILE_BYTES {
        return Err(Skip::TooLarge);
    }
    let bytes = std::fs::read(&file.abs).map_err(|_| Skip::Unreadable)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Skip::TooLarge);
    }
    if bytes[..bytes.len().min(8192)].contains(&0) {
        return Err(Skip::Binary);
    }
    let text = String::from_utf8(bytes).map_err(|_| Skip::NotUtf8)?;
    classify(&text)?;
    Ok(text)
}

/// Minified or generated text is left out: it would drown real code in search results.
fn classify(text: &str) -> Result<(), Skip> {
    let head: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
    if head.contains("@generated") || head.contains("DO NOT EDIT") || head.contains("do not edit") {
        return Err(Skip::Generated);
    }
    let lines = text.lines().count().max(1);
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    let average = text.len() / lines;
    if text.len() > 1000 && (average > 300 || longest > 5000) {
        return Err(Skip::Minified);
    }
    let sample = &text.as_bytes()[..text.len().min(64 << 10)];
    let alnum = sample.iter().filter(|b| b.is_ascii_alphanumeric()).count();
    let ascii_or_text =
        sample.iter().filter(|b| !b.is_ascii() || b.is_ascii_alphanumeric() || b.is_ascii_whitespace()).count();
    if sample.len() > 1000 && alnum * 4 < sample.len() && ascii_or_text * 2 < sample.len() {
        return Err(Skip::Minified);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key.txt -> ~/.ssh/id_rsa` and `all -> /` stay out of the index (and of every prompt);
    /// links that stay in the folder are followed.
    #[cfg(unix)]
    #[test]
    fn links_out_of_the_folder_are_skipped_and_counted() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("id_rsa"), "-----BEGIN PRIVATE KEY-----").unwrap();
        std::fs::create_dir(outside.path().join("elsewhere")).unwrap();
        std::fs::write(outside.path().join("elsewhere/secret.rs"), "fn secret() {}").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("src")).unwrap();
        std::fs::write(root.path().join("src/lib.rs"), "pub fn f() {}").unwrap();
        std::os::unix::fs::symlink(outside.path().join("id_rsa"), root.path().join("key.txt")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("elsewhere"), root.path().join("vendor")).unwrap();
        std::os::unix::fs::symlink(root.path().join("src"), root.path().join("same")).unwrap();

        let (files, skipped) = list_following(root.path(), false);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["same/lib.rs", "src/lib.rs"], "a link inside the folder is followed");
        assert_eq!(skipped.get(&Skip::OutsideFolder), Some(&2), "{skipped:?}");

        let (files, skipped) = list_following(root.path(), true);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["key.txt", "same/lib.rs", "src/lib.rs", "vendor/secret.rs"], "allowed: followed");
        assert_eq!(skipped.get(&Skip::OutsideFolder), None);
    }

    #[test]
    fn minified_and_generated_text_is_recognised() {
        assert_eq!(classify("fn main() {}\n"), Ok(()));
        assert_eq!(classify(&format!("var a={};\n", "x".repeat(6000))), Err(Skip::Minified));
        assert_eq!(classify("// Code generated by protoc. DO NOT EDIT.\npackage x\n"), Err(Skip::Generated));
        let symbols = "{}[](),;:=+-*/<>!&|^%~?.\n".repeat(100);
        assert_eq!(classify(&symbols), Err(Skip::Minified));
    }
}
