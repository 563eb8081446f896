-- Gridsync server on SQLite, schema 2: case counts that the county
-- agencies (police, procuratorate, court) enter per village and year, for
-- the four-none villages (四无创建). One row per (village, year, kind);
-- entering a count again replaces it and records who did it and when.
CREATE TABLE case_counts (
    village    TEXT NOT NULL,
    year       INTEGER NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('public_security', 'criminal', 'lawsuit')),
    count      INTEGER NOT NULL CHECK (count >= 0),
    entered_by TEXT NOT NULL REFERENCES users (id),
    entered_at INTEGER NOT NULL,
    PRIMARY KEY (village, year, kind)
) STRICT;
CREATE INDEX case_counts_year ON case_counts (year, village);
