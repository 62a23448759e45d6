//! The CLI's document commands with the real starter model: `altiplano documents ask` (and a
//! killed one keeps its question) and `altiplano summarize --json` (recorded in the document's
//! conversation, as the app records it).

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::process::Command;

use common::harvest::write_pdf;

#[test]
fn the_cli_answers_a_follow_up_and_a_killed_one_keeps_the_question() {
    let dir = common::data_dir();
    let file = dir.path().join("harvest.pdf");
    write_pdf(&file, 9);
    let cli = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_altiplano"));
        c.env("ALTIPLANO_DATA_DIR", dir.path())
            .env("ALTIPLANO_EMBEDDING_MODEL", "")
            .env("ALTIPLANO_MODEL", common::starter_model());
        c
    };
    // Page 4's fact: "Juliaca: 31 tonnes of beans, season 4."
    let question = "How many tonnes of beans did Juliaca harvest in season 4?";
    let out = cli().args(["documents", "ask", "--json"]).arg(&file).arg(question).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(!json["answer"].as_str().expect("answer").trim().is_empty(), "{json}");
    let shown = json["pages_shown"].as_array().expect("pages shown");
    assert_eq!(shown[0]["first_page"], 4, "the page that answers comes first: {json}");
    let pages: Vec<u64> = shown.iter().filter_map(|s| s["first_page"].as_u64()).collect();
    for c in json["citations"].as_array().expect("citations") {
        assert!(pages.contains(&c["page"].as_u64().expect("page")), "{c} cites a page not shown: {json}");
    }
    assert_eq!(json["stopped"], false);
    // No embedding model here: the JSON says keywords found the pages, and why.
    assert_eq!(json["retrieval"], serde_json::json!({ "kind": "keywords", "reason": { "why": "no_model" } }), "{json}");
    // Each sentence is checked: one that cites a page names a page shown, one marked in the
    // answer is unsourced.
    let sentences = json["sentences"].as_array().expect("sentences");
    let marked = json["answer"].as_str().unwrap_or_default().matches("[no source]").count();
    assert_eq!(sentences.iter().filter(|s| s["sourced"] == false).count(), marked, "{json}");
    for s in sentences {
        for p in s["pages"].as_array().expect("pages") {
            assert!(pages.contains(&p.as_u64().expect("page")), "{s} is sourced from a page not shown: {json}");
        }
    }
    let conversation = json["conversation_id"].as_i64().expect("conversation");
    // The same exchange is in the document's conversation, where the app shows it.
    let show = cli().args(["conversations", "show", "--json", &conversation.to_string()]).output().expect("run");
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
    let messages = shown["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{shown}");
    assert_eq!(messages[0]["content"], question);
    assert_eq!(messages[1]["content"], json["answer"]);

    // Killed while it answers: the question was saved before the model started, and the
    // answer is kept as far as it was saved (the next start marks it interrupted).
    let long = "Write a long report on every season, page by page.";
    let saved = || {
        let show = cli().args(["conversations", "show", "--json", &conversation.to_string()]).output().expect("run");
        let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("json");
        shown["messages"].as_array().expect("messages").clone()
    };
    let tries = common::kill_mid_answer(
        || {
            let mut ask = cli();
            ask.args(["documents", "ask"]).arg(&file).arg(long);
            ask
        },
        saved,
    );
    let messages = saved();
    assert_eq!(messages.len(), 2 + 2 * tries, "{messages:?}");
    assert_eq!(messages[2 * tries]["content"], long);
    assert_eq!(messages[2 * tries + 1]["status"], "interrupted", "{messages:?}");
}

#[test]
fn the_cli_summarizes_to_json_and_names_a_file_it_cannot_read() {
    let dir = common::data_dir();
    let notes = dir.path().join("notes.md");
    std::fs::write(
        &notes,
        "# Field notes\n\nThe llamas grazed near Lake Titicaca in June.\n\nWater was scarce in August.\n",
    )
    .expect("write");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_altiplano"))
            .args(args)
            .env("ALTIPLANO_DATA_DIR", dir.path())
            .env("ALTIPLANO_EMBEDDING_MODEL", "")
            .env("ALTIPLANO_MODEL", common::starter_model())
            .output()
            .expect("run")
    };
    let missing = dir.path().join("missing.pdf");
    let out = run(&["summarize", "--json", notes.to_str().expect("utf-8"), missing.to_str().expect("utf-8")]);
    assert!(!out.status.success(), "a missing file fails the command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.contains("missing.pdf")).count(), 1, "{stderr}");
    assert!(stderr.contains("missing.pdf does not exist"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_str(stdout.lines().next().expect("one line")).expect("json");
    assert_eq!(json["file"], notes.display().to_string());
    assert_eq!(json["page_count"], 1);
    assert!(!json["summary"].as_str().expect("summary").trim().is_empty());
    assert!(json["citations"].as_array().expect("citations").iter().all(|c| c["page"] == 1 && c["text"].is_string()));
    // Every sentence has its checked page or is marked, and the share is reported.
    let sentences = json["sentences"].as_array().expect("sentences");
    let summary_text = json["summary"].as_str().expect("summary");
    for s in sentences {
        let sourced = s["sourced"].as_bool().expect("sourced");
        assert_eq!(s["pages"].as_array().expect("pages").is_empty(), !sourced, "{s}");
        assert!(!sourced || s["pages"][0] == 1, "{s}");
    }
    let unsourced = sentences.iter().filter(|s| s["sourced"] == false).count();
    assert_eq!(summary_text.matches("[no source]").count(), unsourced, "{summary_text}");
    if !sentences.is_empty() {
        let coverage = json["coverage"].as_f64().expect("coverage");
        assert!((coverage - (sentences.len() - unsourced) as f64 / sentences.len() as f64).abs() < 1e-6);
    }
    assert!(json["warnings"].is_array());

    // Recorded where the app records it: the document's conversation holds the summary, so a
    // follow-up (here or in the app) continues after it.
    let list = run(&["conversations", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    let conversation = list
        .as_array()
        .expect("list")
        .iter()
        .find(|c| c["title"].as_str().is_some_and(|t| t.starts_with("Document: ")));
    let id = conversation.unwrap_or_else(|| panic!("the document's conversation: {list}"))["id"].to_string();
    let shown: serde_json::Value =
        serde_json::from_slice(&run(&["conversations", "show", "--json", &id]).stdout).expect("json");
    let messages = shown["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2, "{shown}");
    assert!(messages[0]["content"].as_str().is_some_and(|q| q.starts_with("Summarize ")), "{shown}");
    assert_eq!(messages[1]["content"], json["summary"]);

    // Summarized again: the saved summary prints at once and is not recorded twice.
    let again = run(&["summarize", "--json", notes.to_str().expect("utf-8")]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let shown: serde_json::Value =
        serde_json::from_slice(&run(&["conversations", "show", "--json", &id]).stdout).expect("json");
    assert_eq!(shown["messages"].as_array().map(Vec::len), Some(2), "{shown}");
}
