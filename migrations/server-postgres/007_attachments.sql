-- Schema 7: photos. Which record references which photo (derived from the
-- record documents at every merge); and the bytes, shared by every server
-- node: one row per blob, its chunks as they arrive (an upload resumes at
-- `received`), complete once the whole blob's SHA-256 matched its name.
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
