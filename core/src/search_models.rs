//! Which embedding model search uses, for documents and for code: the catalog's embedding
//! models ([`crate::catalog::EmbeddingModel`]), found on disk (the starter where a package or
//! `models/fetch-starter.sh` put it, the others where the download manager fetched them), the
//! user's choice per [`Purpose`] kept in the settings, and the one function that loads what
//! is chosen. `ALTIPLANO_EMBEDDING_MODEL` overrides every choice (a folder; empty: no vectors).
//!
//! Without a choice, search uses the starter. A chosen model that is no longer on disk falls
//! back to the starter too, and the listing says so, so search keeps working.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::{Catalog, EmbeddingModel, Purpose};
use crate::engine::embed::{EmbedError, Embedder, Recipe};
use crate::library::Library;
use crate::store::{Store, StoreError};

/// The settings key holding the chosen model's id for a purpose.
fn setting_key(purpose: Purpose) -> String {
    format!("search.embedding.{}", purpose.as_str())
}

/// Errors from choosing or loading a search model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchModelError {
    /// The id is not one of the catalog's embedding models.
    #[error("{id:?} is not an embedding model; known ones: {known}")]
    Unknown {
        /// What was asked for.
        id: String,
        /// The catalog's ids.
        known: String,
    },
    /// The model is not on disk yet.
    #[error("{id} is not downloaded yet; `altiplano models pull {id}` (or Download on the Models page) fetches it")]
    NotDownloaded {
        /// The model's id.
        id: String,
    },
    /// The model is on disk but did not load.
    #[error(transparent)]
    Load(#[from] EmbedError),
    /// The settings could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The library could not be read.
    #[error(transparent)]
    Library(#[from] crate::library::LibraryError),
    /// The built-in catalog is malformed.
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// A search model ready to load: its folder and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The catalog id, when it is a catalog model (not for an `ALTIPLANO_EMBEDDING_MODEL` folder).
    pub id: Option<String>,
    /// The model folder (or, for a GGUF model, its file).
    pub dir: PathBuf,
    /// Pooling and prefixes.
    pub recipe: Recipe,
}

impl Resolved {
    /// Catalog model `model` in folder `dir`: the folder, or its GGUF file when it is one (the
    /// folder may hold other files of the same repo).
    fn of(model: &EmbeddingModel, dir: PathBuf) -> Self {
        let dir = match model.gguf_file() {
            Some(file) if dir.is_dir() => dir.join(file),
            _ => dir,
        };
        Self { id: Some(model.id.clone()), dir, recipe: Recipe::of(model) }
    }
}

/// One catalog embedding model as the Models page and `models search` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchModelStatus {
    /// The catalog entry.
    pub model: EmbeddingModel,
    /// Where it is on disk (a folder; a GGUF model's file), when it is.
    pub path: Option<PathBuf>,
    /// The purposes search uses it for now.
    pub used_for: Vec<Purpose>,
    /// The purposes the user chose it for (when it is missing, the starter stands in).
    pub chosen_for: Vec<Purpose>,
}

/// Where a catalog embedding model is on disk (its folder, or a GGUF model's file): the
/// starter where it ships, or a finished download (the library's record of it, with every
/// file still there).
pub async fn on_disk(store: &Store, model: &EmbeddingModel) -> Result<Option<PathBuf>, SearchModelError> {
    if model.starter {
        if let Some(dir) = crate::config::starter_embedding_dir() {
            return Ok(Some(dir));
        }
    }
    // A GGUF model is recorded as its file, a safetensors one as its folder.
    let complete = |path: &Path| match model.gguf_file() {
        Some(file) if path.is_file() => path.file_name().is_some_and(|n| n == file),
        _ => model.files.iter().all(|f| path.join(f).is_file()),
    };
    let library = Library::new(store.clone());
    let recorded = library.list().await?.into_iter().find(|m| m.variant.as_deref() == Some(model.id.as_str()));
    Ok(recorded.map(|m| m.path).filter(|dir| complete(dir)))
}

/// The model search uses for `purpose`: the override, else the chosen one when it is on disk,
/// else the starter; `None` when there is none (search uses keywords and says so).
pub async fn resolve(store: &Store, catalog: &Catalog, purpose: Purpose) -> Result<Option<Resolved>, SearchModelError> {
    if let Some(folder) = crate::config::embedding_override() {
        return Ok(folder.map(|dir| {
            let recipe = Recipe::from_folder(&dir);
            Resolved { id: None, dir, recipe }
        }));
    }
    let chosen = store.setting(&setting_key(purpose)).await?;
    let chosen = chosen.as_deref().and_then(|id| catalog.embedding(id));
    for model in chosen.into_iter().chain(catalog.starter_embedding()) {
        if let Some(dir) = on_disk(store, model).await? {
            return Ok(Some(Resolved::of(model, dir)));
        }
        if chosen.is_some_and(|c| c.id == model.id) {
            tracing::warn!(model = %model.id, "the chosen {} search model is not on disk; using the starter", purpose.as_str());
        }
    }
    Ok(None)
}

