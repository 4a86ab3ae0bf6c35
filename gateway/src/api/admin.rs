//! The admin API: a channel's call detail records and recordings. Every route needs an admin
//! token; the token's channel bounds everything, so an id of another channel is 404, exactly
//! like an id that does not exist.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use schemas::api::{CallDetail, Page, RecordingInfo, TranscriptInfo, TranscriptTurn};

use super::range::{self, RangeReply};
use super::{auth, ApiError};
use crate::db::{CallRecord, ListFilter, Manager, Recording, Role};
use crate::state::AppState;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/calls", get(list_calls))
        .route("/v1/calls/{id}", get(get_call))
        .route("/v1/recordings", get(list_recordings))
        .route("/v1/recordings/{id}", get(get_recording))
        .route("/v1/recordings/{id}/audio", get(recording_audio))
        .route("/v1/recordings/{id}/transcript", get(recording_transcript))
}

async fn admin(state: &AppState, headers: &HeaderMap) -> Result<Manager, ApiError> {
    let who = auth::authenticate(state, headers, None).await?;
    if who.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok(who)
}

/// List parameters as sent; parsed by hand so a bad one gets a JSON error naming it. An
/// empty value counts as absent.
#[derive(Debug, Default)]
struct ListParams {
    from_ms: Option<String>,
    to_ms: Option<String>,
    number: Option<String>,
    manager_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The query string as name/value pairs: never rejected by the extractor itself (a
/// duplicate or unknown name is judged here, with a JSON error).
type QueryPairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

impl ListParams {
    fn from_query(query: QueryPairs) -> Result<ListParams, ApiError> {
        let Query(pairs) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let mut p = ListParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "from_ms" => &mut p.from_ms,
                "to_ms" => &mut p.to_ms,
                "number" => &mut p.number,
                "manager_id" => &mut p.manager_id,
                "limit" => &mut p.limit,
                "cursor" => &mut p.cursor,
                // Unknown parameters are ignored, as HTTP APIs usually do.
                _ => continue,
            };
            if slot.is_some() {
                return Err(bad(&name, "given more than once"));
            }
            *slot = Some(value).filter(|v| !v.trim().is_empty());
        }
        Ok(p)
    }
}

/// A path id; one that cannot even be decoded names nothing here.
fn path_id(
    path: Result<Path<String>, PathRejection>,
    what: &'static str,
) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFound(what))
}

fn bad(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("{field}: {message}"))
}

fn parse_int(field: &str, value: &Option<String>) -> Result<Option<i64>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| bad(field, "must be an integer"))
        })
        .transpose()
}

