-- Schema 3: changes a server refused, and changes received that could not
-- be applied.
--
-- A refused change stays in its record's document (the field worker's work
-- is not thrown away behind their back); the record shows the reason and
-- further edits wait until the user repairs it (`Store::repair` drops the
-- refused step and replays the later ones).
CREATE TABLE refused_changes (
    doc_id     TEXT NOT NULL,
    hash       BLOB NOT NULL,
    reason     TEXT NOT NULL,
    message_zh TEXT NOT NULL,
    refused_at INTEGER NOT NULL,
    PRIMARY KEY (doc_id, hash)
) STRICT;

-- Changes received from a server that could not be applied to their record:
-- set aside so the rest of the response applies and the cursor moves on,
-- retried whenever more changes of the record arrive, and reported to the
-- server once.
CREATE TABLE set_aside (
    doc_id   TEXT NOT NULL,
    hash     BLOB NOT NULL,
    change   BLOB NOT NULL,
    reason   TEXT NOT NULL,
    at       INTEGER NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (doc_id, hash)
) STRICT;
