-- Schema 9: photos with an owner and a budget. A photo's owners are the
-- users who proved they hold its bytes by uploading them in full (hash
-- checked); a record's reference opens the photo to the record's readers
-- only when its `by` is an owner, so naming a hash reaches nothing and
-- hides nothing. `photo_uploads` is each uploader's upload under way (the
-- bytes are in the blob store, one upload per uploader), what the
-- per-user budgets count, and what `gc-photos` expires. The owners of the
-- photos whose references all name one user are that user (only a
-- reference's `by` could upload before); the others prove it again (their
-- phones are asked for the bytes).
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
