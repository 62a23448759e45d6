//! Loading a model with a progress bar: layers read (and quantized) of the total.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use altiplano_core::choose;
use altiplano_core::config::DataDir;
use altiplano_core::engine::{Engine, EngineKind, Isq, LoadOptions, LoadProgress, LoadStage};
use altiplano_core::store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

/// A bar on a terminal that follows a load's progress; hidden elsewhere (scripts, pipes).
pub struct LoadBar {
    sender: watch::Sender<LoadProgress>,
    render: tokio::task::JoinHandle<()>,
}

impl LoadBar {
    /// A bar for loading `path`.
    pub fn new(path: &Path) -> Self {
        let (sender, mut rx) = watch::channel(LoadProgress::default());
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{prefix} {msg:24} [{bar:30}] {pos}/{len} layers {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        bar.set_prefix(name);
        let render = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let p = *rx.borrow_and_update();
                bar.set_length(u64::from(p.layers_total));
                bar.set_position(u64::from(p.layers_done));
                bar.set_message(stage_text(&p));
            }
            bar.finish_and_clear();
        });
        Self { sender, render }
    }

    /// The sender to put in [`LoadOptions::progress`].
    pub fn sender(&self) -> watch::Sender<LoadProgress> {
        self.sender.clone()
    }

    /// Clears the bar.
    pub async fn finish(self) {
        drop(self.sender);
        let _ = self.render.await;
    }
}

fn stage_text(p: &LoadProgress) -> &'static str {
    match (p.stage, p.quantizing) {
        (LoadStage::Checking, _) => "checking files",
        (LoadStage::Converting, _) => "converting to Q8_0 (once)",
        (LoadStage::Layers, false) => "reading weights",
        (LoadStage::Layers, true) => "reading and quantizing",
        (LoadStage::Finishing, true) => "saving quantized copy",
        (LoadStage::Finishing, false) => "finishing",
        (LoadStage::Done, _) => "loaded",
    }
}

/// How this process loads models: the data folder's cache for Q8_0 copies of GGUF files without
/// fast CPU kernels, and the engine `--engine` asked for. Made once from the command line and
/// handed to the commands that load.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    repack_dir: Option<PathBuf>,
    engine: Option<EngineKind>,
}

impl Loader {
    /// The loader for `data_dir`, with the engine `--engine` named, if any.
    pub fn new(data_dir: &DataDir, engine: Option<EngineKind>) -> Self {
        Self { repack_dir: data_dir.repack_cache(), engine }
    }

    /// The engine asked for with `--engine`, if any.
    pub fn engine_flag(&self) -> Option<EngineKind> {
        self.engine
    }

    /// The model a command runs when `--model` may be left out: `model` (on the engine it was last
    /// run on), else the chat model chosen with `models use` or in the app (with its quantization
    /// and engine), else the starter model; and the load options for it. `isq` overrides the
    /// remembered quantization.
    pub async fn chosen(
        &self,
        store: &Store,
        model: Option<&Path>,
        isq: Option<Isq>,
    ) -> anyhow::Result<(PathBuf, LoadOptions)> {
        let (path, isq, engine) = match model {
            Some(path) => (path.to_path_buf(), isq, choose::remembered_engine(store, path).await),
            None => match choose::remembered(store).await.filter(|c| c.path.exists()) {
                Some(chosen) => (chosen.path, isq.or(chosen.isq), chosen.engine),
                None => (
                    choose::starter().map_err(|e| {
                        anyhow::anyhow!(
                            "no model chosen: pass --model PATH, or choose one with `altiplano models use` ({e})"
                        )
                    })?,
                    isq,
                    None,
                ),
            },
        };
        Ok((path, LoadOptions { isq, engine, ..self.options() }))
    }

    /// The chat model a command runs when `--model` is left out and a remote server is the
    /// chat model (`altiplano remote use`): connected, with what it is said on stderr. `None`
    /// when `model` is given or the chat model is local.
    pub async fn remote(&self, store: &Store, model: Option<&Path>) -> anyhow::Result<Option<Engine>> {
        if model.is_some() {
            return Ok(None);
        }
        let Some(name) = altiplano_core::remotes::in_use(store).await? else { return Ok(None) };
        let remote = altiplano_core::remotes::get(store, &name).await?;
        let engine = altiplano_core::remotes::connect(&remote).await?;
        eprintln!("altiplano: {} on {name} ({})", engine.info().name, remote.url);
        Ok(Some(engine))
    }

    /// The chat model, loaded or connected: [`Loader::remote`] when a server is the chat
    /// model, else [`Loader::chosen`] loaded with `options` adjusted by `adjust`.
    pub async fn chat_engine(
        &self,
        store: &Store,
        model: Option<&Path>,
        isq: Option<Isq>,
        adjust: impl FnOnce(LoadOptions) -> LoadOptions,
    ) -> anyhow::Result<Engine> {
        if let Some(engine) = self.remote(store, model).await? {
            return Ok(engine);
        }
        let (path, options) = self.chosen(store, model, isq).await?;
        self.open(&path, adjust(options)).await
    }

    /// Load options with the data folder's repack cache.
    pub fn options(&self) -> LoadOptions {
        LoadOptions { repack_dir: self.repack_dir.clone(), ..LoadOptions::default() }
    }

    /// Loads the model at `path` (GGUF file or safetensors folder) with a progress bar, on the
    /// engine `--engine` names, else on `options.engine` (a remembered choice), else its format's.
    pub async fn open(&self, path: &Path, options: LoadOptions) -> anyhow::Result<Engine> {
        let bar = LoadBar::new(path);
        let repack_dir = options.repack_dir.clone().or_else(|| self.repack_dir.clone());
        let engine = self.engine.or(options.engine);
        let engine =
            Engine::open(path, LoadOptions { progress: Some(bar.sender()), repack_dir, engine, ..options }).await;
        bar.finish().await;
        Ok(engine?)
    }
}

/// The embedding model hybrid search uses for `purpose` (the user's choice, else the
/// starter), when there is one; one that does not load is named on stderr and search falls
/// back to keywords.
pub async fn search_model(
    store: &altiplano_core::store::Store,
    purpose: altiplano_core::catalog::Purpose,
) -> Option<std::sync::Arc<altiplano_core::engine::embed::Embedder>> {
    code_search_model(store, purpose)
        .await
        .inspect_err(|e| eprintln!("altiplano: searching by keywords only: {e}"))
        .ok()
        .flatten()
}

/// [`search_model`] with its error kept, for a code index to say why it uses keywords.
pub async fn code_search_model(
    store: &altiplano_core::store::Store,
    purpose: altiplano_core::catalog::Purpose,
) -> Result<Option<std::sync::Arc<altiplano_core::engine::embed::Embedder>>, String> {
    let catalog = altiplano_core::catalog::Catalog::builtin().map_err(|e| e.to_string())?;
    match altiplano_core::search_models::load(store, &catalog, purpose).await {
        Ok(model) => Ok(model.map(std::sync::Arc::new)),
        Err(e) => Err(e.to_string()),
    }
}

/// A bar on stderr for embedding pages, shown only once there is something to embed.
pub fn embedding_bar() -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("embedding pages for search [{bar:30}] {pos}/{len} passages {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
