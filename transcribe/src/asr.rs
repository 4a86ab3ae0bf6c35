//! Speech to text with whisper.cpp (through whisper-rs), gated by the voice-activity detector.
//!
//! Only speech reaches whisper: the regions [`crate::vad`] finds are cut out of the call audio
//! and packed one after another (with a short silence between them) into chunks, whisper runs
//! once per chunk, and each segment's times are mapped back to the original recording. Silence
//! therefore costs nothing, and whisper gets no chance to invent words in it.
//!
//! The packing and time mapping are pure ([`plan_chunks`], [`Chunk::to_source_segments`]); only
//! [`Transcriber`] calls into whisper.cpp.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::audio::{self, PHONE_RATE_HZ};
use crate::import::ggml;
use crate::vad::{self, SpeechRegion, VadConfig};

/// A stretch of recognised text, in milliseconds from the start of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// Let whisper detect the language per chunk (multilingual models only; English-only
    /// models always transcribe English).
    #[default]
    Auto,
    Ko,
    En,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Auto => "auto",
            Language::Ko => "ko",
            Language::En => "en",
        }
    }
}

impl FromStr for Language {
    type Err = AsrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Language::Auto),
            "ko" | "korean" => Ok(Language::Ko),
            "en" | "english" => Ok(Language::En),
            _ => Err(AsrError::UnknownLanguage {
                given: s.to_owned(),
            }),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("{path}: no such model file")]
    ModelMissing { path: PathBuf },
    // The underlying errors are part of the message, not a `source`, so a chain printer does
    // not repeat them.
    #[error("{path}: {error}")]
    ModelUnreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    ModelInvalid {
        path: PathBuf,
        error: ggml::GgmlError,
    },
    #[error("{path}: whisper.cpp could not load the model (its log says why)")]
    ModelRejected { path: PathBuf },
    #[error("{path}: the path is not valid UTF-8, which whisper.cpp needs")]
    PathNotUtf8 { path: PathBuf },
    #[error("language {given:?} is not supported (use auto, en or ko)")]
    UnknownLanguage { given: String },
    #[error("this model is English-only and cannot transcribe {language:?}")]
    LanguageNotInModel { language: Language },
    #[error("the prompt contains a NUL character")]
    PromptHasNul,
    #[error("whisper.cpp failed: {0}")]
    Whisper(whisper_rs::WhisperError),
}

impl From<whisper_rs::WhisperError> for AsrError {
    fn from(e: whisper_rs::WhisperError) -> Self {
        AsrError::Whisper(e)
    }
}

/// Threads for work that must not starve the live calls: every core but one, at least one.
/// Running more ggml threads than free cores is catastrophic (measured here: two jobs × 2
/// threads on 2 cores ran 25× slower), so callers pass this, or less, to [`Transcriber`].
pub fn threads_for_background_work() -> usize {
    available_cores().saturating_sub(1).max(1)
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How to transcribe. [`Default`]: auto language, beam search of 5, VAD on,
/// [`threads_for_background_work`] threads.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    pub language: Language,
    /// Capped at the machine's cores; 0 counts as 1.
    pub threads: usize,
    /// 1 = greedy decoding. Beam search costs decoder time but fixes many greedy mistakes on
    /// hard speech (spelled-out numbers, names).
    pub beam_size: u32,
    /// Text whisper sees as "what came before": a per-channel vocabulary of names, products
    /// and places improves their spelling.
    pub prompt: Option<String>,
    /// `None` runs whisper on the whole input (for comparisons; silence is then transcribed too).
    pub vad: Option<VadConfig>,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: Language::Auto,
            threads: threads_for_background_work(),
            beam_size: 5,
            prompt: None,
            vad: Some(VadConfig::default()),
        }
    }
}

/// Counters of one [`Transcriber::transcribe_with`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TranscribeStats {
    pub audio_ms: u64,
    /// Audio handed to whisper (speech plus padding and packing gaps).
    pub whisper_audio_ms: u64,
    pub regions: usize,
    pub whisper_runs: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transcription {
    pub segments: Vec<Segment>,
    pub stats: TranscribeStats,
}

