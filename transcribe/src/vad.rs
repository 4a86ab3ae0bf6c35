//! Energy-based voice-activity detection over 8 kHz 16-bit mono PCM.
//!
//! Whisper costs the same for silence as for speech (and sometimes invents words in it), so
//! the transcriber runs it only on the regions found here. The detector is deliberately
//! simple and errs towards keeping audio: a missed word is lost for good, a kept pause only
//! costs time.
//!
//! Per 20 ms frame, the level in dBFS is compared with a threshold derived from the buffer's
//! own noise floor (a low percentile of the frame levels) plus a margin, clamped between an
//! absolute floor (digital silence and line noise never count) and a ceiling (so a buffer that
//! is speech from end to end still has its speech detected). Speech frames closer together
//! than the hangover join one region; regions with too little speech are dropped (clicks);
//! the rest are padded on both sides, because word onsets and endings are quieter than vowels.

use crate::audio::PHONE_RATE_HZ;

/// A stretch of the input that holds speech, in milliseconds from the buffer's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeechRegion {
    pub start_ms: u64,
    pub end_ms: u64,
}

impl SpeechRegion {
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// Tuning of [`detect`]. The defaults suit telephone speech (nominal level around -20 dBFS).
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Analysis frame length.
    pub frame_ms: u32,
    /// Frames at or below this level are never speech, whatever the noise floor.
    pub min_threshold_dbfs: f32,
    /// The threshold never rises above this, so continuous loud speech is still speech.
    pub max_threshold_dbfs: f32,
    /// Speech must be this much louder than the noise floor.
    pub noise_margin_db: f32,
    /// Which quantile of frame levels is taken as the noise floor (0.0..=1.0).
    pub noise_quantile: f32,
    /// Pauses shorter than this stay inside one region.
    pub hangover_ms: u32,
    /// Regions with less speech than this are dropped (clicks, pops).
    pub min_speech_ms: u32,
    /// Added before and after every region (then clamped to the buffer).
    pub padding_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            frame_ms: 20,
            min_threshold_dbfs: -50.0,
            max_threshold_dbfs: -35.0,
            noise_margin_db: 10.0,
            noise_quantile: 0.1,
            hangover_ms: 400,
            min_speech_ms: 80,
            padding_ms: 200,
        }
    }
}

/// Level of silence, so log10(0) never appears.
const SILENCE_DBFS: f32 = -120.0;

/// Speech regions of `pcm_8k` (8 kHz mono), sorted and non-overlapping. Empty for silence.
pub fn detect(pcm_8k: &[i16], config: &VadConfig) -> Vec<SpeechRegion> {
    let frame_ms = config.frame_ms.max(1);
    let samples_per_frame = (PHONE_RATE_HZ / 1000 * frame_ms) as usize;
    let levels_dbfs: Vec<f32> = pcm_8k.chunks(samples_per_frame).map(level_dbfs).collect();
    if levels_dbfs.is_empty() {
        return Vec::new();
    }
    let threshold_dbfs = threshold_dbfs(&levels_dbfs, config);

    let frame_ms = u64::from(frame_ms);
    let hangover_frames = u64::from(config.hangover_ms).div_ceil(frame_ms) as usize;
    let min_speech_frames = u64::from(config.min_speech_ms).div_ceil(frame_ms) as usize;

    // Runs of speech frames, joined across gaps up to the hangover: (first, last, speech frames).
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &level) in levels_dbfs.iter().enumerate() {
        if level <= threshold_dbfs {
            continue;
        }
        match runs.last_mut() {
            Some((_, last, count)) if i - *last <= hangover_frames => {
                *last = i;
                *count += 1;
            }
            _ => runs.push((i, i, 1)),
        }
    }

    let duration_ms = pcm_8k.len() as u64 * 1000 / u64::from(PHONE_RATE_HZ);
    let padding_ms = u64::from(config.padding_ms);
    let mut regions: Vec<SpeechRegion> = Vec::new();
    for (first, last, count) in runs {
        if count < min_speech_frames.max(1) {
            continue;
        }
        let start_ms = (first as u64 * frame_ms).saturating_sub(padding_ms);
        let end_ms = ((last as u64 + 1) * frame_ms + padding_ms).min(duration_ms);
        match regions.last_mut() {
            // Padding can make neighbours touch: one region, not two whisper inputs.
            Some(prev) if start_ms <= prev.end_ms => prev.end_ms = prev.end_ms.max(end_ms),
            _ => regions.push(SpeechRegion { start_ms, end_ms }),
        }
    }
    regions
}

