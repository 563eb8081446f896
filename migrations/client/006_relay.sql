-- Schema 6: bundles this phone carries for other devices (relay). Each is
-- sealed to the server's key: this phone cannot read it, only hand it on.
-- `id` is the SHA-256 of the sealed bytes, so carrying one twice keeps one.
CREATE TABLE relay_outbox (
    id          BLOB PRIMARY KEY,
    bytes       BLOB NOT NULL,
    received_at INTEGER NOT NULL
) STRICT;
