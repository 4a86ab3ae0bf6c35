//! Where finished recordings live: under the recordings directory
//! (`<dir>/<channel id>/<recording id>.wav`), or in an S3-compatible bucket under the same key.
//! Calls in progress are always written to the local spool first (`<dir>/spool/`); a
//! finished file is moved (local rename, atomic) or uploaded (then removed from the spool).
//! The key stored in the database is the same either way.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, PutPayload};

use super::writer::RecordingError;
use crate::config::{RecordingsConfig, S3Config};

#[derive(Debug, Clone)]
pub enum RecordingStore {
    Local {
        dir: PathBuf,
    },
    S3 {
        spool: PathBuf,
        bucket: String,
        store: Arc<dyn ObjectStore>,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn s3_err(key: &str, e: object_store::Error) -> RecordingError {
    RecordingError::Io {
        path: PathBuf::from(key),
        source: std::io::Error::other(e.to_string()),
    }
}

impl RecordingStore {
    pub fn local(dir: impl Into<PathBuf>) -> RecordingStore {
        RecordingStore::Local { dir: dir.into() }
    }

    pub fn from_config(cfg: &RecordingsConfig) -> Result<RecordingStore, RecordingError> {
        match &cfg.s3 {
            None => Ok(RecordingStore::local(&cfg.dir)),
            Some(s3) => RecordingStore::s3(&cfg.dir, s3),
        }
    }

    fn s3(dir: &Path, s3: &S3Config) -> Result<RecordingStore, RecordingError> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(&s3.secret_access_key);
        if let Some(endpoint) = &s3.endpoint {
            // A self-hosted endpoint: path-style requests, plain HTTP allowed when asked for.
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = b.build().map_err(|e| s3_err(&s3.bucket, e))?;
        Ok(RecordingStore::S3 {
            spool: dir.join("spool"),
            bucket: s3.bucket.clone(),
            store: Arc::new(store),
        })
    }

    /// Calls in progress and finished files not yet stored.
    pub fn spool_dir(&self) -> PathBuf {
        match self {
            RecordingStore::Local { dir } => dir.join("spool"),
            RecordingStore::S3 { spool, .. } => spool.clone(),
        }
    }

    /// The key of a recording: channel first, so one channel's recordings sit together.
    pub fn key_for(channel_id: &str, recording_id: &str) -> String {
        format!("{channel_id}/{recording_id}.wav")
    }

    /// Moves a finished spool file to its key.
    pub async fn put(&self, file: &Path, key: &str) -> Result<(), RecordingError> {
        match self {
            RecordingStore::Local { dir } => {
                let target = dir.join(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(io(parent))?;
                }
                tokio::fs::rename(file, &target).await.map_err(io(file))
            }
            RecordingStore::S3 { store, .. } => {
                let bytes = tokio::fs::read(file).await.map_err(io(file))?;
                store
                    .put(
                        &object_store::path::Path::from(key),
                        PutPayload::from(bytes),
                    )
                    .await
                    .map_err(|e| s3_err(key, e))?;
                // Stored: the spool copy is no longer needed.
                tokio::fs::remove_file(file).await.map_err(io(file))
            }
        }
    }

    /// The size of a stored recording.
    pub async fn size(&self, key: &str) -> Result<u64, RecordingError> {
        match self {
            RecordingStore::Local { dir } => {
                let path = dir.join(key);
                Ok(tokio::fs::metadata(&path).await.map_err(io(&path))?.len())
            }
            RecordingStore::S3 { store, .. } => Ok(store
                .head(&object_store::path::Path::from(key))
                .await
                .map_err(|e| s3_err(key, e))?
                .size),
        }
    }

    /// Bytes `range` of a stored recording.
    pub async fn read_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<bytes::Bytes, RecordingError> {
        match self {
            RecordingStore::Local { dir } => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let path = dir.join(key);
                let mut file = tokio::fs::File::open(&path).await.map_err(io(&path))?;
                file.seek(std::io::SeekFrom::Start(range.start))
                    .await
                    .map_err(io(&path))?;
                let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
                let mut buf = vec![0u8; len];
                file.read_exact(&mut buf).await.map_err(io(&path))?;
                Ok(bytes::Bytes::from(buf))
            }
            RecordingStore::S3 { store, .. } => store
                .get_range(&object_store::path::Path::from(key), range)
                .await
                .map_err(|e| s3_err(key, e)),
        }
    }

    /// A whole stored recording.
    pub async fn read_all(&self, key: &str) -> Result<bytes::Bytes, RecordingError> {
        let size = self.size(key).await?;
        self.read_range(key, 0..size).await
    }

    /// The local path of a stored recording (local storage only).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match self {
            RecordingStore::Local { dir } => Some(dir.join(key)),
            RecordingStore::S3 { .. } => None,
        }
    }

    /// Where recordings go, for logs.
    pub fn describe(&self) -> String {
        match self {
            RecordingStore::Local { dir } => dir.display().to_string(),
            RecordingStore::S3 { bucket, .. } => format!("s3://{bucket}"),
        }
    }
}
