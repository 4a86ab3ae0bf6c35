//! The admin HTTP API's JSON bodies (`/v1/calls`, `/v1/recordings`). Errors are
//! `{code, message}`; lists are pages with an opaque cursor for the next one.

use serde::{Deserialize, Serialize};

/// One page of a list, newest first. Pass `next_cursor` as `cursor` for the next page; it is
/// absent on the last page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A call detail record: one phone call through a trunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDetail {
    pub id: String,
    pub consultation_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub from_number: String,
    pub to_number: String,
    pub trunk_id: String,
    pub started_at_ms: i64,
    pub answered_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    /// Answered duration rounded up to the whole second.
    pub billable_seconds: i64,
    /// Started minutes × the channel's per-minute rate, in minor units of `currency`.
    pub charge_minor: i64,
    pub currency: String,
    pub end_reason: Option<String>,
    /// `customer`, `system` or a manager id.
    pub ended_by: Option<String>,
    pub missed_reason: Option<String>,
    /// Managers who took part, in order of joining.
    pub manager_ids: Vec<String>,
    pub recording_id: Option<String>,
}

/// A phone call's recording: WAV, 8 kHz, left channel the customer, right the managers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    pub id: String,
    pub call_id: String,
    pub consultation_id: String,
    pub direction: String,
    pub from_number: String,
    pub to_number: String,
    pub manager_ids: Vec<String>,
    pub content_type: String,
    pub sample_rate_hz: i64,
    pub channels: i64,
    pub duration_ms: i64,
    pub size_bytes: i64,
    /// Lowercase hex SHA-256 of the file as served by `audio_url`.
    pub sha256: String,
    /// Recovered after a crash: it ends where the last write before the crash did.
    pub repaired: bool,
    pub started_at_ms: i64,
    /// `/v1/recordings/{id}/audio` (HTTP Range supported).
    pub audio_url: String,
}

/// One speaker's uninterrupted stretch in a transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptTurn {
    /// `customer` (the recording's left channel) or `manager` (the right one).
    pub speaker: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// A recording's transcript: both channels transcribed apart and merged by time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptInfo {
    pub recording_id: String,
    /// The language asked for: `auto`, `ko` or `en`.
    pub language: String,
    pub turns: Vec<TranscriptTurn>,
    /// Audio the recognizer ran on (speech only) and the time it took, in milliseconds.
    pub speech_ms: i64,
    pub processing_ms: i64,
    pub created_at_ms: i64,
}
