//! Choosing the chat model: `altiplano models use` and the Models page's "Use this model".
//!
//! A target is a catalog variant id (`llama-3.1-8b-instruct:q4_k_m`), a library model id, or
//! a GGUF file / safetensors folder on disk. [`resolve`] finds it on disk (importing a path
//! into the library) or says what to download; the caller downloads it with the download
//! manager, loads it the way its plan says ([`load_options`]: the catalog's in-situ
//! quantization, the plan's GPU layer split), measures it ([`crate::measure`]) and remembers
//! it ([`remember`]) so the app and `altiplano chat` start with it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{Catalog, Format};
use crate::config;
use crate::download::{self, PullSpec};
use crate::engine::{EngineKind, Isq, LoadOptions};
use crate::hardware::HardwareProfile;
use crate::library::{Library, LibraryError, LocalModel, ModelFormat};
use crate::planner::{self, PlanOptions};
use crate::store::{Store, StoreError};

/// Setting key holding the chosen model (the last one that loaded).
const MODEL_KEY: &str = "model.last_path";
/// Setting key holding the in-situ quantization it loads with (empty: none).
const ISQ_KEY: &str = "model.last_isq";
/// Setting key holding the engine it runs on (empty: the default for its format). Kept for
/// databases written before the engine was remembered per model.
const ENGINE_KEY: &str = "model.last_engine";
/// Prefix of the setting keys holding the engine each model runs on, by path, when it is not
/// its format's default.
const MODEL_ENGINE_PREFIX: &str = "model.engine:";

/// The chat model remembered in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// The GGUF file or safetensors folder.
    pub path: PathBuf,
    /// In-situ quantization to load it with.
    pub isq: Option<Isq>,
    /// The engine to run it on (`None`: the default for its format).
    pub engine: Option<EngineKind>,
}

/// The remembered chat model, when there is one.
pub async fn remembered(store: &Store) -> Option<Chosen> {
    let path = store.setting(MODEL_KEY).await.ok().flatten().filter(|p| !p.is_empty())?;
    let isq = store.setting(ISQ_KEY).await.ok().flatten().as_deref().and_then(|name| name.parse().ok());
    let path = PathBuf::from(path);
    let engine = match remembered_engine(store, &path).await {
        Some(engine) => Some(engine),
        None => store.setting(ENGINE_KEY).await.ok().flatten().as_deref().and_then(|name| name.parse().ok()),
    };
    Some(Chosen { path, isq, engine })
}

/// The engine a model was last run on, when the user chose one other than its format's
/// default (each model keeps its own: a GGUF file tried on mistral.rs stays there).
pub async fn remembered_engine(store: &Store, path: &Path) -> Option<EngineKind> {
    let key = format!("{MODEL_ENGINE_PREFIX}{}", path.to_string_lossy());
    store.setting(&key).await.ok().flatten().as_deref().and_then(|name| name.parse().ok())
}

/// Remembers the chat model for the next start (of the app and of `altiplano chat`), with
/// the engine it runs on when that is not the default for its format.
pub async fn remember(
    store: &Store,
    path: &Path,
    isq: Option<Isq>,
    engine: Option<EngineKind>,
) -> Result<(), StoreError> {
    let engine = engine.filter(|e| *e != EngineKind::for_path(path)).map(EngineKind::wire_name).unwrap_or("");
    store.set_setting(MODEL_KEY, &path.to_string_lossy()).await?;
    store.set_setting(ISQ_KEY, isq.map(Isq::wire_name).unwrap_or("")).await?;
    store.set_setting(&format!("{MODEL_ENGINE_PREFIX}{}", path.to_string_lossy()), engine).await?;
    store.set_setting(ENGINE_KEY, "").await?;
    // A local model chosen replaces a remote one in use.
    store.set_setting(crate::remotes::IN_USE_KEY, "").await
}

/// Why a model cannot be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChooseError {
    /// Neither a path, a library id nor a catalog variant.
    #[error(
        "{0} is not a model file or folder, a model id of `altiplano models list`, or a catalog variant \
         (`altiplano plan` lists them, e.g. llama-3.1-8b-instruct:q4_k_m)"
    )]
    UnknownTarget(String),
    /// The target is an embedding model, which search uses, not chat.
    #[error("{0} is an embedding model for search, not a chat model; `altiplano models use-search {0}` (or Search models on the Models page) makes search use it")]
    EmbeddingModel(String),
    /// In-situ quantization asked for a GGUF file.
    #[error("{} is a GGUF file, quantized already; in-situ quantization (--isq) applies to safetensors folders", .0.display())]
    IsqOnGguf(PathBuf),
    /// The starter model is not on disk.
    #[error(
        "the starter model is not on disk ({}); reinstall Altiplano, or in a source checkout run \
         models/fetch-starter.sh",
        .0.display()
    )]
    NoStarter(PathBuf),
    /// The library failed (a path that is not a usable model, a missing id).
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The variant cannot be downloaded (no repo, bad name).
    #[error(transparent)]
    Download(#[from] download::DownloadError),
}

/// The starter model's file ([`config::starter_model`]), or [`ChooseError::NoStarter`] naming
/// where it was looked for.
pub fn starter() -> Result<PathBuf, ChooseError> {
    let path = config::starter_model().unwrap_or_default();
    if path.is_file() {
        Ok(path)
    } else {
        Err(ChooseError::NoStarter(path))
    }
}

/// What was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A GGUF file or safetensors folder.
    Path(PathBuf),
    /// A model of the library.
    Library(i64),
    /// A catalog variant id.
    Variant(String),
}

