-- Schema 8: device signatures. Each device registers an Ed25519 public
-- key (at enrollment, or once afterwards for a device enrolled before
-- keys); each sync request (or bundle) a device sends carries one
-- signature over a manifest of every change in it. The manifest is kept
-- once, and each change names the signature it came under, so that anyone
-- can check, later and without this server, who made it. Changes made on
-- the web dashboard have none. The server's own
-- relay key (X25519, which phones seal relay bundles to) is kept here so
-- that every node of a deployment holds the same one.
ALTER TABLE devices ADD COLUMN public_key BYTEA;
ALTER TABLE changes ADD COLUMN signature BYTEA;
CREATE TABLE signed_batches (
    signature  BYTEA PRIMARY KEY,
    device_id  TEXT NOT NULL,
    manifest   BYTEA NOT NULL
);
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    secret     BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