/// Fewer words than this at the edge of a whisper segment are not split off into a region of
/// their own (see [`Chunk::to_source_segments`]).
pub const MIN_SPLIT_WORDS: usize = 3;
/// Silence put between packed regions, so whisper sees a pause where the speaker paused.
pub const PACK_GAP_MS: u64 = 300;
/// Packed audio per whisper run. Bounds memory (16 kHz f32: 38 MB per 10 minutes) and keeps
/// whisper's sample count far from its 32-bit limit.
pub const MAX_CHUNK_MS: u64 = 10 * 60 * 1000;
/// whisper.cpp skips inputs under a second; shorter chunks are padded with silence to this.
const MIN_WHISPER_INPUT_MS: u64 = 1100;

/// A piece of the source placed in a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub source_start_ms: u64,
    pub source_end_ms: u64,
    pub packed_start_ms: u64,
}

impl Piece {
    fn packed_end_ms(&self) -> u64 {
        // Saturating: the fields are public, and a hand-made inverted piece must not panic.
        self.packed_start_ms + self.source_end_ms.saturating_sub(self.source_start_ms)
    }

    /// A packed time as source time, held within this piece.
    fn clamp_to_source(&self, packed_ms: u64) -> u64 {
        (self.source_start_ms + packed_ms.saturating_sub(self.packed_start_ms))
            .min(self.source_end_ms)
    }
}

/// Speech regions packed back to back, for one whisper run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub pieces: Vec<Piece>,
}

/// A word as whisper timed it within a chunk (raw bytes: a token may end mid-character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedWord {
    pub t0_ms: u64,
    pub t1_ms: u64,
    pub text: Vec<u8>,
}

/// A whisper segment in a chunk's packed timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedSegment {
    pub t0_ms: u64,
    pub t1_ms: u64,
    pub words: Vec<PackedWord>,
}

impl Chunk {
    pub fn packed_len_ms(&self) -> u64 {
        self.pieces.last().map_or(0, Piece::packed_end_ms)
    }

    /// The piece holding packed time `t_ms`; in a gap, the nearer neighbour.
    fn piece_at(&self, t_ms: u64) -> Option<&Piece> {
        let mut best: Option<(&Piece, u64)> = None;
        for p in &self.pieces {
            let distance = if t_ms < p.packed_start_ms {
                p.packed_start_ms - t_ms
            } else {
                t_ms.saturating_sub(p.packed_end_ms())
            };
            if best.is_none_or(|(_, d)| distance < d) {
                best = Some((p, distance));
            }
        }
        best.map(|(p, _)| p)
    }

    /// A whisper segment in source time, split where it spans regions.
    ///
    /// Whisper sometimes joins two regions' speech into one segment, so each word goes to the
    /// region its middle falls in and the segment is split where the region changes. Word
    /// times are least reliable at a segment's edges, where whisper runs them into the packing
    /// gap (its segments touch: one ends where the next begins). So a run of fewer than
    /// [`MIN_SPLIT_WORDS`] words at either edge joins its neighbour, when that is longer,
    /// instead of becoming a segment of its own. Each part's times are held inside its
    /// region. Without word times, the segment's own times stand for all its words.
    pub fn to_source_segments(&self, segment: &PackedSegment) -> Vec<Segment> {
        let untimed;
        let words = if segment.words.iter().all(|w| w.t1_ms == 0) && segment.t1_ms > 0 {
            untimed = [PackedWord {
                t0_ms: segment.t0_ms,
                t1_ms: segment.t1_ms,
                text: segment
                    .words
                    .iter()
                    .flat_map(|w| w.text.iter().copied())
                    .collect(),
            }];
            &untimed[..]
        } else {
            &segment.words[..]
        };

        // Runs of consecutive words in the same piece.
        let mut groups: Vec<(&Piece, Vec<&PackedWord>)> = Vec::new();
        for w in words {
            let Some(piece) = self.piece_at(w.t0_ms / 2 + w.t1_ms / 2) else {
                continue;
            };
            match groups.last_mut() {
                Some((p, ws)) if *p == piece => ws.push(w),
                _ => groups.push((piece, vec![w])),
            }
        }
        // An edge run is absorbed only by a larger neighbour: two short utterances that
        // whisper joined stay apart.
        let small = |g: &(&Piece, Vec<&PackedWord>), than: &(&Piece, Vec<&PackedWord>)| {
            g.1.len() < MIN_SPLIT_WORDS && g.1.len() < than.1.len()
        };
        while groups.len() > 1 && small(&groups[0], &groups[1]) {
            let (_, first) = groups.remove(0);
            groups[0].1.splice(0..0, first);
        }
        while groups.len() > 1 && small(&groups[groups.len() - 1], &groups[groups.len() - 2]) {
            if let Some((_, last)) = groups.pop() {
                if let Some((_, prev)) = groups.last_mut() {
                    prev.extend(last);
                }
            }
        }

        let mut out = Vec::with_capacity(groups.len());
        for (piece, ws) in groups {
            let text = segment_text(&ws);
            if text.is_empty() || is_annotation(&text) {
                continue;
            }
            let t0_ms = ws.iter().map(|w| w.t0_ms).min().unwrap_or(0);
            let t1_ms = ws.iter().map(|w| w.t1_ms).max().unwrap_or(0);
            let start_ms = piece.clamp_to_source(t0_ms);
            out.push(Segment {
                start_ms,
                end_ms: piece.clamp_to_source(t1_ms).max(start_ms),
                text,
            });
        }
        out
    }
}

