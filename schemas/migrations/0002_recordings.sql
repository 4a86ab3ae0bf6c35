-- Phone-call recordings and the transcription outbox. Same conventions as 0001 (TEXT ids,
-- BIGINT integers and 0/1 booleans, *_at_ms unix milliseconds), one file for SQLite and
-- PostgreSQL. Only phone calls have rows here: meets are never recorded, and a recording
-- row can only exist for a row of `calls` (which are phone calls through a trunk).

CREATE TABLE recordings (
    id               TEXT PRIMARY KEY,
    channel_id       TEXT NOT NULL REFERENCES channels (id),
    call_id          TEXT NOT NULL UNIQUE REFERENCES calls (id),
    consultation_id  TEXT NOT NULL REFERENCES consultations (id),
    -- Where the finished file is: a path under the recordings directory or an object key.
    storage_key      TEXT NOT NULL,
    -- 'audio/wav' (16-bit PCM); left channel the customer, right the managers mixed.
    content_type     TEXT NOT NULL,
    sample_rate_hz   BIGINT NOT NULL,
    channels         BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL CHECK (duration_ms >= 0),
    size_bytes       BIGINT NOT NULL CHECK (size_bytes >= 0),
    -- Lowercase hex SHA-256 of the whole finished file.
    sha256           TEXT NOT NULL,
    -- 1 when the file was recovered after a crash (it ends where the last write did).
    repaired         BIGINT NOT NULL DEFAULT 0 CHECK (repaired IN (0, 1)),
    started_at_ms    BIGINT NOT NULL,
    created_at_ms    BIGINT NOT NULL
);
CREATE INDEX recordings_channel_started ON recordings (channel_id, started_at_ms);

-- One job per recording, written in the same transaction as the recording (an outbox): a
-- worker claims due jobs with a lease, so a worker that dies has its job taken again when
-- the lease runs out.
CREATE TABLE transcription_jobs (
    id                   TEXT PRIMARY KEY,
    recording_id         TEXT NOT NULL UNIQUE REFERENCES recordings (id),
    channel_id           TEXT NOT NULL REFERENCES channels (id),
    state                TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts             BIGINT NOT NULL DEFAULT 0,
    -- Not before this time (backoff after a failure).
    run_after_ms         BIGINT NOT NULL,
    lease_owner          TEXT,
    lease_expires_at_ms  BIGINT,
    last_error           TEXT,
    created_at_ms        BIGINT NOT NULL,
    updated_at_ms        BIGINT NOT NULL
);
CREATE INDEX transcription_jobs_due ON transcription_jobs (state, run_after_ms);
