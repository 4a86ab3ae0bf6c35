-- Initial schema. This ONE file runs unchanged on SQLite (embedded default) and PostgreSQL
-- (scale-out), so it uses only what both accept:
--   * TEXT primary keys holding UUID strings made by the application (no SERIAL/AUTOINCREMENT,
--     so ids never depend on which backend or node created the row);
--   * BIGINT for every integer, so sqlx's `Any` driver decodes each of them as i64 on both;
--   * BIGINT 0/1 for booleans (SQLite has no BOOLEAN, and binding a bool through `Any` to a
--     PostgreSQL BIGINT would not type-check);
--   * times as BIGINT unix milliseconds in columns named *_at_ms;
--   * money as BIGINT minor units (never floating point);
--   * CHECK constraints for enumerations, mirrored by the enums in gateway/src/db/model.rs.

-- Why a call was missed. A table (not only a CHECK) so reports can join a description and so
-- consultations, meets and calls all reference one list.
CREATE TABLE missed_reasons (
    code        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);

INSERT INTO missed_reasons (code, description) VALUES
    ('caller_cancelled',     'The caller hung up before anyone answered'),
    ('no_answer',            'Nobody answered within the ringing limit (120 s)'),
    ('declined',             'The ringing managers declined the call'),
    ('no_available_manager', 'No manager with an operator seat was available to ring'),
    ('manager_offline',      'The manager to ring was offline');

-- A channel is one business (tenant).
CREATE TABLE channels (
    id                          TEXT PRIMARY KEY,
    name                        TEXT NOT NULL,
    plan                        TEXT NOT NULL CHECK (plan IN ('free', 'paid')),
    business_verified           BIGINT NOT NULL DEFAULT 0 CHECK (business_verified IN (0, 1)),
    meet_voice_video_enabled    BIGINT NOT NULL DEFAULT 0 CHECK (meet_voice_video_enabled IN (0, 1)),
    -- Per started minute of an answered call, in minor units of `currency`.
    call_rate_per_minute_minor  BIGINT NOT NULL DEFAULT 0 CHECK (call_rate_per_minute_minor >= 0),
    currency                    TEXT NOT NULL DEFAULT 'KRW',
    -- Ring the whole phone team, not only the assigned manager.
    ring_all_phone_team         BIGINT NOT NULL DEFAULT 0 CHECK (ring_all_phone_team IN (0, 1)),
    transcription_language      TEXT NOT NULL DEFAULT 'auto'
                                CHECK (transcription_language IN ('auto', 'ko', 'en')),
    created_at_ms               BIGINT NOT NULL
);

-- The channel's numbers (070 numbers issued by the carrier), in E.164. A number belongs to one
-- channel only: that is how an INVITE's request URI finds its channel.
CREATE TABLE phone_numbers (
    id           TEXT PRIMARY KEY,
    channel_id   TEXT NOT NULL REFERENCES channels (id),
    number_e164  TEXT NOT NULL UNIQUE,
    label        TEXT
);
CREATE INDEX phone_numbers_channel ON phone_numbers (channel_id);

-- Carrier SIP trunks.
CREATE TABLE trunks (
    id                    TEXT PRIMARY KEY,
    channel_id            TEXT NOT NULL REFERENCES channels (id),
    name                  TEXT NOT NULL,
    -- Comma-separated CIDRs the carrier sends from (no array type on SQLite).
    allowed_cidrs         TEXT NOT NULL DEFAULT '',
    -- Digest credentials; NULL username = IP-authenticated trunk.
    auth_username         TEXT,
    auth_password         TEXT,
    auth_realm            TEXT,
    max_calls_per_second  BIGINT NOT NULL DEFAULT 10 CHECK (max_calls_per_second >= 0),
    max_concurrent_calls  BIGINT NOT NULL DEFAULT 100 CHECK (max_concurrent_calls >= 0),
    -- Outgoing calls / registration toward the carrier (next issue); NULL = not configured.
    outbound_proxy        TEXT,
    registrar_uri         TEXT,
    register_username     TEXT,
    register_password     TEXT,
    register_expires_s    BIGINT
);
CREATE INDEX trunks_channel ON trunks (channel_id);

CREATE TABLE managers (
    id                       TEXT PRIMARY KEY,
    channel_id               TEXT NOT NULL REFERENCES channels (id),
    name                     TEXT NOT NULL,
    -- Hex SHA-256 of the bearer token: a leaked database does not leak usable tokens.
    token_sha256             TEXT NOT NULL UNIQUE,
    role                     TEXT NOT NULL DEFAULT 'manager' CHECK (role IN ('manager', 'admin')),
    operator_seat            BIGINT NOT NULL DEFAULT 0 CHECK (operator_seat IN (0, 1)),
    presence                 TEXT NOT NULL DEFAULT 'offline' CHECK (presence IN ('online', 'offline')),
    do_not_disturb           BIGINT NOT NULL DEFAULT 0 CHECK (do_not_disturb IN (0, 1)),
    -- The consultation currently ringing this manager; set by a conditional UPDATE so that two
    -- gateway nodes sharing the database can never ring the same manager for two calls.
    -- No FOREIGN KEY: consultations reference managers (assignee), and a portable circular
    -- foreign key is impossible (SQLite has no ALTER TABLE ... ADD CONSTRAINT). The repository
    -- clears it whenever the consultation's ringing ends.
    ringing_consultation_id  TEXT,
    -- Fair distribution: least recently assigned first.
    last_assigned_at_ms      BIGINT,
    created_at_ms            BIGINT NOT NULL
);
CREATE INDEX managers_channel_assign ON managers (channel_id, last_assigned_at_ms);
CREATE INDEX managers_ringing ON managers (ringing_consultation_id);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    channel_id  TEXT NOT NULL REFERENCES channels (id),
    name        TEXT NOT NULL,
    -- The team rung for phone calls when the channel rings all of its phone team.
    phone_team  BIGINT NOT NULL DEFAULT 0 CHECK (phone_team IN (0, 1))
);
CREATE INDEX teams_channel ON teams (channel_id);