/// Packs regions (sorted, non-overlapping, as [`vad::detect`] gives them) into chunks of at
/// most `max_chunk_ms`, `gap_ms` apart. A region longer than a chunk is cut into chunk-sized
/// pieces (unheard of in a call: minutes of speech without a pause).
pub fn plan_chunks(regions: &[SpeechRegion], gap_ms: u64, max_chunk_ms: u64) -> Vec<Chunk> {
    let max_chunk_ms = max_chunk_ms.max(1);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut current = Chunk { pieces: Vec::new() };
    for r in regions {
        let mut start_ms = r.start_ms;
        while start_ms < r.end_ms {
            let used_ms = current.packed_len_ms();
            let packed_start_ms = if current.pieces.is_empty() {
                0
            } else {
                used_ms + gap_ms
            };
            if !current.pieces.is_empty() && packed_start_ms >= max_chunk_ms {
                chunks.push(std::mem::replace(
                    &mut current,
                    Chunk { pieces: Vec::new() },
                ));
                continue;
            }
            let room_ms = max_chunk_ms - packed_start_ms;
            let len_ms = (r.end_ms - start_ms).min(room_ms);
            // A region that does not fit whole starts a fresh chunk rather than being split,
            // unless it is too long for any chunk.
            if len_ms < r.end_ms - start_ms && !current.pieces.is_empty() {
                chunks.push(std::mem::replace(
                    &mut current,
                    Chunk { pieces: Vec::new() },
                ));
                continue;
            }
            current.pieces.push(Piece {
                source_start_ms: start_ms,
                source_end_ms: start_ms + len_ms,
                packed_start_ms,
            });
            start_ms += len_ms;
            if current.packed_len_ms() >= max_chunk_ms {
                chunks.push(std::mem::replace(
                    &mut current,
                    Chunk { pieces: Vec::new() },
                ));
            }
        }
    }
    if !current.pieces.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The 8 kHz samples of a chunk, packed with silent gaps.
fn chunk_samples(pcm_8k: &[i16], chunk: &Chunk) -> Vec<i16> {
    let per_ms = (PHONE_RATE_HZ / 1000) as u64;
    let len = (chunk.packed_len_ms().max(MIN_WHISPER_INPUT_MS) * per_ms) as usize;
    let mut out = vec![0i16; len];
    for p in &chunk.pieces {
        let src_start = ((p.source_start_ms * per_ms) as usize).min(pcm_8k.len());
        let src_end = ((p.source_end_ms * per_ms) as usize).min(pcm_8k.len());
        let dst = (p.packed_start_ms * per_ms) as usize;
        if dst >= out.len() {
            continue;
        }
        let n = src_end
            .saturating_sub(src_start)
            .min(out.len().saturating_sub(dst));
        out[dst..dst + n].copy_from_slice(&pcm_8k[src_start..src_start + n]);
    }
    out
}

/// A loaded whisper model. Loading is the expensive part; one `Transcriber` serves any number
/// of calls (each creates its own whisper state, so `&self` calls may run in parallel, within
/// the thread budget).
pub struct Transcriber {
    ctx: WhisperContext,
    hparams: ggml::Hparams,
    path: PathBuf,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("path", &self.path)
            .field("hparams", &self.hparams)
            .finish()
    }
}

