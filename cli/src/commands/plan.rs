//! `altiplano plan`: which Llama 3.1 variant fits, how, and why.

use std::process::ExitCode;

use altiplano_core::catalog::Catalog;
use altiplano_core::config::DataDir;
use altiplano_core::hardware::{self, HardwareProfile};
use altiplano_core::measure::{self, Measurements};
use altiplano_core::planner::{self, Fit, PlanOptions};
use altiplano_core::store::Store;

use crate::args::PlanArgs;

pub async fn run(data_dir: &DataDir, store: &Store, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin()?;
    let prefer = args.prefer.into();
    // Figures measured here (`models use`) apply to this machine only, not to a described one.
    let (profile, measured) = match &args.hardware {
        Some(file) => (HardwareProfile::from_file(file)?, Vec::new()),
        None => {
            let profile = hardware::detect(&data_dir.models_dir());
            let measured =
                Measurements::new(store.clone()).for_planner(&measure::machine_id(&profile), &catalog).await?;
            (profile, measured)
        }
    };
    let context_tokens =
        args.context.unwrap_or_else(|| planner::default_context(&profile, &catalog, prefer, &measured));
    let options = PlanOptions { context_tokens, prefer };
    let plan = planner::plan_measured(&profile, &catalog, options, &measured);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(ExitCode::SUCCESS);
    }
    let chosen = if args.context.is_some() { "" } else { ", as much as the recommendation holds up to 32768" };
    println!("Planned for {context_tokens} tokens of context{chosen} (--context to change).\n");
    match (&plan.recommended, &plan.reason_if_none) {
        (Some(best), _) => {
            let name = catalog.model(&best.model).map(|m| m.name.as_str()).unwrap_or(&best.model);
            println!("Recommended: {name} {}\n{}\n", best.quant.as_str(), best.explanation);
            if !best.node_settings.is_empty() {
                println!("With Altiplano's engine (mistral.rs) on every node:");
                for line in &best.node_settings {
                    println!("  {line}");
                }
            }
            if !best.cluster_commands.is_empty() {
                println!("\nOr serve it with vLLM or SGLang (OpenAI-compatible, on the head node):");
                for line in &best.cluster_commands {
                    println!("  {line}");
                }
            }
            if !best.node_settings.is_empty() || !best.cluster_commands.is_empty() {
                println!();
            }
        }
        (None, Some(reason)) => println!("{reason}\n"),
        (None, None) => {}
    }
    println!("{:<24} {:<7} {:<6} {:<10} {:>9} {:>9}", "model", "quant", "where", "fit", "context", "tok/s");
    for c in &plan.candidates {
        let fit = match c.fit {
            Fit::Gpu => "gpu",
            Fit::Partial => "partial",
            Fit::Cpu => "cpu",
            Fit::TooLarge => "too large",
        };
        let speed = match (c.fit, &c.measured) {
            (Fit::TooLarge, _) => "–".into(),
            (_, Some(m)) if m.tokens_per_second.is_some() => format!("{:.1}*", c.tokens_per_second_estimate),
            _ => format!("{:.1}", c.tokens_per_second_estimate),
        };
        let context = if c.fit == Fit::TooLarge { "–".into() } else { c.max_context_tokens.to_string() };
        println!(
            "{:<24} {:<7} {:<6} {:<10} {:>9} {:>9}",
            c.model,
            c.quant.as_str(),
            format!("{:?}", c.backend).to_lowercase(),
            fit,
            context,
            speed
        );
    }
    if plan.candidates.iter().any(|c| c.measured.is_some()) {
        println!("* measured on this machine (`altiplano models use`)");
    }
    Ok(ExitCode::SUCCESS)
}
