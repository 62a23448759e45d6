-- Models on disk (downloaded or imported) and the persistent download queue.
-- Timestamps are Unix milliseconds (UTC).

CREATE TABLE models (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    format      TEXT    NOT NULL CHECK (format IN ('gguf', 'safetensors')),
    -- The GGUF file, or the folder of a safetensors model.
    path        TEXT    NOT NULL UNIQUE,
    -- hub: fetched into the Hugging Face cache (removing it deletes the files);
    -- import: the user's own file or folder (removing it only forgets it).
    source      TEXT    NOT NULL CHECK (source IN ('hub', 'import')),
    repo        TEXT,
    commit_sha  TEXT,
    -- JSON array of the repo paths that belong to this model (hub models).
    files       TEXT    NOT NULL DEFAULT '[]',
    -- Catalog variant id, e.g. llama-3.1-8b-instruct:q4_k_m.
    variant     TEXT,
    size_bytes  INTEGER NOT NULL,
    added_at    INTEGER NOT NULL
);

CREATE TABLE downloads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repo        TEXT    NOT NULL,
    revision    TEXT    NOT NULL,
    -- JSON array of repo paths; empty means the repo's model files.
    files       TEXT    NOT NULL,
    variant     TEXT,
    -- queued: waiting its turn; running: fetching (or the process died while it did);
    -- paused, completed, failed, cancelled.
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    bytes_done  INTEGER NOT NULL DEFAULT 0,
    bytes_total INTEGER NOT NULL DEFAULT 0,
    error_code  TEXT,
    error       TEXT,
    model_id    INTEGER REFERENCES models(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX downloads_by_state ON downloads (state);