fn threshold_dbfs(levels_dbfs: &[f32], config: &VadConfig) -> f32 {
    let mut sorted = levels_dbfs.to_vec();
    sorted.sort_by(f32::total_cmp);
    let q = config.noise_quantile.clamp(0.0, 1.0);
    let idx = ((sorted.len() - 1) as f32 * q).round() as usize;
    let noise_floor_dbfs = sorted[idx.min(sorted.len() - 1)];
    let lo = config.min_threshold_dbfs;
    // A ceiling below the floor would make clamp panic: the floor wins then.
    let hi = config.max_threshold_dbfs.max(lo);
    (noise_floor_dbfs + config.noise_margin_db).clamp(lo, hi)
}

/// RMS level of one frame relative to full scale.
fn level_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return SILENCE_DBFS;
    }
    let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let mean_square = energy / frame.len() as f64 / (32768.0 * 32768.0);
    if mean_square <= 0.0 {
        return SILENCE_DBFS;
    }
    ((10.0 * mean_square.log10()) as f32).max(SILENCE_DBFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: usize = 8000;

    fn silence(ms: usize) -> Vec<i16> {
        vec![0; RATE / 1000 * ms]
    }

    /// A 440 Hz tone at `dbfs` (RMS), standing in for speech energy.
    fn tone(ms: usize, dbfs: f64) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbfs / 20.0) * 2f64.sqrt();
        (0..RATE / 1000 * ms)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    /// Deterministic white-ish noise at about `dbfs` (RMS).
    fn noise(ms: usize, dbfs: f64) -> Vec<i16> {
        let amp = 32768.0 * 10f64.powf(dbfs / 20.0) * 3f64.sqrt();
        let mut x: u32 = 0x1234_5678;
        (0..RATE / 1000 * ms)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                ((f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0) * amp) as i16
            })
            .collect()
    }

    fn cat(parts: &[Vec<i16>]) -> Vec<i16> {
        parts.concat()
    }

    fn region(start_ms: u64, end_ms: u64) -> SpeechRegion {
        SpeechRegion { start_ms, end_ms }
    }

    #[test]
    fn silence_and_empty_input_have_no_regions() {
        let cfg = VadConfig::default();
        assert!(detect(&[], &cfg).is_empty());
        assert!(detect(&silence(10_000), &cfg).is_empty());
    }

    #[test]
    fn line_noise_below_the_absolute_floor_is_not_speech() {
        assert!(detect(&noise(5_000, -60.0), &VadConfig::default()).is_empty());
    }

    #[test]
    fn a_burst_is_found_and_padded() {
        let pcm = cat(&[silence(1000), tone(1000, -20.0), silence(1000)]);
        assert_eq!(detect(&pcm, &VadConfig::default()), vec![region(800, 2200)]);
    }

    #[test]
    fn padding_is_clamped_to_the_buffer() {
        let pcm = cat(&[tone(500, -20.0), silence(100)]);
        assert_eq!(detect(&pcm, &VadConfig::default()), vec![region(0, 600)]);
    }

    #[test]
    fn short_pauses_stay_inside_one_region_long_ones_split() {
        let cfg = VadConfig::default();
        let pcm = cat(&[
            silence(1000),
            tone(600, -20.0),
            silence(300), // < hangover: same region
            tone(600, -20.0),
            silence(3000), // a real pause
            tone(600, -20.0),
            silence(1000),
        ]);
        assert_eq!(
            detect(&pcm, &cfg),
            vec![region(800, 2700), region(5300, 6300)]
        );
    }

    #[test]
    fn a_click_is_dropped() {
        let pcm = cat(&[silence(1000), tone(20, -6.0), silence(1000)]);
        assert!(detect(&pcm, &VadConfig::default()).is_empty());
    }

    #[test]
    fn speech_over_background_noise_is_found_relative_to_the_noise_floor() {
        // -40 dBFS hiss is above the absolute floor; speech 25 dB above it is still found, and
        // the hiss alone is not.
        let pcm = cat(&[noise(2000, -40.0), tone(1000, -15.0), noise(2000, -40.0)]);
        let found = detect(&pcm, &VadConfig::default());
        assert_eq!(found, vec![region(1800, 3200)]);
    }

    #[test]
    fn continuous_loud_speech_is_one_region() {
        // The noise floor is the signal itself here; the ceiling keeps it detected.
        let pcm = tone(5000, -20.0);
        assert_eq!(detect(&pcm, &VadConfig::default()), vec![region(0, 5000)]);
    }

    #[test]
    fn nonsense_config_does_not_panic() {
        let cfg = VadConfig {
            frame_ms: 0,
            min_threshold_dbfs: -10.0,
            max_threshold_dbfs: -60.0,
            noise_quantile: 7.0,
            hangover_ms: 0,
            min_speech_ms: 0,
            padding_ms: u32::MAX,
            ..VadConfig::default()
        };
        let pcm = cat(&[silence(100), tone(100, -3.0), silence(100)]);
        let found = detect(&pcm, &cfg);
        assert!(found
            .iter()
            .all(|r| r.end_ms <= 300 && r.start_ms <= r.end_ms));
    }
}
