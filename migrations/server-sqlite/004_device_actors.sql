-- Schema 4: each device's Automerge actor id, registered at enrollment (or
-- at the first sync of a device enrolled before). The server refuses
-- changes whose actor is not the pushing device's, so no device can write
-- under another's identity or break its sequence numbers.
ALTER TABLE devices ADD COLUMN actor BLOB;
CREATE UNIQUE INDEX devices_actor ON devices (actor);
