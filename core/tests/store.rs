//! The conversation store on a real SQLite file.

mod common;

use altiplano_core::store::{MessageStatus, ReplyStats, Role, Store, StoreError, MATCH_END, MATCH_START};

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = common::data_dir();
    let db = dir.path().join("altiplano.sqlite3");

    let store = Store::open(&db).await.unwrap();
    let trip = store.create_conversation("Trip to Cusco").await.unwrap();
    store.add_message(trip.id, Role::User, "How high is Cusco?", None).await.unwrap();
    let reply = store.begin_reply(trip.id, "SmolLM2").await.unwrap();
    store.update_streaming(reply.id, "About 3,400 m").await.unwrap();
    let stats = ReplyStats {
        prompt_tokens: Some(12),
        completion_tokens: Some(7),
        time_to_first_token_ms: Some(140),
        decode_tokens_per_second: Some(31.5),
    };
    store
        .finish_message(reply.id, "About 3,400 m above sea level.", MessageStatus::Complete, stats, None)
        .await
        .unwrap();
    let other = store.create_conversation("Bread").await.unwrap();
    store.close().await;

    let store = Store::open(&db).await.unwrap();
    let listed = store.list_conversations().await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![other.id, trip.id]);
    let messages = store.messages(trip.id).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!((messages[0].role, messages[0].content.as_str()), (Role::User, "How high is Cusco?"));
    assert_eq!(messages[1].role, Role::Assistant);
    assert_eq!(messages[1].content, "About 3,400 m above sea level.");
    assert_eq!(messages[1].status, MessageStatus::Complete);
    assert_eq!(messages[1].model.as_deref(), Some("SmolLM2"));
    assert_eq!(messages[1].stats, stats);
}

#[tokio::test]
async fn search_finds_words_across_conversations() {
    let dir = common::data_dir();
    let store = Store::open(&dir.path().join("db.sqlite3")).await.unwrap();
    let a = store.create_conversation("Geography").await.unwrap();
    store.add_message(a.id, Role::User, "What is the capital of France?", None).await.unwrap();
    store.add_message(a.id, Role::Assistant, "The capital of France is Paris.", None).await.unwrap();
    let b = store.create_conversation("Cooking").await.unwrap();
    store.add_message(b.id, Role::User, "How do I bake sourdough bread?", None).await.unwrap();

    let hits = store.search("paris", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].conversation_id, a.id);
    assert_eq!(hits[0].conversation_title, "Geography");
    assert_eq!(hits[0].role, Role::Assistant);
    assert!(hits[0].snippet.contains(&format!("{MATCH_START}Paris{MATCH_END}")), "{}", hits[0].snippet);

    // Prefix of the last word, as while typing; every word must match.
    assert_eq!(store.search("sourd", 10).await.unwrap().len(), 1);
    assert_eq!(store.search("capital france", 10).await.unwrap().len(), 2);
    assert!(store.search("capital bread", 10).await.unwrap().is_empty());
    // FTS syntax is plain text, never an error.
    assert!(store.search("\"unbalanced AND (", 10).await.is_ok());

    // Streaming updates are searchable too, and deleted conversations leave the index.
    let reply = store.begin_reply(b.id, "m").await.unwrap();
    store.update_streaming(reply.id, "Use a levain and patience").await.unwrap();
    assert_eq!(store.search("levain", 10).await.unwrap().len(), 1);
    store.delete_conversation(b.id).await.unwrap();
    assert!(store.search("levain", 10).await.unwrap().is_empty());
    assert!(store.search("sourdough", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn conversations_can_be_renamed_and_deleted() {
    let dir = common::data_dir();
    let store = Store::open(&dir.path().join("db.sqlite3")).await.unwrap();
    let c = store.create_conversation("Untitled").await.unwrap();
    store.add_message(c.id, Role::User, "hello", None).await.unwrap();

    let renamed = store.rename_conversation(c.id, "  Greetings \n").await.unwrap();
    assert_eq!(renamed.title, "Greetings");
    assert!(matches!(store.rename_conversation(c.id, "   ").await, Err(StoreError::EmptyTitle)));

    store.delete_conversation(c.id).await.unwrap();
    assert!(store.list_conversations().await.unwrap().is_empty());
    assert!(matches!(store.messages(c.id).await, Err(StoreError::ConversationNotFound(id)) if id == c.id));
    assert!(matches!(store.delete_conversation(c.id).await, Err(StoreError::ConversationNotFound(_))));
    assert!(matches!(store.add_message(c.id, Role::User, "x", None).await, Err(StoreError::ConversationNotFound(_))));
}

#[tokio::test]
async fn a_reply_left_streaming_is_marked_interrupted_on_reopen() {
    let dir = common::data_dir();
    let db = dir.path().join("db.sqlite3");
    let store = Store::open(&db).await.unwrap();
    let c = store.create_conversation("Story").await.unwrap();
    let reply = store.begin_reply(c.id, "m").await.unwrap();
    store.update_streaming(reply.id, "Once upon a time").await.unwrap();

    // A second process opens the database while the first still streams (the CLI while the app
    // answers): the reply is the first one's to finish, not interrupted.
    let other = Store::open(&db).await.unwrap();
    assert_eq!(other.message(reply.id).await.unwrap().status, MessageStatus::Streaming);
    store.update_streaming(reply.id, "Once upon a time").await.unwrap();

    // The process "dies" here: no finish_message, and its lock goes with it.
    store.close().await;
    drop(store);
    other.close().await;
    drop(other);

    let store = Store::open(&db).await.unwrap();
    let m = store.message(reply.id).await.unwrap();
    assert_eq!(m.status, MessageStatus::Interrupted);
    assert_eq!(m.content, "Once upon a time");
    store.close().await;
}

#[test]
fn a_reply_of_a_killed_process_is_interrupted_and_one_of_a_running_process_is_not() {
    // Two real processes: this test binary run again as the writer, killed mid-reply.
    if let Ok(db) = std::env::var("ALTIPLANO_TEST_WRITER_DB") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = Store::open(db.as_ref()).await.unwrap();
            let c = store.create_conversation("Writer").await.unwrap();
            let reply = store.begin_reply(c.id, "m").await.unwrap();
            store.update_streaming(reply.id, "half a").await.unwrap();
            println!("streaming {}", reply.id);
            std::thread::sleep(std::time::Duration::from_secs(60));
        });
        return;
    }
    let dir = common::data_dir();
    let db = dir.path().join("db.sqlite3");
    let mut writer = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_reply_of_a_killed_process_is_interrupted_and_one_of_a_running_process_is_not",
            "--nocapture",
        ])
        .env("ALTIPLANO_TEST_WRITER_DB", &db)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(writer.stdout.take().unwrap()));
    let id: i64 = lines
        .find_map(|l| l.ok()?.strip_prefix("streaming ").map(|id| id.trim().parse().unwrap()))
        .expect("the writer started a reply");
    let status = |db: &std::path::Path| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = Store::open(db).await.unwrap();
            let m = store.message(id).await.unwrap();
            store.close().await;
            (m.status, m.content)
        })
    };
    assert_eq!(status(&db), (MessageStatus::Streaming, "half a".to_owned()), "the writer runs: left alone");
    writer.kill().unwrap();
    writer.wait().unwrap();
    assert_eq!(status(&db), (MessageStatus::Interrupted, "half a".to_owned()), "the writer was killed");
}

