-- Schema 4: the names an app shows for ids (grid nodes and users in the
-- enrolled user's scope), fetched from the server's `GET /v1/directory`.
--
-- Replaced as a whole on every fetch; `meta` keeps its version
-- (`directory_version`) and when it was fetched (`directory_fetched_at`).
-- No personal data beyond a user's display name, role and grid.
CREATE TABLE directory (
    kind TEXT NOT NULL CHECK (kind IN ('grid', 'user')),
    id   TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT '',
    grid TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, id)
) STRICT, WITHOUT ROWID;