CREATE TABLE team_members (
    team_id     TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    manager_id  TEXT NOT NULL REFERENCES managers (id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, manager_id)
);
CREATE INDEX team_members_manager ON team_members (manager_id);

CREATE TABLE customers (
    id             TEXT PRIMARY KEY,
    channel_id     TEXT NOT NULL REFERENCES channels (id),
    name           TEXT,
    created_at_ms  BIGINT NOT NULL
);
CREATE INDEX customers_channel ON customers (channel_id);

-- A caller's number identifies at most one customer per channel; the primary key is what makes
-- find-or-create safe when two calls from an unknown number arrive at once.
CREATE TABLE customer_phone_numbers (
    customer_id  TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    channel_id   TEXT NOT NULL REFERENCES channels (id),
    number_e164  TEXT NOT NULL,
    PRIMARY KEY (channel_id, number_e164)
);
CREATE INDEX customer_phone_numbers_customer ON customer_phone_numbers (customer_id);

CREATE TABLE consultations (
    id                   TEXT PRIMARY KEY,
    channel_id           TEXT NOT NULL REFERENCES channels (id),
    customer_id          TEXT NOT NULL REFERENCES customers (id),
    source               TEXT NOT NULL CHECK (source IN ('phone', 'web', 'instagram', 'line', 'kakao',
                                                         'facebook', 'whatsapp', 'telegram', 'email')),
    classification       TEXT NOT NULL CHECK (classification IN ('call', 'chat')),
    assignee_manager_id  TEXT REFERENCES managers (id),
    state                TEXT NOT NULL CHECK (state IN ('open', 'closed', 'missed')),
    chat_input_open      BIGINT NOT NULL DEFAULT 1 CHECK (chat_input_open IN (0, 1)),
    missed_reason        TEXT REFERENCES missed_reasons (code),
    created_at_ms        BIGINT NOT NULL,
    closed_at_ms         BIGINT
);
CREATE INDEX consultations_channel_state ON consultations (channel_id, state);
CREATE INDEX consultations_customer ON consultations (customer_id);
CREATE INDEX consultations_assignee ON consultations (assignee_manager_id);

CREATE TABLE meets (
    id               TEXT PRIMARY KEY,
    consultation_id  TEXT NOT NULL REFERENCES consultations (id),
    kind             TEXT NOT NULL CHECK (kind IN ('phone', 'voice', 'video')),
    scope            TEXT NOT NULL CHECK (scope IN ('customer', 'internal', 'team')),
    direction        TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    state            TEXT NOT NULL CHECK (state IN ('ringing', 'active', 'ended', 'missed')),
    missed_reason    TEXT REFERENCES missed_reasons (code),
    started_at_ms    BIGINT NOT NULL,
    answered_at_ms   BIGINT,
    ended_at_ms      BIGINT,
    -- Who ended it: 'customer', 'system' or 'manager:<id>' (free text, shown in the UI).
    ended_by         TEXT
);
CREATE INDEX meets_consultation ON meets (consultation_id);

CREATE TABLE meet_participants (
    id            TEXT PRIMARY KEY,
    meet_id       TEXT NOT NULL REFERENCES meets (id) ON DELETE CASCADE,
    manager_id    TEXT REFERENCES managers (id),
    customer_id   TEXT REFERENCES customers (id),
    joined_at_ms  BIGINT NOT NULL,
    left_at_ms    BIGINT,
    CHECK (manager_id IS NOT NULL OR customer_id IS NOT NULL)
);
CREATE INDEX meet_participants_meet ON meet_participants (meet_id);
-- Assignment asks "is this manager still in a meet?" for every candidate.
CREATE INDEX meet_participants_manager ON meet_participants (manager_id, left_at_ms);

-- Call detail records: one row per phone call leg through a trunk; the source of call charges.
CREATE TABLE calls (
    id                TEXT PRIMARY KEY,
    channel_id        TEXT NOT NULL REFERENCES channels (id),
    consultation_id   TEXT NOT NULL REFERENCES consultations (id),
    meet_id           TEXT NOT NULL REFERENCES meets (id),
    trunk_id          TEXT NOT NULL REFERENCES trunks (id),
    direction         TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sip_call_id       TEXT NOT NULL,
    from_number       TEXT NOT NULL,
    to_number         TEXT NOT NULL,
    started_at_ms     BIGINT NOT NULL,
    answered_at_ms    BIGINT,
    ended_at_ms       BIGINT,
    -- Answered duration rounded up to the whole second; 0 for unanswered calls.
    billable_seconds  BIGINT NOT NULL DEFAULT 0 CHECK (billable_seconds >= 0),
    -- Started minutes x the channel's per-minute rate, in minor units of `currency`.
    charge_minor      BIGINT NOT NULL DEFAULT 0 CHECK (charge_minor >= 0),
    currency          TEXT NOT NULL,
    end_reason        TEXT,
    ended_by          TEXT,
    missed_reason     TEXT REFERENCES missed_reasons (code)
);
CREATE INDEX calls_consultation ON calls (consultation_id);
CREATE INDEX calls_channel_started ON calls (channel_id, started_at_ms);
CREATE INDEX calls_sip_call_id ON calls (sip_call_id);
