//! End to end with real speech: espeak-ng speaks one side of a support call, the audio goes
//! the way a phone call carries it (8 kHz, G.711 µ-law and back), and Whisper tiny.en
//! transcribes it through the VAD-gated pipeline.
//!
//! Needs `espeak-ng` (Debian package) and var/models/ggml-tiny.en.bin (deploy/fetch-models.sh).
//! Without them the tests skip with a message, unless GATEWAY_REQUIRE_MODELS=1, where they fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use media::g711::G711Law;
use transcribe::asr::{TranscribeOptions, Transcriber};
use transcribe::audio::{self, Resampler, PHONE_RATE_HZ};
use transcribe::vad::{self, VadConfig};
use transcribe::{merge, wav, word_error_rate, Language, Speaker};

const SENTENCES: &[&str] = &[
    "Hello, I am calling about my order.",
    "It was supposed to arrive last Tuesday, but nothing has come yet.",
    "The tracking page says the package left the warehouse 5 days ago.",
    "Could you please check where it is and tell me when it will be delivered?",
    "If it is lost, I would like a refund or a replacement.",
    "You can reach me at this number in the afternoon.",
    "Thank you very much for your help.",
];
const LEAD_IN_MS: usize = 1000;
const PAUSE_MS: usize = 1500;
/// Measured here with this text and voice: 17 % (clean 8 kHz) and about the same after µ-law;
/// the same audio at 16 kHz: 1.3 %. tiny.en is fragile at 8 kHz: over 8 espeak voices and
/// speeds of a 13-sentence call it averaged 21 % (range 12–28 %), the base model 13 %. The
/// bar sits above that spread, so it fails on a broken pipeline (import, resampling, VAD,
/// time mapping: 50–100 %) rather than on tiny.en's lottery.
const MAX_WER: f64 = 0.25;

/// Skips (returns None) or, with GATEWAY_REQUIRE_MODELS=1, fails with the reason.
fn required<T>(what: Result<T, String>) -> Option<T> {
    match what {
        Ok(v) => Some(v),
        Err(reason) if std::env::var("GATEWAY_REQUIRE_MODELS").as_deref() == Ok("1") => {
            panic!("GATEWAY_REQUIRE_MODELS=1 but {reason}")
        }
        Err(reason) => {
            eprintln!("skipping: {reason}");
            None
        }
    }
}

fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../var/models/ggml-tiny.en.bin")
}

fn load_tiny_en() -> Result<Transcriber, String> {
    let path = model_path();
    if !path.exists() {
        return Err(format!(
            "{} is missing: run deploy/fetch-models.sh",
            path.display()
        ));
    }
    Transcriber::load(&path).map_err(|e| format!("loading {}: {e}", path.display()))
}

/// One sentence from espeak-ng, resampled to 8 kHz.
fn speak(text: &str) -> Result<Vec<i16>, String> {
    speak_as("en-us", text)
}

