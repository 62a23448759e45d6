//! `altiplano eval perplexity`: how well a model (and its quantization) predicts a text.

use std::process::ExitCode;
use std::time::Instant;

use altiplano_core::engine::LoadOptions;

use super::load;
use crate::args::EvalCommand;

pub async fn run(loader: &load::Loader, command: EvalCommand) -> anyhow::Result<ExitCode> {
    let EvalCommand::Perplexity { file, model, isq, window, json } = command;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("cannot read {} as UTF-8 text: {e}", file.display()))?;
    let started = Instant::now();
    let options =
        LoadOptions { max_parallel_replies: 1, isq: isq.map(Into::into), evaluation: true, ..loader.options() };
    let engine = loader.open(&model, options).await?;
    let loaded = started.elapsed();
    let result = engine.perplexity(&text, window).await?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "perplexity {:.4} over {} tokens ({}; loaded in {:.1} s, measured in {:.1} s)",
            result.perplexity,
            result.tokens,
            engine.info().name,
            loaded.as_secs_f64(),
            (started.elapsed() - loaded).as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}
