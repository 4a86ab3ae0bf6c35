//! `transcribe`: the model importer, and a runner for checking transcription by hand.
//!
//! ```text
//! transcribe import <ct2-model-dir> <out-ggml-file>
//! transcribe run <ggml-model> <wav-file> [--language auto|en|ko] [--threads N] [--beam N]
//!                [--prompt TEXT] [--no-vad]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use transcribe::asr::{Segment, TranscribeOptions, Transcriber};
use transcribe::audio::{self, Resampler, PHONE_RATE_HZ};
use transcribe::vad::VadConfig;
use transcribe::{import, merge, threads_for_background_work, wav, Language};

#[derive(Parser)]
#[command(name = "transcribe", about = "Whisper model import and transcription")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a CTranslate2 (faster-whisper) Whisper model directory into a whisper.cpp ggml file.
    Import {
        /// Directory with model.bin and vocabulary.txt (or tokenizer.json).
        model_dir: PathBuf,
        /// The ggml file to write (replaced atomically).
        out: PathBuf,
    },
    /// Transcribe a WAV file and print the timeline. Stereo is read as a call recording
    /// (left the customer, right the managers); any rate is resampled to 8 kHz first.
    Run {
        /// A ggml model, e.g. var/models/ggml-tiny.en.bin.
        model: PathBuf,
        /// 16-bit PCM WAV.
        wav: PathBuf,
        #[arg(long, default_value = "auto", value_parser = parse_language)]
        language: Language,
        /// whisper threads; default: all cores but one. Capped at the cores.
        #[arg(long)]
        threads: Option<usize>,
        /// Beam width; 1 = greedy.
        #[arg(long, default_value_t = 5)]
        beam: u32,
        /// Vocabulary prompt (names, products, places).
        #[arg(long)]
        prompt: Option<String>,
        /// Run whisper over the whole file instead of only the detected speech.
        #[arg(long)]
        no_vad: bool,
    },
}

fn parse_language(s: &str) -> Result<Language, String> {
    s.parse()
        .map_err(|e: transcribe::asr::AsrError| e.to_string())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain; a backtrace helps nobody fix a bad file.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Import { model_dir, out } => run_import(model_dir, out),
        Command::Run {
            model,
            wav,
            language,
            threads,
            beam,
            prompt,
            no_vad,
        } => {
            let options = TranscribeOptions {
                language,
                threads: threads.unwrap_or_else(threads_for_background_work),
                beam_size: beam,
                prompt,
                vad: (!no_vad).then(VadConfig::default),
            };
            run_transcribe(model, wav, options)
        }
    }
}

fn run_import(model_dir: PathBuf, out: PathBuf) -> Result<()> {
    eprintln!("importing {} -> {}", model_dir.display(), out.display());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .context("progress bar template")?,
    );
    let started = Instant::now();
    let result = import::import_dir(&model_dir, &out, &mut |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!(
            "{}/{} {}",
            p.tensors_done, p.tensors_total, p.tensor
        ));
    });
    bar.finish_and_clear();
    let report = result.with_context(|| format!("importing {}", model_dir.display()))?;
    let h = report.hparams;
    println!(
        "wrote {} ({:.1} MB) in {:.1} s: {} tensors, {} tokens, {} mels, {} audio / {} text layers, width {}, {}",
        out.display(),
        report.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        report.tensors,
        report.tokens,
        h.n_mels,
        h.n_audio_layer,
        h.n_text_layer,
        h.n_audio_state,
        if h.is_multilingual() { "multilingual" } else { "English-only" },
    );
    Ok(())
}

fn run_transcribe(model: PathBuf, wav_path: PathBuf, options: TranscribeOptions) -> Result<()> {
    let bytes =
        std::fs::read(&wav_path).with_context(|| format!("reading {}", wav_path.display()))?;
    let wav = wav::parse(&bytes).with_context(|| wav_path.display().to_string())?;
    if wav.channels > 2 {
        bail!(
            "{}: {} channels; expected mono or a stereo call recording",
            wav_path.display(),
            wav.channels
        );
    }
    let available = std::thread::available_parallelism().map_or(1, |n| n.get());
    if options.threads > available {
        eprintln!(
            "note: {} threads requested, {available} cores: using {available}",
            options.threads
        );
    }
    let transcriber = Transcriber::load(&model)?;
    let to_phone = Resampler::new(wav.sample_rate_hz, PHONE_RATE_HZ)?;
    let channel = |i: u16| -> Vec<i16> {
        if wav.sample_rate_hz == PHONE_RATE_HZ {
            wav.channel(i)
        } else {
            audio::f32_to_i16(&to_phone.process(&audio::i16_to_f32(&wav.channel(i))))
        }
    };

    let started = Instant::now();
    let mut whisper_audio_ms = 0;
    let mut transcribe_channel = |pcm: &[i16]| -> Result<Vec<Segment>> {
        let t = transcriber.transcribe_with(pcm, &options)?;
        whisper_audio_ms += t.stats.whisper_audio_ms;
        Ok(t.segments)
    };
    if wav.channels == 1 {
        for s in transcribe_channel(&channel(0))? {
            println!("[{} - {}] {}", clock(s.start_ms), clock(s.end_ms), s.text);
        }
    } else {
        let customer = transcribe_channel(&channel(0))?;
        let managers = transcribe_channel(&channel(1))?;
        for t in merge(customer, managers) {
            println!(
                "[{} - {}] {:>8}: {}",
                clock(t.start_ms),
                clock(t.end_ms),
                t.speaker.as_str(),
                t.text
            );
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let audio_s = wav.duration_ms() as f64 / 1000.0 * f64::from(wav.channels);
    eprintln!(
        "{audio_s:.1} s of audio ({:.1} s sent to whisper) in {wall_s:.1} s: {:.1}x real time, {} threads, beam {}, VAD {}",
        whisper_audio_ms as f64 / 1000.0,
        audio_s / wall_s.max(1e-9),
        options.threads.clamp(1, available),
        options.beam_size,
        if options.vad.is_some() { "on" } else { "off" },
    );
    Ok(())
}

/// mm:ss.mmm
fn clock(ms: u64) -> String {
    format!("{:02}:{:02}.{:03}", ms / 60_000, ms / 1000 % 60, ms % 1000)
}
