//! `altiplano models …`: downloads, imports, the model list and the Hugging Face token.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use altiplano_core::catalog::{Catalog, Purpose};
use altiplano_core::choose::{self, OnDisk, Resolution, Target};
use altiplano_core::config::DataDir;
use altiplano_core::download::queue::{DownloadManager, JobState};
use altiplano_core::download::{self, human_bytes, DownloadOptions, HubCache, PullProgress, PullSpec};
use altiplano_core::engine::Isq;
use altiplano_core::hardware;
use altiplano_core::library::Library;
use altiplano_core::library::LocalModel;
use altiplano_core::secrets;
use altiplano_core::session::{ModelSlot, ModelState};
use altiplano_core::store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::load;
use crate::args::{ModelsCommand, PullArgs, SearchPurposeArg, TokenCommand};

pub async fn run(
    store: &Store,
    data_dir: &DataDir,
    loader: &load::Loader,
    command: ModelsCommand,
) -> anyhow::Result<ExitCode> {
    let library = Library::new(store.clone());
    match command {
        ModelsCommand::List { json } => list(store, &library, json).await,
        ModelsCommand::Pull(args) => pull(store, args).await,
        ModelsCommand::Rm { id } => {
            let model = library.remove(id, &HubCache::from_env()).await?;
            println!("removed model {id} ({})", model.name);
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Import { path } => {
            let model = library.import(&path).await?;
            println!(
                "imported model {}: {} ({}, {})",
                model.id,
                model.name,
                format_name(&model),
                human_bytes(model.size_bytes)
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Token(command) => token(store, command).await,
        ModelsCommand::Search { json } => search_models(store, json).await,
        ModelsCommand::UseSearch { id, purpose } => use_search_model(store, &id, purpose).await,
        ModelsCommand::Use { target, isq, json } => {
            use_model(store, data_dir, loader, &target, isq.map(Into::into), json).await
        }
        ModelsCommand::ConvertGguf { input, output, dtype, json } => {
            let converted = tokio::task::spawn_blocking(move || {
                altiplano_core::convert::convert_gguf(&input, &output, dtype.into())
            })
            .await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&converted)?);
            } else {
                println!(
                    "wrote {} ({} tensors, {:.1} MB of weights)",
                    converted.dir.display(),
                    converted.tensors,
                    converted.weight_bytes as f64 / 1e6
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn format_name(model: &altiplano_core::library::LocalModel) -> &'static str {
    match model.format {
        altiplano_core::library::ModelFormat::Gguf => "GGUF",
        altiplano_core::library::ModelFormat::Safetensors => "safetensors",
    }
}

async fn list(store: &Store, library: &Library, json: bool) -> anyhow::Result<ExitCode> {
    let models = library.list().await?;
    let manager = DownloadManager::new(store.clone(), HubCache::from_env(), DownloadOptions::default());
    let unfinished: Vec<_> = manager
        .list()
        .await?
        .into_iter()
        .filter(|j| !matches!(j.state, JobState::Completed | JobState::Cancelled))
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "models": models, "downloads": unfinished }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if models.is_empty() {
        println!("no models yet; `altiplano models pull VARIANT` downloads one (`altiplano plan` says which fits)");
    }
    for m in &models {
        println!(
            "{:>4}  {:<48} {:<11} {:>10}  {}",
            m.id,
            m.name,
            format_name(m),
            human_bytes(m.size_bytes),
            m.path.display()
        );
    }
    if !unfinished.is_empty() {
        println!("\nunfinished downloads (run the same `models pull` again to continue):");
        for j in unfinished {
            let what = if j.files.is_empty() { j.repo.clone() } else { format!("{} {}", j.repo, j.files.join(", ")) };
            let error = j.error.map(|e| format!(" — {}", e.message)).unwrap_or_default();
            println!(
                "  {:<9} {}/{}  {what}{error}",
                format!("{:?}", j.state).to_lowercase(),
                human_bytes(j.bytes_done),
                human_bytes(j.bytes_total)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `models search`: the catalog's embedding models, on disk or not, and what search uses.
async fn search_models(store: &Store, json: bool) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin()?;
    let models = altiplano_core::search_models::list(store, &catalog).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "searchModels": models }))?);
        return Ok(ExitCode::SUCCESS);
    }
    if altiplano_core::config::embedding_override().is_some() {
        println!("(ALTIPLANO_EMBEDDING_MODEL is set: search uses that folder, or no vectors when it is empty)\n");
    }
    for s in &models {
        let m = &s.model;
        let names = |ps: &[Purpose]| ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" and ");
        let state = match (&s.path, s.used_for.is_empty()) {
            (Some(_), false) => format!("in use for {}", names(&s.used_for)),
            (Some(_), true) => "on disk".to_owned(),
            (None, _) => format!("not downloaded (about {})", human_bytes(m.download_bytes())),
        };
        let missing = s.chosen_for.iter().filter(|p| !s.used_for.contains(p)).copied().collect::<Vec<_>>();
        let missing = if missing.is_empty() || s.path.is_some() {
            String::new()
        } else {
            format!(" — chosen for {}, the starter stands in until it is downloaded", names(&missing))
        };
        println!(
            "{:<24} {:>4} dims  {:<22} good for {:<19} {state}{missing}",
            m.id,
            m.dims,
            m.languages.join(","),
            names(&m.good_for),
        );
    }
    println!(
        "\n`altiplano models pull ID` downloads one; `altiplano models use-search ID --for documents|code` chooses it"
    );
    Ok(ExitCode::SUCCESS)
}

