//! The state of a running Altiplano: the store, the loaded model and the replies in progress.
//!
//! The desktop app keeps one [`Session`] for its lifetime; each of its commands is a call to
//! one method here. Models load in the background ([`Session::load_model`]); the model state
//! can be read at any time and awaited with [`Session::settled_model`]. Each reply runs under
//! a request id chosen by the caller, so [`Session::stop`] can end it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use crate::catalog::{Catalog, CatalogError, Purpose};
use crate::chat::{self, ChatError, ChatEvent, Turn, TurnOutcome};
use crate::choose::{self, ChooseError, OnDisk, Resolution, Target};
use crate::codebase::answer::{AskError, CodeAnswer};
use crate::codebase::desk::{self as code_desk, DeskError};
use crate::codebase::{CodeError, CodeIndex, IndexProgress, IndexReport};
use crate::config::{self, DataDir};
use crate::documents::desk::{self, Asked};
use crate::documents::followup::FollowUpError;
use crate::documents::{
    self, saved, DocumentError, Page, SavedDocument, Summary, SummaryError, SummaryOptions, SummaryProgress,
};
use crate::download::queue::{DownloadJob, DownloadManager, QueueError};
use crate::download::{DownloadOptions, HubCache};
use crate::engine::{Engine, EngineError, EngineKind, Isq, LoadOptions, LoadProgress, ModelInfo};
use crate::hardware::{self, HardwareProfile};
use crate::library::{Library, LibraryError, LocalModel};
use crate::measure::{self, Measurement, Measurements};
use crate::planner::{self, Plan, PlanOptions, Preference};
use crate::store::{Store, StoreError};

mod project;
mod replies;
mod slot;
pub use project::{ProjectSlot, PROJECT_ENV};
pub use replies::{Replies, Request};
pub use slot::ModelSlot;

/// Where the model stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ModelState {
    /// No model chosen yet.
    None,
    /// Loading this file.
    Loading {
        /// The file.
        path: PathBuf,
        /// How far it has got.
        progress: LoadProgress,
    },
    /// Ready to chat.
    Ready {
        /// The model.
        info: ModelInfo,
    },
    /// The last load failed; the previous model (if any) was unloaded.
    Failed {
        /// The file.
        path: PathBuf,
        /// Why, in words.
        message: String,
    },
}

