//! Paths and settings: where Altiplano keeps its data, and which model it starts with.
//!
//! The data directory is the platform's data directory (for example
//! `~/.local/share/altiplano` on Linux) unless `ALTIPLANO_DATA_DIR` names another one; tests and
//! scripts use that to get a private store.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "ALTIPLANO_DATA_DIR";
/// Environment variable naming the model to load at start-up.
pub const MODEL_ENV: &str = "ALTIPLANO_MODEL";

/// Environment variable that, set to `0`, loads GGUF files without fast CPU kernels as they
/// are instead of from their Q8_0 copies (less memory, slower; see `engine/repack.rs`).
pub const REPACK_ENV: &str = "ALTIPLANO_REPACK";

/// Whether loads on the CPU use Q8_0 copies of Q4_1/Q5 GGUF files (unless `ALTIPLANO_REPACK=0`).
pub fn repack_enabled() -> bool {
    std::env::var(REPACK_ENV).map_or(true, |v| v.trim() != "0")
}

/// Environment variable naming the starter model file.
pub const STARTER_MODEL_ENV: &str = "ALTIPLANO_STARTER_MODEL";
/// File name of the starter model (SmolLM2-135M-Instruct, Q4_1).
pub const STARTER_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where a package puts the program's libraries, relative to the program's folder (`/usr/bin`
/// → `/usr/lib/altiplano`): llama.cpp's libraries. `scripts/package.sh` lays packages out so,
/// and the binaries' run path names it.
pub const INSTALLED_LIB_DIR: &str = "../lib/altiplano";
/// Where a package puts the starter model, relative to the program's folder
/// (`/usr/share/altiplano/models`).
pub const INSTALLED_MODELS_DIR: &str = "../share/altiplano/models";

/// The folder of the running program, if the platform says.
pub fn program_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(Path::to_path_buf)
}

/// The folders that may hold llama.cpp's kernel libraries, in the order they are looked in:
/// beside the program (a build), then the package's library folder (an installed app).
pub fn library_dirs() -> Vec<PathBuf> {
    program_dir().map(|dir| vec![dir.clone(), dir.join(INSTALLED_LIB_DIR)]).unwrap_or_default()
}

/// The starter model: `ALTIPLANO_STARTER_MODEL` when set, otherwise the copy an installed
/// package carries, otherwise the copy that `models/fetch-starter.sh` puts in the source tree
/// this binary was built from. The file may still be missing.
pub fn starter_model() -> Option<PathBuf> {
    Some(starter_model_in(std::env::var_os(STARTER_MODEL_ENV), program_dir().as_deref()))
}

fn starter_model_in(env: Option<std::ffi::OsString>, program_dir: Option<&Path>) -> PathBuf {
    if let Some(path) = env.filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let installed = program_dir.map(|dir| dir.join(INSTALLED_MODELS_DIR).join(STARTER_MODEL_FILE));
    match installed {
        Some(path) if path.is_file() => path,
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/starter").join(STARTER_MODEL_FILE),
    }
}

/// Overrides where the starter embedding model's folder is.
pub const EMBEDDING_MODEL_ENV: &str = "ALTIPLANO_EMBEDDING_MODEL";
/// The starter embedding model's folder name (`models/fetch-starter.sh` fetches it).
pub const STARTER_EMBEDDING_DIR: &str = "all-MiniLM-L6-v2";

/// What `ALTIPLANO_EMBEDDING_MODEL` says: `None` when it is not set (the user's choice of
/// search model applies), `Some(None)` when it is empty (vectors off), else `Some(folder)`,
/// which search uses for documents and code alike.
pub fn embedding_override() -> Option<Option<PathBuf>> {
    std::env::var_os(EMBEDDING_MODEL_ENV).map(|path| (!path.is_empty()).then(|| PathBuf::from(path)))
}

