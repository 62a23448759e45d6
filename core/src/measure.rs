//! What a model really takes on this machine: memory after loading and decode speed, kept in
//! SQLite beside the planner's estimates (`model_measurements`), so the Models page can show
//! both and the planner can use the measured figures ([`crate::planner::plan_measured`]).
//!
//! Figures are keyed by a fingerprint of the hardware ([`machine_id`]): a measurement made on
//! another machine (a copied data folder, a new GPU) is never applied here.

use std::time::Instant;

use serde::Serialize;
use sqlx::Row;

use crate::catalog::Catalog;
use crate::engine::{
    CancellationToken, Engine, EngineError, EngineKind, GenerationEvent, Isq, PromptMessage, Sampling,
};
use crate::hardware::{self, HardwareProfile};
use crate::planner::{self, Measured, PlanOptions};
use crate::store::{now_ms, Role, Store, StoreError};

/// The prompt whose reply is timed.
const BENCH_PROMPT: &str = "Describe a morning walk in the mountains in a few sentences.";
/// Tokens generated to time decoding.
const BENCH_TOKENS: usize = 48;
/// The longest the timed reply may take (a 70B model on a CPU decodes about a token a second).
const BENCH_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(12);

/// One model's figures on one machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// The catalog variant id when the model is one, else its path.
    pub model_key: String,
    /// Display name.
    pub name: String,
    /// In-situ quantization it was loaded with (`q4k`, `fp8`, …), if any.
    pub isq: Option<String>,
    /// The engine it ran on.
    pub engine: EngineKind,
    /// Growth of this process's resident memory from before loading to after a short reply.
    pub resident_bytes: u64,
    /// Memory taken on each NVIDIA GPU, in device order (empty without one).
    pub gpu_bytes: Vec<u64>,
    /// Decode speed of a short greedy reply.
    pub decode_tokens_per_second: Option<f64>,
    /// Seconds from the start of loading to ready.
    pub load_seconds: f64,
    /// What the planner estimated for memory (all devices), for catalog variants.
    pub estimated_bytes: Option<u64>,
    /// What the planner estimated for decode speed, for catalog variants.
    pub estimated_tokens_per_second: Option<f64>,
    /// When (Unix ms).
    pub measured_at: i64,
}

/// A fingerprint of the hardware that decides memory and speed: CPU, installed memory (to the
/// GiB), and each GPU's name and memory.
pub fn machine_id(profile: &HardwareProfile) -> String {
    use sha2::Digest;
    let mut text = format!("{}|{}|{}", profile.cpu.name, profile.cpu.threads, profile.ram_bytes >> 30);
    for gpu in &profile.gpus {
        text.push_str(&format!("|{}:{}", gpu.name, gpu.memory_bytes >> 30));
    }
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
}

/// Resident memory of this process, bytes (0 when it cannot be read).
pub fn resident_bytes() -> u64 {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let pid = Pid::from_u32(std::process::id());
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map(|p| p.memory()).unwrap_or(0)
}

/// Memory in use on each NVIDIA GPU now, in device order.
fn gpu_used() -> Vec<u64> {
    hardware::nvidia_gpus().iter().map(|g| g.memory_bytes.saturating_sub(g.memory_free_bytes)).collect()
}

/// Measures a load: take one with [`Probe::start`] before loading, and finish it with
/// [`Probe::finish`] once the engine is ready — before any previous model is let go, so the
/// growth is the new model's alone.
#[derive(Debug)]
pub struct Probe {
    resident: u64,
    gpus: Vec<u64>,
    started: Instant,
}

impl Probe {
    /// Notes memory in use and the time, before loading.
    pub fn start() -> Self {
        Self { resident: resident_bytes(), gpus: gpu_used(), started: Instant::now() }
    }

    /// Times a short greedy reply on `engine` (so the runtime's buffers exist too) and takes the
    /// memory growth since [`Probe::start`]. `model_key` names the model in the table: a catalog
    /// variant id, or the path.
    pub async fn finish(
        self,
        engine: &Engine,
        isq: Option<Isq>,
        model_key: &str,
        profile: &HardwareProfile,
    ) -> Result<Measurement, EngineError> {
        let load_seconds = self.started.elapsed().as_secs_f64();
        let sampling = Sampling { max_tokens: BENCH_TOKENS, ..Sampling::greedy() };
        // A large model on a small machine may decode a token a second: the speed is taken
        // from what came within the time limit, rather than keeping the user waiting.
        let cancel = CancellationToken::new();
        let deadline = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                tokio::time::sleep(BENCH_TIME_LIMIT).await;
                cancel.cancel();
            }
        });
        let mut rx = engine.generate(vec![PromptMessage::new(Role::User, BENCH_PROMPT)], sampling, cancel);
        let mut decode = None;
        while let Some(event) = rx.recv().await {
            if let GenerationEvent::Finished { stats, .. } = event? {
                decode = stats.decode_tokens_per_second;
            }
        }
        deadline.abort();
        let resident = resident_bytes().saturating_sub(self.resident);
        let gpu_bytes: Vec<u64> = gpu_used()
            .iter()
            .enumerate()
            .map(|(i, now)| now.saturating_sub(self.gpus.get(i).copied().unwrap_or(0)))
            .collect();
        // llama.cpp holds the KV cache of its whole context from the start; mistral.rs grows
        // its cache with the reply.
        let context = match engine.kind() {
            EngineKind::LlamaCpp => u32::try_from(engine.info().context_length).unwrap_or(u32::MAX),
            EngineKind::MistralRs => 256,
            // Nothing of a remote model is held here.
            EngineKind::Remote => 0,
        };
        let (estimated_bytes, estimated_tokens_per_second) = match Catalog::builtin() {
            Ok(catalog) => estimate(profile, &catalog, model_key, context),
            Err(_) => (None, None),
        };
        Ok(Measurement {
            model_key: model_key.to_owned(),
            name: engine.info().name.clone(),
            isq: isq.map(|i| i.wire_name().to_owned()),
            engine: engine.kind(),
            resident_bytes: resident,
            gpu_bytes,
            decode_tokens_per_second: decode,
            load_seconds,
            estimated_bytes,
            estimated_tokens_per_second,
            measured_at: now_ms(),
        })
    }
}

