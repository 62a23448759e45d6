//! Hybrid search with the real starter embedding model (all-MiniLM-L6-v2, fetched by
//! `models/fetch-starter.sh`): a question in other words than the code's (or a page's) finds
//! it, only the chunks of a changed file are embedded again, a document's pages are embedded
//! once, and without a model search says it uses keywords only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use altiplano_core::codebase::{CodeIndex, Ranking, Retrieval};
use altiplano_core::engine::embed::{similarity, EmbedError, Embedder};

fn starter_embedder() -> Arc<Embedder> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/all-MiniLM-L6-v2");
    Arc::new(Embedder::load(&dir).unwrap_or_else(|e| panic!("{e} (run models/fetch-starter.sh)")))
}

fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("create the folder");
    std::fs::write(file, text).expect("write the file");
}

fn project(root: &Path) {
    write(
        root,
        "src/weather.rs",
        "/// Estimates the chance of rain for tomorrow from barometric pressure readings.\n\
         pub fn forecast_precipitation(pressure_hpa: &[f64]) -> f64 {\n    let falling = pressure_hpa.windows(2).filter(|w| w[1] < w[0]).count();\n    falling as f64 / pressure_hpa.len().max(1) as f64\n}\n",
    );
    write(
        root,
        "src/money.rs",
        "/// Converts an amount between currencies with the day's exchange rate.\n\
         pub fn convert_currency(amount_cents: i64, rate: f64) -> i64 {\n    (amount_cents as f64 * rate).round() as i64\n}\n",
    );
    write(
        root,
        "src/graph.rs",
        "/// Dijkstra's shortest path over a weighted adjacency list.\n\
         pub fn shortest_path(edges: &[Vec<(usize, u32)>], from: usize, to: usize) -> Option<u32> {\n    let _ = (edges, from, to);\n    None\n}\n",
    );
}

#[test]
fn sentence_vectors_put_paraphrases_close_and_unrelated_text_far() {
    let embedder = starter_embedder();
    assert_eq!(embedder.dims(), 384);
    let v = embedder
        .embed(&["How do I reset my password?", "I forgot my login credentials", "The cat sat on the mat"])
        .unwrap();
    assert!(v.iter().all(|v| (similarity(v, v) - 1.0).abs() < 1e-4), "vectors are normalized");
    assert!(
        similarity(&v[0], &v[1]) > similarity(&v[0], &v[2]) + 0.2,
        "{} vs {}",
        similarity(&v[0], &v[1]),
        similarity(&v[0], &v[2])
    );
    // Long input is cut at the model's limit rather than failing.
    let long = "word ".repeat(5000);
    assert_eq!(embedder.embed(&[long.as_str(), ""]).unwrap().len(), 2);
}