/// `models use-search`: the embedding model search uses for documents, code or both.
async fn use_search_model(store: &Store, id: &str, purpose: SearchPurposeArg) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin()?;
    let purposes: &[Purpose] = match purpose {
        SearchPurposeArg::Documents => &[Purpose::Documents],
        SearchPurposeArg::Code => &[Purpose::Code],
        SearchPurposeArg::Both => &Purpose::ALL,
    };
    for &p in purposes {
        let chosen = altiplano_core::search_models::choose(store, &catalog, p, id).await?;
        println!("search uses {} for {} ({})", chosen.recipe.name, p.as_str(), chosen.dir.display());
    }
    // Load it once now, so a broken download shows here rather than as keywords-only search.
    if let Some(first) = purposes.first() {
        altiplano_core::search_models::load(store, &catalog, *first).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn pull(store: &Store, args: PullArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin()?;
    let (spec, variant) = download::spec_for_target(&catalog, &args.target, &args.files, &args.revision)?;
    let Some(model) = fetch(store, &spec, variant.as_deref(), args.json).await? else {
        return Ok(ExitCode::from(130));
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&model)?);
    } else {
        println!("model {}: {} ({})\n{}", model.id, model.name, human_bytes(model.size_bytes), model.path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs a download in the foreground with progress; `None` when Ctrl+C paused it.
async fn fetch(
    store: &Store,
    spec: &PullSpec,
    variant: Option<&str>,
    json: bool,
) -> anyhow::Result<Option<LocalModel>> {
    let manager = DownloadManager::new(store.clone(), HubCache::from_env(), DownloadOptions::default());
    let id = manager.add(spec, variant).await?;
    let (tx, rx) = watch::channel(PullProgress::default());
    let show_bar = !json && std::io::stderr().is_terminal();
    let renderer = tokio::spawn(render(rx, show_bar));
    let run = manager.run(id, tx);
    tokio::pin!(run);
    let outcome = tokio::select! {
        outcome = &mut run => outcome,
        _ = tokio::signal::ctrl_c() => {
            manager.pause(id).await?;
            let _ = run.await;
            renderer.abort();
            eprintln!("altiplano: paused; run the same command again to continue from the bytes already fetched");
            return Ok(None);
        }
    };
    renderer.abort();
    Ok(Some(outcome?))
}

/// `models use`: find or fetch the model, load it as planned, measure it, remember it.
async fn use_model(
    store: &Store,
    data_dir: &DataDir,
    loader: &load::Loader,
    target: &str,
    isq: Option<Isq>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin()?;
    let library = Library::new(store.clone());
    let target = Target::parse(target, &catalog)?;
    let chosen = match choose::resolve(&library, &catalog, &target).await? {
        Resolution::OnDisk(model) => model,
        Resolution::Download { spec, variant } => {
            eprintln!("{variant} is not on disk yet; downloading it from {}", spec.repo);
            let Some(model) = fetch(store, &spec, Some(&variant), json).await? else {
                return Ok(ExitCode::from(130));
            };
            OnDisk::new(model, &catalog)
        }
    };
    // The app's way: the same slot loads it as planned, measures, records and remembers it.
    let profile = hardware::detect(&chosen.model.path);
    let slot = ModelSlot::new(store.clone(), data_dir.clone());
    let bar = load::LoadBar::new(&chosen.model.path);
    let follow = {
        let (mut state, progress) = (slot.watch(), bar.sender());
        tokio::spawn(async move {
            while state.changed().await.is_ok() {
                if let ModelState::Loading { progress: p, .. } = &*state.borrow_and_update() {
                    progress.send_replace(*p);
                }
            }
        })
    };
    if !json {
        eprintln!("loading {}; a short reply is timed once it is loaded", chosen.model.path.display());
    }
    let used = slot.use_on_disk(&chosen, isq, loader.engine_flag(), &catalog, &profile).await;
    follow.abort();
    bar.finish().await;
    let (info, measurement) = used?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "model": chosen.model, "measurement": measurement }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let m = &measurement;
    let versus = |estimate: Option<String>| estimate.map(|e| format!(" (planner estimated {e})")).unwrap_or_default();
    println!("now using {} on {} ({})", info.name, info.engine, chosen.model.path.display());
    println!("  loaded in {:.1} s", m.load_seconds);
    println!("  memory: {} resident{}", human_bytes(m.resident_bytes), versus(m.estimated_bytes.map(human_bytes)));
    for (i, bytes) in m.gpu_bytes.iter().enumerate().filter(|(_, b)| **b > 0) {
        println!("  cuda:{i}: {}", human_bytes(*bytes));
    }
    match m.decode_tokens_per_second {
        Some(t) => println!(
            "  decode: {t:.1} tokens/s{}",
            versus(m.estimated_tokens_per_second.map(|e| format!("{e:.1} tokens/s")))
        ),
        None => println!("  decode: not measured (the reply was too short)"),
    }
    println!("`altiplano chat` and the app now start with it.");
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on a terminal; otherwise a line every few seconds.
async fn render(mut rx: watch::Receiver<PullProgress>, bar: bool) {
    let progress = if bar { ProgressBar::new(0) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template("{msg:30!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut last_line = std::time::Instant::now();
    while rx.changed().await.is_ok() {
        let p = rx.borrow_and_update().clone();
        let current = p
            .files
            .iter()
            .find(|f| f.bytes_done < f.bytes_total)
            .or(p.files.last())
            .map(|f| f.path.rsplit('/').next().unwrap_or(&f.path).to_owned())
            .unwrap_or_default();
        progress.set_length(p.bytes_total);
        progress.set_position(p.bytes_done);
        progress.set_message(current.clone());
        if !bar && last_line.elapsed() >= Duration::from_secs(5) && p.bytes_total > 0 {
            eprintln!(
                "{current}: {} of {} ({:.0}%), {}/s",
                human_bytes(p.bytes_done),
                human_bytes(p.bytes_total),
                p.bytes_done as f64 * 100.0 / p.bytes_total as f64,
                human_bytes(p.bytes_per_second as u64)
            );
            last_line = std::time::Instant::now();
        }
    }
}

async fn token(store: &Store, command: TokenCommand) -> anyhow::Result<ExitCode> {
    // A token is kept for the endpoint in use (HF_ENDPOINT, the app's setting, or the Hub).
    let endpoint =
        DownloadManager::new(store.clone(), HubCache::from_env(), DownloadOptions::default()).endpoint().await?;
    match command {
        TokenCommand::Set => {
            let token = if std::io::stdin().is_terminal() {
                rpassword::prompt_password(format!("Hugging Face access token for {endpoint} (input hidden): "))?
            } else {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                line
            };
            secrets::set_hf_token(&endpoint, &token).await?;
            println!(
                "token stored in the system keyring (service \"{}\"); it is sent only to {endpoint}",
                secrets::SERVICE
            );
        }
        TokenCommand::Clear => {
            secrets::clear_hf_token(&endpoint).await?;
            println!("the token for {endpoint} is removed from the system keyring");
        }
        TokenCommand::Status => match secrets::hf_token(&endpoint).await {
            Some((_, secrets::TokenSource::Environment)) => {
                println!("a token is set by the HF_TOKEN environment variable; it is sent to {endpoint}")
            }
            Some((_, secrets::TokenSource::Keyring)) => {
                println!("a token for {endpoint} is stored in the system keyring")
            }
            None => {
                println!("no token for {endpoint}; gated models (Meta's Llama) need one: `altiplano models token set`")
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