fn speak_as(voice: &str, text: &str) -> Result<Vec<i16>, String> {
    let out = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "--stdout", text])
        .output()
        .map_err(|e| {
            format!("espeak-ng could not be started ({e}): install the espeak-ng package")
        })?;
    if !out.status.success() {
        return Err(format!(
            "espeak-ng failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let w = wav::parse(&out.stdout).map_err(|e| format!("espeak-ng output: {e}"))?;
    let mono = w.channel(0);
    let r = Resampler::new(w.sample_rate_hz, PHONE_RATE_HZ).map_err(|e| e.to_string())?;
    Ok(audio::f32_to_i16(&r.process(&audio::i16_to_f32(&mono))))
}

/// The whole call side: lead-in silence, then each sentence followed by a pause.
fn call_audio() -> Result<Vec<i16>, String> {
    let per_ms = PHONE_RATE_HZ as usize / 1000;
    let mut pcm = vec![0i16; LEAD_IN_MS * per_ms];
    for s in SENTENCES {
        pcm.extend(speak(s)?);
        pcm.extend(std::iter::repeat_n(0i16, PAUSE_MS * per_ms));
    }
    Ok(pcm)
}

fn through_ulaw(pcm: &[i16]) -> Vec<i16> {
    let law = G711Law::Ulaw;
    let mut coded = vec![0u8; pcm.len()];
    let mut decoded = vec![0i16; pcm.len()];
    law.encode(pcm, &mut coded)
        .expect("buffers are the same size");
    law.decode(&coded, &mut decoded)
        .expect("buffers are the same size");
    decoded
}

#[test]
fn espeak_call_is_transcribed_by_tiny_en_clean_and_after_ulaw() {
    let Some(clean) = required(call_audio()) else {
        return;
    };
    let Some(transcriber) = required(load_tiny_en()) else {
        return;
    };
    let reference = SENTENCES.join(" ");
    let audio_ms = clean.len() as u64 * 1000 / u64::from(PHONE_RATE_HZ);
    let options = TranscribeOptions {
        language: Language::En,
        ..TranscribeOptions::default()
    };
    for (label, pcm) in [
        ("clean 8 kHz", clean.clone()),
        ("8 kHz µ-law", through_ulaw(&clean)),
    ] {
        let started = Instant::now();
        let t = transcriber.transcribe_with(&pcm, &options).unwrap();
        let wall_s = started.elapsed().as_secs_f64();
        let hypothesis: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
        let hypothesis = hypothesis.join(" ");
        let wer = word_error_rate(&reference, &hypothesis);
        eprintln!(
            "{label}: WER {:.1} %, {:.1} s audio ({:.1} s to whisper, {} regions, {} runs) in {wall_s:.1} s = {:.1}x real time, {} threads\n  {hypothesis}",
            wer * 100.0,
            audio_ms as f64 / 1000.0,
            t.stats.whisper_audio_ms as f64 / 1000.0,
            t.stats.regions,
            t.stats.whisper_runs,
            audio_ms as f64 / 1000.0 / wall_s,
            options.threads,
        );
        assert!(
            wer <= MAX_WER,
            "{label}: WER {wer:.3} > {MAX_WER}: {hypothesis:?}"
        );

        // The pauses were not sent to whisper, and the times are in the original recording.
        assert!(t.stats.whisper_audio_ms < audio_ms, "{:?}", t.stats);
        assert_eq!(t.stats.regions, SENTENCES.len(), "one region per sentence");
        let first = t.segments.first().expect("some speech was recognised");
        assert!(first.start_ms >= LEAD_IN_MS as u64 - 300, "{first:?}");
        for pair in t.segments.windows(2) {
            assert!(pair[0].start_ms <= pair[1].start_ms, "{pair:?}");
        }
        for s in &t.segments {
            assert!(s.start_ms <= s.end_ms && s.end_ms <= audio_ms, "{s:?}");
        }
    }
}

#[test]
fn silence_is_never_sent_to_whisper() {
    // Digital silence, and line noise at -65 dBFS as a µ-law line carries it.
    let per_s = PHONE_RATE_HZ as usize;
    let silent = vec![0i16; 10 * per_s];
    let mut x: u32 = 0x9e37_79b9;
    let hiss: Vec<i16> = (0..10 * per_s)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0)
                * 32768.0
                * 10f64.powf(-65.0 / 20.0)
                * 3f64.sqrt()) as i16
        })
        .collect();
    let hiss = through_ulaw(&hiss);
    for pcm in [&silent, &hiss] {
        assert!(vad::detect(pcm, &VadConfig::default()).is_empty());
    }

    let Some(transcriber) = required(load_tiny_en()) else {
        return;
    };
    for pcm in [&silent, &hiss] {
        let t = transcriber
            .transcribe_with(pcm, &TranscribeOptions::default())
            .unwrap();
        assert_eq!(t.stats.whisper_runs, 0);
        assert_eq!(t.stats.regions, 0);
        assert!(t.segments.is_empty(), "{:?}", t.segments);
    }
    // And the empty input.
    assert!(transcriber
        .transcribe(&[], Language::En, 1)
        .unwrap()
        .is_empty());
}

