//! The transcription worker's loop, independent of the recognizer: claim a due job (with a
//! lease, renewed while the work runs), read the recording from storage, split its channels
//! (left the customer, right the managers), hand them to a [`CallTranscriber`] on a blocking
//! thread, and store the transcript with its `transcript.ready` event (one transaction, only
//! while the lease is held). A failure is retried with backoff, then given up.
//!
//! The `transcribe` crate provides the whisper.cpp-backed [`CallTranscriber`] and runs this
//! loop in its own process (`transcribe worker`), so recognition never competes with the
//! gateway's calls for a runtime thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use schemas::api::TranscriptTurn;

use crate::db::{ClaimedJob, Db, NewTranscript, NewWebhookEvent};
use crate::recording::RecordingStore;

/// What a recognizer made of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTranscript {
    pub turns: Vec<TranscriptTurn>,
    /// Audio the recognizer really ran on (voice-gated), in milliseconds.
    pub speech_ms: i64,
}

/// Speech to text for a whole call. Runs on a blocking thread; may take seconds.
pub trait CallTranscriber: Send + Sync + 'static {
    /// `language`: `auto`, `ko` or `en` (the channel's setting).
    fn transcribe_call(
        &self,
        customer_8k: &[i16],
        managers_8k: &[i16],
        language: &str,
    ) -> Result<CallTranscript, String>;
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Names this worker in leases.
    pub worker_id: String,
    pub lease: Duration,
    /// How long to sleep when no job is due.
    pub idle_poll: Duration,
    /// After this many attempts a job is failed for good.
    pub max_attempts: i64,
    /// The first retry waits this long, each next one twice as long.
    pub first_retry: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            worker_id: format!("worker-{}", uuid::Uuid::new_v4()),
            lease: Duration::from_secs(120),
            idle_poll: Duration::from_secs(1),
            max_attempts: 5,
            first_retry: Duration::from_secs(30),
        }
    }
}

/// What the worker needs from the gateway's world.
pub struct WorkerContext<T: CallTranscriber> {
    pub db: Db,
    pub recordings: RecordingStore,
    pub transcriber: Arc<T>,
    /// Channels with a webhook: their transcripts are announced (`transcript.ready`).
    pub webhook_channels: Vec<String>,
    pub options: WorkerOptions,
}

/// How one job went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Done {
        recording_id: String,
    },
    Retry {
        recording_id: String,
        error: String,
    },
    Failed {
        recording_id: String,
        error: String,
    },
    /// The lease ran out and another worker has the job: nothing was written.
    LeaseLost {
        recording_id: String,
    },
}

fn unix_ms() -> i64 {
    crate::sip_service::service::unix_ms()
}

impl<T: CallTranscriber> WorkerContext<T> {
    /// Works until the queue is empty; the outcomes, in order (for `--once` and tests).
    pub async fn drain(&self) -> Result<Vec<JobOutcome>, crate::db::DbError> {
        let mut done = Vec::new();
        while let Some(job) = self.claim().await? {
            done.push(self.work(job).await?);
        }
        Ok(done)
    }

    /// Works forever.
    pub async fn run(&self) -> Result<(), crate::db::DbError> {
        loop {
            match self.claim().await? {
                Some(job) => {
                    let outcome = self.work(job).await?;
                    tracing::info!(?outcome, "transcription job");
                }
                None => tokio::time::sleep(self.options.idle_poll).await,
            }
        }
    }

    async fn claim(&self) -> Result<Option<ClaimedJob>, crate::db::DbError> {
        let lease_ms = i64::try_from(self.options.lease.as_millis()).unwrap_or(i64::MAX / 2);
        self.db
            .claim_transcription_job(&self.options.worker_id, unix_ms(), lease_ms)
            .await
    }