impl Transcriber {
    /// Loads a ggml model (as `transcribe import` writes, or whisper.cpp's own). The header is
    /// checked here first, so a stray or damaged file is a clear error rather than a
    /// whisper.cpp allocation of nonsense size.
    pub fn load(path: &Path) -> Result<Transcriber, AsrError> {
        // whisper.cpp logs to stderr by default; routed to `tracing` instead.
        whisper_rs::install_logging_hooks();
        let mut file = std::fs::File::open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                AsrError::ModelMissing {
                    path: path.to_owned(),
                }
            } else {
                AsrError::ModelUnreadable {
                    path: path.to_owned(),
                    error: source,
                }
            }
        })?;
        let hparams = ggml::read_header(&mut std::io::BufReader::new(&mut file))
            .map_err(|error| AsrError::ModelInvalid {
                path: path.to_owned(),
                error,
            })?
            .hparams;
        let path_str = path.to_str().ok_or_else(|| AsrError::PathNotUtf8 {
            path: path.to_owned(),
        })?;
        let ctx = WhisperContext::new_with_params(path_str, WhisperContextParameters::default())
            .map_err(|_| AsrError::ModelRejected {
                path: path.to_owned(),
            })?;
        Ok(Transcriber {
            ctx,
            hparams,
            path: path.to_owned(),
        })
    }

    pub fn is_multilingual(&self) -> bool {
        self.ctx.is_multilingual()
    }

    pub fn hparams(&self) -> &ggml::Hparams {
        &self.hparams
    }

    /// Transcribes 8 kHz mono PCM: VAD-gated, beam search, `threads` capped at the cores.
    pub fn transcribe(
        &self,
        pcm_8k: &[i16],
        language: Language,
        threads: usize,
    ) -> Result<Vec<Segment>, AsrError> {
        let options = TranscribeOptions {
            language,
            threads,
            ..TranscribeOptions::default()
        };
        Ok(self.transcribe_with(pcm_8k, &options)?.segments)
    }

    /// Transcribes 8 kHz mono PCM as `options` say, with counters (regions found, whisper runs,
    /// audio handed to whisper). Silence alone never starts whisper.
    pub fn transcribe_with(
        &self,
        pcm_8k: &[i16],
        options: &TranscribeOptions,
    ) -> Result<Transcription, AsrError> {
        let language = match (options.language, self.is_multilingual()) {
            (Language::Ko, false) => {
                return Err(AsrError::LanguageNotInModel {
                    language: Language::Ko,
                })
            }
            (_, false) => Language::En,
            (l, true) => l,
        };
        if options.prompt.as_deref().is_some_and(|p| p.contains('\0')) {
            return Err(AsrError::PromptHasNul);
        }
        let audio_ms = pcm_8k.len() as u64 * 1000 / u64::from(PHONE_RATE_HZ);
        let regions = match &options.vad {
            Some(cfg) => vad::detect(pcm_8k, cfg),
            None if audio_ms > 0 => vec![SpeechRegion {
                start_ms: 0,
                end_ms: audio_ms,
            }],
            None => Vec::new(),
        };
        let chunks = plan_chunks(&regions, PACK_GAP_MS, MAX_CHUNK_MS);
        let mut out = Transcription {
            segments: Vec::new(),
            stats: TranscribeStats {
                audio_ms,
                regions: regions.len(),
                ..TranscribeStats::default()
            },
        };
        for chunk in &chunks {
            let samples_16k = audio::phone_to_whisper(&chunk_samples(pcm_8k, chunk));
            out.stats.whisper_audio_ms += chunk.packed_len_ms();
            out.stats.whisper_runs += 1;
            for segment in self.run_whisper(&samples_16k, language, options)? {
                out.segments.extend(chunk.to_source_segments(&segment));
            }
        }
        Ok(out)
    }

    /// One whisper run over 16 kHz samples; times relative to them.
    fn run_whisper(
        &self,
        samples_16k: &[f32],
        language: Language,
        options: &TranscribeOptions,
    ) -> Result<Vec<PackedSegment>, AsrError> {
        let strategy = if options.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: options.beam_size.min(16) as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        let threads = options.threads.clamp(1, available_cores());
        params.set_n_threads(threads as i32);
        params.set_language(Some(language.code()));
        params.set_translate(false);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        // "[Music]", "(applause)" and the like are not speech of a call.
        params.set_suppress_nst(true);
        // Word times let a segment that whisper stretched over a packing gap be split back
        // into the regions it came from (segment times alone are too coarse for that).
        params.set_token_timestamps(true);
        if let Some(prompt) = &options.prompt {
            params.set_initial_prompt(prompt);
        }
        let mut state = self.ctx.create_state()?;
        state.full(params, samples_16k)?;
        let eot = self.ctx.token_eot();
        let mut out = Vec::new();
        for segment in state.as_iter() {
            let mut words: Vec<PackedWord> = Vec::new();
            for i in 0..segment.n_tokens() {
                let Some(token) = segment.get_token(i) else {
                    continue;
                };
                // Timestamps, language and task markers are not text.
                if token.token_id() >= eot {
                    continue;
                }
                let bytes = token.to_bytes()?;
                let data = token.token_data();
                let (t0_ms, t1_ms) = (centis_to_ms(data.t0), centis_to_ms(data.t1));
                // Byte-level BPE: a token that starts with a space starts a word; the others
                // continue it (and may hold half of a multi-byte character).
                match words.last_mut() {
                    Some(w) if !bytes.starts_with(b" ") => {
                        w.text.extend_from_slice(bytes);
                        w.t1_ms = w.t1_ms.max(t1_ms);
                    }
                    _ => words.push(PackedWord {
                        t0_ms,
                        t1_ms: t1_ms.max(t0_ms),
                        text: bytes.to_vec(),
                    }),
                }
            }
            out.push(PackedSegment {
                t0_ms: centis_to_ms(segment.start_timestamp()),
                t1_ms: centis_to_ms(segment.end_timestamp()),
                words,
            });
        }
        Ok(out)
    }
}

