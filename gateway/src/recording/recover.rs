//! At start: recordings a crash left in the spool. A `.part` (the call was still running) is
//! cut to its last whole frame, given its real header, synced and renamed like a normal
//! finish; then every finished file in the spool is matched with its call:
//! - the call already has its recording row (the crash came between commit and storing): the
//!   file is stored under that row's key;
//! - the call is still open (the gateway died during it): it is ended where the recording
//!   ends, reason `gateway_restarted`, with the recording and its transcription job;
//! - the call ended without a recording row: the row and job are added.
//!
//! Files that are not ours are left alone and reported.

use std::path::Path;

use media::wav::{self, WavFormat};
use tokio::io::AsyncReadExt;

use super::writer::{finish_file, finished_path, hash_file, FinishedRecording, RecordingError};
use crate::state::AppState;

/// What recovery did, for the log and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// `.part` files made whole.
    pub repaired: Vec<String>,
    /// Recordings stored (call ids).
    pub stored: Vec<String>,
    /// Files left in the spool, with why.
    pub skipped: Vec<(String, String)>,
}

pub async fn recover(state: &AppState) -> Result<Recovered, RecordingError> {
    let spool = state.recordings.spool_dir();
    let mut out = Recovered::default();
    let mut entries = match tokio::fs::read_dir(&spool).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(RecordingError::Io {
                path: spool,
                source,
            })
        }
    };
    let mut names = Vec::new();
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|source| RecordingError::Io {
            path: spool.clone(),
            source,
        })?
    {
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    // Parts first, so a repaired part is picked up as a finished file below.
    for name in &names {
        let Some(call_id) = name.strip_suffix(".wav.part") else {
            continue;
        };
        match repair_part(&spool, call_id).await {
            Ok(()) => out.repaired.push(call_id.to_string()),
            Err(why) => out.skipped.push((name.clone(), why)),
        }
    }
    let mut finished: Vec<String> = out.repaired.clone();
    finished.extend(
        names
            .iter()
            .filter_map(|n| n.strip_suffix(".wav"))
            .map(str::to_string),
    );
    for call_id in finished {
        let repaired = out.repaired.contains(&call_id);
        match store_finished(state, &spool, &call_id, repaired).await {
            Ok(()) => out.stored.push(call_id),
            Err(why) => out.skipped.push((format!("{call_id}.wav"), why)),
        }
    }
    Ok(out)
}

/// Makes `<call id>.wav.part` a valid, finished `<call id>.wav`.
async fn repair_part(spool: &Path, call_id: &str) -> Result<(), String> {
    let format = WavFormat::CALL_STEREO_8K;
    let path = super::writer::part_path(spool, call_id);
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .await
        .map_err(|e| e.to_string())?;
    let file_len = file.metadata().await.map_err(|e| e.to_string())?.len();
    let mut head = vec![0u8; wav::HEADER_BYTES];
    let n = read_up_to(&mut file, &mut head)
        .await
        .map_err(|e| e.to_string())?;
    let data_len =
        wav::repaired_data_len(format, &head[..n], file_len).map_err(|e| e.to_string())?;
    file.set_len(wav::HEADER_BYTES as u64 + data_len)
        .await
        .map_err(|e| e.to_string())?;
    finish_file(&mut file, &path, format, data_len)
        .await
        .map_err(|e| e.to_string())?;
    drop(file);
    tokio::fs::rename(&path, finished_path(spool, call_id))
        .await
        .map_err(|e| e.to_string())?;
    tracing::warn!(
        call = call_id,
        seconds = format.duration_ms(data_len) / 1000,
        "recording repaired after a crash"
    );
    Ok(())
}

async fn read_up_to(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

async fn store_finished(
    state: &AppState,
    spool: &Path,
    call_id: &str,
    repaired: bool,
) -> Result<(), String> {
    let path = finished_path(spool, call_id);
    let format = WavFormat::CALL_STEREO_8K;
    let mut head = vec![0u8; wav::HEADER_BYTES];
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| e.to_string())?;
    let n = read_up_to(&mut file, &mut head)
        .await
        .map_err(|e| e.to_string())?;
    let file_len = file.metadata().await.map_err(|e| e.to_string())?.len();
    drop(file);
    let data_len =
        wav::repaired_data_len(format, &head[..n], file_len).map_err(|e| e.to_string())?;
    let (size_bytes, sha256) = hash_file(&path).await.map_err(|e| e.to_string())?;
    let done = FinishedRecording {
        call_id: call_id.to_string(),
        path: path.clone(),
        format,
        data_len,
        size_bytes,
        sha256,
        repaired,
    };
    let db = &state.db;
    let call = db
        .call_record(call_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no call with this id".to_string())?;
    if let Some(row) = db
        .recording_for_call(call_id)
        .await
        .map_err(|e| e.to_string())?
    {
        return state
            .recordings
            .put(&path, &row.storage_key)
            .await
            .map_err(|e| e.to_string());
    }
    let row = super::new_recording(&call, &done, crate::sip_service::service::unix_ms());
    if call.ended_at_ms.is_none() {
        // The call ends where its recording does: that is the last moment known to be live.
        let ended_at_ms = row.started_at_ms.saturating_add(row.duration_ms);
        super::end_call(
            state,
            &call,
            "gateway_restarted",
            Some("system"),
            Some(done),
            ended_at_ms,
        )
        .await
        .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let events = super::ready_events(state, &call, &row);
    db.add_recording(&row, &events, crate::sip_service::service::unix_ms())
        .await
        .map_err(|e| e.to_string())?;
    state
        .recordings
        .put(&path, &row.storage_key)
        .await
        .map_err(|e| e.to_string())
}
