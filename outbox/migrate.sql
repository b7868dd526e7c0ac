-- Courier transactional outbox. Applied by outbox.Migrate (under an advisory lock, in one
-- transaction); safe to run more than once. Objects are created unqualified, in the first
-- schema of the search_path: to keep several outboxes apart, give each its own schema (for
-- example search_path=app1 in the connection string) and point its Writer and Relay at it.

-- One row per message waiting to be relayed. seq is the relay order: rows of one ordering key
-- are sent in seq order. A row is deleted once the broker confirmed it: the table holds only
-- what is still to be sent.
CREATE TABLE IF NOT EXISTS courier_outbox (
    seq          bigserial   PRIMARY KEY,
    id           text        NOT NULL,              -- message ID (UUIDv7), kept on the broker
    topic        text        NOT NULL,
    key          text        NOT NULL DEFAULT '',   -- ordering key; '' = unordered
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}',
    publish_time timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempts     integer     NOT NULL DEFAULT 0,    -- failed relay attempts
    last_error   text        NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS courier_outbox_key_seq ON courier_outbox (key, seq);

-- Rows the relay set aside instead of retrying: the broker refused them permanently (too
-- large, invalid message or topic) or their headers do not decode. The relay moves a row here
-- in the transaction that would have sent it, and goes on with the key's next row. To send
-- one again after fixing it, insert it back into courier_outbox (it gets a new seq, so it
-- goes after the key's current rows) and delete it here.
CREATE TABLE IF NOT EXISTS courier_outbox_dead (
    seq          bigint      PRIMARY KEY,           -- the row's seq in courier_outbox
    id           text        NOT NULL,
    topic        text        NOT NULL,
    key          text        NOT NULL DEFAULT '',
    payload      bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}',
    publish_time timestamptz NOT NULL,
    created_at   timestamptz NOT NULL,
    attempts     integer     NOT NULL,              -- relay attempts, this one included
    reason       text        NOT NULL,              -- outbox.Reason*: message_too_large, ...
    error        text        NOT NULL,              -- the error's text
    failed_at    timestamptz NOT NULL DEFAULT now()
);

-- Wakes relays when a writing transaction commits (NOTIFY is delivered at commit and
-- dropped on rollback; one per transaction and channel, however many rows it wrote).
CREATE OR REPLACE FUNCTION courier_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('courier_outbox', '');
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS courier_outbox_notify ON courier_outbox;
CREATE TRIGGER courier_outbox_notify AFTER INSERT ON courier_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION courier_outbox_notify();
