//! Safetensors folders: the check before mistral.rs reads one, the UQFF cache of its quantized
//! weights, and building the model.

use super::*;

/// What a safetensors folder's files say, once each is checked.
pub(super) struct FolderSummary {
    pub(super) architecture: String,
    pub(super) context_length: usize,
    pub(super) weight_bytes: u64,
    /// SHA-256 over config.json and each weight file's name, size and modification time: a
    /// changed source gets a new quantization cache.
    pub(super) fingerprint: String,
    /// The weight files.
    pub(super) shards: Vec<PathBuf>,
}

/// File written last into a finished UQFF cache folder.
pub(super) const UQFF_COMPLETE: &str = "altiplano-complete";

/// The UQFF cache of a folder for one ISQ type: `DIR/.altiplano-uqff/<isq>-<fingerprint>/`.
pub(super) struct UqffCache {
    pub(super) dir: PathBuf,
    /// The finished cache's first `.uqff` file (empty when there is no finished cache).
    pub(super) files: Vec<PathBuf>,
    /// The cache folder could be created.
    pub(super) writable: bool,
}

pub(super) fn uqff_cache(model_dir: &Path, isq: Isq, fingerprint: &str) -> UqffCache {
    let root = model_dir.join(".altiplano-uqff");
    let dir = root.join(format!("{}-{}", isq.wire_name(), &fingerprint[..16.min(fingerprint.len())]));
    let finished = std::fs::read_to_string(dir.join(UQFF_COMPLETE)).is_ok_and(|f| f == fingerprint);
    if finished {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| PathBuf::from(e.file_name()))).collect())
            .unwrap_or_default();
        files.retain(|f| f.extension().is_some_and(|e| e == "uqff"));
        files.sort();
        // Only the first shard is named; mistral.rs finds the others.
        files.truncate(1);
        if !files.is_empty() {
            return UqffCache { dir, files, writable: true };
        }
    }
    // Caches of other types stay; an unfinished one, or one of this type for older files, goes.
    if let Ok(entries) = std::fs::read_dir(&root) {
        let prefix = format!("{}-", isq.wire_name());
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let writable = std::fs::create_dir_all(&dir).is_ok();
    UqffCache { dir, files: Vec::new(), writable }
}

/// Checks a safetensors folder file by file, naming the file at fault.
pub(super) fn check_folder(dir: &Path) -> Result<FolderSummary, String> {
    let read_json = |name: &str| -> Result<serde_json::Value, String> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name} cannot be read ({e})"))?;
        serde_json::from_str(&text).map_err(|e| format!("{name} is not valid JSON ({e})"))
    };
    let config = read_json("config.json")?;
    let architecture =
        config["model_type"].as_str().ok_or_else(|| "config.json names no model_type".to_owned())?.to_owned();
    for key in ["hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"] {
        if !config[key].is_u64() {
            return Err(format!("config.json lacks {key}"));
        }
    }
    let tokenizer = read_json("tokenizer.json")?;
    if !tokenizer["model"]["vocab"].is_object() {
        return Err("tokenizer.json has no BPE vocabulary (model.vocab)".into());
    }
    let mut shards: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("the folder cannot be listed ({e})"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    if shards.is_empty() {
        return Err("no .safetensors weight files".into());
    }
    let mut weight_bytes = 0;
    for shard in &shards {
        let name = shard.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        super::super::safetensors::read(shard).map_err(|problem| format!("{name} {problem}"))?;
        let size = std::fs::metadata(shard).map_err(|e| format!("{name} cannot be read ({e})"))?.len();
        weight_bytes += size;
    }
    let context_length = config["max_position_embeddings"].as_u64().unwrap_or(4096) as usize;
    let fingerprint = {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        hasher.update(config.to_string().as_bytes());
        for shard in &shards {
            let meta = std::fs::metadata(shard).ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            let size = meta.map(|m| m.len()).unwrap_or(0);
            hasher.update(format!("{}|{size}|{modified:?}\n", shard.display()).as_bytes());
        }
        hex::encode(hasher.finalize())
    };
    Ok(FolderSummary { architecture, context_length, weight_bytes, fingerprint, shards })
}

pub(super) async fn build_model(
    path: &Path,
    max_seqs: usize,
    prefix_cache: Option<usize>,
    device_map: DeviceMapSetting,
) -> Result<Model, String> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .ok_or_else(|| "the model path has no file name".to_owned())?;
    let loader = GGUFLoaderBuilder::new(
        None,
        None,
        dir.to_string_lossy().into_owned(),
        vec![file],
        GGUFSpecificConfig { topology: None },
        false,
        None,
    )
    .build();
    let device = mistralrs::best_device(false).map_err(|e| format!("{e:#}"))?;
    // On the CPU, F32 activations are both faster than F16 (no native F16 arithmetic) and match
    // llama.cpp's greedy output token for token; GPUs take their best type.
    let dtype = if matches!(device, Device::Cpu) { ModelDType::F32 } else { ModelDType::Auto };
    let load_device = device.clone();
    let pipeline = tokio::task::spawn_blocking(move || {
        loader.load_model_from_hf(None, TokenSource::None, &dtype, &load_device, true, device_map, None, None)
    })
    .await
    .map_err(panic_message)?
    .map_err(|e| format!("{e:#}"))?;
    let seqs = max_seqs.try_into().map_err(|_| "no replies in parallel".to_owned())?;
    let scheduler = SchedulerConfig::DefaultScheduler { method: DefaultSchedulerMethod::Fixed(seqs) };
    let mut builder = MistralRsBuilder::new(pipeline, scheduler, false, None);
    builder = match prefix_cache {
        Some(n) => builder.with_prefix_cache_n(n),
        None => builder.with_no_prefix_cache(true),
    };
    let runner = builder.build().await;
    Ok(Model::new(runner))
}
