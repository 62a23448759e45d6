//! The hostile-file corpus, run on every test run: each seed in `fuzz/seeds/<target>/` (written
//! by `fuzz/make_seeds.py`, each built to break one rule) and each input a fuzz run found
//! crashing (`fuzz/regressions/<target>/`, kept as regression tests) goes through its target,
//! which panics on any finding. Beyond not panicking, the sound seeds are read and every other
//! header, file list and resolve answer is refused with a problem that says what is wrong.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use altiplano_formats::{document, gguf, hub, openai, safetensors, targets};

fn inputs(folder: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

#[test]
fn every_seed_and_every_past_crash_goes_through_its_target_without_a_finding() {
    let mut total = 0;
    for (name, target) in targets::ALL {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name));
        assert!(seeds.len() >= 5, "{name}: the corpus has {} seeds; run fuzz/make_seeds.py", seeds.len());
        let regressions = inputs(&fuzz_dir().join("regressions").join(name));
        for file in seeds.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("read");
            let started = Instant::now();
            target(&data);
            let took = started.elapsed();
            if took.as_secs() >= 2 {
                eprintln!("{name}: {} took {took:?}", file.display());
            }
            total += 1;
        }
    }
    eprintln!("{total} hostile and sound inputs went through their readers");
}

/// Seeds named `sound*` are read; every other one is refused with a problem.
fn expect(name: &str, file: &Path, result: Result<(), String>) {
    let sound = file.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("sound"));
    match (sound, result) {
        (true, Err(problem)) => panic!("{name}: the sound seed {} was refused: {problem}", file.display()),
        (false, Ok(())) => panic!("{name}: the hostile seed {} was accepted", file.display()),
        (false, Err(problem)) => assert!(!problem.is_empty()),
        (true, Ok(())) => {}
    }
}

#[test]
fn hostile_headers_and_hub_answers_are_refused_and_sound_ones_read() {
    for file in inputs(&fuzz_dir().join("seeds/gguf_header")) {
        let data = std::fs::read(&file).expect("read");
        let result = gguf::check_reader(Cursor::new(&data), data.len() as u64).map(drop).map_err(|p| p.to_string());
        expect("gguf", &file, result);
    }
    for file in inputs(&fuzz_dir().join("seeds/safetensors_header")) {
        let data = std::fs::read(&file).expect("read");
        let result = safetensors::read_from(Cursor::new(&data), data.len() as u64).map(drop).map_err(|p| p.to_string());
        expect("safetensors", &file, result);
    }
    for file in inputs(&fuzz_dir().join("seeds/hub_listing")) {
        let data = std::fs::read(&file).expect("read");
        expect("hub listing", &file, hub::parse_listing(&data, "org/name").map(drop).map_err(|p| p.to_string()));
    }
    for file in inputs(&fuzz_dir().join("seeds/hub_headers")) {
        let text = std::fs::read_to_string(&file).expect("read");
        let (asked, headers) = text.split_once('\n').expect("a first line");
        let header = |wanted: &str| {
            headers.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                (name.trim() == wanted).then(|| value.trim().to_owned())
            })
        };
        expect(
            "hub headers",
            &file,
            hub::parse_file_headers(header, "org/name", asked).map(drop).map_err(|p| p.to_string()),
        );
    }
}

#[test]
fn sound_documents_give_their_text_and_broken_ones_a_reason() {
    const KINDS: [&str; 6] = ["pdf", "docx", "html", "txt", "", "md"];
    let mut refused = 0;
    for file in inputs(&fuzz_dir().join("seeds/document")) {
        let data = std::fs::read(&file).expect("read");
        let (kind, bytes) = data.split_first().expect("a kind byte");
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        match document::read(bytes.to_vec(), KINDS[*kind as usize % KINDS.len()]) {
            Ok(read) if name.starts_with("sound") => {
                let text = read.pages.concat();
                assert!(text.split_whitespace().count() >= 3, "{name}: {text:?}");
            }
            Ok(_) => {}
            Err(problem) => {
                assert!(!name.starts_with("sound"), "{name} was refused: {problem}");
                assert!(!problem.to_string().is_empty());
                refused += 1;
            }
        }
    }
    assert!(refused >= 4, "the broken PDFs and DOCX files are refused ({refused})");
}

#[test]
fn a_servers_sound_answers_are_read_and_broken_streams_refused() {
    let mut read = 0;
    for file in inputs(&fuzz_dir().join("seeds/openai_stream")) {
        let data = std::fs::read(&file).expect("read");
        let body = &data[1..];
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.ends_with(".json") {
            let models = openai::parse_models(body);
            assert_eq!(models.is_ok() && name.starts_with("sound"), name.starts_with("sound"), "{name}: {models:?}");
            continue;
        }
        let mut splitter = openai::EventSplitter::new();
        let events = body.chunks(usize::from(data[0]).max(1)).try_fold(Vec::new(), |mut all, piece| {
            all.extend(splitter.push(piece)?);
            Ok::<_, openai::Problem>(all)
        });
        match (name.starts_with("sound"), events) {
            (true, Ok(events)) => {
                let text: String = events.iter().filter_map(|e| e.text.clone()).collect();
                assert_eq!(text, "Hello", "{name}");
                read += 1;
            }
            (true, Err(problem)) => panic!("{name} was refused: {problem}"),
            (false, Err(problem)) => assert!(!problem.to_string().is_empty()),
            // Cut short or garbled: never read as a reply that finished.
            (false, Ok(events)) => assert!(events.iter().all(|e| e.finish.is_none()), "{name}: {events:?}"),
        }
    }
    assert_eq!(read, 2, "both sound streams were read");
}
