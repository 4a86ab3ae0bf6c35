//! The transcription outbox: workers claim due jobs with a lease, and finish them (with the
//! transcript) or fail them (retried later) only while they still hold the lease.
//!
//! Claiming is one statement. On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several workers
//! claim at once without waiting on each other's rows; SQLite has one writer at a time, so
//! the same statement without it is already exclusive. A job whose lease ran out (its worker
//! died, even with `kill -9`) is due again; finishing it is conditional on the lease, and the
//! transcript's unique recording id makes a second transcript impossible either way.

use sqlx::Row;

use super::{new_id, Backend, Db, DbError};

/// A job a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: String,
    pub recording_id: String,
    pub channel_id: String,
    /// Including this one.
    pub attempts: i64,
    pub lease_expires_at_ms: i64,
}

/// What a finished job stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTranscript {
    pub language: String,
    pub turns_json: String,
    pub text: String,
    pub speech_ms: i64,
    pub processing_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub id: String,
    pub recording_id: String,
    pub channel_id: String,
    pub language: String,
    pub turns_json: String,
    pub text: String,
    pub speech_ms: i64,
    pub processing_ms: i64,
    pub created_at_ms: i64,
}

impl Db {
    /// The oldest due job (queued and not before its retry time, or running with an expired
    /// lease), now held by `worker` until `now_ms + lease_ms`.
    pub async fn claim_transcription_job(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, DbError> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE transcription_jobs SET state = 'running', lease_owner = $1, \
                 lease_expires_at_ms = $2, attempts = attempts + 1, updated_at_ms = $3 \
             WHERE id = (SELECT id FROM transcription_jobs \
                 WHERE (state = 'queued' AND run_after_ms <= $4) \
                    OR (state = 'running' AND lease_expires_at_ms <= $5) \
                 ORDER BY run_after_ms, id LIMIT 1 {lock}) \
             RETURNING id, recording_id, channel_id, attempts, lease_expires_at_ms"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(now_ms)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(ClaimedJob {
                id: r.try_get("id")?,
                recording_id: r.try_get("recording_id")?,
                channel_id: r.try_get("channel_id")?,
                attempts: r.try_get("attempts")?,
                lease_expires_at_ms: r.try_get("lease_expires_at_ms")?,
            })
        })
        .transpose()
    }

    /// Extends the lease of a long job. `false` if the worker no longer holds it.
    pub async fn renew_transcription_lease(
        &self,
        job_id: &str,
        worker: &str,
        until_ms: i64,
    ) -> Result<bool, DbError> {
        let n = sqlx::query(
            "UPDATE transcription_jobs SET lease_expires_at_ms = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(until_ms)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Stores the transcript (and the webhook `events` announcing it) and marks the job done,
    /// in one transaction, only while `worker` holds the job. `Conflict` if the lease was lost (another worker has the job now).
    pub async fn complete_transcription_job(
        &self,
        job: &ClaimedJob,
        worker: &str,
        transcript: &NewTranscript,
        events: &[super::NewWebhookEvent],
        now_ms: i64,
    ) -> Result<Transcript, DbError> {
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(
            "UPDATE transcription_jobs SET state = 'done', lease_owner = NULL, \
                 lease_expires_at_ms = NULL, last_error = NULL, updated_at_ms = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(now_ms)
        .bind(&job.id)
        .bind(worker)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held != 1 {
            return Err(DbError::Conflict(format!(
                "transcription job {} is no longer held by {worker}",
                job.id
            )));
        }
        let id = new_id();
        sqlx::query(
            "INSERT INTO transcripts (id, recording_id, channel_id, language, turns_json, text, \
                 speech_ms, processing_ms, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&id)
        .bind(&job.recording_id)
        .bind(&job.channel_id)
        .bind(&transcript.language)
        .bind(&transcript.turns_json)
        .bind(&transcript.text)
        .bind(transcript.speech_ms)
        .bind(transcript.processing_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        super::webhooks::insert_events(&mut tx, events, now_ms).await?;
        tx.commit().await?;
        Ok(Transcript {
            id,
            recording_id: job.recording_id.clone(),
            channel_id: job.channel_id.clone(),
            language: transcript.language.clone(),
            turns_json: transcript.turns_json.clone(),
            text: transcript.text.clone(),
            speech_ms: transcript.speech_ms,
            processing_ms: transcript.processing_ms,
            created_at_ms: now_ms,
        })
    }

    /// Gives the job back after a failure: queued again from `retry_at_ms`, or `failed` for
    /// good when `retry_at_ms` is `None`. Only while `worker` holds it (`false` otherwise).
    pub async fn fail_transcription_job(
        &self,
        job_id: &str,
        worker: &str,
        error: &str,
        retry_at_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<bool, DbError> {
        let (state, run_after) = match retry_at_ms {
            Some(at) => ("queued", at),
            None => ("failed", now_ms),
        };
        let n = sqlx::query(
            "UPDATE transcription_jobs SET state = $1, run_after_ms = $2, last_error = $3, \
                 lease_owner = NULL, lease_expires_at_ms = NULL, updated_at_ms = $4 \
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(state)
        .bind(run_after)
        .bind(error)
        .bind(now_ms)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn transcript_for_recording(
        &self,
        recording_id: &str,
    ) -> Result<Option<Transcript>, DbError> {
        let row = sqlx::query(
            "SELECT id, recording_id, channel_id, language, turns_json, text, speech_ms, \
                 processing_ms, created_at_ms FROM transcripts WHERE recording_id = $1",
        )
        .bind(recording_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Transcript {
                id: r.try_get("id")?,
                recording_id: r.try_get("recording_id")?,
                channel_id: r.try_get("channel_id")?,
                language: r.try_get("language")?,
                turns_json: r.try_get("turns_json")?,
                text: r.try_get("text")?,
                speech_ms: r.try_get("speech_ms")?,
                processing_ms: r.try_get("processing_ms")?,
                created_at_ms: r.try_get("created_at_ms")?,
            })
        })
        .transpose()
    }
}
