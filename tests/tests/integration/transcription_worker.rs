//! The transcription worker's job loop on a real gateway database and recording: the channels
//! reach the recognizer apart (customer left, manager right), the transcript is stored once
//! and served, failures are retried. The recognizer here tells tones apart (the calls carry a
//! 1 kHz caller and a 440 Hz manager); whisper itself is tested in the `transcribe` crate.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway::transcription::{
    CallTranscriber, CallTranscript, JobOutcome, WorkerContext, WorkerOptions,
};
use media::tone::ToneDetector;
use schemas::api::TranscriptTurn;

use crate::admin_api::{get, recorded_call};
use crate::harness::{Gateway, GatewayOptions};

/// "Transcribes" each channel as the tone it mostly carries; fails its first `fail_first`
/// calls.
struct ToneNamer {
    fail_first: u32,
    calls: AtomicU32,
}

fn dominant(pcm: &[i16]) -> Option<&'static str> {
    let frames = |hz| {
        let d = ToneDetector::new(hz, 8000, 160);
        pcm.chunks_exact(160).filter(|f| d.detect(f)).count()
    };
    let (high, low) = (frames(1000.0), frames(440.0));
    match (high, low) {
        (h, l) if h > l && h >= 10 => Some("one kilohertz"),
        (h, l) if l > h && l >= 10 => Some("four forty"),
        _ => None,
    }
}

impl CallTranscriber for ToneNamer {
    fn transcribe_call(
        &self,
        customer_8k: &[i16],
        managers_8k: &[i16],
        language: &str,
    ) -> Result<CallTranscript, String> {
        if self.calls.fetch_add(1, Ordering::Relaxed) < self.fail_first {
            return Err("recognizer busy".into());
        }
        assert_eq!(language, "ko", "the demo channel's language");
        let mut turns = Vec::new();
        for (speaker, pcm) in [("customer", customer_8k), ("manager", managers_8k)] {
            if let Some(text) = dominant(pcm) {
                turns.push(TranscriptTurn {
                    speaker: speaker.into(),
                    start_ms: 0,
                    end_ms: pcm.len() as i64 / 8,
                    text: text.into(),
                });
            }
        }
        Ok(CallTranscript {
            turns,
            speech_ms: customer_8k.len() as i64 / 8,
        })
    }
}

fn worker(gw: &Gateway, fail_first: u32) -> WorkerContext<ToneNamer> {
    WorkerContext {
        db: gw.db().clone(),
        recordings: gw.server.state.recordings.clone(),
        transcriber: Arc::new(ToneNamer {
            fail_first,
            calls: AtomicU32::new(0),
        }),
        webhook_channels: vec!["demo".into()],
        options: WorkerOptions {
            first_retry: Duration::ZERO,
            ..WorkerOptions::default()
        },
    }
}

#[tokio::test]
async fn the_worker_transcribes_each_channel_apart_once_and_retries_failures() {
    let gw = Gateway::start(GatewayOptions::default())
        .await
        .expect("gateway");
    let call = recorded_call(&gw, "asr-1").await;
    let rec = gw
        .db()
        .recording_for_call(&call)
        .await
        .unwrap()
        .expect("recording");

    // First attempt fails and is queued again at once; the second does the work.
    let w = worker(&gw, 1);
    let outcomes = w.drain().await.unwrap();
    assert!(
        matches!(&outcomes[..], [JobOutcome::Retry { .. }, JobOutcome::Done { recording_id }] if *recording_id == rec.id),
        "{outcomes:?}"
    );
    assert_eq!(
        gw.db().transcription_job_state(&rec.id).await.unwrap(),
        Some(("done".to_string(), 2))
    );
    // Nothing left: a second worker finds no job, and there is one transcript.
    assert!(worker(&gw, 0).drain().await.unwrap().is_empty());
    let t = gw
        .db()
        .transcript_for_recording(&rec.id)
        .await
        .unwrap()
        .expect("transcript");
    assert_eq!(t.language, "ko");

    // The caller's tone came from the left channel, the manager's from the right.
    let r = get(
        gw.http,
        &format!("/v1/recordings/{}/transcript?format=text", rec.id),
        Some("demo-admin"),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "[00:00] Customer: one kilohertz\n[00:00] Manager: four forty\n"
    );
    // transcript.ready was written with it.
    let events = gw.db().webhook_events("demo").await.unwrap();
    assert!(events.iter().any(|e| e.event_type == "transcript.ready"));
}
