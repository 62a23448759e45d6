//! Summaries and follow-up questions with the real starter model over PDFs the tests generate
//! with known text on known pages, read through the real isolated reader and saved in a real
//! SQLite file.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use altiplano_core::config::DataDir;
use altiplano_core::documents::summary::{self, check_citations};
use altiplano_core::documents::{self, SummaryError, SummaryOptions, SummaryProgress};
use altiplano_core::engine::{CancellationToken, Engine, LoadOptions};
use altiplano_core::session::Session;
use altiplano_core::store::{Role, Store};
use common::harvest::{fact, write_pdf};

/// The core's own reader program, which the app and the CLI are too.
fn reader() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_BIN_EXE_altiplano-reader")))
}

/// Every citation of every node names a page inside that node.
fn assert_citations_inside(nodes: &[documents::SummaryNode]) {
    for node in nodes {
        let checked = check_citations(&node.text, |p| p >= node.first_page && p <= node.last_page);
        assert_eq!(
            checked.removed, 0,
            "node {}:{} cites outside {}-{}: {}",
            node.level, node.position, node.first_page, node.last_page, node.text
        );
    }
}

/// Every sentence of every node either cites pages of that node whose text supports it, or is
/// marked `[no source]`; the summary's sentences and coverage say the same of the final text.
fn assert_every_sentence_sourced(summary: &documents::Summary, pages: &[documents::Page]) {
    use altiplano_core::sourcing::{self, Sources, KEEP, UNSUPPORTED};
    let pattern = regex::Regex::new(r"\[(?:p|pp)\. [0-9, –]+\]").expect("pattern");
    for node in &summary.nodes {
        let step: Vec<&documents::Page> =
            pages.iter().filter(|p| (node.first_page..=node.last_page).contains(&p.number)).collect();
        let sources = Sources::new(step.iter().map(|p| p.text.as_str()), false);
        for (range, claim) in sourcing::claims(&node.text, &pattern, false) {
            let segment = &node.text[range];
            if segment.contains(UNSUPPORTED) {
                assert!(!pattern.is_match(segment), "a marked sentence cites nothing: {segment}");
                continue;
            }
            let cited = check_citations(segment, |_| true).pages;
            assert!(
                !cited.is_empty(),
                "node {}:{}: a sentence without a source or a mark: {segment:?}",
                node.level,
                node.position
            );
            let support = sources.support(&claim);
            let best = step
                .iter()
                .zip(&support)
                .filter(|(p, _)| cited.contains(&p.number))
                .map(|(_, s)| *s)
                .fold(0.0, f32::max);
            assert!(best >= KEEP, "{segment:?} cites {cited:?}, which support it only {best:.2}");
        }
    }
    let unsourced = summary.sentences.iter().filter(|s| !s.sourced).count();
    if let Some(coverage) = summary.coverage {
        let expected = (summary.sentences.len() - unsourced) as f32 / summary.sentences.len() as f32;
        assert!((coverage - expected).abs() < 1e-6);
    }
    assert!(summary.sentences.iter().all(|s| s.sourced != s.pages.is_empty()));
    eprintln!(
        "sentences of the final summary: {}, with a checked source: {}, coverage {:?}",
        summary.sentences.len(),
        summary.sentences.len() - unsourced,
        summary.coverage
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_tree_completes_on_a_300_page_pdf_and_opens_again_instantly() {
    let dir = common::data_dir();
    let store = Store::open(&dir.path().join("db.sqlite3")).await.expect("store");
    let file = dir.path().join("harvests.pdf");
    write_pdf(&file, 300);

    let (doc, cached) = documents::open(&store, reader(), &file).await.expect("open");
    assert!(cached.is_none());
    assert_eq!(doc.page_count, 300);
    let pages = documents::saved::pages(&store, doc.id).await.expect("pages");
    assert!(pages[41].text.contains(&fact(42)), "page 42 has its own fact: {:?}", pages[41].text);

    let engine = Engine::load(&common::starter_model(), LoadOptions::default()).await.expect("load");
    // Small chunks, so the 300 pages make a tree of several levels in reasonable time here.
    let options = SummaryOptions { context_tokens: None, chunk_tokens: Some(1800), output_tokens: 128 };
    let mut events = Vec::new();
    let summary =
        summary::summarize(&store, &engine, &doc, &pages, options, CancellationToken::new(), |e| events.push(e))
            .await
            .expect("summarize");

    // Progress: every page counted, each level's items announced in order with an ETA once a
    // step has been timed, and one Node event per node.
    assert!(events.iter().any(|e| matches!(e, SummaryProgress::Counting { done: 300, pages: 300 })));
    let writing: Vec<(u32, u32, u32, u32, Option<u64>)> = events
        .iter()
        .filter_map(|e| match e {
            SummaryProgress::Writing { level, item, items, step, eta_ms, .. } => {
                Some((*level, *item, *items, *step, *eta_ms))
            }
            _ => None,
        })
        .collect();
    let leaves = writing.iter().filter(|w| w.0 == 0).count() as u32;
    assert!(leaves >= 3, "300 pages in chunks of 1800 tokens make several chunks: {writing:?}");
    assert!(writing.iter().filter(|w| w.0 == 0).enumerate().all(|(i, w)| w.1 == i as u32 + 1 && w.2 == leaves));
    assert!(writing.windows(2).all(|w| w[1].3 == w[0].3 + 1), "steps count up: {writing:?}");
    assert!(writing[1..].iter().all(|w| w.4.is_some()), "an ETA after the first step: {writing:?}");
    let node_events = events.iter().filter(|e| matches!(e, SummaryProgress::Node { reused: false, .. })).count();
    assert_eq!(node_events, summary.nodes.len());

    // The tree: leaves cover every page once, in order; one root over everything.
    let leaves: Vec<_> = summary.nodes.iter().filter(|n| n.level == 0).collect();
    assert_eq!(leaves.first().map(|n| n.first_page), Some(1));
    assert_eq!(leaves.last().map(|n| n.last_page), Some(300));
    assert!(leaves.windows(2).all(|w| w[1].first_page == w[0].last_page + 1), "no gaps, no overlaps");
    let roots: Vec<_> = summary.nodes.iter().filter(|n| n.is_root).collect();
    assert_eq!(roots.len(), 1);
    assert_eq!((roots[0].first_page, roots[0].last_page), (1, 300));
    assert!(roots[0].level >= 1, "merged at least once");
    assert_citations_inside(&summary.nodes);
    assert_every_sentence_sourced(&summary, &pages);
    assert!(!summary.text.trim().is_empty());
    assert!(summary.citations.iter().all(|c| (1..=300).contains(&c.page)));
    eprintln!(
        "{} nodes, {} citations in the final summary, {} removed in the tree:\n{}",
        summary.nodes.len(),
        summary.citations.len(),
        summary.removed_citations,
        summary.text
    );

    // The same bytes under another name open from the database with the summary, no model.
    let copy = dir.path().join("copy of harvests.pdf");
    std::fs::copy(&file, &copy).expect("copy");
    let started = Instant::now();
    let (again, cached) =
        documents::open(&store, Some(PathBuf::from("/nonexistent/reader")), &copy).await.expect("reopen");
    eprintln!("reopened in {:?}", started.elapsed());
    assert_eq!(again.id, doc.id);
    assert_eq!(again.path, copy.display().to_string());
    let cached = cached.expect("the finished summary comes back");
    assert!(cached.cached);
    assert_eq!(cached.text, summary.text);
    assert_eq!((cached.sentences, cached.coverage), (summary.sentences, summary.coverage));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_summary_keeps_its_parts_and_the_next_run_continues() {
    let dir = common::data_dir();
    let store = Store::open(&dir.path().join("db.sqlite3")).await.expect("store");
    let file = dir.path().join("short.pdf");
    write_pdf(&file, 24);
    let (doc, _) = documents::open(&store, reader(), &file).await.expect("open");
    let pages = documents::saved::pages(&store, doc.id).await.expect("pages");
    let engine = Engine::load(&common::starter_model(), LoadOptions::default()).await.expect("load");
    let options = SummaryOptions { context_tokens: None, chunk_tokens: Some(300), output_tokens: 64 };

    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let mut finished_first = Vec::new();
    let stopped = summary::summarize(&store, &engine, &doc, &pages, options, cancel, |e| {
        if let SummaryProgress::Node { node, .. } = e {
            finished_first.push(node);
            if finished_first.len() == 2 {
                stop.cancel();
            }
        }
    })
    .await;
    assert!(matches!(stopped, Err(SummaryError::Cancelled { done: 2, .. })), "{stopped:?}");

    let mut reused = Vec::new();
    let mut written = 0;
    let summary = summary::summarize(&store, &engine, &doc, &pages, options, CancellationToken::new(), |e| match e {
        SummaryProgress::Node { node, reused: true } => reused.push(node),
        SummaryProgress::Writing { .. } => written += 1,
        _ => {}
    })
    .await
    .expect("the second run finishes");
    assert_eq!(reused, finished_first, "the finished parts were kept and not written again");
    assert_eq!(written + 2, summary.nodes.len());
    assert_citations_inside(&summary.nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_questions_use_the_right_pages_and_stay_in_the_documents_conversation() {
    let dir = common::data_dir();
    let session = Session::open(DataDir::at(dir.path().to_path_buf()).expect("data dir")).await.expect("session");
    session.set_extractor(PathBuf::from(env!("CARGO_BIN_EXE_altiplano-reader")));
    let file = dir.path().join("report.pdf");
    write_pdf(&file, 12);
    let (doc, _) = session.open_document(&file).await.expect("open");
    session.load_model(&common::starter_model()).await.expect("load");

    let summary = session
        .summarize_document(1, doc.id, false, SummaryOptions { output_tokens: 128, ..Default::default() }, |_| {})
        .await
        .expect("summarize");
    assert_eq!(summary.nodes.len(), 1, "12 short pages fit in one pass");
    assert_citations_inside(&summary.nodes);

    // Page 7's fact: "Puno: 52 tonnes of quinoa, season 7." (page 12 is Puno's barley).
    let question = "How many tonnes of quinoa did Puno harvest in season 7?";
    let asked = session.ask_document(2, doc.id, question, |_| {}).await.expect("answer");
    let (answer, conversation) = (asked.answer, asked.conversation_id);
    assert_eq!((answer.sources[0].first_page, answer.sources[0].summary), (7, false), "{:?}", answer.sources);
    assert!(
        matches!(answer.retrieval, altiplano_core::codebase::Retrieval::Hybrid { .. }),
        "the pages were embedded before the summary: {:?}",
        answer.retrieval
    );
    let shown: Vec<u32> = answer.sources.iter().filter(|s| !s.summary).map(|s| s.first_page).collect();
    assert!(answer
        .citations
        .iter()
        .all(|c| shown.contains(&c.page) || summary.citations.iter().any(|s| s.page == c.page)));
    eprintln!("answer: {}", answer.text);
    // Every sentence either cites a page that supports it or is marked as having none.
    for sentence in &answer.sentences {
        assert_eq!(sentence.sourced, !sentence.pages.is_empty(), "{sentence:?}");
    }
    let marked = answer.text.matches(altiplano_core::sourcing::UNSUPPORTED).count();
    assert_eq!(marked, answer.sentences.iter().filter(|s| !s.sourced).count(), "{}", answer.text);

    let doc = session.documents().await.expect("list").into_iter().find(|d| d.id == doc.id).expect("listed");
    assert_eq!(doc.conversation_id, Some(conversation));
    let messages = session.store().messages(conversation).await.expect("messages");
    let texts: Vec<(Role, &str)> = messages.iter().map(|m| (m.role, m.content.as_str())).collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!(texts[0], (Role::User, "Summarize report.pdf"));
    assert_eq!(texts[1], (Role::Assistant, summary.text.as_str()));
    assert_eq!(texts[2], (Role::User, question));
    assert_eq!(texts[3], (Role::Assistant, answer.text.as_str()));
    assert_eq!(messages[3].status, altiplano_core::store::MessageStatus::Complete);

    // Stopped at once: the question is kept, and so is the (empty) answer, marked stopped.
    let cancel = CancellationToken::new();
    cancel.cancel();
    let engine = Engine::load(&common::starter_model(), LoadOptions::default()).await.expect("load");
    let search = documents::desk::Search::keywords();
    let stopped =
        documents::desk::ask(session.store(), &engine, doc.id, "And in season 8?", search, None, cancel, |_| {})
            .await
            .expect("a stop is not a failure");
    assert_eq!(stopped.reason, altiplano_core::engine::FinishReason::Cancelled);
    let messages = session.store().messages(conversation).await.expect("messages");
    assert_eq!(messages.len(), 6);
    assert_eq!((messages[4].role, messages[4].content.as_str()), (Role::User, "And in season 8?"));
    assert_eq!(messages[5].status, altiplano_core::store::MessageStatus::Stopped);
}
