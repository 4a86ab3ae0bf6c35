//! Phone-call recordings and their transcription jobs. A recording row and its job are always
//! written together, in the transaction that ends the call (see [`Db::end_call`]) or, for a
//! recording recovered after a crash of an already ended call, in [`Db::add_recording`].

use sqlx::any::AnyRow;
use sqlx::Row;

use super::model::get_bool;
use super::{new_id, Db, DbError};

/// A finished recording to store with its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecording {
    pub id: String,
    pub call_id: String,
    pub storage_key: String,
    pub content_type: String,
    pub sample_rate_hz: i64,
    pub channels: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: String,
    pub repaired: bool,
    pub started_at_ms: i64,
}

/// A stored recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub id: String,
    pub channel_id: String,
    pub call_id: String,
    pub consultation_id: String,
    pub storage_key: String,
    pub content_type: String,
    pub sample_rate_hz: i64,
    pub channels: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    pub sha256: String,
    pub repaired: bool,
    pub started_at_ms: i64,
    pub created_at_ms: i64,
}

impl Recording {
    pub(super) const COLUMNS: &'static str =
        "id, channel_id, call_id, consultation_id, storage_key, \
        content_type, sample_rate_hz, channels, duration_ms, size_bytes, sha256, repaired, \
        started_at_ms, created_at_ms";

    pub(super) fn from_row(row: &AnyRow) -> Result<Self, DbError> {
        Ok(Recording {
            id: row.try_get("id")?,
            channel_id: row.try_get("channel_id")?,
            call_id: row.try_get("call_id")?,
            consultation_id: row.try_get("consultation_id")?,
            storage_key: row.try_get("storage_key")?,
            content_type: row.try_get("content_type")?,
            sample_rate_hz: row.try_get("sample_rate_hz")?,
            channels: row.try_get("channels")?,
            duration_ms: row.try_get("duration_ms")?,
            size_bytes: row.try_get("size_bytes")?,
            sha256: row.try_get("sha256")?,
            repaired: get_bool(row, "repaired")?,
            started_at_ms: row.try_get("started_at_ms")?,
            created_at_ms: row.try_get("created_at_ms")?,
        })
    }
}

/// The recording row and its queued transcription job, inside the caller's transaction. The
/// channel and consultation come from the call row, so a recording can never point at a
/// channel its call is not in.
pub(super) async fn insert_with_job(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    r: &NewRecording,
    now_ms: i64,
) -> Result<(), DbError> {
    let inserted = sqlx::query(
        "INSERT INTO recordings (id, channel_id, call_id, consultation_id, storage_key, \
             content_type, sample_rate_hz, channels, duration_ms, size_bytes, sha256, repaired, \
             started_at_ms, created_at_ms) \
         SELECT $1, channel_id, id, consultation_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
         FROM calls WHERE id = $12",
    )
    .bind(&r.id)
    .bind(&r.storage_key)
    .bind(&r.content_type)
    .bind(r.sample_rate_hz)
    .bind(r.channels)
    .bind(r.duration_ms)
    .bind(r.size_bytes)
    .bind(&r.sha256)
    .bind(i64::from(r.repaired))
    .bind(r.started_at_ms)
    .bind(now_ms)
    .bind(&r.call_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(DbError::not_found("call", &r.call_id));
    }
    sqlx::query(
        "INSERT INTO transcription_jobs (id, recording_id, channel_id, state, attempts, \
             run_after_ms, created_at_ms, updated_at_ms) \
         SELECT $1, id, channel_id, 'queued', 0, $2, $2, $2 FROM recordings WHERE id = $3",
    )
    .bind(new_id())
    .bind(now_ms)
    .bind(&r.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Stores a recording and its transcription job for a call that has already ended (a
    /// recording recovered after a crash). `Conflict` if the call already has one.
    pub async fn add_recording(
        &self,
        r: &NewRecording,
        events: &[super::NewWebhookEvent],
        now_ms: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.pool.begin().await?;
        if self.recording_for_call(&r.call_id).await?.is_some() {
            return Err(DbError::Conflict(format!(
                "call {} already has a recording",
                r.call_id
            )));
        }
        insert_with_job(&mut tx, r, now_ms).await?;
        super::webhooks::insert_events(&mut tx, events, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn recording(&self, id: &str) -> Result<Option<Recording>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE id = $1",
            Recording::COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(Recording::from_row)
        .transpose()
    }

    pub async fn recording_for_call(&self, call_id: &str) -> Result<Option<Recording>, DbError> {
        sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE call_id = $1",
            Recording::COLUMNS
        ))
        .bind(call_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(Recording::from_row)
        .transpose()
    }

    /// The transcription job of a recording: `(state, attempts)`.
    pub async fn transcription_job_state(
        &self,
        recording_id: &str,
    ) -> Result<Option<(String, i64)>, DbError> {
        let row =
            sqlx::query("SELECT state, attempts FROM transcription_jobs WHERE recording_id = $1")
                .bind(recording_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((r.try_get("state")?, r.try_get("attempts")?)))
            .transpose()
    }
}
