//! N-party audio mixer ("mix-minus"): every participant hears the sum of all *other*
//! participants, never themselves.
//!
//! Sans-IO and allocation-free per tick: the caller decodes each participant's frame (mono i16 at
//! the mixer's rate, exactly one frame long; a participant with nothing this tick passes `None`
//! and is silence), calls [`Mixer::mix`] once per frame period, and encodes each output.
//!
//! # How
//!
//! The total of all present frames is summed once into a preallocated `i32` accumulator (10
//! participants of full-scale i16 need 19 bits, far from overflow); each participant's output is
//! `total - own frame`, so the work is O(N·frame) instead of O(N²·frame).
//!
//! # Saturation: hard clipping
//!
//! Each output sample is clipped to the i16 range (and the number of clipped samples reported).
//! Clipping is bit-transparent whenever the sum fits, which is the normal case in a call (one
//! person talks at a time; phone audio sits well below full scale): two parties hear each other
//! exactly. A soft limiter would colour every loud passage, or needs look-ahead (latency) and
//! per-listener gain state to avoid pumping; it is worth adding only if [`MixReport::clipped`]
//! shows clipping is common in real calls.
//!
//! # Limit
//!
//! At most [`MAX_PARTICIPANTS`] (10) per mixer: a product rule. More is
//! [`MixerError::TooManyParticipants`], never silently dropped audio.

use std::time::Duration;

/// Product rule: the largest conference one mixer serves.
pub const MAX_PARTICIPANTS: usize = 10;

/// A participant's id, unique within one tick's inputs.
pub type ParticipantId = u8;

/// Errors from the mixer. `mix` checks everything before writing any output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MixerError {
    /// Only 8000 and 48000 Hz mono are mixed.
    #[error("mixer supports 8000 or 48000 Hz, got {sample_rate} Hz")]
    UnsupportedRate { sample_rate: u32 },
    /// The frame duration is zero or not a whole number of samples.
    #[error("mixer frame duration of {micros} µs is not a whole number of samples")]
    InvalidFrameDuration { micros: u128 },
    /// More than [`MAX_PARTICIPANTS`] inputs in one tick.
    #[error("{count} participants in one mix, at most {max} allowed")]
    TooManyParticipants { count: usize, max: usize },
    /// The same id appears twice in one tick.
    #[error("participant {id} appears twice in one mix")]
    DuplicateParticipant { id: ParticipantId },
    /// A participant's frame is not exactly one frame long (the decoder stage must pad or conceal).
    #[error("participant {id} frame has {got} samples, expected {expected}")]
    FrameLength {
        id: ParticipantId,
        expected: usize,
        got: usize,
    },
    /// The output buffer is shorter than `inputs.len() * frame_len`.
    #[error("mix output needs {needed} samples, got {got}")]
    OutputTooSmall { needed: usize, got: usize },
}

impl MixerError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            MixerError::UnsupportedRate { .. } => "media.mixer_unsupported_rate",
            MixerError::InvalidFrameDuration { .. } => "media.mixer_invalid_frame_duration",
            MixerError::TooManyParticipants { .. } => "media.mixer_too_many_participants",
            MixerError::DuplicateParticipant { .. } => "media.mixer_duplicate_participant",
            MixerError::FrameLength { .. } => "media.mixer_frame_length",
            MixerError::OutputTooSmall { .. } => "media.mixer_output_too_small",
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MixReport {
    /// Participants that had a frame this tick.
    pub active: usize,
    /// Output samples (over all participants) clipped to the i16 range.
    pub clipped: usize,
}

/// Mix-minus mixer for one conference; frame size fixed at construction.
#[derive(Debug, Clone)]
pub struct Mixer {
    sample_rate: u32,
    frame_len: usize,
    /// Sum of all present frames, reused every tick.
    total: Vec<i32>,
}

