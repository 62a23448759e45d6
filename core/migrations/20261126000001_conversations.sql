-- Conversations, their messages, full-text search over messages, and key/value settings.
-- Timestamps are Unix milliseconds (UTC). Ids use AUTOINCREMENT so a deleted id is never
-- reused (the UI keys messages by id; a regenerated reply must get a new one).

CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE messages (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id           INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role                      TEXT    NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content                   TEXT    NOT NULL,
    -- streaming: being written now; complete: finished normally; stopped: the user stopped it;
    -- interrupted: the process died while it streamed; failed: the engine reported an error.
    status                    TEXT    NOT NULL DEFAULT 'complete'
                              CHECK (status IN ('streaming', 'complete', 'stopped', 'interrupted', 'failed')),
    model                     TEXT,
    prompt_tokens             INTEGER,
    completion_tokens         INTEGER,
    time_to_first_token_ms    INTEGER,
    decode_tokens_per_second  REAL,
    error                     TEXT,
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL
);

CREATE INDEX messages_by_conversation ON messages (conversation_id, id);
CREATE INDEX conversations_by_update ON conversations (updated_at DESC);

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.id, new.content);
END;

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
