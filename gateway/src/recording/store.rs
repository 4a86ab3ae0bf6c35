//! Where finished recordings live. Local storage keeps them under the recordings directory,
//! `<dir>/<channel id>/<recording id>.wav`; the key stored in the database is the path below
//! `<dir>`, so the directory can move without touching rows.

use std::path::{Path, PathBuf};

use super::writer::RecordingError;

#[derive(Debug, Clone)]
pub enum RecordingStore {
    Local { dir: PathBuf },
}

impl RecordingStore {
    pub fn local(dir: impl Into<PathBuf>) -> RecordingStore {
        RecordingStore::Local { dir: dir.into() }
    }

    /// Calls in progress and finished files not yet stored.
    pub fn spool_dir(&self) -> PathBuf {
        match self {
            RecordingStore::Local { dir } => dir.join("spool"),
        }
    }

    /// The key of a recording: channel first, so one channel's recordings sit together.
    pub fn key_for(channel_id: &str, recording_id: &str) -> String {
        format!("{channel_id}/{recording_id}.wav")
    }

    /// Moves a finished spool file to its key (a rename: same filesystem, atomic).
    pub async fn put(&self, file: &Path, key: &str) -> Result<(), RecordingError> {
        match self {
            RecordingStore::Local { dir } => {
                let target = dir.join(key);
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(|source| {
                        RecordingError::Io {
                            path: parent.to_path_buf(),
                            source,
                        }
                    })?;
                }
                tokio::fs::rename(file, &target)
                    .await
                    .map_err(|source| RecordingError::Io {
                        path: file.to_path_buf(),
                        source,
                    })
            }
        }
    }

    /// The local path of a stored recording.
    pub fn local_path(&self, key: &str) -> PathBuf {
        match self {
            RecordingStore::Local { dir } => dir.join(key),
        }
    }
}
