-- Schema 8: device signatures. Each device registers an Ed25519 public
-- key (at enrollment, or once afterwards for a device enrolled before
-- keys); every change a device sends carries its signature, kept beside
-- the change so that anyone can check, later and without this server, who
-- made it. Changes made on the web dashboard have none. The server's own
-- relay key (X25519, which phones seal relay bundles to) is kept here so
-- that every node of a deployment holds the same one.
ALTER TABLE devices ADD COLUMN public_key BLOB;
ALTER TABLE changes ADD COLUMN signature BLOB;
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    secret     BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
