-- Measurements are per engine: "measured" means measured on the engine that ran the model.
-- Every figure before this was taken on mistral.rs, then the only engine.
CREATE TABLE model_measurements_by_engine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    machine TEXT NOT NULL,
    model_key TEXT NOT NULL,
    isq TEXT NOT NULL DEFAULT '',
    -- 'llamacpp' or 'mistralrs'.
    engine TEXT NOT NULL,
    name TEXT NOT NULL,
    resident_bytes INTEGER NOT NULL,
    gpu_bytes TEXT NOT NULL DEFAULT '[]',
    decode_tokens_per_second REAL,
    load_seconds REAL NOT NULL,
    estimated_bytes INTEGER,
    estimated_tokens_per_second REAL,
    measured_at INTEGER NOT NULL,
    UNIQUE (machine, model_key, isq, engine)
);
INSERT INTO model_measurements_by_engine (machine, model_key, isq, engine, name, resident_bytes, gpu_bytes,
    decode_tokens_per_second, load_seconds, estimated_bytes, estimated_tokens_per_second, measured_at)
SELECT machine, model_key, isq, 'mistralrs', name, resident_bytes, gpu_bytes, decode_tokens_per_second,
    load_seconds, estimated_bytes, estimated_tokens_per_second, measured_at
FROM model_measurements;
DROP TABLE model_measurements;
ALTER TABLE model_measurements_by_engine RENAME TO model_measurements;