impl Mixer {
    /// A mixer for mono frames of `frame_duration` at `sample_rate` (8000 or 48000 Hz); 20 ms
    /// gives 160 or 960 samples.
    pub fn new(sample_rate: u32, frame_duration: Duration) -> Result<Mixer, MixerError> {
        if sample_rate != 8000 && sample_rate != 48_000 {
            return Err(MixerError::UnsupportedRate { sample_rate });
        }
        let micros = frame_duration.as_micros();
        let units = u128::from(sample_rate) * frame_duration.as_nanos();
        let whole = units / 1_000_000_000;
        if whole == 0 || whole * 1_000_000_000 != units {
            return Err(MixerError::InvalidFrameDuration { micros });
        }
        let frame_len =
            usize::try_from(whole).map_err(|_| MixerError::InvalidFrameDuration { micros })?;
        Ok(Mixer {
            sample_rate,
            frame_len,
            total: vec![0; frame_len],
        })
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Sample rate in Hz.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Output length `mix` needs for `participants` inputs.
    pub fn output_len(&self, participants: usize) -> usize {
        participants.saturating_mul(self.frame_len)
    }

    /// Mixes one tick. `out` is split into `frame_len` chunks: chunk `i` receives what
    /// `inputs[i]`'s participant hears (everyone else's frames summed, clipped to i16). On error
    /// nothing is written.
    pub fn mix(
        &mut self,
        inputs: &[(ParticipantId, Option<&[i16]>)],
        out: &mut [i16],
    ) -> Result<MixReport, MixerError> {
        if inputs.len() > MAX_PARTICIPANTS {
            return Err(MixerError::TooManyParticipants {
                count: inputs.len(),
                max: MAX_PARTICIPANTS,
            });
        }
        let needed = self.output_len(inputs.len());
        if out.len() < needed {
            return Err(MixerError::OutputTooSmall {
                needed,
                got: out.len(),
            });
        }
        for (i, &(id, frame)) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|&(other, _)| other == id) {
                return Err(MixerError::DuplicateParticipant { id });
            }
            if let Some(frame) = frame {
                if frame.len() != self.frame_len {
                    return Err(MixerError::FrameLength {
                        id,
                        expected: self.frame_len,
                        got: frame.len(),
                    });
                }
            }
        }

        let mut report = MixReport::default();
        self.total.fill(0);
        for frame in inputs.iter().filter_map(|&(_, frame)| frame) {
            report.active += 1;
            for (acc, &sample) in self.total.iter_mut().zip(frame) {
                *acc += i32::from(sample);
            }
        }

        for (&(_, own), chunk) in inputs.iter().zip(out.chunks_exact_mut(self.frame_len)) {
            match own {
                Some(own) => {
                    for ((o, &total), &mine) in chunk.iter_mut().zip(&self.total).zip(own) {
                        *o = clip(total - i32::from(mine), &mut report.clipped);
                    }
                }
                None => {
                    for (o, &total) in chunk.iter_mut().zip(&self.total) {
                        *o = clip(total, &mut report.clipped);
                    }
                }
            }
        }
        Ok(report)
    }
}