/// Loads the model search uses for `purpose` (see [`resolve`]); `Ok(None)` when there is none.
pub async fn load(store: &Store, catalog: &Catalog, purpose: Purpose) -> Result<Option<Embedder>, SearchModelError> {
    let Some(resolved) = resolve(store, catalog, purpose).await? else { return Ok(None) };
    let copies = crate::config::embedding_copies_dir(store.folder());
    let loaded = tokio::task::spawn_blocking(move || load_resolved(&resolved, &copies))
        .await
        .map_err(|e| EmbedError::Run(format!("the embedding model's loader stopped: {e}")))??;
    Ok(Some(loaded))
}

/// Loads a resolved model (blocking). A BERT sentence-transformers folder runs from a GGUF copy
/// of its weights on llama.cpp — several times faster than candle on a CPU, with the same
/// vectors (`BENCHMARKS.md`) — made once in `copies` (about a second for the starter) and kept
/// under the weights' hash. Where no copy can be made (another architecture or tokenizer) or
/// it does not load, or `ALTIPLANO_EMBEDDING_ENGINE=candle`, the folder runs on candle.
pub fn load_resolved(resolved: &Resolved, copies: &Path) -> Result<Embedder, EmbedError> {
    if crate::config::embedding_copies_enabled() && resolved.dir.join("model.safetensors").is_file() {
        match gguf_copy(&resolved.dir, resolved.recipe.pooling, copies)
            .and_then(|copy| Embedder::load_with(&copy, resolved.recipe.clone()).map_err(|e| e.to_string()))
        {
            Ok(embedder) => return Ok(embedder),
            Err(why) => tracing::info!(model = %resolved.dir.display(), "embedding on candle: {why}"),
        }
    }
    Embedder::load_with(&resolved.dir, resolved.recipe.clone())
}

/// Removes copies a killed process left half-written (`*.partial-PID`, never read): those over
/// an hour old, when a conversion takes seconds, so one under way elsewhere is left alone.
fn sweep_partial_copies(copies: &Path) {
    let stale = |entry: &std::fs::DirEntry| {
        entry.file_name().to_string_lossy().contains(".partial-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600))
    };
    for entry in std::fs::read_dir(copies).into_iter().flatten().flatten() {
        if stale(&entry) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The GGUF copy of the BERT folder `dir` pooled by `pooling`, in `copies`, made if it is not
/// there yet: named after the folder, the hash of its weights and tokenizer and the pooling,
/// so another model (or new weights under the same name) gets its own.
fn gguf_copy(dir: &Path, pooling: crate::catalog::Pooling, copies: &Path) -> Result<PathBuf, String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for name in ["model.safetensors", "tokenizer.json", "config.json"] {
        let mut file = std::fs::File::open(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        std::io::copy(&mut file, &mut hash).map_err(|e| format!("{name}: {e}"))?;
    }
    let digest = hash.finalize();
    let short: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "embedding".into());
    let pooled = match pooling {
        crate::catalog::Pooling::Mean => "mean",
        crate::catalog::Pooling::Cls => "cls",
    };
    let copy = copies.join(format!("{folder}-{short}-{pooled}.gguf"));
    sweep_partial_copies(copies);
    if !copy.is_file() {
        crate::convert::bert_to_gguf(dir, &copy, Some(pooling)).map_err(|e| e.to_string())?;
    }
    Ok(copy)
}

/// Makes catalog model `id` the search model for `purpose`; it must be on disk. The next
/// search for that purpose loads it (vectors are made again by it as needed; those of the
/// other model stay, so switching back costs nothing).
pub async fn choose(
    store: &Store,
    catalog: &Catalog,
    purpose: Purpose,
    id: &str,
) -> Result<Resolved, SearchModelError> {
    let model = catalog.embedding(id).ok_or_else(|| SearchModelError::Unknown {
        id: id.to_owned(),
        known: catalog.embeddings.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let dir = on_disk(store, model).await?.ok_or_else(|| SearchModelError::NotDownloaded { id: model.id.clone() })?;
    store.set_setting(&setting_key(purpose), &model.id).await?;
    Ok(Resolved::of(model, dir))
}

/// Every catalog embedding model: on disk or not, used and chosen for what.
pub async fn list(store: &Store, catalog: &Catalog) -> Result<Vec<SearchModelStatus>, SearchModelError> {
    let mut used = Vec::new();
    let mut chosen = Vec::new();
    for purpose in Purpose::ALL {
        used.push((purpose, resolve(store, catalog, purpose).await?.and_then(|r| r.id)));
        chosen.push((purpose, store.setting(&setting_key(purpose)).await?));
    }
    let mut out = Vec::new();
    for model in &catalog.embeddings {
        let is = |id: &Option<String>| id.as_deref().is_some_and(|id| id.eq_ignore_ascii_case(&model.id));
        out.push(SearchModelStatus {
            model: model.clone(),
            path: on_disk(store, model).await?,
            used_for: used.iter().filter(|(_, id)| is(id)).map(|(p, _)| *p).collect(),
            chosen_for: chosen.iter().filter(|(_, id)| is(id)).map(|(p, _)| *p).collect(),
        });
    }
    Ok(out)
}
