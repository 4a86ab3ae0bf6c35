//! One call's recording as it happens: the call's actor hands each tick's stereo audio to a
//! writer task through a bounded queue (never waiting: a full queue drops the chunk and counts
//! it), the writer appends to `<spool>/<call id>.wav.part` about once a second, and at the end
//! the header gets its sizes, the file is synced, renamed to `<call id>.wav` (atomic) and
//! hashed. A crash in between leaves a `.part` with at most the last second missing, which
//! [`super::recover`] repairs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use media::wav::{self, WavFormat};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// About 5 s of 20 ms chunks: the writer only falls that far behind if the disk stalls.
const QUEUE_CHUNKS: usize = 256;
/// Written at least this often, so a crash loses at most this much.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the recording writer stopped unexpectedly")]
    WriterGone,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A finished recording file in the spool, not yet in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRecording {
    pub call_id: String,
    pub path: PathBuf,
    pub format: WavFormat,
    pub data_len: u64,
    pub size_bytes: u64,
    pub sha256: String,
    /// True when recovered from a `.part` after a crash.
    pub repaired: bool,
}

impl FinishedRecording {
    pub fn duration_ms(&self) -> u64 {
        self.format.duration_ms(self.data_len)
    }
}

/// The call's handle on its recording.
pub struct Recorder {
    tx: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<Result<FinishedRecording, RecordingError>>,
    dropped_chunks: u64,
}

/// `<spool>/<call id>.wav.part` while recording, `<spool>/<call id>.wav` once finished.
pub fn part_path(spool: &Path, call_id: &str) -> PathBuf {
    spool.join(format!("{call_id}.wav.part"))
}

pub fn finished_path(spool: &Path, call_id: &str) -> PathBuf {
    spool.join(format!("{call_id}.wav"))
}

impl Recorder {
    /// Creates the file with a provisional header and starts its writer.
    pub async fn start(spool: &Path, call_id: &str) -> Result<Recorder, RecordingError> {
        let format = WavFormat::CALL_STEREO_8K;
        tokio::fs::create_dir_all(spool)
            .await
            .map_err(io_err(spool))?;
        let path = part_path(spool, call_id);
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(io_err(&path))?;
        file.write_all(&wav::header(format, 0))
            .await
            .map_err(io_err(&path))?;
        let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
        let finished = finished_path(spool, call_id);
        let call_id = call_id.to_string();
        let task = tokio::spawn(write(file, path, finished, call_id, format, rx));
        Ok(Recorder {
            tx,
            task,
            dropped_chunks: 0,
        })
    }

    /// Queues audio without waiting; a chunk that does not fit is dropped and counted.
    pub fn push(&mut self, chunk: Vec<u8>) {
        if self.tx.try_send(chunk).is_err() {
            self.dropped_chunks += 1;
            if self.dropped_chunks == 1 {
                tracing::warn!("recording writer is behind: audio dropped from the recording");
            }
        }
    }

    pub fn dropped_chunks(&self) -> u64 {
        self.dropped_chunks
    }

    /// Ends the recording: the rest is written, the header finished, the file synced,
    /// renamed and hashed.
    pub async fn finish(self) -> Result<FinishedRecording, RecordingError> {
        drop(self.tx);
        self.task.await.map_err(|_| RecordingError::WriterGone)?
    }
}

async fn write(
    mut file: tokio::fs::File,
    path: PathBuf,
    finished: PathBuf,
    call_id: String,
    format: WavFormat,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> Result<FinishedRecording, RecordingError> {
    let mut pending: Vec<u8> = Vec::with_capacity(format.bytes_per_second() as usize);
    let mut data_len: u64 = 0;
    let mut flush_at = tokio::time::Instant::now() + FLUSH_INTERVAL;
    loop {
        let chunk = tokio::select! {
            c = rx.recv() => c,
            () = tokio::time::sleep_until(flush_at) => {
                flush_at += FLUSH_INTERVAL;
                if !pending.is_empty() {
                    file.write_all(&pending).await.map_err(io_err(&path))?;
                    file.flush().await.map_err(io_err(&path))?;
                    data_len += pending.len() as u64;
                    pending.clear();
                }
                continue;
            }
        };
        match chunk {
            Some(c) => pending.extend_from_slice(&c),
            None => break,
        }
    }
    file.write_all(&pending).await.map_err(io_err(&path))?;
    data_len += pending.len() as u64;
    finish_file(&mut file, &path, format, data_len).await?;
    drop(file);
    tokio::fs::rename(&path, &finished)
        .await
        .map_err(io_err(&path))?;
    let (size_bytes, sha256) = hash_file(&finished).await?;
    Ok(FinishedRecording {
        call_id,
        path: finished,
        format,
        data_len,
        size_bytes,
        sha256,
        repaired: false,
    })
}

/// Writes the final header for `data_len` bytes of audio and syncs the file to disk.
pub(super) async fn finish_file(
    file: &mut tokio::fs::File,
    path: &Path,
    format: WavFormat,
    data_len: u64,
) -> Result<(), RecordingError> {
    file.seek(std::io::SeekFrom::Start(0))
        .await
        .map_err(io_err(path))?;
    file.write_all(&wav::header(format, data_len))
        .await
        .map_err(io_err(path))?;
    file.flush().await.map_err(io_err(path))?;
    file.sync_all().await.map_err(io_err(path))
}

/// Size and lowercase hex SHA-256 of a file.
pub(super) async fn hash_file(path: &Path) -> Result<(u64, String), RecordingError> {
    let mut file = tokio::fs::File::open(path).await.map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_spool() -> PathBuf {
        std::env::temp_dir().join(format!("rec-test-{}", uuid::Uuid::new_v4()))
    }

    #[tokio::test]
    async fn a_finished_recording_is_a_valid_wav_with_its_hash() {
        let spool = temp_spool();
        let mut r = Recorder::start(&spool, "call-1").await.unwrap();
        assert!(part_path(&spool, "call-1").exists());
        for i in 0..100u8 {
            r.push(vec![i; 640]); // 100 ticks of 20 ms stereo = 2 s
        }
        let done = r.finish().await.unwrap();
        assert_eq!(done.path, finished_path(&spool, "call-1"));
        assert!(!part_path(&spool, "call-1").exists());
        assert_eq!(done.data_len, 64_000);
        assert_eq!(done.duration_ms(), 2000);
        let bytes = std::fs::read(&done.path).unwrap();
        assert_eq!(bytes.len() as u64, done.size_bytes);
        assert_eq!(
            &bytes[..44],
            &wav::header(WavFormat::CALL_STEREO_8K, 64_000)
        );
        assert_eq!(bytes[44], 0);
        assert_eq!(bytes[44 + 99 * 640], 99);
        assert_eq!(done.sha256, hex::encode(Sha256::digest(&bytes)));
        std::fs::remove_dir_all(&spool).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn audio_reaches_the_disk_within_a_second() {
        let spool = temp_spool();
        let mut r = Recorder::start(&spool, "call-2").await.unwrap();
        r.push(vec![7; 640]);
        let part = part_path(&spool, "call-2");
        // Virtual time: the writer's flush timer fires, the file grows while the call goes on.
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if std::fs::metadata(&part).unwrap().len() == 44 + 640 {
                break;
            }
        }
        assert_eq!(std::fs::metadata(&part).unwrap().len(), 44 + 640);
        r.finish().await.unwrap();
        std::fs::remove_dir_all(&spool).unwrap();
    }
}
