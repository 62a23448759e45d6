//! Code search on a real code base no one here wrote: the sources of `serde_json`, which the
//! workspace already depends on (cargo has unpacked them into its registry). Also incremental
//! updates and files that must not stop indexing.

mod common;

use std::path::Path;

use altiplano_core::codebase::{CodeIndex, Skip};

/// Questions a developer might ask, each with the file that answers it.
const QUESTIONS: &[(&str, &str)] = &[
    ("How are \\uXXXX unicode escape sequences decoded when reading a string?", "src/read.rs"),
    ("Where does the serializer escape control characters and quotes in strings?", "src/ser.rs"),
    ("How are the line and column of a syntax error reported?", "src/error.rs"),
    ("What happens when the recursion limit is exceeded while deserializing deeply nested arrays?", "src/de.rs"),
    ("How does pretty printing indent nested objects?", "src/ser.rs"),
    ("How do I index into a Value with a string key or an array position?", "src/value/index.rs"),
    ("Comparing a Value with a primitive like i32 or &str for equality", "src/value/partial_eq.rs"),
    ("Converting a Vec or a HashMap into a Value", "src/value/from.rs"),
    ("How is the json! macro implemented?", "src/macros.rs"),
    ("Which map type backs JSON objects when preserve_order is enabled?", "src/map.rs"),
    ("How can I keep a piece of JSON text unparsed as a raw value?", "src/raw.rs"),
    ("How is a JSON number stored: u64, i64 or f64, and arbitrary precision?", "src/number.rs"),
    ("How do I deserialize a stream of several JSON values one after another?", "src/de.rs"),
    ("How does reading from an io::Read source peek at the next byte?", "src/read.rs"),
    ("Arbitrary-precision multiplication of big integer limbs for float parsing", "src/lexical/math.rs"),
    ("Rounding a float mantissa to nearest, ties to even", "src/lexical/rounding.rs"),
    ("Fast path for parsing a float when the mantissa and exponent are small", "src/lexical/algorithm.rs"),
    ("Deserializing a Value into a user's struct", "src/value/de.rs"),
    ("Serializing a Rust struct into a Value", "src/value/ser.rs"),
    ("What does to_string_pretty do?", "src/ser.rs"),
    ("Entry points from_slice and from_str", "src/de.rs"),
    ("Classifying an error as io, syntax, data or eof", "src/error.rs"),
    ("The Write trait used when std is not available", "src/io/core.rs"),
    ("Looking up a nested value with a JSON pointer like /a/b/0", "src/value/mod.rs"),
    ("Entry API of the map: occupied and vacant entries", "src/map.rs"),
    ("Tracking line and column while iterating over bytes", "src/iter.rs"),
    ("Shifting the mantissa left or right to normalize it", "src/lexical/shift.rs"),
    ("Converting an ASCII digit character to its value", "src/lexical/digit.rs"),
    ("Serializing map keys that are not strings, such as integers", "src/ser.rs"),
    ("Taking a value out and leaving null in its place", "src/value/mod.rs"),
    ("Error when a trailing comma appears in an array or object", "src/error.rs"),
    ("Parsing the fraction and exponent digits of a number while deserializing", "src/de.rs"),
];