/// The planner's figures for a catalog variant at `context` tokens (what the engine holds).
fn estimate(profile: &HardwareProfile, catalog: &Catalog, variant: &str, context: u32) -> (Option<u64>, Option<f64>) {
    let options = PlanOptions { context_tokens: context, ..PlanOptions::default() };
    match planner::place_variant(profile, catalog, variant, options) {
        Some(c) if c.fit != planner::Fit::TooLarge => {
            let bytes = c.devices.iter().map(|d| d.weights_bytes + d.kv_cache_bytes + d.overhead_bytes).sum();
            (Some(bytes), Some(c.tokens_per_second_estimate))
        }
        _ => (None, None),
    }
}

/// The `model_measurements` table.
#[derive(Debug, Clone)]
pub struct Measurements {
    store: Store,
}

impl Measurements {
    /// The table in `store`'s database.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Records (or replaces) a model's figures on `machine`.
    pub async fn record(&self, machine: &str, m: &Measurement) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO model_measurements (machine, model_key, isq, engine, name, resident_bytes, gpu_bytes, \
             decode_tokens_per_second, load_seconds, estimated_bytes, estimated_tokens_per_second, measured_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (machine, model_key, isq, engine) DO UPDATE SET name = excluded.name, \
             resident_bytes = excluded.resident_bytes, gpu_bytes = excluded.gpu_bytes, \
             decode_tokens_per_second = excluded.decode_tokens_per_second, load_seconds = excluded.load_seconds, \
             estimated_bytes = excluded.estimated_bytes, \
             estimated_tokens_per_second = excluded.estimated_tokens_per_second, measured_at = excluded.measured_at",
        )
        .bind(machine)
        .bind(&m.model_key)
        .bind(m.isq.as_deref().unwrap_or(""))
        .bind(m.engine.wire_name())
        .bind(&m.name)
        .bind(i64::try_from(m.resident_bytes).unwrap_or(i64::MAX))
        .bind(serde_json::to_string(&m.gpu_bytes).unwrap_or_else(|_| "[]".into()))
        .bind(m.decode_tokens_per_second)
        .bind(m.load_seconds)
        .bind(m.estimated_bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX)))
        .bind(m.estimated_tokens_per_second)
        .bind(m.measured_at)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    /// Every measurement made on `machine`, newest first.
    pub async fn list(&self, machine: &str) -> Result<Vec<Measurement>, StoreError> {
        let rows = sqlx::query("SELECT * FROM model_measurements WHERE machine = ? ORDER BY measured_at DESC, id DESC")
            .bind(machine)
            .fetch_all(self.store.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let isq: String = row.get("isq");
                let gpu: String = row.get("gpu_bytes");
                let engine: String = row.get("engine");
                Measurement {
                    model_key: row.get("model_key"),
                    name: row.get("name"),
                    isq: (!isq.is_empty()).then_some(isq),
                    // Written by `record` only, so always a known name.
                    engine: engine.parse().unwrap_or(EngineKind::MistralRs),
                    resident_bytes: row.get::<i64, _>("resident_bytes").max(0) as u64,
                    gpu_bytes: serde_json::from_str(&gpu).unwrap_or_default(),
                    decode_tokens_per_second: row.get("decode_tokens_per_second"),
                    load_seconds: row.get("load_seconds"),
                    estimated_bytes: row.get::<Option<i64>, _>("estimated_bytes").map(|b| b.max(0) as u64),
                    estimated_tokens_per_second: row.get("estimated_tokens_per_second"),
                    measured_at: row.get("measured_at"),
                }
            })
            .collect())
    }

    /// The figures the planner can use: catalog variants measured on `machine`, loaded the way
    /// the catalog runs them, on the engine the planner plans them on.
    pub async fn for_planner(&self, machine: &str, catalog: &Catalog) -> Result<Vec<Measured>, StoreError> {
        Ok(self
            .list(machine)
            .await?
            .into_iter()
            .filter(|m| {
                catalog.find_variant(&m.model_key).is_some_and(|(_, v)| {
                    v.isq.as_deref().and_then(Isq::from_catalog).map(Isq::wire_name) == m.isq.as_deref()
                        && planner::engine_for(v, 1) == m.engine
                })
            })
            .map(|m| Measured {
                variant: m.model_key,
                resident_bytes: m.resident_bytes,
                gpu_bytes: m.gpu_bytes,
                tokens_per_second: m.decode_tokens_per_second,
            })
            .collect())
    }
}