impl Target {
    /// Reads a target: an existing path, a number (library id), or a catalog variant id.
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Self, ChooseError> {
        let text = text.trim();
        let path = Path::new(text);
        if path.exists() {
            return Ok(Self::Path(path.to_path_buf()));
        }
        if let Ok(id) = text.parse::<i64>() {
            return Ok(Self::Library(id));
        }
        if let Some(embedding) = catalog.embedding(text) {
            return Err(ChooseError::EmbeddingModel(embedding.id.clone()));
        }
        match catalog.find_variant(text) {
            Some((model, variant)) => Ok(Self::Variant(Catalog::variant_id(model, variant))),
            None => Err(ChooseError::UnknownTarget(text.to_owned())),
        }
    }
}

/// A model on disk, ready to load.
#[derive(Debug, Clone, Serialize)]
pub struct OnDisk {
    /// The library entry.
    pub model: LocalModel,
    /// The catalog variant id when it is one, else the path: the key of its measurements.
    pub key: String,
}

impl OnDisk {
    /// A library model, keyed by its catalog variant (the starter file counts as the starter
    /// variant), else by its path.
    pub fn new(model: LocalModel, catalog: &Catalog) -> Self {
        let key = model.variant.clone().or_else(|| starter_variant(catalog, &model.path));
        let key = key.unwrap_or_else(|| model.path.display().to_string());
        Self { model, key }
    }
}

/// Where a target stands.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// On disk.
    OnDisk(OnDisk),
    /// A catalog variant that must be downloaded first.
    Download {
        /// What to fetch.
        spec: PullSpec,
        /// The variant id.
        variant: String,
    },
}

/// Finds `target` on disk (a path is imported into the library, so it is listed from then on)
/// or says what to download.
pub async fn resolve(library: &Library, catalog: &Catalog, target: &Target) -> Result<Resolution, ChooseError> {
    let on_disk = |model: LocalModel| match model.variant.as_deref().and_then(|v| catalog.embedding(v)) {
        Some(embedding) => Err(ChooseError::EmbeddingModel(embedding.id.clone())),
        None => Ok(Resolution::OnDisk(OnDisk::new(model, catalog))),
    };
    match target {
        Target::Path(path) => {
            // A model already listed (a download, say) keeps its entry; others are imported.
            let canonical = std::fs::canonicalize(path).ok();
            let listed = library.list().await?.into_iter().find(|m| Some(&m.path) == canonical.as_ref());
            let model = match listed {
                Some(model) => model,
                None => library.import(path).await?,
            };
            on_disk(model)
        }
        Target::Library(id) => on_disk(library.get(*id).await?),
        Target::Variant(id) => {
            let Some((model, _)) = catalog.find_variant(id) else {
                return Err(ChooseError::UnknownTarget(id.clone()));
            };
            if model.starter {
                return on_disk(library.import(&starter()?).await?);
            }
            let local = library.list().await?.into_iter().find(|m| m.variant.as_deref() == Some(id) && m.path.exists());
            match local {
                Some(model) => on_disk(model),
                None => {
                    let (spec, _) = download::spec_for_target(catalog, id, &[], "main")?;
                    Ok(Resolution::Download { spec, variant: id.clone() })
                }
            }
        }
    }
}

/// The starter variant's id when `path` is the starter model's file.
fn starter_variant(catalog: &Catalog, path: &Path) -> Option<String> {
    let starter = std::fs::canonicalize(config::starter_model()?).ok()?;
    (std::fs::canonicalize(path).ok()? == starter)
        .then(|| {
            catalog.models.iter().find(|m| m.starter).and_then(|m| Some(Catalog::variant_id(m, m.variants.first()?)))
        })
        .flatten()
}

/// How to load `model` for this machine: `isq` when given (safetensors only), else the
/// catalog variant's own quantization; and, for a variant the plan splits between GPUs and the
/// CPU, how many layers go on each GPU.
pub fn load_options(
    model: &OnDisk,
    isq: Option<Isq>,
    catalog: &Catalog,
    profile: &HardwareProfile,
) -> Result<LoadOptions, ChooseError> {
    if isq.is_some() && model.model.format == ModelFormat::Gguf {
        return Err(ChooseError::IsqOnGguf(model.model.path.clone()));
    }
    let variant = catalog.find_variant(&model.key);
    let isq = isq.or_else(|| {
        variant
            .filter(|(_, v)| v.format == Format::Safetensors)
            .and_then(|(_, v)| v.isq.as_deref())
            .and_then(Isq::from_catalog)
    });
    // llama.cpp allocates the KV cache of its whole context at load: a catalog variant gets the
    // largest context its plan fits on this machine, up to [`planner::LONG_CONTEXT`], and the GPU split the
    // plan makes for that context.
    let place = |context_tokens| {
        planner::place_variant(profile, catalog, &model.key, PlanOptions { context_tokens, ..PlanOptions::default() })
            .filter(|c| c.fit != planner::Fit::TooLarge)
    };
    let context_tokens = place(PlanOptions::default().context_tokens)
        .filter(|c| c.engine == EngineKind::LlamaCpp)
        .map(|c| c.max_context_tokens.clamp(PlanOptions::default().context_tokens, planner::LONG_CONTEXT));
    let candidate = context_tokens.and_then(place).or_else(|| place(PlanOptions::default().context_tokens));
    let gpu_layers = candidate.as_ref().map(|c| planner::gpu_layers(c, catalog)).unwrap_or_default();
    let kv_precision = candidate.map(|c| c.kv_precision).unwrap_or_default();
    Ok(LoadOptions {
        isq,
        gpu_layers,
        kv_precision,
        context_tokens: context_tokens.map(|n| n as usize),
        ..LoadOptions::default()
    })
}
