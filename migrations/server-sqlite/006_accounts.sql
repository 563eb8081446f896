-- Schema 6: accounts the county manages on the web. A deactivated user
-- (deactivated_at set) cannot sign in or be issued enrollment codes, and
-- deactivating revokes their devices; an agency account names its agency,
-- which decides the one kind of case count it may enter.
ALTER TABLE users ADD COLUMN deactivated_at INTEGER;
ALTER TABLE users ADD COLUMN agency TEXT CHECK (agency IN ('police', 'procuratorate', 'court', 'justice'));