impl ListParams {
    fn filter(&self) -> Result<ListFilter, ApiError> {
        let limit = parse_int("limit", &self.limit)?.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(bad("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        let number_e164 = self
            .number
            .as_deref()
            .map(|n| crate::phone_number::normalize_e164(n).map_err(|e| bad("number", e)))
            .transpose()?;
        let before = self
            .cursor
            .as_deref()
            .map(|c| {
                c.split_once('_')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                    .filter(|(_, id)| !id.is_empty())
                    .ok_or_else(|| bad("cursor", "not a cursor this API returned"))
            })
            .transpose()?;
        Ok(ListFilter {
            from_ms: parse_int("from_ms", &self.from_ms)?,
            to_ms: parse_int("to_ms", &self.to_ms)?,
            number_e164,
            manager_id: self.manager_id.clone(),
            before,
            limit: limit + 1, // one more tells whether there is a next page
        })
    }
}

/// The page of `rows` (fetched with one extra) and its cursor.
fn page<T, U>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (i64, String),
    map: impl Fn(T) -> U,
) -> Page<U> {
    let limit = usize::try_from(limit).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next_cursor = more
        .then(|| rows.last().map(&key))
        .flatten()
        .map(|(at, id)| format!("{at}_{id}"));
    Page {
        items: rows.into_iter().map(map).collect(),
        next_cursor,
    }
}

fn internal(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Internal(e.into())
}

async fn call_detail(state: &AppState, c: CallRecord) -> Result<CallDetail, ApiError> {
    let manager_ids = state
        .db
        .meet_manager_ids(&c.meet_id)
        .await
        .map_err(internal)?;
    let recording_id = state
        .db
        .recording_for_call(&c.id)
        .await
        .map_err(internal)?
        .map(|r| r.id);
    Ok(CallDetail {
        id: c.id,
        consultation_id: c.consultation_id,
        direction: c.direction.as_str().to_string(),
        from_number: c.from_number,
        to_number: c.to_number,
        trunk_id: c.trunk_id,
        started_at_ms: c.started_at_ms,
        answered_at_ms: c.answered_at_ms,
        ended_at_ms: c.ended_at_ms,
        billable_seconds: c.billable_seconds,
        charge_minor: c.charge_minor,
        currency: c.currency,
        end_reason: c.end_reason,
        ended_by: c.ended_by,
        missed_reason: c.missed_reason.map(|m| m.as_str().to_string()),
        manager_ids,
        recording_id,
    })
}

async fn recording_info(
    state: &AppState,
    r: Recording,
    c: &CallRecord,
) -> Result<RecordingInfo, ApiError> {
    let manager_ids = state
        .db
        .meet_manager_ids(&c.meet_id)
        .await
        .map_err(internal)?;
    Ok(RecordingInfo {
        audio_url: format!("/v1/recordings/{}/audio", r.id),
        id: r.id,
        call_id: r.call_id,
        consultation_id: r.consultation_id,
        direction: c.direction.as_str().to_string(),
        from_number: c.from_number.clone(),
        to_number: c.to_number.clone(),
        manager_ids,
        content_type: r.content_type,
        sample_rate_hz: r.sample_rate_hz,
        channels: r.channels,
        duration_ms: r.duration_ms,
        size_bytes: r.size_bytes,
        sha256: r.sha256,
        repaired: r.repaired,
        started_at_ms: r.started_at_ms,
    })
}

async fn list_calls(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Json<Page<CallDetail>>, ApiError> {
    let who = admin(&state, &headers).await?;
    let filter = ListParams::from_query(query)?.filter()?;
    let rows = state
        .db
        .list_calls(&who.channel_id, &filter)
        .await
        .map_err(internal)?;
    let p = page(
        rows,
        filter.limit - 1,
        |c| (c.started_at_ms, c.id.clone()),
        |c| c,
    );
    let mut items = Vec::with_capacity(p.items.len());
    for c in p.items {
        items.push(call_detail(&state, c).await?);
    }
    Ok(Json(Page {
        items,
        next_cursor: p.next_cursor,
    }))
}

async fn get_call(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CallDetail>, ApiError> {
    let who = admin(&state, &headers).await?;
    let id = path_id(path, "call")?;
    let call = state
        .db
        .channel_call(&who.channel_id, &id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound("call"))?;
    Ok(Json(call_detail(&state, call).await?))
}

async fn list_recordings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: QueryPairs,
) -> Result<Json<Page<RecordingInfo>>, ApiError> {
    let who = admin(&state, &headers).await?;
    let filter = ListParams::from_query(query)?.filter()?;
    let rows = state
        .db
        .list_recordings(&who.channel_id, &filter)
        .await
        .map_err(internal)?;
    let p = page(
        rows,
        filter.limit - 1,
        |(r, _)| (r.started_at_ms, r.id.clone()),
        |x| x,
    );
    let mut items = Vec::with_capacity(p.items.len());
    for (r, c) in p.items {
        items.push(recording_info(&state, r, &c).await?);
    }
    Ok(Json(Page {
        items,
        next_cursor: p.next_cursor,
    }))
}

async fn channel_recording(
    state: &AppState,
    who: &Manager,
    id: &str,
) -> Result<(Recording, CallRecord), ApiError> {
    let r = state
        .db
        .channel_recording(&who.channel_id, id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound("recording"))?;
    let c = state
        .db
        .call_record(&r.call_id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound("recording"))?;
    Ok((r, c))
}

async fn get_recording(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<RecordingInfo>, ApiError> {
    let who = admin(&state, &headers).await?;
    let id = path_id(path, "recording")?;
    let (r, c) = channel_recording(&state, &who, &id).await?;
    Ok(Json(recording_info(&state, r, &c).await?))
}

/// Reads at most 1 MiB at a time: a long recording never sits in memory whole, and a
/// recording in S3 costs one ranged GET per MiB, not per small buffer.
const AUDIO_CHUNK_BYTES: u64 = 1024 * 1024;

async fn recording_audio(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let who = admin(&state, &headers).await?;
    let id = path_id(path, "recording")?;
    let (r, _) = channel_recording(&state, &who, &id).await?;
    let size = state
        .recordings
        .size(&r.storage_key)
        .await
        .map_err(internal)?;
    let etag = format!("\"{}\"", r.sha256);
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    // If-Range (RFC 9110 §13.1.5): a range only applies to the representation it was for.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v == etag);
    let reply = if if_range_ok {
        range::resolve(range_header, size)
    } else {
        RangeReply::Whole
    };
    let (status, start, len) = match reply {
        RangeReply::Whole => (StatusCode::OK, 0, size),
        RangeReply::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        RangeReply::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { size }),
    };
    let store = state.recordings.clone();
    let key = r.storage_key.clone();
    let end = start + len;
    let stream = futures_util::stream::try_unfold(start, move |at| {
        let (store, key) = (store.clone(), key.clone());
        async move {
            if at >= end {
                return Ok::<_, std::io::Error>(None);
            }
            let next = (at + AUDIO_CHUNK_BYTES).min(end);
            let chunk = store
                .read_range(&key, at..next)
                .await
                .map_err(std::io::Error::other)?;
            Ok(Some((chunk, next)))
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let value = |s: String| HeaderValue::from_str(&s).map_err(internal);
    h.insert(header::CONTENT_TYPE, value(r.content_type.clone())?);
    h.insert(header::CONTENT_LENGTH, value(len.to_string())?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, value(etag)?);
    h.insert(
        header::CONTENT_DISPOSITION,
        value(format!("inline; filename=\"{}.wav\"", r.id))?,
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            value(format!("bytes {start}-{}/{size}", start + len - 1))?,
        );
    }
    Ok(resp.into_response())
}

/// The transcript as JSON (default), plain text (`format=text` or `Accept: text/plain`) or
/// WebVTT (`format=vtt` or `Accept: text/vtt`). 404 until the worker has made it.
async fn recording_transcript(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let who = admin(&state, &headers).await?;
    let id = path_id(path, "recording")?;
    let Query(pairs) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (r, _) = channel_recording(&state, &who, &id).await?;
    let t = state
        .db
        .transcript_for_recording(&r.id)
        .await
        .map_err(internal)?
        .ok_or(ApiError::NotFound("transcript"))?;
    let turns: Vec<TranscriptTurn> = serde_json::from_str(&t.turns_json).map_err(internal)?;
    let format = pairs
        .iter()
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.as_str());
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let wants = match format {
        Some("json") => "json",
        Some("text") => "text",
        Some("vtt") => "vtt",
        Some(other) if !other.is_empty() => {
            return Err(bad("format", "must be json, text or vtt"));
        }
        _ if accept.contains("text/vtt") => "vtt",
        _ if accept.contains("text/plain") => "text",
        _ => "json",
    };
    Ok(match wants {
        "text" => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            super::transcript_format::plain_text(&turns),
        )
            .into_response(),
        "vtt" => (
            [(header::CONTENT_TYPE, "text/vtt; charset=utf-8")],
            super::transcript_format::webvtt(&turns),
        )
            .into_response(),
        _ => Json(TranscriptInfo {
            recording_id: r.id,
            language: t.language,
            turns,
            speech_ms: t.speech_ms,
            processing_ms: t.processing_ms,
            created_at_ms: t.created_at_ms,
        })
        .into_response(),
    })
}
