-- Schema 7: photos. Which record references which photo (derived from the
-- record documents at every merge, so it is never edited by hand); the
-- bytes themselves are in the blob store (files next to this database).
-- A photo may be read by whoever may read a record that references it,
-- uploaded only by the user the reference names, and is collected when no
-- live record references it any more.
CREATE TABLE attachment_refs (
    hash      TEXT NOT NULL,
    record_id TEXT NOT NULL,
    by_user   TEXT NOT NULL,
    mime      TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (hash, record_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX attachment_refs_record ON attachment_refs (record_id);