/// whisper.cpp counts time in centiseconds (-1 when unknown).
fn centis_to_ms(t: i64) -> u64 {
    t.max(0) as u64 * 10
}

/// The words' bytes as text (lossy: a garbled byte becomes U+FFFD, not an error), trimmed.
fn segment_text(words: &[&PackedWord]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.text.iter().copied()).collect();
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Whole-segment sound descriptions ("[BLANK_AUDIO]", "(music)") that slip past token
/// suppression.
fn is_annotation(text: &str) -> bool {
    let t = text.trim();
    (t.starts_with('[') && t.ends_with(']')) || (t.starts_with('(') && t.ends_with(')'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start_ms: u64, end_ms: u64) -> SpeechRegion {
        SpeechRegion { start_ms, end_ms }
    }

    fn piece(source_start_ms: u64, source_end_ms: u64, packed_start_ms: u64) -> Piece {
        Piece {
            source_start_ms,
            source_end_ms,
            packed_start_ms,
        }
    }

    #[test]
    fn no_regions_no_chunks() {
        assert!(plan_chunks(&[], PACK_GAP_MS, MAX_CHUNK_MS).is_empty());
    }

    #[test]
    fn regions_are_packed_with_gaps() {
        let chunks = plan_chunks(&[r(1000, 3000), r(10_000, 11_000)], 300, 60_000);
        assert_eq!(
            chunks,
            vec![Chunk {
                pieces: vec![piece(1000, 3000, 0), piece(10_000, 11_000, 2300)]
            }]
        );
        assert_eq!(chunks[0].packed_len_ms(), 3300);
    }

    #[test]
    fn a_full_chunk_starts_another_without_splitting_regions() {
        let chunks = plan_chunks(
            &[r(0, 6000), r(7000, 12_000), r(20_000, 21_000)],
            300,
            10_000,
        );
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    pieces: vec![piece(0, 6000, 0)]
                },
                Chunk {
                    pieces: vec![piece(7000, 12_000, 0), piece(20_000, 21_000, 5300)]
                },
            ]
        );
    }

    #[test]
    fn an_overlong_region_is_cut() {
        let chunks = plan_chunks(&[r(0, 25_000)], 300, 10_000);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2].pieces, vec![piece(20_000, 25_000, 0)]);
    }

    fn word(t0_ms: u64, t1_ms: u64, text: &str) -> PackedWord {
        PackedWord {
            t0_ms,
            t1_ms,
            text: text.as_bytes().to_vec(),
        }
    }

    fn seg(start_ms: u64, end_ms: u64, text: &str) -> Segment {
        Segment {
            start_ms,
            end_ms,
            text: text.to_owned(),
        }
    }

    /// Two regions: source 1000–3000 packed at 0–2000, source 10 000–11 000 packed at
    /// 2300–3300.
    fn two_pieces() -> Chunk {
        Chunk {
            pieces: vec![piece(1000, 3000, 0), piece(10_000, 11_000, 2300)],
        }
    }

    #[test]
    fn a_segment_inside_one_region_maps_back_by_its_offset() {
        let s = PackedSegment {
            t0_ms: 0,
            t1_ms: 2000,
            words: vec![word(200, 600, " Hello"), word(600, 1500, " there.")],
        };
        assert_eq!(
            two_pieces().to_source_segments(&s),
            vec![seg(1200, 2500, "Hello there.")]
        );
    }

    #[test]
    fn a_segment_spanning_two_regions_is_split_at_them() {
        // Whisper joined two regions' speech into one sentence.
        let s = PackedSegment {
            t0_ms: 0,
            t1_ms: 3300,
            words: vec![
                word(100, 500, " I"),
                word(500, 900, " need"),
                word(900, 1800, " help."),
                word(2350, 2600, " My"),
                word(2600, 2900, " order"),
                word(2900, 3250, " is late."),
            ],
        };
        assert_eq!(
            two_pieces().to_source_segments(&s),
            vec![
                seg(1100, 2800, "I need help."),
                seg(10_050, 10_950, "My order is late.")
            ]
        );
    }

    #[test]
    fn words_run_into_the_gap_at_a_segments_edges_stay_with_it() {
        // The last word timed late, past the gap into the next region (seen with whisper:
        // segments touch), and the first word timed early.
        let late_end = PackedSegment {
            t0_ms: 0,
            t1_ms: 2700,
            words: vec![
                word(100, 500, " How"),
                word(500, 900, " can"),
                word(900, 1200, " I"),
                word(1200, 1900, " help"),
                word(2200, 2700, " you?"),
            ],
        };
        assert_eq!(
            two_pieces().to_source_segments(&late_end),
            vec![seg(1100, 3000, "How can I help you?")]
        );
        let early_start = PackedSegment {
            t0_ms: 1900,
            t1_ms: 3300,
            words: vec![
                word(1900, 2100, " The"),
                word(2400, 2700, " tracking"),
                word(2700, 3000, " page"),
                word(3000, 3300, " says"),
            ],
        };
        assert_eq!(
            two_pieces().to_source_segments(&early_start),
            vec![seg(10_000, 11_000, "The tracking page says")]
        );
    }

    #[test]
    fn short_utterances_in_different_regions_stay_apart() {
        let s = PackedSegment {
            t0_ms: 1500,
            t1_ms: 3000,
            words: vec![word(1500, 1900, " Yes."), word(2500, 2900, " Okay.")],
        };
        assert_eq!(
            two_pieces().to_source_segments(&s),
            vec![seg(2500, 2900, "Yes."), seg(10_200, 10_600, "Okay.")]
        );
    }

    #[test]
    fn times_are_held_inside_their_region() {
        // Words whose times spill past the chunk's end.
        let s = PackedSegment {
            t0_ms: 2400,
            t1_ms: 9000,
            words: vec![word(2400, 2600, " fine"), word(3200, 9000, " thanks")],
        };
        assert_eq!(
            two_pieces().to_source_segments(&s),
            vec![seg(10_100, 11_000, "fine thanks")]
        );
    }

    #[test]
    fn untimed_words_use_the_segment_times_and_multibyte_text_survives_token_splits() {
        // "부산" split mid-character across two tokens, no word times.
        let bytes = "부산".as_bytes();
        let s = PackedSegment {
            t0_ms: 2300,
            t1_ms: 3000,
            words: vec![
                PackedWord {
                    t0_ms: 0,
                    t1_ms: 0,
                    text: bytes[..4].to_vec(),
                },
                PackedWord {
                    t0_ms: 0,
                    t1_ms: 0,
                    text: bytes[4..].to_vec(),
                },
            ],
        };
        assert_eq!(
            two_pieces().to_source_segments(&s),
            vec![seg(10_000, 10_700, "부산")]
        );
    }

    #[test]
    fn empty_and_annotation_segments_vanish() {
        let c = two_pieces();
        let empty = PackedSegment {
            t0_ms: 0,
            t1_ms: 100,
            words: vec![],
        };
        assert!(c.to_source_segments(&empty).is_empty());
        let blank = PackedSegment {
            t0_ms: 0,
            t1_ms: 1000,
            words: vec![word(0, 1000, " [BLANK_AUDIO]")],
        };
        assert!(c.to_source_segments(&blank).is_empty());
        assert!(Chunk { pieces: vec![] }
            .to_source_segments(&blank)
            .is_empty());
    }

    #[test]
    fn chunk_samples_packs_and_pads() {
        let pcm: Vec<i16> = (0..8000).map(|i| (i % 100) as i16 + 1).collect();
        let c = Chunk {
            pieces: vec![piece(0, 100, 0), piece(500, 600, 400)],
        };
        let s = chunk_samples(&pcm, &c);
        // Padded to the minimum whisper input.
        assert_eq!(s.len(), 1100 * 8);
        assert_eq!(&s[..800], &pcm[..800]);
        assert!(s[800..3200].iter().all(|&v| v == 0));
        assert_eq!(&s[3200..4000], &pcm[4000..4800]);
        assert!(s[4000..].iter().all(|&v| v == 0));
        // A piece past the end of the audio reads as silence, not a panic.
        let c = Chunk {
            pieces: vec![piece(900, 5000, 0)],
        };
        assert_eq!(chunk_samples(&pcm, &c).len(), 4100 * 8);
    }

    #[test]
    fn languages_parse() {
        assert_eq!("auto".parse::<Language>().unwrap(), Language::Auto);
        assert_eq!("KO".parse::<Language>().unwrap(), Language::Ko);
        assert_eq!("en".parse::<Language>().unwrap(), Language::En);
        assert!("fr".parse::<Language>().is_err());
    }

    #[test]
    fn background_threads_leave_a_core() {
        let n = threads_for_background_work();
        assert!(n >= 1);
        assert!(n == 1 || n < available_cores());
    }

    #[test]
    fn a_transcriber_can_be_shared_between_worker_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Transcriber>();
    }

    #[test]
    fn annotations_are_recognised() {
        assert!(is_annotation("[BLANK_AUDIO]"));
        assert!(is_annotation(" (music) "));
        assert!(!is_annotation("Hello (there)"));
    }

    #[test]
    fn missing_and_foreign_model_files_are_clear_errors() {
        let err = Transcriber::load(Path::new("/nonexistent/ggml.bin")).unwrap_err();
        assert!(matches!(err, AsrError::ModelMissing { .. }), "{err}");
        let path =
            std::env::temp_dir().join(format!("transcribe-not-a-model-{}", std::process::id()));
        std::fs::write(&path, b"GGUF\x03\x00\x00\x00 not ours").unwrap();
        let err = Transcriber::load(&path).unwrap_err();
        assert!(
            err.to_string().contains("not a whisper.cpp ggml model"),
            "{err}"
        );
        std::fs::write(&path, b"lmgg").unwrap();
        let err = Transcriber::load(&path).unwrap_err();
        assert!(err.to_string().contains("ends early"), "{err}");
        std::fs::remove_file(&path).unwrap();
    }
}