/// Errors from session operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Chat was asked for with no model loaded.
    #[error("no model is loaded; choose a model first")]
    NoModel,
    /// A model is still loading.
    #[error("the model is still loading; wait a moment")]
    ModelLoading,
    /// The request id is already running a reply.
    #[error("request {0} is already running")]
    DuplicateRequest(u32),
    /// A chat turn failed.
    #[error(transparent)]
    Chat(#[from] ChatError),
    /// Loading failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The built-in model catalog is malformed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// No code folder is open.
    #[error("no code folder is open; choose one first")]
    NoProject,
    /// Indexing or searching the code folder failed.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// A path outside the open code folder was asked for.
    #[error("{0} is not a file of the open code folder")]
    OutsideProject(String),
    /// A download could not be started or changed.
    #[error(transparent)]
    Download(#[from] QueueError),
    /// The model library failed.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// A document could not be read.
    #[error(transparent)]
    Document(#[from] DocumentError),
    /// A page number the document does not have.
    #[error("the document has no page {0}")]
    NoSuchPage(u32),
    /// A document could not be opened.
    #[error(transparent)]
    OpenDocument(#[from] documents::OpenError),
    /// A summary could not be made.
    #[error(transparent)]
    Summary(#[from] SummaryError),
    /// A follow-up question could not be answered.
    #[error(transparent)]
    FollowUp(#[from] FollowUpError),
    /// A model could not be chosen.
    #[error(transparent)]
    Choose(#[from] ChooseError),
    /// Choosing or loading a search model failed.
    #[error(transparent)]
    SearchModel(#[from] crate::search_models::SearchModelError),
    /// A remote model server could not be added, found or kept.
    #[error(transparent)]
    Remote(#[from] crate::remotes::RemoteError),
}

/// What [`Session::use_model`] set going.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UseStarted {
    /// The model was on disk; it is loaded, measured, and the chat model now.
    Loaded {
        /// The model.
        info: ModelInfo,
        /// What it took.
        measurement: Measurement,
    },
    /// It is downloading; it loads when the download completes.
    Downloading {
        /// The download job.
        job: DownloadJob,
    },
}

/// See the module documentation.
#[derive(Debug)]
pub struct Session {
    store: Store,
    data_dir: DataDir,
    slot: ModelSlot,
    replies: Replies,
    hardware: tokio::sync::OnceCell<HardwareProfile>,
    downloads: DownloadManager,
    library: Library,
    project: ProjectSlot,
    extractor: Mutex<Option<PathBuf>>,
    /// Loaded search models with what they were loaded as (at most one per purpose; documents
    /// and code share one when they resolve to the same).
    search_models: tokio::sync::Mutex<Vec<(crate::search_models::Resolved, Arc<crate::engine::embed::Embedder>)>>,
    /// The last few documents' keyword indexes, kept between follow-up questions.
    page_indexes: crate::documents::followup::PageIndexes,
}

impl Session {
    /// Opens the store in `data_dir`; no model is loaded yet. Downloads that were running when
    /// the last process ended start again.
    pub async fn open(data_dir: DataDir) -> Result<Arc<Self>, SessionError> {
        let store = Store::open(&data_dir.database_path()).await?;
        let downloads = DownloadManager::new(store.clone(), HubCache::from_env(), DownloadOptions::default());
        match downloads.resume_interrupted().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("continuing {n} interrupted download(s)"),
            Err(e) => tracing::warn!("cannot read the download queue: {e}"),
        }
        Ok(Arc::new(Self {
            library: Library::new(store.clone()),
            project: ProjectSlot::new(store.clone(), data_dir.clone()),
            extractor: Mutex::new(None),
            search_models: tokio::sync::Mutex::default(),
            page_indexes: Default::default(),
            downloads,
            slot: ModelSlot::new(store.clone(), data_dir.clone()),
            store,
            data_dir,
            replies: Replies::default(),
            hardware: tokio::sync::OnceCell::new(),
        }))
    }

    /// The conversation store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The download queue.
    pub fn downloads(&self) -> &DownloadManager {
        &self.downloads
    }

    /// The models on disk.
    pub fn library(&self) -> &Library {
        &self.library
    }

    /// Starts downloading `target` — a catalog variant id, or a repo id with `files` picked
    /// from it — at `revision` (default `main`).
    pub async fn start_download(
        &self,
        target: &str,
        files: &[String],
        revision: Option<&str>,
    ) -> Result<DownloadJob, SessionError> {
        let catalog = Catalog::builtin()?;
        let files: Vec<String> = files.iter().map(|f| f.trim().to_owned()).filter(|f| !f.is_empty()).collect();
        let revision = revision.map(str::trim).filter(|r| !r.is_empty()).unwrap_or("main");
        let (spec, variant) =
            crate::download::spec_for_target(&catalog, target, &files, revision).map_err(QueueError::from)?;
        Ok(self.downloads.enqueue(&spec, variant.as_deref()).await?)
    }

    /// Loads a model of the library as the chat model, the way its catalog variant runs (an FP8
    /// variant's BF16 weights quantized to FP8 as they load; the plan's GPU/CPU split), or, for
    /// a safetensors model, quantized in place with `isq`. It is measured and remembered, as
    /// [`Session::use_model`] does.
    pub async fn load_library_model(
        &self,
        id: i64,
        isq: Option<Isq>,
        engine: Option<EngineKind>,
    ) -> Result<(ModelInfo, Measurement), SessionError> {
        let catalog = Catalog::builtin()?;
        let model = OnDisk::new(self.library.get(id).await?, &catalog);
        self.use_on_disk(&model, isq, engine, &catalog).await
    }

    /// Removes a model of the library: downloaded files are deleted, imported ones forgotten.
    /// Its Q8_0 copy, if the engine made one, goes too.
    pub async fn remove_library_model(&self, id: i64) -> Result<LocalModel, SessionError> {
        // Found by the source's path, which has to exist to be resolved as it was when loaded.
        let path = self.library.get(id).await?.path;
        crate::engine::remove_repacked_copy(&path, &self.data_dir.repack_dir());
        Ok(self.library.remove(id, self.downloads.cache()).await?)
    }

    /// The data folder.
    pub fn data_dir(&self) -> &DataDir {
        &self.data_dir
    }

    /// This machine's hardware, detected once per session (detection loads NVML).
    pub async fn hardware(&self) -> HardwareProfile {
        let models_dir = self.data_dir.models_dir();
        self.hardware
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || hardware::detect(&models_dir))
                    .await
                    .unwrap_or_else(|_| hardware::detect(Path::new(".")))
            })
            .await
            .clone()
    }

    /// Plans the built-in catalog for this machine, with the figures measured here, at the
    /// context asked for, else at [`planner::default_context`] (the plan's candidates carry the
    /// context they were planned for).
    pub async fn plan(
        &self,
        context_tokens: Option<u32>,
        prefer: Preference,
    ) -> Result<(HardwareProfile, Catalog, Plan, u32), SessionError> {
        let profile = self.hardware().await;
        let catalog = Catalog::builtin()?;
        let measured = self.measurements_table().for_planner(&measure::machine_id(&profile), &catalog).await?;
        let context_tokens =
            context_tokens.unwrap_or_else(|| planner::default_context(&profile, &catalog, prefer, &measured));
        let plan = planner::plan_measured(&profile, &catalog, PlanOptions { context_tokens, prefer }, &measured);
        Ok((profile, catalog, plan, context_tokens))
    }

    /// What models really took on this machine, newest first.
    pub async fn measurements(&self) -> Result<Vec<Measurement>, SessionError> {
        let profile = self.hardware().await;
        Ok(self.measurements_table().list(&measure::machine_id(&profile)).await?)
    }

    fn measurements_table(&self) -> Measurements {
        Measurements::new(self.store.clone())
    }

    /// Makes `target` the chat model: a catalog variant id, a library id or a path. A model on
    /// disk is loaded as its plan says (see [`choose::load_options`]), measured, and remembered;
    /// a catalog variant not on disk is downloaded first, in the background, and loaded when the
    /// download completes. `engine` overrides the engine its format runs on.
    pub async fn use_model(
        self: &Arc<Self>,
        target: &str,
        isq: Option<Isq>,
        engine: Option<EngineKind>,
    ) -> Result<UseStarted, SessionError> {
        let catalog = Catalog::builtin()?;
        let target = Target::parse(target, &catalog)?;
        match choose::resolve(&self.library, &catalog, &target).await? {
            Resolution::OnDisk(model) => {
                let (info, measurement) = self.use_on_disk(&model, isq, engine, &catalog).await?;
                Ok(UseStarted::Loaded { info, measurement })
            }
            Resolution::Download { spec, variant } => {
                let job = self.downloads.enqueue(&spec, Some(&variant)).await?;
                let session = Arc::clone(self);
                let id = job.id;
                tokio::spawn(async move {
                    match session.wait_for_download(id).await {
                        Some(model_id) => {
                            let loaded = async {
                                let model = OnDisk::new(session.library.get(model_id).await?, &catalog);
                                session.use_on_disk(&model, isq, engine, &catalog).await
                            };
                            if let Err(e) = loaded.await {
                                tracing::warn!("the downloaded model {model_id} could not be loaded: {e}");
                            }
                        }
                        None => tracing::info!("download {id} did not complete; the chat model is unchanged"),
                    }
                });
                Ok(UseStarted::Downloading { job })
            }
        }
    }

    async fn use_on_disk(
        &self,
        model: &OnDisk,
        isq: Option<Isq>,
        engine: Option<EngineKind>,
        catalog: &Catalog,
    ) -> Result<(ModelInfo, Measurement), SessionError> {
        self.slot.use_on_disk(model, isq, engine, catalog, &self.hardware().await).await
    }

    /// Waits for a download to end; the library id of its model when it completed.
    async fn wait_for_download(&self, id: i64) -> Option<i64> {
        use crate::download::queue::JobState;
        let mut changes = self.downloads.subscribe();
        loop {
            let job = self.downloads.job(id).await.ok()?;
            match job.state {
                JobState::Completed => return job.model_id,
                JobState::Cancelled => return None,
                // A failed or paused download can be resumed from the Downloads list; keep waiting.
                _ => {}
            }
            if changes.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The remote model servers added, and the name of the one in use as the chat model.
    pub async fn remotes(&self) -> Result<(Vec<crate::remotes::Remote>, Option<String>), SessionError> {
        Ok((crate::remotes::list(&self.store).await?, crate::remotes::in_use(&self.store).await?))
    }

    /// Adds a remote model server after connecting to it once (see [`crate::remotes::add`]);
    /// with `use_now`, its model becomes the chat model. Returns what connecting found.
    pub async fn add_remote(
        &self,
        remote: crate::remotes::Remote,
        api_key: Option<&str>,
        use_now: bool,
    ) -> Result<ModelInfo, SessionError> {
        let (remote, engine) = crate::remotes::add(&self.store, remote, api_key).await?;
        if use_now {
            return self.slot.connect(&remote).await;
        }
        Ok(engine.info().clone())
    }

    /// Makes the remote `name`'s model (`model`, else the one it was added with) the chat model.
    pub async fn use_remote(&self, name: &str, model: Option<String>) -> Result<ModelInfo, SessionError> {
        self.slot.connect(&crate::remotes::with_model(&self.store, name, model).await?).await
    }

    /// Removes a remote model server and its key.
    pub async fn remove_remote(&self, name: &str) -> Result<(), SessionError> {
        Ok(crate::remotes::remove(&self.store, name).await?)
    }

    /// The remote server to connect at start-up instead of loading a model: the one in use,
    /// unless `ALTIPLANO_MODEL` names a local model.
    pub async fn startup_remote(&self) -> Option<crate::remotes::Remote> {
        if std::env::var_os(config::MODEL_ENV).is_some_and(|p| !p.is_empty()) {
            return None;
        }
        let name = crate::remotes::in_use(&self.store).await.ok().flatten()?;
        crate::remotes::get(&self.store, &name).await.ok()
    }

    /// The chat model's slot: its state, its loads.
    pub fn model(&self) -> &ModelSlot {
        &self.slot
    }

    /// Where the model stands now.
    pub fn model_state(&self) -> ModelState {
        self.slot.state()
    }

    /// The model's state now and at every change (a load's progress included), for a face
    /// that shows it as it happens.
    pub fn watch_model(&self) -> watch::Receiver<ModelState> {
        self.slot.watch()
    }

    /// Waits until no load is in progress, then returns the state.
    pub async fn settled_model(&self) -> ModelState {
        self.slot.settled().await
    }

    /// Loads a model, measures what it takes on this machine before it replaces the current
    /// one, records the figures, and makes it the chat model.
    pub async fn load_measured(
        &self,
        path: &Path,
        options: LoadOptions,
        model_key: &str,
    ) -> Result<(ModelInfo, Measurement), SessionError> {
        self.slot.load_measured(path, options, model_key, &self.hardware().await).await
    }

    /// The in-situ quantization to load `path` with at start-up: the one it was last loaded
    /// with, when it is the last model (see [`Session::load_model_with`]).
    pub async fn startup_isq(&self, path: &Path) -> Option<Isq> {
        choose::remembered(&self.store).await.filter(|c| c.path == path).and_then(|c| c.isq)
    }

    /// The model to load at start-up: `ALTIPLANO_MODEL` when set, else the last model that
    /// loaded, else the starter model when it is on disk.
    pub async fn startup_model(&self) -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(config::MODEL_ENV).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        if let Some(last) = choose::remembered(&self.store).await {
            if last.path.exists() {
                return Some(last.path);
            }
        }
        config::starter_model().filter(|p| p.is_file())
    }

    /// Loads the model at `path`, replacing the current one once the new one is ready. On
    /// success it becomes the start-up model for next time.
    pub async fn load_model(&self, path: &Path) -> Result<ModelInfo, SessionError> {
        self.load_model_with(path, None).await
    }

    /// Loads a model (a GGUF file, or a safetensors folder quantized in place with `isq`) and
    /// makes it the chat model; it is loaded the same way at the next start.
    pub async fn load_model_with(&self, path: &Path, isq: Option<Isq>) -> Result<ModelInfo, SessionError> {
        self.slot.load(path, LoadOptions { isq, ..LoadOptions::default() }).await
    }

    /// Runs a chat turn under `request_id`; [`Session::stop`] with the same id ends it.
    pub async fn chat(
        &self,
        request_id: u32,
        turn: Turn,
        on_event: impl FnMut(ChatEvent),
    ) -> Result<TurnOutcome, SessionError> {
        let (engine, request) = self.start_request(request_id).await?;
        let cancel = request.cancel.clone();
        let result = chat::run(&self.store, &engine, turn, cancel, on_event).await;
        Ok(result?)
    }

    /// Opens a code folder and brings its words up to date (only changed files are read);
    /// `progress` hears about it as files are handled. It becomes the folder `ask_code` uses
    /// once keyword search is complete; chunks without vectors are then embedded in the
    /// background, `on_embed` hearing how far it is; closing the folder stops it.
    pub async fn open_project(
        &self,
        root: &Path,
        progress: impl FnMut(IndexProgress) + Send + 'static,
        on_embed: impl FnMut(IndexProgress) + Send + 'static,
    ) -> Result<(Arc<CodeIndex>, IndexReport), SessionError> {
        let model = self.search_model_for(Purpose::Code).await;
        self.project.open(root, model, progress, on_embed).await
    }

    /// The open code folder, if any.
    pub async fn project(&self) -> Option<Arc<CodeIndex>> {
        self.project.index().await
    }

    /// The open code folder with the report of its last full indexing.
    pub async fn project_report(&self) -> Option<(Arc<CodeIndex>, IndexReport)> {
        self.project.report().await
    }

    /// The code folder to open at start-up: `ALTIPLANO_PROJECT`, else the last one opened
    /// (if it still exists).
    pub async fn startup_project(&self) -> Option<PathBuf> {
        self.project.startup().await
    }

    /// Answers a question about the open code folder under `request_id` ([`Session::stop`]
    /// ends it), recorded in the folder's own conversation ([`crate::codebase::desk::ask`]).
    pub async fn ask_code(
        &self,
        request_id: u32,
        question: &str,
        on_text: impl FnMut(&str),
    ) -> Result<(CodeAnswer, i64), SessionError> {
        let index = self.project().await.ok_or(SessionError::NoProject)?;
        let (engine, request) = self.start_request(request_id).await?;
        let cancel = request.cancel.clone();
        let sampling = crate::engine::Sampling::default();
        match code_desk::ask(&self.store, &index, &engine, question, sampling, cancel, on_text).await {
            Ok(asked) => Ok((asked.answer, asked.conversation_id)),
            Err(DeskError::Ask(AskError::Index(e))) => Err(SessionError::Code(e)),
            Err(DeskError::Ask(AskError::Engine(e))) => Err(SessionError::Engine(e)),
            Err(DeskError::Store(e)) => Err(e.into()),
        }
    }

    /// A file of the open code folder, for the read-only view of a citation; paths that lead
    /// outside the folder are refused.
    pub async fn read_project_file(&self, path: &str) -> Result<String, SessionError> {
        self.project.read_file(path).await
    }

    /// Sets the program that reads documents in a child process (see
    /// [`documents::extract_isolated`]); by default this program itself.
    pub fn set_extractor(&self, program: PathBuf) {
        *self.extractor.lock().unwrap_or_else(|p| p.into_inner()) = Some(program);
    }

    /// Opens a document: one read before (same bytes) comes from the database at once, with
    /// its summary if one was finished; a new one is read in an isolated child process and
    /// saved.
    pub async fn open_document(&self, path: &Path) -> Result<(SavedDocument, Option<Summary>), SessionError> {
        let configured = self.extractor.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(documents::open(&self.store, configured, path).await?)
    }

    /// Documents opened before, most recent first.
    pub async fn documents(&self) -> Result<Vec<SavedDocument>, SessionError> {
        Ok(saved::list(&self.store).await?)
    }

    /// A document opened before, with its summary if one was finished.
    pub async fn document(&self, id: i64) -> Result<(SavedDocument, Option<Summary>), SessionError> {
        let doc = saved::get(&self.store, id).await?;
        let summary = saved::finished_tree(&self.store, id).await?.map(|nodes| documents::summary::finished(id, nodes));
        Ok((doc, summary))
    }

    /// A document's pages.
    pub async fn document_pages(&self, id: i64) -> Result<Vec<Page>, SessionError> {
        saved::get(&self.store, id).await?;
        Ok(saved::pages(&self.store, id).await?)
    }

    /// One page of a document, for the view a citation opens.
    pub async fn document_page(&self, id: i64, number: u32) -> Result<Page, SessionError> {
        self.document_pages(id).await?.into_iter().find(|p| p.number == number).ok_or(SessionError::NoSuchPage(number))
    }

    /// Forgets a document and its summaries (its conversation stays).
    pub async fn forget_document(&self, id: i64) -> Result<(), SessionError> {
        Ok(saved::delete(&self.store, id).await?)
    }

    /// Summarizes a document under `request_id` ([`Session::stop`] ends it; finished parts are
    /// kept and the next run continues from them). `fresh` drops earlier summaries first. The
    /// summary is saved in the document's conversation, where follow-up questions go too.
    pub async fn summarize_document(
        &self,
        request_id: u32,
        id: i64,
        fresh: bool,
        options: SummaryOptions,
        progress: impl FnMut(SummaryProgress),
    ) -> Result<Summary, SessionError> {
        saved::get(&self.store, id).await?;
        let (engine, request) = self.start_request(request_id).await?;
        let cancel = request.cancel.clone();
        let embedder = self.search_model().await;
        Ok(desk::summarize(&self.store, &engine, id, fresh, options, embedder, cancel, progress).await?)
    }

    /// The embedding model for hybrid document search; `None` when there is none or it does
    /// not load (logged; search then uses keywords and says so).
    pub async fn search_model(&self) -> Option<Arc<crate::engine::embed::Embedder>> {
        self.search_model_for(Purpose::Documents)
            .await
            .inspect_err(|e| tracing::warn!("documents are searched by keywords only: {e}"))
            .ok()
            .flatten()
    }

    /// The embedding model search uses for `purpose` ([`crate::search_models::resolve`]),
    /// loaded on first use and kept while it stays the one chosen.
    pub async fn search_model_for(
        &self,
        purpose: Purpose,
    ) -> Result<Option<Arc<crate::engine::embed::Embedder>>, crate::search_models::SearchModelError> {
        let catalog = Catalog::builtin().map_err(crate::search_models::SearchModelError::from)?;
        let Some(resolved) = crate::search_models::resolve(&self.store, &catalog, purpose).await? else {
            return Ok(None);
        };
        // Held while loading, so two first searches load the model once.
        let mut loaded = self.search_models.lock().await;
        if let Some((_, embedder)) = loaded.iter().find(|(r, _)| *r == resolved) {
            return Ok(Some(Arc::clone(embedder)));
        }
        let (to_load, copies) = (resolved.clone(), self.data_dir.embedding_copies_dir());
        let embedder = tokio::task::spawn_blocking(move || crate::search_models::load_resolved(&to_load, &copies))
            .await
            .map_err(|e| {
                crate::engine::embed::EmbedError::Run(format!("the embedding model's loader stopped: {e}"))
            })??;
        let embedder = Arc::new(embedder);
        // Keep the other purpose's model, drop any older one.
        let mut keep = Vec::new();
        for other in Purpose::ALL.into_iter().filter(|p| *p != purpose) {
            if let Ok(Some(r)) = crate::search_models::resolve(&self.store, &catalog, other).await {
                keep.push(r);
            }
        }
        loaded.retain(|(r, _)| keep.contains(r));
        loaded.push((resolved, Arc::clone(&embedder)));
        Ok(Some(embedder))
    }

    /// Every catalog embedding model: on disk or not, and what search uses it for.
    pub async fn search_models(&self) -> Result<Vec<crate::search_models::SearchModelStatus>, SessionError> {
        Ok(crate::search_models::list(&self.store, &Catalog::builtin()?).await?)
    }

    /// Makes catalog embedding model `id` the one search uses for `purpose` (it must be on
    /// disk). Documents use it from the next question; an open code folder is opened again
    /// with it by the caller (its chunks are embedded again by the new model, in the background).
    pub async fn choose_search_model(&self, purpose: Purpose, id: &str) -> Result<(), SessionError> {
        let catalog = Catalog::builtin()?;
        crate::search_models::choose(&self.store, &catalog, purpose, id).await?;
        self.search_model_for(purpose).await?;
        Ok(())
    }

    /// Answers a follow-up question about a document from its relevant pages, under
    /// `request_id`; the exchange is saved in the document's conversation.
    pub async fn ask_document(
        &self,
        request_id: u32,
        id: i64,
        question: &str,
        on_text: impl FnMut(&str),
    ) -> Result<Asked, SessionError> {
        let (engine, request) = self.start_request(request_id).await?;
        let cancel = request.cancel.clone();
        let search = desk::Search {
            embedder: self.search_model().await,
            on_embed: |_: u64, _: u64| {},
            indexes: Some(&self.page_indexes),
        };
        let result = desk::ask(&self.store, &engine, id, question, search, None, cancel, on_text).await;
        Ok(result?)
    }

    /// The loaded engine and a cancel token registered under `request_id` for [`Session::stop`]
    /// as long as the returned guard lives (however the request ends).
    async fn start_request(&self, request_id: u32) -> Result<(Engine, Request<'_>), SessionError> {
        let engine = match self.slot.engine().await {
            Some(engine) => engine,
            None if matches!(self.model_state(), ModelState::Loading { .. }) => return Err(SessionError::ModelLoading),
            None => return Err(SessionError::NoModel),
        };
        Ok((engine, self.replies.register(request_id)?))
    }

    /// Stops the reply running under `request_id`; false when none is.
    pub fn stop(&self, request_id: u32) -> bool {
        self.replies.stop(request_id)
    }
}