#[test]
fn hybrid_search_finds_code_asked_about_in_other_words_and_reembeds_only_what_changed() {
    let folder = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    project(folder.path());
    let question = "should I bring an umbrella when I go out";

    // Keywords alone: none of the question's words is in the code.
    let plain = CodeIndex::open(data.path(), folder.path()).unwrap();
    assert!(matches!(plain.retrieval(), Retrieval::Keywords { .. }), "{:?}", plain.retrieval());
    plain.update(|_| {}).unwrap();
    assert!(plain.search(question, 3).unwrap().iter().all(|h| h.path != "src/weather.rs"));
    drop(plain);

    // With the model: every chunk without a vector from it gets one, and the question finds it.
    let index = CodeIndex::open(data.path(), folder.path()).unwrap().with_embedder(starter_embedder());
    assert_eq!(index.retrieval(), Retrieval::Hybrid { model: "all-MiniLM-L6-v2".into() });
    let mut seen_embedding = false;
    let first = index.update(|p| seen_embedding |= p.chunks_to_embed > 0).unwrap();
    assert!(seen_embedding, "progress reports the embedding");
    assert_eq!(first.chunks_embedded, first.chunks_total, "{first:?}");
    assert!(first.chunks_total >= 3);
    let hits = index.search(question, 3).unwrap();
    assert_eq!(hits[0].path, "src/weather.rs", "{hits:?}");
    assert_eq!(index.search_ranked(question, 1, Ranking::Dense).unwrap()[0].path, "src/weather.rs");
    assert_eq!(index.search("exchange rate between currencies", 1).unwrap()[0].path, "src/money.rs");

    // Nothing changed: nothing embedded. One file changed: only its chunks.
    assert_eq!(index.update(|_| {}).unwrap().chunks_embedded, 0);
    write(
        folder.path(),
        "src/money.rs",
        "/// Splits a bill evenly between friends.\npub fn split_bill(total_cents: i64, people: i64) -> i64 {\n    total_cents / people.max(1)\n}\n\
         /// Adds a tip to a bill.\npub fn add_tip(total_cents: i64, percent: i64) -> i64 {\n    total_cents + total_cents * percent / 100\n}\n",
    );
    let second = index.update(|_| {}).unwrap();
    assert_eq!(second.files_indexed, 1, "{second:?}");
    assert_eq!(second.chunks_embedded, second.chunks_indexed, "{second:?}");
    assert!(second.chunks_embedded < second.chunks_total, "{second:?}");
    assert_eq!(index.search("dividing the cost of dinner among several people", 1).unwrap()[0].path, "src/money.rs");

    // Reopened later, the vectors are still there: nothing is embedded again.
    drop(index);
    let reopened = CodeIndex::open(data.path(), folder.path()).unwrap().with_embedder(starter_embedder());
    assert_eq!(reopened.update(|_| {}).unwrap().chunks_embedded, 0);
    assert_eq!(reopened.search(question, 1).unwrap()[0].path, "src/weather.rs");
}

#[test]
fn keywords_work_before_the_vectors_and_a_stopped_embedding_carries_on_where_it_stopped() {
    use altiplano_core::engine::CancellationToken;
    let folder = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    project(folder.path());
    // Enough chunks that embedding takes more than one step.
    for f in 0..5 {
        let body: String = (0..20)
            .map(|k| {
                format!("/// Helper {k} of module {f}.\npub fn helper_{f}_{k}(x: u32) -> u32 {{\n    x + {k}\n}}\n\n")
            })
            .collect();
        write(folder.path(), &format!("src/extra{f}.rs"), &body);
    }
    let index = CodeIndex::open(data.path(), folder.path()).unwrap().with_embedder(starter_embedder());

    // The words first (what the app waits for before a question can be asked).
    let words = index.update_words(|_| {}).unwrap();
    assert!(words.chunks_indexed > 64 && words.chunks_embedded == 0, "{words:?}");
    assert_eq!(index.search("exchange rate currency", 1).unwrap()[0].path, "src/money.rs");
    assert!(index.search_ranked("exchange rate currency", 3, Ranking::Dense).unwrap().is_empty(), "no vectors yet");

    // Stopped after the first step: what it embedded is kept, searchable by vector at once.
    let stop = CancellationToken::new();
    let first = index
        .embed_pending(
            |p| {
                if p.chunks_embedded > 0 {
                    stop.cancel();
                }
            },
            &stop,
        )
        .unwrap();
    assert!(first.chunks_embedded > 0 && first.chunks_embedded < words.chunks_indexed, "{first:?}");
    assert_eq!(index.search_ranked("anything", 500, Ranking::Dense).unwrap().len() as u64, first.chunks_embedded);

    // The next run embeds only the rest; then nothing is left.
    let rest = index.embed_pending(|_| {}, &CancellationToken::new()).unwrap();
    assert_eq!(first.chunks_embedded + rest.chunks_embedded, words.chunks_indexed);
    assert_eq!(index.embed_pending(|_| {}, &CancellationToken::new()).unwrap().chunks_embedded, 0);
    let by_meaning = index.search_ranked("should I bring an umbrella when I go out", 1, Ranking::Dense).unwrap();
    assert_eq!(by_meaning[0].path, "src/weather.rs");
}

