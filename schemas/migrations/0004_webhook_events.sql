-- Webhook events of a channel (`recording.ready`, `transcript.ready`, `summary.ready`), written
-- in the same transaction as what they announce (an outbox) and delivered by the gateway's
-- dispatcher, which retries with backoff until the endpoint answers 2xx or the attempts run out.
CREATE TABLE webhook_events (
    id                   TEXT PRIMARY KEY,
    channel_id           TEXT NOT NULL REFERENCES channels (id),
    type                 TEXT NOT NULL
                         CHECK (type IN ('recording.ready', 'transcript.ready', 'summary.ready')),
    -- The exact body POSTed (and signed).
    payload_json         TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts             BIGINT NOT NULL DEFAULT 0,
    next_attempt_at_ms   BIGINT NOT NULL,
    lease_owner          TEXT,
    lease_expires_at_ms  BIGINT,
    last_status          BIGINT,
    last_error           TEXT,
    created_at_ms        BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL
);
CREATE INDEX webhook_events_due ON webhook_events (state, next_attempt_at_ms);