#[tokio::test]
async fn the_database_uses_write_ahead_logging() {
    let dir = common::data_dir();
    let db = dir.path().join("db.sqlite3");
    let store = Store::open(&db).await.unwrap();
    store.create_conversation("x").await.unwrap();
    assert!(dir.path().join("db.sqlite3-wal").exists(), "WAL file next to the database");
    store.close().await;
}

#[tokio::test]
async fn each_model_keeps_the_engine_it_was_last_run_on() {
    use altiplano_core::choose::{remember, remembered, remembered_engine};
    use altiplano_core::engine::EngineKind;
    use std::path::Path;

    let dir = common::data_dir();
    let db = dir.path().join("altiplano.sqlite3");
    let store = Store::open(&db).await.unwrap();
    let (tried, other) = (Path::new("/models/a.gguf"), Path::new("/models/b.gguf"));
    // A GGUF file run on mistral.rs, then another one on its default engine.
    remember(&store, tried, None, Some(EngineKind::MistralRs)).await.unwrap();
    remember(&store, other, None, Some(EngineKind::LlamaCpp)).await.unwrap();
    store.close().await;

    let store = Store::open(&db).await.unwrap();
    assert_eq!(remembered_engine(&store, tried).await, Some(EngineKind::MistralRs), "the first keeps its choice");
    assert_eq!(remembered_engine(&store, other).await, None, "the default engine is not pinned");
    let last = remembered(&store).await.unwrap();
    assert_eq!((last.path.as_path(), last.engine), (other, None));
    // Back on its default: the choice is forgotten.
    remember(&store, tried, None, Some(EngineKind::LlamaCpp)).await.unwrap();
    assert_eq!(remembered_engine(&store, tried).await, None);
    store.close().await;
}