#[test]
fn code_search_finds_the_file_that_answers_at_least_four_questions_in_five() {
    let data = tempfile::tempdir().expect("tempdir");
    let index = CodeIndex::open(data.path(), &common::serde_json_sources()).expect("open");
    let report = index.update(|_| {}).expect("index");
    assert!(report.files_indexed >= 40, "{report:?}");
    let mut found = 0;
    let mut misses = Vec::new();
    for (question, file) in QUESTIONS {
        let hits = index.search(question, 5).expect("search");
        if hits.iter().any(|h| h.path == *file) {
            found += 1;
        } else {
            misses
                .push(format!("{question} → want {file}, got {:?}", hits.iter().map(|h| &h.path).collect::<Vec<_>>()));
        }
    }
    let recall = found as f64 / QUESTIONS.len() as f64;
    eprintln!("recall@5 = {recall:.3} ({found} of {}); misses:\n{}", QUESTIONS.len(), misses.join("\n"));
    assert!(QUESTIONS.len() >= 30);
    assert!(recall >= 0.8, "recall@5 {recall:.3}");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn after_one_file_changes_only_that_file_is_read_and_deleted_files_leave_the_index() {
    let data = tempfile::tempdir().expect("tempdir");
    let project = tempfile::tempdir().expect("tempdir");
    copy_tree(&common::serde_json_sources().join("src"), project.path());
    let index = CodeIndex::open(data.path(), project.path()).expect("open");
    let first = index.update(|_| {}).expect("index");
    assert!(first.files_indexed > 30);

    let again = index.update(|_| {}).expect("no change");
    assert_eq!((again.files_read, again.files_indexed, again.files_removed), (0, 0, 0), "{again:?}");

    let map = project.path().join("map.rs");
    let mut text = std::fs::read_to_string(&map).expect("read");
    text.push_str("\npub fn frobnicate_the_widgets() -> usize { 42 }\n");
    std::fs::write(&map, text).expect("write");
    std::fs::remove_file(project.path().join("iter.rs")).expect("rm");
    let after = index.update(|_| {}).expect("update");
    assert_eq!((after.files_read, after.files_indexed, after.files_removed), (1, 1, 1), "{after:?}");
    let hits = index.search("frobnicate widgets", 3).expect("search");
    assert_eq!(hits[0].path, "map.rs");
    assert_eq!(hits[0].symbol, "frobnicate_the_widgets");
    assert!(index.search("LineColIterator", 10).expect("search").iter().all(|h| h.path != "iter.rs"));

    // A new index over the same data directory picks up where this one stopped.
    drop(index);
    let reopened = CodeIndex::open(data.path(), project.path()).expect("reopen");
    assert_eq!(reopened.update(|_| {}).expect("update").files_read, 0);
}

#[cfg(unix)]
#[test]
fn hostile_files_are_skipped_counted_and_do_not_stop_indexing() {
    use std::os::unix::ffi::OsStrExt;
    let data = tempfile::tempdir().expect("tempdir");
    let project = tempfile::tempdir().expect("tempdir");
    let p = project.path();
    std::fs::write(p.join("good.rs"), "fn useful_function() {}\n").expect("write");
    std::fs::write(p.join("blob.bin"), [0u8, 1, 2, 3, 0, 255]).expect("write");
    std::fs::write(p.join("app.min.js"), format!("var a={};", "x,".repeat(20_000))).expect("write");
    std::fs::write(p.join("huge.txt"), "word ".repeat(10 << 20)).expect("write"); // 50 MB
    std::fs::write(p.join(std::ffi::OsStr::from_bytes(b"bad\xff\xfename.rs")), "fn x() {}\n").expect("write");
    std::fs::write(p.join("latin1.txt"), [b'c', b'a', 0xe9, b'\n']).expect("write");
    std::fs::create_dir(p.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink("..", p.join("sub/loop")).expect("symlink loop");
    std::os::unix::fs::symlink("missing-target", p.join("dangling.rs")).expect("dangling link");
    let locked = p.join("locked.rs");
    std::fs::write(&locked, "fn secret() {}\n").expect("write");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).expect("chmod");
    let root_reads_anything = std::fs::read(&locked).is_ok();
    // A file even root cannot read: on Linux, a link to /proc/self/mem (reading offset 0 fails).
    let proc_mem = cfg!(target_os = "linux") && std::fs::read("/proc/self/mem").is_err();
    if proc_mem {
        std::os::unix::fs::symlink("/proc/self/mem", p.join("mem.rs")).expect("link");
    }

    let index = CodeIndex::open(data.path(), p).expect("open");
    let report = index.update(|_| {}).expect("indexing finishes");
    let skipped = |s: Skip| report.skipped.get(&s).copied().unwrap_or(0);
    assert_eq!(skipped(Skip::Binary), 1, "{report:?}");
    assert_eq!(skipped(Skip::Minified), 1, "{report:?}");
    assert_eq!(skipped(Skip::TooLarge), 1, "{report:?}");
    assert_eq!(skipped(Skip::NonUtf8Name), 1, "{report:?}");
    assert_eq!(skipped(Skip::NotUtf8), 1, "{report:?}");
    assert!(skipped(Skip::WalkError) >= 2, "the loop and the dangling link: {report:?}");
    // The link to /proc/self/mem leads out of the folder, so indexing leaves it out as such.
    assert_eq!(skipped(Skip::OutsideFolder) as usize, usize::from(proc_mem), "{report:?}");
    assert_eq!(skipped(Skip::Unreadable) as usize, usize::from(!root_reads_anything), "{report:?}");
    assert!(
        !root_reads_anything || proc_mem || !cfg!(target_os = "linux"),
        "an unreadable file or a link out of the folder was exercised"
    );
    let hits = index.search("useful function", 5).expect("search");
    assert_eq!(hits[0].path, "good.rs");
}

#[test]
fn a_watched_folder_is_reindexed_when_a_file_changes() {
    let data = tempfile::tempdir().expect("tempdir");
    let project = tempfile::tempdir().expect("tempdir");
    std::fs::write(project.path().join("a.py"), "def first():\n    pass\n").expect("write");
    let index = std::sync::Arc::new(CodeIndex::open(data.path(), project.path()).expect("open"));
    index.update(|_| {}).expect("index");
    let (tx, rx) = std::sync::mpsc::channel();
    let _watch = altiplano_core::codebase::Watch::start(index.clone(), move |r| {
        let _ = tx.send(r.map(|r| r.files_indexed));
    })
    .expect("watch");
    std::fs::write(project.path().join("b.py"), "def quixotic_helper():\n    return 1\n").expect("write");
    let indexed = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("an update ran").expect("update ok");
    assert_eq!(indexed, 1);
    assert_eq!(index.search("quixotic helper", 1).expect("search")[0].path, "b.py");
}
