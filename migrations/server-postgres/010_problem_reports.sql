-- Schema 10: records phones set aside, one row per (record, device). A
-- phone that reports the same record again moves `last_seen` and adds to
-- `count`; the alarm counter and the log count a pair once, when it is
-- new. Only records the device may read are kept; `reason` is the phone's
-- text, cut to 200 characters, shown escaped.
CREATE TABLE problem_reports (
    doc_id     UUID NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    PRIMARY KEY (doc_id, device_id)
);
CREATE INDEX problem_reports_last_seen ON problem_reports (last_seen);
