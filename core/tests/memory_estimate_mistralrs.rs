//! The planner's memory estimate against the real thing: load the starter model on mistral.rs,
//! generate, and compare the growth of this process's resident memory with what the planner
//! predicts.

mod common;

use altiplano_core::catalog::Catalog;
use altiplano_core::engine::{Engine, EngineKind, LoadOptions};
use altiplano_core::planner;

// See `memory_estimate.rs` for the bounds; this is the mistral.rs side, in a process of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cpu_estimate_on_mistral_rs_is_never_short_of_what_loading_it_takes() {
    let catalog = Catalog::builtin().unwrap();
    let starter = catalog.models.iter().find(|m| m.starter).unwrap();
    // On mistral.rs, as it loads on this CPU: the Q4_1 file runs from a Q8_0 copy, written by
    // this first load (the planner counts the copy's bytes), and the cache grows with the reply.
    let copies = tempfile::tempdir().unwrap();
    let before = common::resident_bytes();
    let options = LoadOptions {
        engine: Some(EngineKind::MistralRs),
        max_parallel_replies: 1,
        repack_dir: Some(copies.path().to_path_buf()),
        ..Default::default()
    };
    let engine = Engine::load(&common::starter_model(), options).await.unwrap();
    assert!(engine.info().repacked.is_some(), "the starter ran from its Q8_0 copy");
    let context = common::short_reply(&engine).await;
    let grown = common::resident_bytes().saturating_sub(before);
    let estimate = planner::cpu_memory_estimate_on(starter, &starter.variants[0], EngineKind::MistralRs, context);
    common::check_estimate("mistral.rs", grown, estimate, context);
}
