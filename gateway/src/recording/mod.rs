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
    let events = row
        .as_ref()
        .map(|r| ready_events(state, call, r))
        .unwrap_or_default();
    let ended = state
        .db
        .end_call(
            &call.id,
            end_reason,
            ended_by,
            row.as_ref(),
            &events,
            now_ms,
        )
        .await?;
    if let (Some(done), Some(row)) = (finished, row) {
        store(state, &done, &row).await;
    }
    Ok(ended)
}

/// `recording.ready` for the channel's webhook, if it has one.
pub fn ready_events(
    state: &AppState,
    call: &CallRecord,
    row: &NewRecording,
) -> Vec<db::NewWebhookEvent> {
    let has_webhook = state
        .config
        .channels
        .iter()
        .any(|c| c.id == call.channel_id && c.webhook.is_some());
    if !has_webhook {
        return Vec::new();
    }
    let payload = serde_json::json!({
        "type": "recording.ready",
        "data": {
            "recording_id": row.id,
            "call_id": row.call_id,
            "consultation_id": call.consultation_id,
            "duration_ms": row.duration_ms,
            "size_bytes": row.size_bytes,
            "sha256": row.sha256,
            "repaired": row.repaired,
            "audio_url": format!("/v1/recordings/{}/audio", row.id),
        }
    });
    vec![db::NewWebhookEvent {
        channel_id: call.channel_id.clone(),
        event_type: "recording.ready",
        payload_json: payload.to_string(),
    }]
}

async fn store(state: &AppState, done: &FinishedRecording, row: &db::NewRecording) {
    match state.recordings.put(&done.path, &row.storage_key).await {
        Ok(()) => tracing::info!(call = %done.call_id, recording = %row.id,
            seconds = row.duration_ms / 1000, "recording stored"),
        Err(e) => tracing::error!(call = %done.call_id, error = %e,
            "storing the recording failed; it stays in the spool until the next start"),
    }
}