#[test]
fn a_damaged_or_incomplete_embedding_model_is_refused_with_what_to_do() {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/all-MiniLM-L6-v2");
    let copy = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json"] {
        std::fs::copy(source.join(name), copy.path().join(name)).unwrap();
    }
    let missing = Embedder::load(copy.path()).unwrap_err();
    assert!(matches!(missing, EmbedError::Missing { file: "model.safetensors", .. }), "{missing}");
    assert!(missing.to_string().contains("fetch-starter.sh"), "{missing}");
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    std::fs::write(copy.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let damaged = Embedder::load(copy.path()).unwrap_err();
    assert!(matches!(damaged, EmbedError::Damaged { file: "model.safetensors", .. }), "{damaged}");
}

#[test]
fn a_models_prefixes_and_pooling_shape_its_vectors_and_name_them_apart() {
    use altiplano_core::catalog::Pooling;
    use altiplano_core::engine::embed::Recipe;
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/starter/all-MiniLM-L6-v2");
    let plain = starter_embedder();
    let recipe = Recipe::from_folder(&source);
    assert_eq!((recipe.pooling, recipe.query_prefix.as_str()), (Pooling::Mean, ""), "{recipe:?}");

    // e5-style: "query: " before questions, "passage: " before passages.
    let prefixed = Recipe { query_prefix: "query: ".into(), passage_prefix: "passage: ".into(), ..recipe.clone() };
    let prefixed = Embedder::load_with(&source, prefixed).unwrap();
    assert_ne!(prefixed.id(), plain.id(), "vectors of another recipe are not mixed with these");
    let text = "Shipping costs depend on the parcel's weight.";
    assert_eq!(prefixed.embed(&[text]).unwrap(), plain.embed(&[&format!("passage: {text}")]).unwrap());
    assert_eq!(prefixed.embed_query(text).unwrap(), plain.embed(&[&format!("query: {text}")]).unwrap()[0]);
    assert_ne!(prefixed.embed_query(text).unwrap(), plain.embed_query(text).unwrap());

    // First-token pooling: another vector, still of length 1.
    let cls = Embedder::load_with(&source, Recipe { pooling: Pooling::Cls, ..recipe }).unwrap();
    let (c, m) = (cls.embed(&[text]).unwrap().remove(0), plain.embed(&[text]).unwrap().remove(0));
    assert!(similarity(&c, &c) > 0.999 && similarity(&c, &m) < 0.99, "{} {}", similarity(&c, &c), similarity(&c, &m));
    assert_ne!(cls.id(), plain.id());

    // A folder that says how it pools and what it prefixes (sentence-transformers' own files).
    let copy = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(source.join(name), copy.path().join(name)).unwrap();
    }
    std::fs::create_dir_all(copy.path().join("1_Pooling")).unwrap();
    std::fs::write(copy.path().join("1_Pooling/config.json"), r#"{"pooling_mode_cls_token": true}"#).unwrap();
    std::fs::write(
        copy.path().join("config_sentence_transformers.json"),
        r#"{"prompts": {"query": "Represent this question: ", "document": ""}}"#,
    )
    .unwrap();
    let said = Recipe::from_folder(copy.path());
    assert_eq!(
        (said.pooling, said.query_prefix.as_str(), said.passage_prefix.as_str()),
        (Pooling::Cls, "Represent this question: ", "")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_finds_the_page_that_answers_in_other_words_and_pages_are_embedded_once() {
    use altiplano_core::documents::followup::{Dense, PageIndex};
    use altiplano_core::documents::{saved, vectors};
    use altiplano_core::engine::CancellationToken;

    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("minutes.pdf");
    let mut pdf = pdf_oxide::writer::DocumentBuilder::new();
    for text in [
        "The cooperative bought three new tractors for the spring planting.",
        "Heavy rain in March flooded the storehouses and spoiled much of the grain.",
        "The board elected a new treasurer at the annual meeting.",
    ] {
        pdf.letter_page().at(72.0, 720.0).text(text).done();
    }
    std::fs::write(&file, pdf.build().expect("build the PDF")).expect("write");
    let store = altiplano_core::store::Store::open(&dir.path().join("db.sqlite3")).await.expect("store");
    let reader = Some(PathBuf::from(env!("CARGO_BIN_EXE_altiplano-reader")));
    let (doc, _) = altiplano_core::documents::open(&store, reader, &file).await.expect("open");
    let pages = saved::pages(&store, doc.id).await.expect("pages");
    let embedder = starter_embedder();

    let cancel = CancellationToken::new();
    let mut seen = Vec::new();
    let page_vectors = vectors::ensure(&store, doc.id, &pages, embedder.clone(), &cancel, |done, total| {
        seen.push((done, total));
    })
    .await
    .expect("embed the pages");
    assert_eq!(page_vectors.pages(), 3);
    assert_eq!(seen.last(), Some(&(3, 3)), "one window per short page, progress to the end: {seen:?}");

    // No word of the question is on the page that answers it.
    let question = "What damage did the bad weather cause?";
    let query = embedder.embed_query(question).expect("embed the question");
    let index = PageIndex::build(&pages, &[]).expect("index the pages");
    let keywords = index.rank(question, 5, None).expect("rank");
    assert!(keywords.iter().all(|s| s.first_page != 2), "BM25 alone cannot find it: {keywords:?}");
    assert!(keywords.is_empty(), "stop words match nothing: {keywords:?}");
    let hybrid =
        index.rank(question, 5, Some(Dense { query: &query, pages: &page_vectors, nodes: None })).expect("rank");
    assert_eq!(hybrid.first().map(|s| s.first_page), Some(2), "{hybrid:?}");

    // A summary's part, in other words again: found by its own vector, made once per model.
    let node = altiplano_core::documents::saved::SummaryNode {
        level: 0,
        position: 0,
        first_page: 1,
        last_page: 3,
        text: "Storms ruined part of the harvest kept in the barns [p. 2].".into(),
        removed_citations: 0,
        is_root: false,
        model: "test".into(),
    };
    let index = PageIndex::build(&pages, std::slice::from_ref(&node)).expect("index pages and summary");
    let node_vectors = index.node_vectors(&embedder).expect("embed the summary's parts");
    assert_eq!(node_vectors.len(), 1);
    assert!(Arc::ptr_eq(&node_vectors, &index.node_vectors(&embedder).expect("kept")), "embedded once");
    let rank_of = |ranked: &[altiplano_core::documents::followup::Source], summary: bool, page: u32| {
        ranked.iter().position(|s| s.summary == summary && s.first_page == page)
    };
    let pages_only =
        index.rank(question, 5, Some(Dense { query: &query, pages: &page_vectors, nodes: None })).expect("rank");
    assert_eq!(rank_of(&pages_only, true, 1), None, "without its vector the part is not found: {pages_only:?}");
    let with_nodes = index
        .rank(question, 5, Some(Dense { query: &query, pages: &page_vectors, nodes: Some(&node_vectors) }))
        .expect("rank");
    let part = rank_of(&with_nodes, true, 1).expect("the part is found");
    assert!(part < rank_of(&with_nodes, false, 1).unwrap_or(usize::MAX), "{with_nodes:?}");
    assert!(part < rank_of(&with_nodes, false, 3).unwrap_or(usize::MAX), "{with_nodes:?}");

    // Opened again (the same database): nothing is embedded twice.
    let mut again = Vec::new();
    let reloaded = vectors::ensure(&store, doc.id, &pages, embedder, &cancel, |done, total| again.push((done, total)))
        .await
        .expect("load the vectors");
    assert!(again.is_empty(), "no page needed embedding: {again:?}");
    assert_eq!(reloaded.ranked(&query).first().map(|p| p.0), Some(2));
    store.close().await;
}
