//! The app's side of "Use this model": the session loads the starter variant with progress in
//! its model state, measures it, records the figures and remembers the model for the next start.
//!
//! A measurement is this process's growth in resident memory, as in the app, where the first
//! model loads into a fresh process. This test has a process of its own for that reason: memory
//! that another test's model freed would be reused by this load and not counted as growth.

mod common;

use std::time::Duration;

use altiplano_core::config::DataDir;
use altiplano_core::session::{ModelState, Session, UseStarted};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_session_uses_the_starter_variant_measures_it_and_shows_loading_progress() {
    let dir = common::data_dir();
    let session = Session::open(DataDir::at(dir.path().to_path_buf()).expect("data dir")).await.expect("session");

    // Watch the model state while it loads, as the status bar does.
    let watcher = {
        let session = session.clone();
        tokio::spawn(async move {
            let mut layers_seen = Vec::new();
            for _ in 0..2000 {
                match session.model_state() {
                    ModelState::Loading { progress, .. } => {
                        layers_seen.push((progress.layers_done, progress.layers_total))
                    }
                    ModelState::Ready { .. } if !layers_seen.is_empty() => break,
                    _ => {}
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            layers_seen
        })
    };
    let started = session.use_model("smollm2-135m-instruct:q4_1", None, None).await.expect("use the starter");
    let UseStarted::Loaded { info, measurement } = started else { panic!("the starter is on disk: {started:?}") };
    assert!(info.name.contains("SmolLM2"), "{}", info.name);
    assert_eq!(measurement.model_key, "smollm2-135m-instruct:q4_1");
    assert!(measurement.decode_tokens_per_second.is_some_and(|t| t > 0.0));
    // What it measured is the model in memory: at least the weights it runs from (on this CPU,
    // the Q8_0 copy of the Q4_1 file), and not above the planner's estimate by more than the
    // 15 % that `memory_estimate.rs` allows it to be short.
    let weights = match &info.repacked {
        Some(copy) => std::fs::metadata(&copy.cache).expect("the copy it loaded").len(),
        None => info.file_bytes,
    };
    let estimate = measurement.estimated_bytes.expect("the planner estimates the starter");
    let resident = measurement.resident_bytes;
    assert!(
        resident >= weights && resident as f64 * 0.85 <= estimate as f64,
        "measured {resident} against {weights} bytes of weights and an estimate of {estimate}"
    );
    let states = watcher.await.expect("watcher");
    assert!(states.iter().any(|(_, total)| *total == 30), "the status showed 30 layers: {states:?}");

    assert!(matches!(session.model_state(), ModelState::Ready { .. }));
    let listed = session.measurements().await.expect("measurements");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], measurement);
    assert_eq!(session.startup_model().await.as_deref(), Some(info.path.as_path()), "remembered for next start");

    // Measuring again replaces the figures rather than piling them up.
    session.use_model("smollm2-135m-instruct:q4_1", None, None).await.expect("again");
    assert_eq!(session.measurements().await.expect("measurements").len(), 1);
}
