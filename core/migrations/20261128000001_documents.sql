-- Documents read for summarization: their pages, and summary trees built over them.
-- A document is keyed by the SHA-256 of its bytes, so the same file opens at once.
-- Timestamps are Unix milliseconds (UTC).

CREATE TABLE documents (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256           TEXT    NOT NULL UNIQUE,
    -- The file name shown as the document's title, and where it was last opened from.
    title            TEXT    NOT NULL,
    path             TEXT    NOT NULL,
    page_count       INTEGER NOT NULL,
    -- JSON array of strings (pages without text, removed headers, ...).
    warnings         TEXT    NOT NULL DEFAULT '[]',
    -- The conversation holding the summary and the follow-up questions.
    conversation_id  INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    opened_at        INTEGER NOT NULL
);

CREATE TABLE document_pages (
    document_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number       INTEGER NOT NULL,
    text         TEXT    NOT NULL,
    PRIMARY KEY (document_id, number)
);

-- One node of a summary tree. Level 0 summarizes a chunk of the text; level n+1 merges
-- consecutive nodes of level n; the root has is_root = 1. `plan` names the model and token
-- budget that cut the chunks, so an interrupted run continues where it stopped.
CREATE TABLE summary_nodes (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id        INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    plan               TEXT    NOT NULL,
    level              INTEGER NOT NULL,
    position           INTEGER NOT NULL,
    first_page         INTEGER NOT NULL,
    last_page          INTEGER NOT NULL,
    text               TEXT    NOT NULL,
    -- Citations the model wrote that named a page outside this node, removed from text.
    removed_citations  INTEGER NOT NULL DEFAULT 0,
    is_root            INTEGER NOT NULL DEFAULT 0,
    model              TEXT    NOT NULL,
    created_at         INTEGER NOT NULL,
    UNIQUE (document_id, plan, level, position)
);
