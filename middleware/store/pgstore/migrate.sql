-- Courier middleware state: idempotency claims and handled keys, ordering counters and
-- per-subscription ordering state. Applied by pgstore's Store.Migrate (under an advisory
-- lock, in one transaction); safe to run more than once. Times are Unix milliseconds of the
-- database clock. Rows whose expires_at has passed are dead: the store treats them as absent,
-- and Store.Purge deletes them.

-- One row per <topic>/<subscription>/<message key>: claimed by owner until expires_at, or
-- done (owner '') and remembered until expires_at.
CREATE TABLE IF NOT EXISTS courier_idempotency (
    key        text    PRIMARY KEY,
    owner      text    NOT NULL,
    done       boolean NOT NULL,
    expires_at bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS courier_idempotency_expires_at ON courier_idempotency (expires_at);

-- One row per publisher counter, <topic>/<ordering key>: the last number handed out in epoch.
CREATE TABLE IF NOT EXISTS courier_sequence (
    key        text   PRIMARY KEY,
    epoch      bigint NOT NULL,
    seq        bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS courier_sequence_expires_at ON courier_sequence (expires_at);

-- One row per <topic>/<subscription>/<ordering key>: ordering.State, and a version that
-- every write increments (optimistic concurrency: a write applies only to the version read).
CREATE TABLE IF NOT EXISTS courier_ordering (
    key         text   PRIMARY KEY,
    epoch       bigint NOT NULL DEFAULT 0,
    last        bigint NOT NULL DEFAULT 0,
    claim_seq   bigint NOT NULL DEFAULT 0,
    claim_owner text   NOT NULL DEFAULT '',
    claim_until bigint NOT NULL DEFAULT 0,
    gap_since   bigint NOT NULL DEFAULT 0,
    expires_at  bigint NOT NULL DEFAULT 0,
    version     bigint NOT NULL DEFAULT 0,
    skipped     bigint[] NOT NULL DEFAULT '{}'
);
ALTER TABLE courier_ordering ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0;
ALTER TABLE courier_ordering ADD COLUMN IF NOT EXISTS skipped bigint[] NOT NULL DEFAULT '{}';
CREATE INDEX IF NOT EXISTS courier_ordering_expires_at ON courier_ordering (expires_at);
