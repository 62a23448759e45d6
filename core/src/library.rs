//! The models on disk that Altiplano knows: downloaded into the hub cache, or imported from
//! the user's own files. Kept in the `models` table.
//!
//! An import is validated first: a GGUF file must have a readable header whose tensors lie
//! inside the file; a safetensors folder must have a readable `config.json`, a tokenizer, and
//! weight files whose headers are sound and whose sizes match the tensors they describe.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::Row;

use crate::download::{HubCache, Pulled};
use crate::store::{now_ms, Store, StoreError};

/// How a model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// One GGUF file (or the first of a split set).
    Gguf,
    /// A Hugging Face folder of safetensors weights.
    Safetensors,
}

impl ModelFormat {
    fn as_str(self) -> &'static str {
        match self {
            ModelFormat::Gguf => "gguf",
            ModelFormat::Safetensors => "safetensors",
        }
    }
}

/// Where a model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    /// Downloaded into the hub cache; removing it deletes the files.
    Hub,
    /// The user's own file or folder; removing it only forgets it.
    Import,
}

/// A model on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalModel {
    /// Row id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Storage format.
    pub format: ModelFormat,
    /// The GGUF file or safetensors folder.
    pub path: PathBuf,
    /// Where it came from.
    pub source: ModelSource,
    /// Hub repo, for downloads.
    pub repo: Option<String>,
    /// Hub commit, for downloads.
    pub commit: Option<String>,
    /// Repo paths belonging to it (downloads).
    pub files: Vec<String>,
    /// Catalog variant id, when it is one.
    pub variant: Option<String>,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// When it was added (Unix ms).
    pub added_at: i64,
}