    async fn work(&self, job: ClaimedJob) -> Result<JobOutcome, crate::db::DbError> {
        let recording_id = job.recording_id.clone();
        let started = Instant::now();
        // Keep the lease while the recognizer runs; stop renewing when it is done.
        let renew = {
            let (db, id, worker) = (
                self.db.clone(),
                job.id.clone(),
                self.options.worker_id.clone(),
            );
            let lease = self.options.lease;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let until = unix_ms() + i64::try_from(lease.as_millis()).unwrap_or(0);
                    if !matches!(
                        db.renew_transcription_lease(&id, &worker, until).await,
                        Ok(true)
                    ) {
                        return;
                    }
                }
            })
        };
        let result = self.transcribe(&job).await;
        renew.abort();
        let worker = &self.options.worker_id;
        match result {
            Ok((t, language)) => {
                let turns_json = serde_json::to_string(&t.turns).unwrap_or_else(|_| "[]".into());
                let text = t
                    .turns
                    .iter()
                    .map(|turn| turn.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n");
                let processing_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
                let events = self.ready_event(&job, &t, &language);
                let stored = self
                    .db
                    .complete_transcription_job(
                        &job,
                        worker,
                        &NewTranscript {
                            language,
                            turns_json,
                            text,
                            speech_ms: t.speech_ms,
                            processing_ms,
                        },
                        &events,
                        unix_ms(),
                    )
                    .await;
                match stored {
                    Ok(_) => Ok(JobOutcome::Done { recording_id }),
                    Err(crate::db::DbError::Conflict(_)) => {
                        Ok(JobOutcome::LeaseLost { recording_id })
                    }
                    Err(e) => Err(e),
                }
            }
            Err(error) => {
                let retry_at = (job.attempts < self.options.max_attempts).then(|| {
                    let wait = self.options.first_retry.saturating_mul(
                        2u32.saturating_pow(
                            u32::try_from(job.attempts.saturating_sub(1))
                                .unwrap_or(16)
                                .min(16),
                        ),
                    );
                    unix_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4)
                });
                tracing::warn!(recording = %recording_id, attempt = job.attempts, error = %error,
                    "transcription failed");
                let held = self
                    .db
                    .fail_transcription_job(&job.id, worker, &error, retry_at, unix_ms())
                    .await?;
                Ok(match (held, retry_at) {
                    (false, _) => JobOutcome::LeaseLost { recording_id },
                    (true, Some(_)) => JobOutcome::Retry {
                        recording_id,
                        error,
                    },
                    (true, None) => JobOutcome::Failed {
                        recording_id,
                        error,
                    },
                })
            }
        }
    }

    /// Reads and splits the recording, then runs the recognizer off the runtime.
    async fn transcribe(&self, job: &ClaimedJob) -> Result<(CallTranscript, String), String> {
        let recording = self
            .db
            .recording(&job.recording_id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the recording row is gone")?;
        let language = self
            .db
            .channel(&job.channel_id)
            .await
            .map_err(|e| e.to_string())?
            .map_or("auto".to_string(), |c| {
                c.transcription_language.as_str().to_string()
            });
        let bytes = self
            .recordings
            .read_all(&recording.storage_key)
            .await
            .map_err(|e| e.to_string())?;
        let (customer, managers) = split_stereo(&bytes)?;
        let transcriber = self.transcriber.clone();
        let lang = language.clone();
        let t = tokio::task::spawn_blocking(move || {
            transcriber.transcribe_call(&customer, &managers, &lang)
        })
        .await
        .map_err(|e| format!("the recognizer stopped: {e}"))??;
        Ok((t, language))
    }

    fn ready_event(
        &self,
        job: &ClaimedJob,
        t: &CallTranscript,
        language: &str,
    ) -> Vec<NewWebhookEvent> {
        if !self.webhook_channels.contains(&job.channel_id) {
            return Vec::new();
        }
        let payload = serde_json::json!({
            "type": "transcript.ready",
            "data": {
                "recording_id": job.recording_id,
                "language": language,
                "turns": t.turns.len(),
                "transcript_url": format!("/v1/recordings/{}/transcript", job.recording_id),
            }
        });
        vec![NewWebhookEvent {
            channel_id: job.channel_id.clone(),
            event_type: "transcript.ready",
            payload_json: payload.to_string(),
        }]
    }
}

/// The two channels of a recording written by [`crate::recording`] (16-bit stereo WAV).
pub fn split_stereo(wav: &[u8]) -> Result<(Vec<i16>, Vec<i16>), String> {
    let format = media::wav::WavFormat::CALL_STEREO_8K;
    let data_len =
        media::wav::repaired_data_len(format, wav, wav.len() as u64).map_err(|e| e.to_string())?;
    let data = &wav[media::wav::HEADER_BYTES..media::wav::HEADER_BYTES + data_len as usize];
    let mut left = Vec::with_capacity(data.len() / 4);
    let mut right = Vec::with_capacity(data.len() / 4);
    for frame in data.chunks_exact(4) {
        left.push(i16::from_le_bytes([frame[0], frame[1]]));
        right.push(i16::from_le_bytes([frame[2], frame[3]]));
    }
    Ok((left, right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_splits_into_customer_and_managers() {
        let mut wav = media::wav::header(media::wav::WavFormat::CALL_STEREO_8K, 8).to_vec();
        media::wav::interleave_stereo(&[1, -2], &[300, 400], &mut wav);
        assert_eq!(split_stereo(&wav), Ok((vec![1, -2], vec![300, 400])));
        assert!(split_stereo(b"RIFF").is_err());
    }
}
