-- Transcripts of phone-call recordings, written by the transcription worker together with
-- its job's completion (one transaction): `recording_id` is unique, so a job done twice (a
-- worker killed after the work but before the commit, then the job taken again) can never
-- leave two transcripts.
CREATE TABLE transcripts (
    id              TEXT PRIMARY KEY,
    recording_id    TEXT NOT NULL UNIQUE REFERENCES recordings (id),
    channel_id      TEXT NOT NULL REFERENCES channels (id),
    -- The language the channel asked for ('auto', 'ko', 'en').
    language        TEXT NOT NULL,
    -- The speaker-labelled timeline as JSON: [{speaker, start_ms, end_ms, text}, ...].
    turns_json      TEXT NOT NULL,
    -- Plain text of the whole conversation, one line per turn.
    text            TEXT NOT NULL,
    -- Seconds of audio the recognizer actually ran on (voice-gated) and the wall time spent.
    speech_ms       BIGINT NOT NULL,
    processing_ms   BIGINT NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
