-- Gridsync server on PostgreSQL, schema 3: the supervisors' web dashboard.
-- Web passwords (argon2id PHC strings) with a failed sign-in counter and
-- lockout, web sessions (only the SHA-256 of the cookie token is stored),
-- and an append-only audit log of sign-ins, web changes and every view of
-- sensitive records.
CREATE TABLE web_passwords (
    user_id      TEXT PRIMARY KEY REFERENCES users (id),
    hash         TEXT NOT NULL,
    set_at       BIGINT NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT
);

CREATE TABLE web_sessions (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);

CREATE TABLE audit_log (
    seq     BIGSERIAL PRIMARY KEY,
    at      BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    ip      TEXT NOT NULL
);
-- Append-only: the server never updates or deletes audit rows.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
