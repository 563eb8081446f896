-- Schema 2: keep a server's rejection on the record so the user sees it,
-- and index status for the "open hazards" / "disputes in conflict" lists.
ALTER TABLE records ADD COLUMN rejection TEXT;
CREATE INDEX records_kind_status ON records (kind, status);
