-- Phone store schema version 7, as released. Frozen: never edit.
CREATE TABLE attachments (
    hash       TEXT PRIMARY KEY,
    record_id  TEXT NOT NULL,
    mime       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    bytes      BLOB,
    upload     INTEGER NOT NULL DEFAULT 0,
    sent       INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE directory (
    kind TEXT NOT NULL CHECK (kind IN ('grid', 'user')),
    id   TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    grid TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
CREATE TABLE outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id  TEXT NOT NULL,
    hash    BLOB NOT NULL,
    change  BLOB NOT NULL,
    UNIQUE (doc_id, hash)
) STRICT;
CREATE TABLE records (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    grid         TEXT NOT NULL,
    status       TEXT NOT NULL,
    level        TEXT,
    title        TEXT NOT NULL,
    search_text  TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    sensitive    INTEGER NOT NULL DEFAULT 0,
    has_conflict INTEGER NOT NULL DEFAULT 0,
    doc          BLOB NOT NULL
, rejection TEXT) STRICT;
CREATE TABLE refused_changes (
    doc_id     TEXT NOT NULL,
    hash       BLOB NOT NULL,
    reason     TEXT NOT NULL,
    message_zh TEXT NOT NULL,
    refused_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, hash)
) STRICT;
CREATE TABLE refused_steps (
    doc_id     TEXT NOT NULL,
    hash       BLOB NOT NULL,
    reason     TEXT NOT NULL,
    message_zh TEXT NOT NULL,
    refused_at INTEGER NOT NULL,
    before     TEXT,
    after      TEXT NOT NULL,
    PRIMARY KEY (doc_id, hash)
) STRICT;
CREATE TABLE relay_outbox (
    id          BLOB PRIMARY KEY,
    bytes       BLOB NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
CREATE TABLE set_aside (
    doc_id   TEXT NOT NULL,
    hash     BLOB NOT NULL,
    change   BLOB NOT NULL,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (doc_id, hash)
) STRICT;
CREATE TABLE sync_cursor (
    server     TEXT PRIMARY KEY,
    cursor     BLOB NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX attachments_record ON attachments (record_id);
CREATE INDEX attachments_upload ON attachments (upload, created_at) WHERE upload = 1;
CREATE INDEX records_grid ON records (grid, occurred_at DESC);
CREATE INDEX records_kind_status ON records (kind, status);
CREATE INDEX records_kind_time ON records (kind, occurred_at DESC);
