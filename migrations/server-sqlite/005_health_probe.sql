-- Schema 5: a one-row table /healthz writes to, so health means "writes
-- commit", not only "the file opens" (a read-only file or a full disk fails
-- the probe).
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
) STRICT;
INSERT INTO health_probe (id, at) VALUES (1, 0);
