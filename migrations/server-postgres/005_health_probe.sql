-- Schema 5: a one-row table /healthz writes to, so health means "writes
-- commit", not only "the database answers" (a read-only replica, a full
-- disk or a connection limit fails the probe).
CREATE TABLE health_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT NOT NULL
);
INSERT INTO health_probe (id, at) VALUES (1, 0);
