-- Schema 10: records phones set aside, one row per (record, device). A
-- phone that reports the same record again moves `last_seen` and adds to
-- `count`; the alarm counter and the log count a pair once, when it is
-- new. Only records the device may read are kept; `reason` is the phone's
-- text, cut to 200 characters, shown escaped.
CREATE TABLE problem_reports (
    doc_id     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (doc_id, device_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX problem_reports_last_seen ON problem_reports (last_seen);
