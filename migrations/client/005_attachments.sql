-- Schema 5: photos on the phone. One row per blob (a photo or its
-- thumbnail), content-addressed by the SHA-256 of its bytes, held in this
-- (SQLCipher-encrypted) database like the records. `bytes` is NULL for a
-- photo another user took until it is downloaded. `upload` marks a blob
-- this phone must send; `sent` is how many bytes the server has confirmed,
-- so an upload cut mid-photo resumes there.
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
CREATE INDEX attachments_upload ON attachments (upload, created_at) WHERE upload = 1;
CREATE INDEX attachments_record ON attachments (record_id);
