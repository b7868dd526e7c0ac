-- Courier exactly-once processing: one row per message a consumer handled, written in the
-- transaction of the handler's own writes. Applied by exactlyonce.Migrate (under an advisory
-- lock, in one transaction); safe to run more than once. Objects are unqualified: they go to
-- the first schema of the search_path, which must be the schema the handler writes in (one
-- database, one transaction).
CREATE TABLE IF NOT EXISTS courier_processed (
    consumer     text        NOT NULL,  -- Config.Consumer, or "<topic>/<subscription>"
    message_id   text        NOT NULL,  -- Config.Key(m), default the message ID
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX IF NOT EXISTS courier_processed_processed_at ON courier_processed (processed_at);
