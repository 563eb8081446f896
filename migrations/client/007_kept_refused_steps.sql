-- Schema 7: steps a server refused, kept after the record was repaired.
--
-- A repair takes a refused step out of the record's document so the
-- user's later work reaches the server; the step itself is kept here (what
-- the record was before it and after it, and why it was refused) and
-- listed for the user until they dismiss it, so nothing written on the
-- phone is ever dropped behind their back (a step refused because someone
-- else filled the record to its size limit, say).
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
