-- Schema 9: photos with an owner and a budget. A photo's owners are the
-- users who proved they hold its bytes by uploading them in full (hash
-- checked); a record's reference opens the photo to the record's readers
-- only when its `by` is an owner, so naming a hash reaches nothing and
-- hides nothing. `photo_uploads` is each uploader's upload under way, what
-- the per-user budgets count and what `gc-photos` expires; its bytes are
-- in `blob_uploads` and `blob_upload_chunks`, one upload per uploader (no
-- shared partial blob any more: unfinished uploads of the shared kind are
-- dropped, and their phones start them again). The owners of the photos
-- whose references all name one user are that user (only a reference's
-- `by` could upload before); the others prove it again (their phones are
-- asked for the bytes).
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