#[test]
fn korean_is_refused_by_an_english_only_model() {
    let Some(transcriber) = required(load_tiny_en()) else {
        return;
    };
    assert!(!transcriber.is_multilingual());
    let err = transcriber
        .transcribe(&[0; 8000], Language::Ko, 1)
        .unwrap_err();
    assert!(err.to_string().contains("English-only"), "{err}");
}

/// Both channels of a call: turns alternate, each channel is silent while the other speaks.
/// The merged timeline must give every turn to the right speaker at the right time: whisper
/// runs on the packed speech, so this checks the mapping back to the recording.
#[test]
fn a_two_channel_call_merges_into_the_right_turns() {
    const TURNS: &[(Speaker, &str)] = &[
        (
            Speaker::Manager,
            "Good afternoon, this is customer support, how can I help you?",
        ),
        (
            Speaker::Customer,
            "Hello, I am calling about my order, it has not arrived yet.",
        ),
        (
            Speaker::Manager,
            "I am sorry to hear that. Can you give me your order number?",
        ),
        (Speaker::Customer, "Yes, I can wait while you look it up."),
    ];
    let per_ms = PHONE_RATE_HZ as usize / 1000;
    let mut customer: Vec<i16> = Vec::new();
    let mut manager: Vec<i16> = Vec::new();
    let mut truth_ms: Vec<(Speaker, u64, u64)> = Vec::new();
    for (speaker, text) in TURNS {
        let voice = if *speaker == Speaker::Manager {
            "en-us+f2"
        } else {
            "en-us"
        };
        let Some(speech) = required(speak_as(voice, text)) else {
            return;
        };
        let start_ms = (customer.len() / per_ms) as u64;
        let (talking, listening) = match speaker {
            Speaker::Customer => (&mut customer, &mut manager),
            Speaker::Manager => (&mut manager, &mut customer),
        };
        talking.extend(&speech);
        listening.extend(std::iter::repeat_n(0i16, speech.len()));
        let end_ms = (customer.len() / per_ms) as u64;
        truth_ms.push((*speaker, start_ms, end_ms));
        // A short pause between turns, as in a real exchange.
        for channel in [&mut customer, &mut manager] {
            channel.extend(std::iter::repeat_n(0i16, 600 * per_ms));
        }
    }
    let Some(transcriber) = required(load_tiny_en()) else {
        return;
    };
    let t = |pcm: &[i16]| {
        transcriber
            .transcribe(&through_ulaw(pcm), Language::En, 1)
            .unwrap()
    };
    let turns = merge(t(&customer), t(&manager));
    for turn in &turns {
        eprintln!(
            "{:?} {}-{} {}",
            turn.speaker, turn.start_ms, turn.end_ms, turn.text
        );
    }
    let speakers: Vec<Speaker> = turns.iter().map(|t| t.speaker).collect();
    let expected: Vec<Speaker> = TURNS.iter().map(|(s, _)| *s).collect();
    assert_eq!(speakers, expected, "{turns:#?}");
    // espeak's own leading and trailing silence sits inside each truth interval, so a turn
    // must lie within it (plus the VAD padding), not match it exactly.
    for (turn, (_, start_ms, end_ms)) in turns.iter().zip(&truth_ms) {
        assert!(
            turn.start_ms + 250 >= *start_ms && turn.end_ms <= end_ms + 250,
            "{turn:?} outside {start_ms}-{end_ms}"
        );
        assert!(turn.end_ms > turn.start_ms, "{turn:?}");
    }
    // Short turns are hard for tiny.en (about a third of the words wrong here), so the text
    // check is relative: each turn reads closer to what was said in it than to any other turn.
    for (i, turn) in turns.iter().enumerate() {
        let own = word_error_rate(TURNS[i].1, &turn.text);
        for (j, (_, other)) in TURNS.iter().enumerate() {
            if j != i {
                let wer = word_error_rate(other, &turn.text);
                assert!(own < wer, "turn {i} {:?} reads like turn {j}", turn.text);
            }
        }
    }
}