/// Errors from the model library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LibraryError {
    /// The path does not exist.
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    /// The file or folder is not a model Altiplano can run.
    #[error("{} is not a usable model: {reason}", path.display())]
    Invalid {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// No model has this id.
    #[error("there is no model {0}; `altiplano models list` shows the ids")]
    NotFound(i64),
    /// Deleting files failed.
    #[error("cannot delete the files of model {id}: {source}")]
    Remove {
        /// The model.
        id: i64,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LibraryError {
    fn from(e: sqlx::Error) -> Self {
        LibraryError::Store(StoreError::Database(e))
    }
}

/// The `models` table.
#[derive(Debug, Clone)]
pub struct Library {
    store: Store,
}

impl Library {
    /// The library in `store`'s database.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Every model, newest first.
    pub async fn list(&self) -> Result<Vec<LocalModel>, LibraryError> {
        let rows =
            sqlx::query("SELECT * FROM models ORDER BY added_at DESC, id DESC").fetch_all(self.store.pool()).await?;
        rows.iter().map(row_to_model).collect()
    }

    /// One model.
    pub async fn get(&self, id: i64) -> Result<LocalModel, LibraryError> {
        let row = sqlx::query("SELECT * FROM models WHERE id = ?").bind(id).fetch_optional(self.store.pool()).await?;
        row.as_ref().map(row_to_model).transpose()?.ok_or(LibraryError::NotFound(id))
    }

    /// Records a finished download (again, if it is already there).
    pub async fn add_pulled(&self, pulled: &Pulled, variant: Option<&str>) -> Result<LocalModel, LibraryError> {
        let path = pulled.model_path();
        let format =
            if path.extension().is_some_and(|e| e == "gguf") { ModelFormat::Gguf } else { ModelFormat::Safetensors };
        let name = match variant {
            Some(v) => v.to_owned(),
            None if format == ModelFormat::Gguf => {
                format!(
                    "{}/{}",
                    pulled.repo,
                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                )
            }
            None => pulled.repo.clone(),
        };
        let files: Vec<&str> = pulled.files.iter().map(|f| f.path.as_str()).collect();
        let size: u64 = pulled.files.iter().map(|f| f.size).sum();
        self.upsert(
            &name,
            format,
            &path,
            ModelSource::Hub,
            Some(&pulled.repo),
            Some(&pulled.commit),
            &files,
            variant,
            size,
        )
        .await
    }

    /// Validates and records a GGUF file or safetensors folder that is already on disk.
    pub async fn import(&self, path: &Path) -> Result<LocalModel, LibraryError> {
        let path = std::fs::canonicalize(path).map_err(|_| LibraryError::Missing(path.to_path_buf()))?;
        let checked = path.clone();
        let (format, size) = tokio::task::spawn_blocking(move || validate(&checked))
            .await
            .map_err(|e| LibraryError::Invalid { path: path.clone(), reason: format!("validation failed: {e}") })??;
        let name =
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
        self.upsert(&name, format, &path, ModelSource::Import, None, None, &[], None, size).await
    }

    /// Forgets a model; a downloaded one also has its files deleted from the hub cache (blobs
    /// that another snapshot still links to are kept). Returns the model that was removed.
    pub async fn remove(&self, id: i64, cache: &HubCache) -> Result<LocalModel, LibraryError> {
        let model = self.get(id).await?;
        if let (ModelSource::Hub, Some(repo), Some(commit)) = (model.source, &model.repo, &model.commit) {
            cache.remove_files(repo, commit, &model.files).map_err(|source| LibraryError::Remove { id, source })?;
        }
        sqlx::query("DELETE FROM models WHERE id = ?").bind(id).execute(self.store.pool()).await?;
        Ok(model)
    }

    #[allow(clippy::too_many_arguments, reason = "one column each: a struct of them would be built once, here")]
    async fn upsert(
        &self,
        name: &str,
        format: ModelFormat,
        path: &Path,
        source: ModelSource,
        repo: Option<&str>,
        commit: Option<&str>,
        files: &[&str],
        variant: Option<&str>,
        size: u64,
    ) -> Result<LocalModel, LibraryError> {
        let files = serde_json::to_string(files).unwrap_or_else(|_| "[]".into());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO models (name, format, path, source, repo, commit_sha, files, variant, size_bytes, added_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (path) DO UPDATE SET name = excluded.name, format = excluded.format, source = excluded.source,
                 repo = excluded.repo, commit_sha = excluded.commit_sha, files = excluded.files,
                 variant = COALESCE(excluded.variant, models.variant), size_bytes = excluded.size_bytes
             RETURNING id",
        )
        .bind(name)
        .bind(format.as_str())
        .bind(path.to_string_lossy())
        .bind(match source {
            ModelSource::Hub => "hub",
            ModelSource::Import => "import",
        })
        .bind(repo)
        .bind(commit)
        .bind(files)
        .bind(variant)
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(now_ms())
        .fetch_one(self.store.pool())
        .await?;
        self.get(id).await
    }
}

fn row_to_model(row: &sqlx::sqlite::SqliteRow) -> Result<LocalModel, LibraryError> {
    let files: String = row.try_get("files")?;
    Ok(LocalModel {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        format: if row.try_get::<String, _>("format")? == "gguf" {
            ModelFormat::Gguf
        } else {
            ModelFormat::Safetensors
        },
        path: PathBuf::from(row.try_get::<String, _>("path")?),
        source: if row.try_get::<String, _>("source")? == "hub" { ModelSource::Hub } else { ModelSource::Import },
        repo: row.try_get("repo")?,
        commit: row.try_get("commit_sha")?,
        files: serde_json::from_str(&files).unwrap_or_default(),
        variant: row.try_get("variant")?,
        size_bytes: u64::try_from(row.try_get::<i64, _>("size_bytes")?).unwrap_or(0),
        added_at: row.try_get("added_at")?,
    })
}

/// The format and total size of a model on disk, after checking it is sound.
pub fn validate(path: &Path) -> Result<(ModelFormat, u64), LibraryError> {
    let invalid = |reason: String| LibraryError::Invalid { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|_| LibraryError::Missing(path.to_path_buf()))?;
    if meta.is_file() {
        crate::engine::gguf_check::check(path).map_err(|p| invalid(p.to_string()))?;
        return Ok((ModelFormat::Gguf, meta.len()));
    }
    let config = path.join("config.json");
    let text = std::fs::read_to_string(&config).map_err(|_| invalid("the folder has no config.json".into()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(format!("config.json is not valid JSON: {e}")))?;
    if value.get("architectures").is_none() && value.get("model_type").is_none() {
        return Err(invalid("config.json names no architecture (neither `architectures` nor `model_type`)".into()));
    }
    if !path.join("tokenizer.json").is_file() {
        return Err(invalid("the folder has no tokenizer.json".into()));
    }
    let mut weights: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| invalid(e.to_string()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    weights.sort();
    if weights.is_empty() {
        return Err(invalid("the folder has no .safetensors weights".into()));
    }
    if let Ok(index) = std::fs::read_to_string(path.join("model.safetensors.index.json")) {
        let index: serde_json::Value = serde_json::from_str(&index)
            .map_err(|e| invalid(format!("model.safetensors.index.json is not valid JSON: {e}")))?;
        let map = index
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| invalid("the index has no weight_map".into()))?;
        for file in map.values().filter_map(|v| v.as_str()) {
            if !path.join(file).is_file() {
                return Err(invalid(format!("the index names {file}, which is missing")));
            }
        }
    }
    let mut total = text.len() as u64;
    for file in &weights {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        crate::engine::safetensors::read(file).map_err(|problem| invalid(format!("{name} {problem}")))?;
        total += std::fs::metadata(file).map_err(|e| invalid(format!("{name} cannot be read ({e})")))?.len();
    }
    Ok((ModelFormat::Safetensors, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors(tensors: &[(&str, u64)], data_len: u64) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut offset = 0;
        for (name, len) in tensors {
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": "F32", "shape": [len / 4], "data_offsets": [offset, offset + len]}),
            );
            offset += len;
        }
        crate::engine::safetensors::test_bytes(&serde_json::Value::Object(header), data_len as usize)
    }

    #[test]
    fn safetensors_folders_are_checked_before_import() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = dir.path();
        std::fs::write(model.join("config.json"), r#"{"architectures":["LlamaForCausalLM"]}"#).expect("write");
        std::fs::write(model.join("tokenizer.json"), "{}").expect("write");
        std::fs::write(model.join("model.safetensors"), safetensors(&[("a", 8), ("b", 16)], 24)).expect("write");
        let (format, _) = validate(model).expect("a sound folder");
        assert_eq!(format, ModelFormat::Safetensors);

        std::fs::write(model.join("model.safetensors"), safetensors(&[("a", 8), ("b", 16)], 20)).expect("write");
        let e = validate(model).expect_err("truncated weights");
        assert!(e.to_string().contains("truncated"), "{e}");

        std::fs::write(model.join("model.safetensors"), [0xff; 16]).expect("write");
        assert!(validate(model).is_err(), "a header length of 2^64-1 is refused, not allocated");

        std::fs::remove_file(model.join("tokenizer.json")).expect("rm");
        std::fs::write(model.join("model.safetensors"), safetensors(&[("a", 8)], 8)).expect("write");
        assert!(validate(model).expect_err("no tokenizer").to_string().contains("tokenizer.json"));
    }
}
