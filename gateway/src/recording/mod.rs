//! Phone-call recordings: written while the call runs ([`writer`]), stored when it ends
//! ([`store`]) together with the call record and a transcription job in one transaction, and
//! recovered at start after a crash ([`recover`]). Only phone calls have a bridge, and only a
//! bridge produces recording audio: meets are never recorded.

pub mod recover;
pub mod store;
pub mod writer;

pub use store::RecordingStore;
pub use writer::{FinishedRecording, Recorder, RecordingError};

use crate::db::{self, CallRecord, DbError, NewRecording};
use crate::state::AppState;

/// The row for a finished recording of `call`, with a new id.
pub fn new_recording(call: &CallRecord, done: &FinishedRecording, now_ms: i64) -> NewRecording {
    let id = uuid::Uuid::new_v4().to_string();
    let duration_ms = i64::try_from(done.duration_ms()).unwrap_or(i64::MAX);
    NewRecording {
        storage_key: RecordingStore::key_for(&call.channel_id, &id),
        id,
        call_id: call.id.clone(),
        content_type: "audio/wav".to_string(),
        sample_rate_hz: i64::from(done.format.sample_rate_hz),
        channels: i64::from(done.format.channels),
        duration_ms,
        size_bytes: i64::try_from(done.size_bytes).unwrap_or(i64::MAX),
        sha256: done.sha256.clone(),
        repaired: done.repaired,
        started_at_ms: call
            .answered_at_ms
            .unwrap_or_else(|| now_ms.saturating_sub(duration_ms)),
    }
}

/// Ends the call in the database with its recording and transcription job (one transaction),
/// then moves the file from the spool into storage. If storing fails the file stays in the
/// spool and the next start moves it ([`recover`]).
pub async fn end_call(
    state: &AppState,
    call: &CallRecord,
    end_reason: &str,
    ended_by: Option<&str>,
    finished: Option<FinishedRecording>,
    now_ms: i64,
) -> Result<CallRecord, DbError> {
    let row = finished
        .as_ref()
        .map(|done| new_recording(call, done, now_ms));
    let ended = state
        .db
        .end_call(&call.id, end_reason, ended_by, row.as_ref(), now_ms)
        .await?;
    if let (Some(done), Some(row)) = (finished, row) {
        store(state, &done, &row).await;
    }
    Ok(ended)
}

async fn store(state: &AppState, done: &FinishedRecording, row: &db::NewRecording) {
    match state.recordings.put(&done.path, &row.storage_key).await {
        Ok(()) => tracing::info!(call = %done.call_id, recording = %row.id,
            seconds = row.duration_ms / 1000, "recording stored"),
        Err(e) => tracing::error!(call = %done.call_id, error = %e,
            "storing the recording failed; it stays in the spool until the next start"),
    }
}