/// The starter embedding model's folder: the one an installed package carries, otherwise the
/// one `models/fetch-starter.sh` puts in the source tree; `None` when neither is there.
pub fn starter_embedding_dir() -> Option<PathBuf> {
    let installed = program_dir().map(|dir| dir.join(INSTALLED_MODELS_DIR).join(STARTER_EMBEDDING_DIR));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/starter").join(STARTER_EMBEDDING_DIR);
    installed.into_iter().chain([source]).find(|dir| dir.join("model.safetensors").is_file())
}

/// [`DataDir::embedding_copies_dir`] of the data folder `data`.
pub fn embedding_copies_dir(data: &Path) -> PathBuf {
    data.join("cache").join("embeddings")
}

/// `ALTIPLANO_EMBEDDING_ENGINE=candle` keeps safetensors embedding models on candle instead of
/// their llama.cpp copies (for comparisons, or where llama.cpp misbehaves).
pub const EMBEDDING_ENGINE_ENV: &str = "ALTIPLANO_EMBEDDING_ENGINE";

/// Whether safetensors embedding models run from GGUF copies on llama.cpp (the default).
pub fn embedding_copies_enabled() -> bool {
    std::env::var(EMBEDDING_ENGINE_ENV).map_or(true, |v| !v.trim().eq_ignore_ascii_case("candle"))
}

/// Errors about configuration and paths.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The platform gave no home directory and `ALTIPLANO_DATA_DIR` is not set.
    #[error("cannot find a data directory for Altiplano; set ALTIPLANO_DATA_DIR to a writable folder")]
    NoDataDir,
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}; set ALTIPLANO_DATA_DIR to a writable folder")]
    CreateDataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The folder where Altiplano keeps its database and other state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    /// `ALTIPLANO_DATA_DIR` when set, otherwise the platform data directory; created if missing.
    pub fn resolve() -> Result<Self, ConfigError> {
        let path = match std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => directories::ProjectDirs::from("", "", "altiplano")
                .ok_or(ConfigError::NoDataDir)?
                .data_dir()
                .to_path_buf(),
        };
        Self::at(path)
    }

    /// A data directory at an explicit path; created if missing.
    pub fn at(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|source| ConfigError::CreateDataDir { path: path.clone(), source })?;
        Ok(Self(path))
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Where downloaded models are kept.
    pub fn models_dir(&self) -> PathBuf {
        self.0.join("models")
    }

    /// Where GGUF files without fast CPU kernels keep their Q8_0 copies (`engine/repack.rs`).
    pub fn repack_dir(&self) -> PathBuf {
        self.0.join("cache").join("repacked")
    }

    /// [`DataDir::repack_dir`] for loads to use, unless `ALTIPLANO_REPACK=0` turns copies off.
    pub fn repack_cache(&self) -> Option<PathBuf> {
        repack_enabled().then(|| self.repack_dir())
    }

    /// Where safetensors embedding models keep their GGUF copies for llama.cpp
    /// (`search_models::load_resolved`).
    pub fn embedding_copies_dir(&self) -> PathBuf {
        embedding_copies_dir(&self.0)
    }

    /// The SQLite database of conversations and settings.
    pub fn database_path(&self) -> PathBuf {
        self.0.join("altiplano.sqlite3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_model_is_the_one_named_then_the_installed_copy_then_the_source_trees() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("usr/bin");
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/starter").join(STARTER_MODEL_FILE);
        std::fs::create_dir_all(&bin).unwrap();
        assert_eq!(starter_model_in(None, Some(&bin)), built, "nothing installed: the source tree's copy");

        let models = bin.join(INSTALLED_MODELS_DIR);
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(models.join(STARTER_MODEL_FILE), b"GGUF").unwrap();
        assert_eq!(starter_model_in(None, Some(&bin)), models.join(STARTER_MODEL_FILE));
        assert!(starter_model_in(None, Some(&bin)).starts_with(dir.path().join("usr/bin/../share/altiplano/models")));

        let named = dir.path().join("mine.gguf");
        assert_eq!(starter_model_in(Some(named.clone().into()), Some(&bin)), named);
        assert_eq!(starter_model_in(Some("".into()), Some(&bin)), models.join(STARTER_MODEL_FILE), "empty means unset");
    }
}
