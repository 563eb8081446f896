-- Server PostgreSQL schema version 10, as released: the migrations up to 10 as they were. Frozen: never edit.
-- Gridsync server on PostgreSQL, schema 1.
CREATE TABLE grid_nodes (
    path TEXT PRIMARY KEY,
    name TEXT NOT NULL
);

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role         TEXT NOT NULL,
    grid         TEXT NOT NULL
);

CREATE TABLE enrollments (
    code_hash  BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_sync_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE documents (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL,
    grid         TEXT NOT NULL,
    township     TEXT NOT NULL,
    village      TEXT NOT NULL,
    grp          TEXT NOT NULL,
    status       TEXT NOT NULL,
    level        TEXT,
    title        TEXT NOT NULL,
    occurred_at  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    author       TEXT NOT NULL,
    sensitive    BOOLEAN NOT NULL,
    deleted      BOOLEAN NOT NULL,
    has_conflict BOOLEAN NOT NULL,
    json         JSONB NOT NULL,
    snapshot     BYTEA NOT NULL
);
CREATE INDEX documents_kind_grid ON documents (kind, township, village, occurred_at);

-- The change feed. `seq` comes from a sequence, which is NOT commit order
-- across concurrent transactions; readers order by (xid, seq) and only read
-- rows whose writing transaction is older than every running one
-- (pg_snapshot_xmin), so no commit can land behind a cursor.
CREATE TABLE changes (
    seq        BIGSERIAL PRIMARY KEY,
    xid        XID8 NOT NULL DEFAULT pg_current_xact_id(),
    doc_id     UUID NOT NULL,
    hash       BYTEA NOT NULL,
    bytes      BYTEA NOT NULL,
    origin     TEXT NOT NULL,
    township   TEXT NOT NULL,
    village    TEXT NOT NULL,
    grp        TEXT NOT NULL,
    sensitive  BOOLEAN NOT NULL,
    UNIQUE (doc_id, hash)
);
CREATE INDEX changes_feed ON changes (xid, seq);
CREATE INDEX changes_township ON changes (township, xid, seq);
CREATE INDEX changes_village ON changes (township, village, xid, seq);
CREATE INDEX changes_group ON changes (township, village, grp, xid, seq);

-- Gridsync server on PostgreSQL, schema 2: case counts that the county
-- agencies (police, procuratorate, court) enter per village and year, for
-- the four-none villages (四无创建). One row per (village, year, kind);
-- entering a count again replaces it and records who did it and when.
CREATE TABLE case_counts (
    village    TEXT NOT NULL,
    year       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('public_security', 'criminal', 'lawsuit')),
    count      BIGINT NOT NULL CHECK (count >= 0),
    entered_by TEXT NOT NULL REFERENCES users (id),
    entered_at BIGINT NOT NULL,
    PRIMARY KEY (village, year, kind)
);
CREATE INDEX case_counts_year ON case_counts (year, village);

-- Gridsync server on PostgreSQL, schema 3: the supervisors' web dashboard.
-- Web passwords (argon2id PHC strings) with a failed sign-in counter and
-- lockout, web sessions (only the SHA-256 of the cookie token is stored),
-- and an append-only audit log of sign-ins, web changes and every view of
-- sensitive records.
CREATE TABLE web_passwords (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    hash         TEXT NOT NULL,
    set_at       BIGINT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT
);

CREATE TABLE web_sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

CREATE TABLE audit_log (
    seq     BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    ip      TEXT NOT NULL
);
-- Append-only: the server never updates or deletes audit rows.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Schema 4: each device's Automerge actor id, registered at enrollment (or
-- at the first sync of a device enrolled before). The server refuses
-- changes whose actor is not the pushing device's, so no device can write
-- under another's identity or break its sequence numbers.
ALTER TABLE devices ADD COLUMN actor BYTEA;
CREATE UNIQUE INDEX devices_actor ON devices (actor);

-- Schema 5: a one-row table /healthz writes to, so health means "writes
-- commit", not only "the database answers" (a read-only replica, a full
-- disk or a connection limit fails the probe).
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);
INSERT INTO health_probe (id, at) VALUES (1, 0);

-- Gridsync server on PostgreSQL, schema 6: accounts the county manages on
-- the web. A deactivated user (deactivated_at set) cannot sign in or be
-- issued enrollment codes, and deactivating revokes their devices; an
-- agency account names its agency, which decides the one kind of case
-- count it may enter.
ALTER TABLE users ADD COLUMN deactivated_at BIGINT;
ALTER TABLE users ADD COLUMN agency TEXT CHECK (agency IN ('police', 'procuratorate', 'court', 'justice'));
CREATE TABLE attachment_refs (
    hash      TEXT NOT NULL,
    record_id UUID NOT NULL,
    by_user   TEXT NOT NULL,
    mime      TEXT NOT NULL,
    size      BIGINT NOT NULL,
    PRIMARY KEY (hash, record_id)
);
CREATE INDEX attachment_refs_record ON attachment_refs (record_id);

CREATE TABLE blobs (
    hash       TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    complete   BOOLEAN NOT NULL,
    written_at BIGINT NOT NULL
);

CREATE TABLE blob_chunks (
    hash   TEXT NOT NULL REFERENCES blobs (hash) ON DELETE CASCADE,
    offset_at BIGINT NOT NULL,
    bytes  BYTEA NOT NULL,
    PRIMARY KEY (hash, offset_at)
);

ALTER TABLE devices ADD COLUMN public_key BYTEA;
ALTER TABLE changes ADD COLUMN signature BYTEA;
CREATE TABLE signed_batches (
    signature  BYTEA PRIMARY KEY,
    device_id  TEXT NOT NULL,
    manifest   BYTEA NOT NULL
);
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE photo_uploads (
    hash       TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    size       BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    written_at BIGINT NOT NULL,
    PRIMARY KEY (hash, user_id)
);
CREATE INDEX photo_uploads_user ON photo_uploads (user_id, started_at);
CREATE TABLE photo_owners (
    hash    TEXT NOT NULL,
    user_id TEXT NOT NULL,
    size    BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (hash, user_id)
);
CREATE INDEX photo_owners_user ON photo_owners (user_id, at);
CREATE INDEX attachment_refs_by ON attachment_refs (by_user, hash);
INSERT INTO photo_owners (hash, user_id, size, at)
    SELECT hash, min(by_user), min(size), 0 FROM attachment_refs GROUP BY hash HAVING count(DISTINCT by_user) = 1;

CREATE TABLE blob_uploads (
    hash       TEXT NOT NULL,
    upload_key TEXT NOT NULL,
    size       BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    written_at BIGINT NOT NULL,
    PRIMARY KEY (hash, upload_key)
);
CREATE TABLE blob_upload_chunks (
    hash       TEXT NOT NULL,
    upload_key TEXT NOT NULL,
    offset_at  BIGINT NOT NULL,
    bytes      BYTEA NOT NULL,
    PRIMARY KEY (hash, upload_key, offset_at),
    FOREIGN KEY (hash, upload_key) REFERENCES blob_uploads (hash, upload_key) ON DELETE CASCADE
);
DELETE FROM blobs WHERE NOT complete;

-- Schema 10: records phones set aside, one row per (record, device). A
-- phone that reports the same record again moves `last_seen` and adds to
-- `count`; the alarm counter and the log count a pair once, when it is
-- new. Only records the device may read are kept; `reason` is the phone's
-- text, cut to 200 characters, shown escaped.
CREATE TABLE problem_reports (
    doc_id     UUID NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    PRIMARY KEY (doc_id, device_id)
);
CREATE INDEX problem_reports_last_seen ON problem_reports (last_seen);
