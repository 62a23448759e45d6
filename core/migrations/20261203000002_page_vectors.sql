-- Sentence vectors of document pages for hybrid follow-up search: each page's text in windows
-- the embedding model reads whole (`part` 0, 1, …), one row per window and model, so a page is
-- embedded once per model. `vector` is little-endian f32.
CREATE TABLE page_vectors (
    document_id  INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    model        TEXT    NOT NULL,
    page         INTEGER NOT NULL,
    part         INTEGER NOT NULL,
    vector       BLOB    NOT NULL,
    PRIMARY KEY (document_id, model, page, part)
);
