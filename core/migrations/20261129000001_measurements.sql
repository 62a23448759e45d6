-- What loading a model really took on a machine, beside what the planner estimated.
CREATE TABLE model_measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Fingerprint of the machine's hardware (CPU, memory, GPUs).
    machine TEXT NOT NULL,
    -- The catalog variant id when the model is one, else its path.
    model_key TEXT NOT NULL,
    -- In-situ quantization it was loaded with ('' for none).
    isq TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
    resident_bytes INTEGER NOT NULL,
    -- JSON array: bytes taken on each GPU, in device order.
    gpu_bytes TEXT NOT NULL DEFAULT '[]',
    decode_tokens_per_second REAL,
    load_seconds REAL NOT NULL,
    estimated_bytes INTEGER,
    estimated_tokens_per_second REAL,
    measured_at INTEGER NOT NULL,
    UNIQUE (machine, model_key, isq)
);
