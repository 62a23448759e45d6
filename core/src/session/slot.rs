//! The chat model's slot: which model is loaded, its state as it loads (a watch any face can
//! follow), and the one way a model becomes the chat model — loaded on the engine it was last
//! run on, measured, recorded and remembered — shared by the app's [`super::Session`] and the
//! CLI's `models use`.

use std::path::Path;

use tokio::sync::watch;

use super::{ModelState, SessionError};
use crate::catalog::Catalog;
use crate::choose::{self, OnDisk};
use crate::config::DataDir;
use crate::engine::{Engine, EngineError, EngineKind, Isq, LoadOptions, LoadProgress, ModelInfo};
use crate::hardware::HardwareProfile;
use crate::measure::{self, Measurement, Measurements, Probe};
use crate::store::Store;

/// See the module documentation.
#[derive(Debug)]
pub struct ModelSlot {
    store: Store,
    data_dir: DataDir,
    engine: tokio::sync::RwLock<Option<Engine>>,
    state: watch::Sender<ModelState>,
    load_lock: tokio::sync::Mutex<()>,
}

impl ModelSlot {
    /// An empty slot; models are remembered in `store`, repacked copies kept in `data_dir`.
    pub fn new(store: Store, data_dir: DataDir) -> Self {
        Self {
            store,
            data_dir,
            engine: tokio::sync::RwLock::new(None),
            state: watch::channel(ModelState::None).0,
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The loaded model, if any.
    pub async fn engine(&self) -> Option<Engine> {
        self.engine.read().await.clone()
    }

    /// Where the model stands now.
    pub fn state(&self) -> ModelState {
        self.state.borrow().clone()
    }

    /// The state now and at every change (a load's progress in layers included).
    pub fn watch(&self) -> watch::Receiver<ModelState> {
        self.state.subscribe()
    }

    /// Waits until no load is in progress, then returns the state.
    pub async fn settled(&self) -> ModelState {
        let mut rx = self.state.subscribe();
        let settled = rx.wait_for(|s| !matches!(s, ModelState::Loading { .. })).await;
        match settled {
            Ok(state) => state.clone(),
            Err(_) => self.state(),
        }
    }

    /// Makes a model on disk the chat model as its plan on `profile` says (see
    /// [`choose::load_options`]), on `engine` when given: loaded, measured, recorded and
    /// remembered.
    pub async fn use_on_disk(
        &self,
        model: &OnDisk,
        isq: Option<Isq>,
        engine: Option<EngineKind>,
        catalog: &Catalog,
        profile: &HardwareProfile,
    ) -> Result<(ModelInfo, Measurement), SessionError> {
        let options = choose::load_options(model, isq, catalog, profile)?;
        let options = LoadOptions { engine: engine.or(options.engine), ..options };
        self.load_measured(&model.model.path, options, &model.key, profile).await
    }

    /// Loads a model, measures what it takes on this machine (`profile`) before it replaces the
    /// current one, records the figures, and makes it the chat model.
    pub async fn load_measured(
        &self,
        path: &Path,
        options: LoadOptions,
        model_key: &str,
        profile: &HardwareProfile,
    ) -> Result<(ModelInfo, Measurement), SessionError> {
        let machine = measure::machine_id(profile);
        let isq = options.isq;
        let probe = Probe::start();
        let table = Measurements::new(self.store.clone());
        let machine = &machine;
        // Recorded before the new model is announced as ready, so whoever reacts to that
        // (the Models page re-plans) sees the figures.
        self.load_then(path, options, |engine| async move {
            let measurement = probe.finish(&engine, isq, model_key, profile).await?;
            if let Err(e) = table.record(machine, &measurement).await {
                tracing::warn!("could not record the model's measurements: {e}");
            }
            Ok(measurement)
        })
        .await
    }

    /// Connects to the remote server `remote` and makes its model the chat model (the previous
    /// one keeps serving if the server cannot be reached); it is connected again at the next
    /// start, until a local model is chosen.
    pub async fn connect(&self, remote: &crate::remotes::Remote) -> Result<ModelInfo, SessionError> {
        let _one_at_a_time = self.load_lock.lock().await;
        let path = std::path::PathBuf::from(&remote.url);
        self.state.send_replace(ModelState::Loading { path: path.clone(), progress: LoadProgress::default() });
        match crate::remotes::connect(remote).await {
            Ok(engine) => {
                let info = engine.info().clone();
                *self.engine.write().await = Some(engine);
                self.state.send_replace(ModelState::Ready { info: info.clone() });
                crate::remotes::use_remote(&self.store, &remote.name, remote.model.clone()).await?;
                Ok(info)
            }
            Err(e) => {
                self.failed(path, &e.to_string()).await;
                Err(e.into())
            }
        }
    }

    /// After a load or connection that failed: the previous model keeps serving, if there is
    /// one; else the state says what failed.
    async fn failed(&self, path: std::path::PathBuf, message: &str) {
        let previous = self.engine.read().await.as_ref().map(|e| e.info().clone());
        self.state.send_replace(match previous {
            Some(info) => ModelState::Ready { info },
            None => ModelState::Failed { path, message: message.to_owned() },
        });
    }

    /// Loads a model and makes it the chat model; it is loaded the same way at the next start.
    pub async fn load(&self, path: &Path, options: LoadOptions) -> Result<ModelInfo, SessionError> {
        let (info, ()) = self.load_then(path, options, |_| async { Ok(()) }).await?;
        Ok(info)
    }

    /// Loads a model, reporting progress in the state; runs `before_swap` on the new engine
    /// while the previous one still serves; then makes it the chat model and remembers it.
    async fn load_then<T, F, Fut>(
        &self,
        path: &Path,
        options: LoadOptions,
        before_swap: F,
    ) -> Result<(ModelInfo, T), SessionError>
    where
        F: FnOnce(Engine) -> Fut,
        Fut: std::future::Future<Output = Result<T, EngineError>>,
    {
        let _one_at_a_time = self.load_lock.lock().await;
        // A model last run on an engine other than its format's default runs there again.
        let mut options = options;
        if options.engine.is_none() {
            options.engine = choose::remembered_engine(&self.store, path).await;
        }
        let path_buf = path.to_path_buf();
        self.state.send_replace(ModelState::Loading { path: path_buf.clone(), progress: LoadProgress::default() });
        let isq = options.isq;
        let (tx, mut rx) = watch::channel(LoadProgress::default());
        let repack_dir = options.repack_dir.clone().or_else(|| self.data_dir.repack_cache());
        let open = Engine::open(path, LoadOptions { progress: Some(tx), repack_dir, ..options });
        tokio::pin!(open);
        let loaded = loop {
            tokio::select! {
                loaded = &mut open => break loaded,
                Ok(()) = rx.changed() => {
                    let progress = *rx.borrow_and_update();
                    self.state.send_replace(ModelState::Loading { path: path_buf.clone(), progress });
                }
            }
        };
        let loaded = match loaded {
            Ok(engine) => before_swap(engine.clone()).await.map(|extra| (engine, extra)),
            Err(e) => Err(e),
        };
        match loaded {
            Ok((engine, extra)) => {
                let info = engine.info().clone();
                *self.engine.write().await = Some(engine);
                self.state.send_replace(ModelState::Ready { info: info.clone() });
                if let Err(e) = choose::remember(&self.store, &info.path, isq, Some(info.engine)).await {
                    tracing::warn!("could not remember the model: {e}");
                }
                Ok((info, extra))
            }
            Err(e) => {
                self.failed(path.to_path_buf(), &e.to_string()).await;
                Err(e.into())
            }
        }
    }
}
