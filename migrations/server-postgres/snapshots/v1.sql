-- Server PostgreSQL schema version 1, as released: the migrations up to 1 as they were. Frozen: never edit.
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

