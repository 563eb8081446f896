-- Server SQLite schema version 10, as released. Frozen: never edit.
CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    ip      TEXT NOT NULL
) STRICT;
CREATE TABLE case_counts (
    village    TEXT NOT NULL,
    year       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('public_security', 'criminal', 'lawsuit')),
    count      INTEGER NOT NULL CHECK (count >= 0),
    entered_by TEXT NOT NULL REFERENCES users (id),
    entered_at INTEGER NOT NULL,
    PRIMARY KEY (village, year, kind)
) STRICT;
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id     TEXT NOT NULL,
    hash       BLOB NOT NULL,
    bytes      BLOB NOT NULL,
    origin     TEXT NOT NULL,
    township   TEXT NOT NULL,
    village    TEXT NOT NULL,
    grp        TEXT NOT NULL,
    sensitive  INTEGER NOT NULL,
    UNIQUE (doc_id, hash)
) STRICT;
CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_sync_at INTEGER,
    revoked_at   INTEGER
, actor BLOB) STRICT;
CREATE TABLE documents (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    grid         TEXT NOT NULL,
    township     TEXT NOT NULL,
    village      TEXT NOT NULL,
    grp          TEXT NOT NULL,
    status       TEXT NOT NULL,
    level        TEXT,
    title        TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    author       TEXT NOT NULL,
    sensitive    INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    has_conflict INTEGER NOT NULL,
    json         TEXT NOT NULL,
    snapshot     BLOB NOT NULL
) STRICT;
CREATE TABLE enrollments (
    code_hash  BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE TABLE grid_nodes (
    path TEXT PRIMARY KEY,
    name TEXT NOT NULL
) STRICT;
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;
CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    grid         TEXT NOT NULL
, deactivated_at INTEGER, agency TEXT CHECK (agency IN ('police', 'procuratorate', 'court', 'justice'))) STRICT;
CREATE TABLE web_passwords (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    hash         TEXT NOT NULL,
    set_at       INTEGER NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER
) STRICT;
CREATE TABLE web_sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX case_counts_year ON case_counts (year, village);
CREATE INDEX changes_group ON changes (township, village, grp, seq);
CREATE INDEX changes_township ON changes (township, seq);
CREATE INDEX changes_village ON changes (township, village, seq);
CREATE UNIQUE INDEX devices_actor ON devices (actor);
CREATE INDEX documents_kind_grid ON documents (kind, township, village, occurred_at);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TABLE attachment_refs (
    hash      TEXT NOT NULL,
    record_id TEXT NOT NULL,
    by_user   TEXT NOT NULL,
    mime      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (hash, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX attachment_refs_record ON attachment_refs (record_id);

ALTER TABLE devices ADD COLUMN public_key BLOB;
ALTER TABLE changes ADD COLUMN signature BLOB;
CREATE TABLE signed_batches (
    signature  BLOB PRIMARY KEY,
    device_id  TEXT NOT NULL,
    manifest   BLOB NOT NULL
) STRICT;
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE photo_uploads (
    hash       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    size       INTEGER NOT NULL,
    received   INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    written_at INTEGER NOT NULL,
    PRIMARY KEY (hash, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX photo_uploads_user ON photo_uploads (user_id, started_at);
CREATE TABLE photo_owners (
    hash    TEXT NOT NULL,
    user_id TEXT NOT NULL,
    size    INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (hash, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX photo_owners_user ON photo_owners (user_id, at);
CREATE INDEX attachment_refs_by ON attachment_refs (by_user, hash);
INSERT INTO photo_owners (hash, user_id, size, at)
    SELECT hash, min(by_user), min(size), 0 FROM attachment_refs GROUP BY hash HAVING count(DISTINCT by_user) = 1;

-- Schema 10: records phones set aside, one row per (record, device). A
-- phone that reports the same record again moves `last_seen` and adds to
-- `count`; the alarm counter and the log count a pair once, when it is
-- new. Only records the device may read are kept; `reason` is the phone's
-- text, cut to 200 characters, shown escaped.
CREATE TABLE problem_reports (
    doc_id     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (doc_id, device_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX problem_reports_last_seen ON problem_reports (last_seen);