fn clip(sample: i32, clipped: &mut usize) -> i16 {
    match i16::try_from(sample) {
        Ok(s) => s,
        Err(_) => {
            *clipped += 1;
            if sample > 0 {
                i16::MAX
            } else {
                i16::MIN
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    fn frame(value: i16) -> Vec<i16> {
        vec![value; 160]
    }

    #[test]
    fn frame_sizes_follow_rate() {
        assert_eq!(Mixer::new(8000, MS20).unwrap().frame_len(), 160);
        assert_eq!(Mixer::new(48_000, MS20).unwrap().frame_len(), 960);
        assert_eq!(
            Mixer::new(16_000, MS20).unwrap_err().code(),
            "media.mixer_unsupported_rate"
        );
        assert_eq!(
            Mixer::new(8000, Duration::from_micros(10))
                .unwrap_err()
                .code(),
            "media.mixer_invalid_frame_duration"
        );
        assert!(Mixer::new(8000, Duration::ZERO).is_err());
    }

    #[test]
    fn two_parties_hear_each_other_exactly() {
        let mut m = Mixer::new(8000, MS20).unwrap();
        let a: Vec<i16> = (0..160).map(|i| (i * 97 % 2000 - 1000) as i16).collect();
        let b: Vec<i16> = (0..160).map(|i| (i * 31 % 3000 - 1500) as i16).collect();
        let mut out = vec![0; 320];
        let report = m.mix(&[(1, Some(&a)), (2, Some(&b))], &mut out).unwrap();
        assert_eq!(&out[..160], &b[..]);
        assert_eq!(&out[160..], &a[..]);
        assert_eq!(
            report,
            MixReport {
                active: 2,
                clipped: 0
            }
        );
    }

    #[test]
    fn three_parties_hear_the_other_two_summed() {
        let mut m = Mixer::new(48_000, MS20).unwrap();
        let a = vec![100i16; 960];
        let b = vec![-20i16; 960];
        let c: Vec<i16> = (0..960).map(|i| i as i16).collect();
        let mut out = vec![0; 3 * 960];
        m.mix(&[(7, Some(&a)), (8, Some(&b)), (9, Some(&c))], &mut out)
            .unwrap();
        for i in 0..960 {
            assert_eq!(out[i], b[i] + c[i]);
            assert_eq!(out[960 + i], a[i] + c[i]);
            assert_eq!(out[2 * 960 + i], a[i] + b[i]);
        }
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let mut m = Mixer::new(8000, MS20).unwrap();
        let (hi, lo) = (frame(30_000), frame(-30_000));
        let mut out = vec![0; 4 * 160];
        let report = m
            .mix(
                &[
                    (1, Some(&hi)),
                    (2, Some(&hi)),
                    (3, Some(&lo)),
                    (4, Some(&lo)),
                ],
                &mut out,
            )
            .unwrap();
        // 1 hears 30000 - 60000 = -30000 (exact); 3 hears 60000 - 30000 = 30000 (exact).
        assert!(out[..160].iter().all(|&s| s == -30_000));
        assert!(out[2 * 160..3 * 160].iter().all(|&s| s == 30_000));
        assert_eq!(report.clipped, 0);
        let report = m
            .mix(&[(1, Some(&hi)), (2, Some(&hi)), (3, Some(&hi))], &mut out)
            .unwrap();
        assert!(out[..3 * 160].iter().all(|&s| s == i16::MAX));
        assert_eq!(report.clipped, 3 * 160);
        let report = m
            .mix(&[(1, Some(&lo)), (2, Some(&lo)), (3, Some(&lo))], &mut out)
            .unwrap();
        assert!(out[..3 * 160].iter().all(|&s| s == i16::MIN));
        assert_eq!(report.clipped, 3 * 160);
        // Extremes: i16::MIN frames summed by nine others cannot overflow the i32 accumulator.
        let min = frame(i16::MIN);
        let inputs: Vec<(ParticipantId, Option<&[i16]>)> =
            (0..10).map(|id| (id, Some(&min[..]))).collect();
        let mut out = vec![0; 10 * 160];
        m.mix(&inputs, &mut out).unwrap();
        assert!(out.iter().all(|&s| s == i16::MIN));
    }

    #[test]
    fn absent_party_hears_everyone_and_is_silence_for_others() {
        let mut m = Mixer::new(8000, MS20).unwrap();
        let (a, b) = (frame(1000), frame(-300));
        let mut out = vec![1; 3 * 160];
        let report = m
            .mix(&[(1, Some(&a)), (2, None), (3, Some(&b))], &mut out)
            .unwrap();
        assert!(out[..160].iter().all(|&s| s == -300));
        assert!(out[160..320].iter().all(|&s| s == 700));
        assert!(out[320..].iter().all(|&s| s == 1000));
        assert_eq!(report.active, 2);
        // Everybody muted: silence everywhere, including a lone participant.
        m.mix(&[(1, None), (2, None)], &mut out).unwrap();
        assert!(out[..320].iter().all(|&s| s == 0));
        m.mix(&[(1, Some(&a))], &mut out).unwrap();
        assert!(out[..160].iter().all(|&s| s == 0));
        m.mix(&[], &mut []).unwrap();
    }

    #[test]
    fn participant_limit_is_a_clear_error() {
        let mut m = Mixer::new(8000, MS20).unwrap();
        let a = frame(1);
        let ten: Vec<(ParticipantId, Option<&[i16]>)> =
            (0..10).map(|id| (id, Some(&a[..]))).collect();
        let mut out = vec![0; 11 * 160];
        m.mix(&ten, &mut out).unwrap();
        assert!(out[..10 * 160].iter().all(|&s| s == 9));
        let eleven: Vec<(ParticipantId, Option<&[i16]>)> = (0..11).map(|id| (id, None)).collect();
        let before = out.clone();
        let err = m.mix(&eleven, &mut out).unwrap_err();
        assert_eq!(err, MixerError::TooManyParticipants { count: 11, max: 10 });
        assert_eq!(err.code(), "media.mixer_too_many_participants");
        assert_eq!(
            err.to_string(),
            "11 participants in one mix, at most 10 allowed"
        );
        assert_eq!(out, before, "nothing written on error");
    }

    #[test]
    fn bad_inputs_are_errors_without_output() {
        let mut m = Mixer::new(8000, MS20).unwrap();
        let a = frame(5);
        let short = vec![5i16; 80];
        let mut out = vec![42; 320];
        let err = m.mix(&[(1, Some(&a)), (1, None)], &mut out).unwrap_err();
        assert_eq!(err.code(), "media.mixer_duplicate_participant");
        let err = m
            .mix(&[(1, Some(&a)), (2, Some(&short))], &mut out)
            .unwrap_err();
        assert_eq!(
            err,
            MixerError::FrameLength {
                id: 2,
                expected: 160,
                got: 80
            }
        );
        let err = m
            .mix(&[(1, Some(&a)), (2, None)], &mut out[..200])
            .unwrap_err();
        assert_eq!(err.code(), "media.mixer_output_too_small");
        assert!(out.iter().all(|&s| s == 42));
    }

    #[test]
    fn accumulator_is_reset_between_ticks() {
        let mut m = Mixer::new(8000, MS20).unwrap();
        let (a, b) = (frame(10), frame(20));
        let mut out = vec![0; 320];
        m.mix(&[(1, Some(&a)), (2, Some(&b))], &mut out).unwrap();
        m.mix(&[(1, Some(&a)), (2, None)], &mut out).unwrap();
        assert!(out[..160].iter().all(|&s| s == 0));
        assert!(out[160..].iter().all(|&s| s == 10));
    }
}
